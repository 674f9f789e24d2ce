// Reads the local policy file at start and whenever it changes. The file is
// mounted from a ConfigMap, whose updates arrive as an atomic swap of a
// `..data` symlink in the mount directory, so the directory is watched, not
// the file (a watch on the file would keep following the old inode). An
// invalid file never replaces a valid policy: the last valid one stays in
// force and the error names the field, so windows keep working while a
// person fixes the typo.
import { createHash } from 'node:crypto';
import { watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { validatePolicy, type Policy, type PolicyIssue } from '../../protocol/policy.ts';

export interface LocatedIssue extends PolicyIssue {
  /** 1-based line in the file, when the field (or its nearest parent) is present. */
  line?: number;
}

export class PolicyFileError extends Error {
  readonly file: string;
  readonly issues: LocatedIssue[];
  /** What a person should do about it. */
  readonly reason: string;

  constructor(file: string, issues: LocatedIssue[], reason?: string) {
    const list = issues.map((i) => `${i.path === '' ? '(document)' : i.path}${i.line ? ` (line ${i.line})` : ''}: ${i.message}`).join('; ');
    super(`invalid policy file ${file}: ${list}`);
    this.name = 'PolicyFileError';
    this.file = file;
    this.issues = issues;
    this.reason = reason ?? `fix ${issues.map((i) => i.path || 'the document').join(', ')} in ${file}; until then the last valid policy stays in force`;
  }
}

/** Parses and validates policy YAML; throws PolicyFileError naming each bad field. */
export function parsePolicyYaml(text: string, file = 'policy.yaml'): Policy {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) {
    // Pretty errors carry a code excerpt after the first line; keep one line per issue.
    throw new PolicyFileError(
      file,
      doc.errors.map((e) => ({ path: '', keys: [], message: (e.message.split('\n')[0] ?? e.message).replace(/:$/, ''), ...(e.linePos ? { line: e.linePos[0].line } : {}) })),
    );
  }
  const content: unknown = doc.toJS();
  if (content === null || content === undefined) throw new PolicyFileError(file, [{ path: '', keys: [], message: 'the file is empty' }]);
  const v = validatePolicy(content);
  if (v.ok) return v.policy;
  throw new PolicyFileError(
    file,
    v.issues.map((issue) => {
      const line = lineOf(doc, lines, issue.keys);
      return line === undefined ? issue : { ...issue, line };
    }),
  );
}

/** Line of the field, or of its nearest parent that exists (a missing field is reported where it belongs). */
function lineOf(doc: ReturnType<typeof parseDocument>, lines: LineCounter, keys: readonly (string | number)[]): number | undefined {
  for (let n = keys.length; n >= 0; n--) {
    const node = doc.getIn(keys.slice(0, n), true) as { range?: [number, number, number] } | undefined;
    if (node && typeof node === 'object' && node.range) return lines.linePos(node.range[0]).line;
  }
  return undefined;
}

export interface LoadedPolicy {
  policy: Policy;
  file: string;
  /** sha256 of the file bytes: journal it to tell which policy allowed an attempt. */
  digest: string;
  loadedAt: Date;
}

/** The subset of pino's logger the loader uses. */
export interface PolicyLoaderLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface PolicyWatchOptions {
  path: string;
  /** Stops watching and polling. */
  signal: AbortSignal;
  now: () => Date;
  onPolicy: (loaded: LoadedPolicy) => void;
  /** Called once per distinct invalid content (or disappearance) of the file. */
  onInvalid: (error: PolicyFileError) => void;
  logger?: PolicyLoaderLogger;
  /** ConfigMap swaps fire several events; wait this long for them to settle. Default 200ms. */
  debounceMs?: number;
  /** Re-read this often even without events (watches can miss changes on some filesystems); 0 disables. Default 60s. */
  pollIntervalMs?: number;
}

export interface PolicyWatch {
  /** The policy in force: the last valid one read. */
  current(): LoadedPolicy | undefined;
  /** The error of the latest read, if that read was invalid. */
  lastError(): PolicyFileError | undefined;
  /** Re-reads the file now; resolves when callbacks for it have run. */
  reload(): Promise<void>;
}

/** Loads the policy once (callbacks fire before this resolves), then follows changes until the signal aborts. */
export async function watchPolicyFile(opts: PolicyWatchOptions): Promise<PolicyWatch> {
  const { path, signal } = opts;
  let current: LoadedPolicy | undefined;
  let lastError: PolicyFileError | undefined;
  // Content already acted on (valid or not), so one change fires one callback.
  let seenDigest: string | undefined;

  const safely = (what: string, fn: () => void): void => {
    try {
      fn();
    } catch (err) {
      opts.logger?.warn({ err, path }, `policy ${what} callback threw`);
    }
  };

  const readOnce = async (): Promise<void> => {
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
      if (seenDigest === `missing:${code}`) return;
      seenDigest = `missing:${code}`;
      lastError = new PolicyFileError(path, [{ path: '', keys: [], message: code === 'ENOENT' ? 'the file does not exist' : `cannot be read (${code})` }],
        `mount the policy ConfigMap at ${path}; until then ${current ? 'the last valid policy stays in force' : 'no policy is in force'}`);
      safely('onInvalid', () => opts.onInvalid(lastError as PolicyFileError));
      return;
    }
    const digest = createHash('sha256').update(bytes).digest('hex');
    if (digest === seenDigest) return;
    seenDigest = digest;
    try {
      const policy = parsePolicyYaml(bytes.toString('utf8'), path);
      current = { policy, file: path, digest, loadedAt: opts.now() };
      lastError = undefined;
      opts.logger?.info({ path, digest }, 'policy loaded');
      const loaded = current;
      safely('onPolicy', () => opts.onPolicy(loaded));
    } catch (err) {
      if (!(err instanceof PolicyFileError)) throw err;
      lastError = err;
      opts.logger?.warn({ path, issues: err.issues }, current ? 'invalid policy file; keeping the last valid policy' : 'invalid policy file; no policy in force');
      safely('onInvalid', () => opts.onInvalid(err));
    }
  };

  // One read at a time; events during a read cause exactly one more.
  let running: Promise<void> | undefined;
  let again = false;
  const reload = (): Promise<void> => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        await readOnce();
      } while (again && !signal.aborted);
    })().finally(() => {
      running = undefined;
    });
    return running;
  };
  const reloadInBackground = (): void => {
    reload().catch((err: unknown) => opts.logger?.warn({ err, path }, 'policy reload failed'));
  };

  await reload();
  if (signal.aborted) return { current: () => current, lastError: () => lastError, reload };

  let debounce: NodeJS.Timeout | undefined;
  const schedule = (): void => {
    clearTimeout(debounce);
    debounce = setTimeout(reloadInBackground, opts.debounceMs ?? 200);
  };
  try {
    const watcher = watch(dirname(path), { signal, persistent: true }, schedule);
    watcher.on('error', (err) => opts.logger?.warn({ err, path }, 'watching the policy directory failed; relying on polling'));
  } catch (err) {
    opts.logger?.warn({ err, path }, 'cannot watch the policy directory; relying on polling');
  }
  const pollMs = opts.pollIntervalMs ?? 60_000;
  const poll = pollMs > 0 ? setInterval(reloadInBackground, pollMs) : undefined;
  signal.addEventListener(
    'abort',
    () => {
      clearTimeout(debounce);
      clearInterval(poll);
    },
    { once: true },
  );
  return { current: () => current, lastError: () => lastError, reload };
}
