// Secrets (bootstrap and admin tokens) come from a file or the environment:
// on the command line `ps`, the shell history and the pod spec all show
// them (docs/security.md). A file mounted from a Kubernetes Secret changes
// in place when the Secret does, so a reader that wants the new value reads
// it again rather than once.
import { readFileSync } from 'node:fs';

export class SecretFileError extends Error {
  override readonly name = 'SecretFileError';
  readonly path: string;

  constructor(path: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.path = path;
  }
}

/**
 * The file's text without surrounding whitespace (a trailing newline is how
 * editors and `echo` leave it); undefined while the file is missing or
 * empty, which is how an optional Secret volume looks before the Secret
 * exists. Any other failure (a directory, no permission) throws, naming the
 * file.
 */
export function readSecretFile(path: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SecretFileError(path, `cannot read the secret file ${path}: ${(err as Error).message}`, { cause: err });
  }
  const value = text.trim();
  return value === '' ? undefined : value;
}

/** The file's lines that are not blank or `#` comments, trimmed: a list of tokens, one a line. */
export function readSecretLines(path: string): string[] {
  const text = readSecretFile(path);
  if (text === undefined) throw new SecretFileError(path, `the secret file ${path} is missing or empty`);
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}
