// Tests that start a `fleetlet agent` process run it as the image does: the
// production bundle (dist/agent.mjs, built by `npm run build`; the global
// set-up builds it once per run) with the node flags of the Dockerfile's
// ENTRYPOINT. A fault that only the bundle has (a module esbuild cannot
// resolve, a dynamic import it dropped) fails these tests; unit tests run
// the TypeScript sources.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const repo = new URL('../../', import.meta.url).pathname;

/** The image's ENTRYPOINT, exec form, with /app/ mapped to this checkout. */
export function shippedEntrypoint(): string[] {
  const entrypoints = [...readFileSync(join(repo, 'Dockerfile'), 'utf8').matchAll(/^ENTRYPOINT\s+(\[.*\])\s*$/gm)];
  const last = entrypoints.at(-1);
  if (!last) throw new Error('Dockerfile: no exec-form ENTRYPOINT');
  const argv = JSON.parse(last[1]!) as string[];
  if (argv[0] !== 'node') throw new Error(`Dockerfile ENTRYPOINT must run node, got ${argv[0]}`);
  return argv.slice(1).map((a) => (a.startsWith('/app/') ? join(repo, a.slice('/app/'.length)) : a));
}

/** node's arguments for `fleetlet agent <args>` run from the bundle as shipped. */
export function shippedAgentArgv(args: string[]): string[] {
  const argv = shippedEntrypoint();
  const bundle = argv.find((a) => a.endsWith('.mjs'));
  if (!bundle || !existsSync(bundle)) throw new Error(`${bundle ?? 'the bundle'} is missing: run \`npm run build\` (the tests' global set-up does)`);
  return [...argv, ...args];
}
