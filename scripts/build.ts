// `npm run build`: the production bundles, one minified ES module per entry
// point, tree-shaken, with source maps (run them with --enable-source-maps for
// stack traces in the TypeScript sources):
//   dist/agent.mjs     `fleetlet agent` alone: what the image runs
//   dist/hub.mjs       `fleetlet hub` alone
//   dist/fleetlet.mjs  the whole CLI (agent, hub, status, rollout, keys, demo)
//   dist/dashboard/    the hub's fleet dashboard, a browser app (web/: Preact +
//                      Chart.js): index.html, app.js, app-style.css
//   dist/image.mjs     the image's entry point: one of the three by the first argument
// better-sqlite3 stays outside: its native binary cannot be bundled, so the
// image carries node_modules/better-sqlite3 (and the loader it needs) only.
// Why bundle at all: module loading, not work, is most of an idle agent's
// memory (docs/footprint.md).
import { build, type BuildOptions, type Metafile, type Plugin } from 'esbuild';
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire, isBuiltin } from 'node:module';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { parse } from 'yaml';

export const root = new URL('../', import.meta.url).pathname;
export const distDir = join(root, 'dist');

/** The bundles `npm run build` writes, by name under dist/ (name.mjs). */
export const entryPoints = {
  agent: 'bin/fleetlet-agent.ts',
  hub: 'bin/fleetlet-hub.ts',
  fleetlet: 'bin/fleetlet.ts',
  /** The image's entry point: runs agent.mjs, hub.mjs or fleetlet.mjs by the first argument. */
  image: 'bin/fleetlet-image.ts',
} as const;

/** Packages left out of the bundles: native code only. */
export const external = ['better-sqlite3'];

/**
 * Node's built-in modules and the externals are loaded with require(), never
 * imported as ES modules. Node 24 builds an ES module's view of a built-in by
 * reading every export, and node:http's exports include WebSocket, whose
 * getter loads Node's own copy of undici (~10 MiB resident) that the agent
 * never uses; importing a CommonJS package (better-sqlite3) from an ES module
 * loads a lexer to find its exports (docs/footprint.md).
 */
const requireNotImport: Plugin = {
  name: 'require-not-import',
  setup(b) {
    b.onResolve({ filter: /^(node:)?[a-z_/0-9-]+$/ }, (args) => {
      if (!isBuiltin(args.path) && !external.includes(args.path)) return undefined;
      // The require() inside the stand-in below is the real one.
      if (args.namespace === 'require-not-import') return { path: args.path, external: true };
      return { path: args.path, namespace: 'require-not-import' };
    });
    b.onLoad({ filter: /.*/, namespace: 'require-not-import' }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(isBuiltin(args.path) && !args.path.startsWith('node:') ? `node:${args.path}` : args.path)});`,
      loader: 'js',
    }));
  },
};

export const buildOptions: BuildOptions = {
  absWorkingDir: root,
  entryPoints: Object.entries(entryPoints).map(([out, src]) => ({ in: src, out })),
  outdir: distDir,
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node24',
  minify: true,
  // Readable names in stack traces and in heap snapshots (class names show in both).
  keepNames: true,
  sourcemap: 'linked',
  // Mappings only: stack traces need them, not a second copy of every source.
  sourcesContent: false,
  // Bundled CommonJS dependencies call require() for Node's built-ins; an ES
  // module has no require of its own.
  banner: { js: "import{createRequire as __fleetletCreateRequire}from'node:module';const require=__fleetletCreateRequire(import.meta.url);" },
  external,
  plugins: [requireNotImport],
  // ws loads these native accelerators if present (they are not installed).
  // They stay as require() calls that fail and are caught, as without a bundle.
  logOverride: { 'require-resolve-not-external': 'silent' },
  legalComments: 'linked',
  metafile: true,
  logLevel: 'warning',
};

/** What must never be in the agent's bundle: the hub, the demo, the test control plane. */
const notInAgent = [/^src\/hub\//, /^src\/testbed\//, /^src\/cli\/(demo|hub|rollout|keys)-command\.ts$/];

/** The dashboard's browser app, for today's browsers; the hub serves it from dashboard/ beside its bundle (src/hub/dashboard/server.ts). */
export const dashboardOptions: BuildOptions = {
  absWorkingDir: root,
  entryPoints: { app: 'web/src/main.tsx', 'app-style': 'web/src/app.css' },
  entryNames: '[name]',
  bundle: true,
  format: 'esm',
  target: ['chrome120', 'firefox120', 'safari17'],
  minify: true,
  sourcemap: 'linked',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  legalComments: 'linked',
  metafile: true,
  logLevel: 'warning',
};

/** Builds every bundle into `outdir` (default dist/), the dashboard into outdir/dashboard; returns esbuild's metafile (sizes, inputs per output). */
export async function buildBundles(outdir = distDir): Promise<Metafile> {
  rmSync(outdir, { recursive: true, force: true });
  const dashboardDir = join(outdir, 'dashboard');
  const [result, web] = await Promise.all([build({ ...buildOptions, outdir }), build({ ...dashboardOptions, outdir: dashboardDir })]);
  copyFileSync(join(root, 'web/index.html'), join(dashboardDir, 'index.html'));
  const meta: Metafile = { inputs: { ...result.metafile!.inputs, ...web.metafile!.inputs }, outputs: { ...result.metafile!.outputs, ...web.metafile!.outputs } };
  const agent = Object.entries(meta.outputs).find(([file]) => file.endsWith('/agent.mjs') || file === 'agent.mjs');
  const stray = Object.keys(agent?.[1].inputs ?? {}).filter((f) => notInAgent.some((re) => re.test(f)));
  if (stray.length > 0) throw new Error(`the agent's bundle must not hold ${stray.join(', ')}: an import pulls the hub, demo or testbed into the agent`);
  return meta;
}

/**
 * What the image's runtime stage holds besides node, laid out under `dest`
 * as under /app: the bundles with their source maps, and of better-sqlite3
 * only its loader and the one native binary it loads on this platform (not
 * its C sources, not the prebuilt binaries of other platforms).
 */
export function stageRuntime(dest: string, bundles = distDir): string[] {
  const files: string[] = [];
  const copy = (from: string, to: string) => {
    mkdirSync(dirname(join(dest, to)), { recursive: true });
    cpSync(from, join(dest, to), { recursive: true });
    files.push(to);
  };
  for (const name of Object.keys(entryPoints)) {
    copy(join(bundles, `${name}.mjs`), `dist/${name}.mjs`);
    // Source maps for the long-running processes, whose stack traces matter
    // later; not for the one-shot CLI, whose map alone is 7 MiB of an image
    // meant to stay under 150 MiB (docs/footprint.md).
    if (name !== 'fleetlet') copy(join(bundles, `${name}.mjs.map`), `dist/${name}.mjs.map`);
  }
  const sqlite = dirname(createRequire(import.meta.url).resolve('better-sqlite3/package.json'));
  copy(join(sqlite, 'package.json'), 'node_modules/better-sqlite3/package.json');
  copy(join(sqlite, 'lib'), 'node_modules/better-sqlite3/lib');
  // The loader's own order (better-sqlite3/lib/binding.js): a compiled binary first, then the prebuilt one.
  const compiled = join(sqlite, 'build/Release/better_sqlite3.node');
  const prebuilt = join(sqlite, `prebuilds/${process.platform}-${process.arch}.node`);
  if (existsSync(compiled)) copy(compiled, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node');
  else if (existsSync(prebuilt)) copy(prebuilt, `node_modules/better-sqlite3/prebuilds/${process.platform}-${process.arch}.node`);
  else throw new Error(`better-sqlite3 has no native binary for ${process.platform}-${process.arch} (neither ${compiled} nor ${prebuilt}): run npm ci with a compiler present`);
  return files;
}

/** Where the agent's pod is defined; the DaemonSet overlay's pod template is the same (test/integration/manifests.test.ts). */
export const agentManifest = 'manifests/overlays/deployment/deployment.yaml';

interface ContainerView {
  name: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: unknown }[];
}

/**
 * The agent's container as the manifests in `checkout` define it, or
 * undefined where there are none (an earlier release's build keeps only its
 * Dockerfile and dist/, test/support/release-build.ts).
 */
export function agentContainer(checkout = root): ContainerView | undefined {
  const file = join(checkout, agentManifest);
  if (!existsSync(file)) return undefined;
  const deployment = parse(readFileSync(file, 'utf8')) as { spec: { template: { spec: { containers: ContainerView[] } } } };
  const agent = deployment.spec.template.spec.containers.find((c) => c.name === 'agent');
  if (!agent) throw new Error(`${agentManifest}: no container named agent`);
  return agent;
}

/** The Dockerfile's last exec-form (JSON array) instruction `op`, e.g. ENTRYPOINT or CMD. */
function dockerfileExec(checkout: string, op: 'ENTRYPOINT' | 'CMD'): string[] | undefined {
  const dockerfile = readFileSync(join(checkout, 'Dockerfile'), 'utf8');
  const last = [...dockerfile.matchAll(new RegExp(`^${op}\\s+(\\[.*\\])\\s*$`, 'gm'))].at(-1);
  return last ? (JSON.parse(last[1]!) as string[]) : undefined;
}

/**
 * node's arguments for the agent exactly as it ships: the agent's container
 * in the manifests (its `command`, which replaces the image's ENTRYPOINT as
 * Kubernetes does, with the agent's own node flags; the image's ENTRYPOINT
 * where the container sets none) and the command word of its args (`agent`;
 * the rest are the pod's own inputs, which callers give), with /app/ mapped
 * to this checkout, then `args`. Tests and benchmarks that start an agent
 * process use this, so they run what ships. `checkout` is another tree laid
 * out like this one (a Dockerfile, dist/, node_modules/, and manifests/ if
 * it has them): an earlier release's build (test/support/release-build.ts).
 */
export function imageAgentArgv(args: readonly string[] = [], checkout = root): string[] {
  const container = agentContainer(checkout);
  const entrypoint = container?.command ?? dockerfileExec(checkout, 'ENTRYPOINT');
  if (!entrypoint) throw new Error('Dockerfile: no exec-form ENTRYPOINT');
  if (entrypoint[0] !== 'node') throw new Error(`the agent's command must run node, not ${entrypoint[0]}`);
  const command = container?.args ? container.args.slice(0, 1) : (dockerfileExec(checkout, 'CMD') ?? []);
  if (container?.args && command[0] !== 'agent') throw new Error(`${agentManifest}: the agent container's args must start with \`agent\`, not ${command[0]}`);
  const mapped = [...entrypoint.slice(1), ...command].map((a) => (a.startsWith('/app/') ? join(checkout, a.slice('/app/'.length)) : a));
  const bundle = mapped.find((a) => a.endsWith('.mjs'));
  if (!bundle || !existsSync(bundle)) throw new Error(`${bundle ?? 'the bundle'} is missing: run \`npm run build\` (the tests' global set-up does)`);
  return [...mapped, ...args];
}

/**
 * The environment the image sets for its processes (the Dockerfile's ENV
 * lines, `ENV A=1 B=2` form) with /app/ mapped to this checkout, except
 * PATH, which names the image's own layout. `checkout` as for
 * imageAgentArgv.
 */
export function imageEnv(checkout = root): Record<string, string> {
  const dockerfile = readFileSync(join(checkout, 'Dockerfile'), 'utf8');
  const env: Record<string, string> = {};
  for (const m of dockerfile.matchAll(/^ENV\s+(.+)$/gm)) {
    for (const pair of m[1]!.trim().split(/\s+/)) {
      const eq = pair.indexOf('=');
      if (eq < 1) throw new Error(`Dockerfile: ENV ${m[1]}: expected NAME=value pairs`);
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      if (name !== 'PATH') env[name] = value.startsWith('/app/') ? join(checkout, value.slice('/app/'.length)) : value;
    }
  }
  return env;
}

/** Settings of the runtime rather than inputs of the agent: node's, libuv's and the C library's. */
const runtimeEnv = /^(NODE_|UV_|MALLOC_|GLIBC_)/;

/**
 * The runtime settings the agent's container sets with a literal value
 * (e.g. glibc's MALLOC_ARENA_MAX), not the agent's own inputs (cluster id,
 * hub, token file). `checkout` as for imageAgentArgv.
 */
export function agentRuntimeEnv(checkout = root): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of agentContainer(checkout)?.env ?? []) if (e.value !== undefined && runtimeEnv.test(e.name)) env[e.name] = e.value;
  return env;
}

/**
 * The environment the agent ships with: the image's (imageEnv) and its
 * container's runtime settings (agentRuntimeEnv); the agent's own inputs are
 * the callers' to give. Tests and benchmarks that start an agent process as
 * it ships set these. `checkout` as for imageAgentArgv.
 */
export function agentEnv(checkout = root): Record<string, string> {
  return { ...imageEnv(checkout), ...agentRuntimeEnv(checkout) };
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { 'runtime-dir': { type: 'string' }, outdir: { type: 'string', default: distDir } } });
  const meta = await buildBundles(values.outdir);
  for (const [file, out] of Object.entries(meta.outputs)) {
    if (/\.(mjs|js|css)$/.test(file)) process.stdout.write(`${file.padEnd(30)} ${(out.bytes / 1024).toFixed(0).padStart(6)} KiB\n`);
  }
  if (values['runtime-dir']) {
    for (const f of stageRuntime(values['runtime-dir'], values.outdir)) process.stdout.write(`staged ${f}\n`);
  }
}
