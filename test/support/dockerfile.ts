// Without a Docker engine, the next best check of the Dockerfile: parse it,
// assemble the final stage's file layout in a temp dir the way `docker
// build` would (COPY from the context honours .dockerignore; the build
// stage's output is the production bundles and better-sqlite3, staged by
// scripts/build.ts as its RUN line does), and let a test run the ENTRYPOINT
// there. A COPY of a wrong path, a file .dockerignore hides, or a bundle that
// needs a module the image lacks all fail.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, matchesGlob, posix, relative } from 'node:path';

export interface Instruction {
  op: string;
  args: string;
  line: number;
}

export interface Stage {
  from: string;
  name: string | undefined;
  instructions: Instruction[];
}

export class DockerfileUnsupported extends Error {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.name = 'DockerfileUnsupported';
    this.reason = reason;
  }
}

/** Instructions per stage; line continuations joined, comments dropped. */
export function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i + 1;
    let line = lines[i]!;
    if (/^\s*(#|$)/.test(line)) continue;
    while (line.endsWith('\\') && i + 1 < lines.length) {
      line = `${line.slice(0, -1)} ${lines[++i]!.replace(/^\s*#.*$/, '')}`;
    }
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (!m) throw new DockerfileUnsupported('Syntax', `Dockerfile line ${start}: cannot parse "${line}"`);
    const op = m[1]!.toUpperCase();
    const args = m[2]!.trim();
    if (op === 'FROM') {
      const f = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      if (!f) throw new DockerfileUnsupported('Syntax', `Dockerfile line ${start}: FROM ${args}`);
      stages.push({ from: f[1]!, name: f[2], instructions: [] });
      continue;
    }
    if (stages.length === 0) throw new DockerfileUnsupported('Syntax', `Dockerfile line ${start}: ${op} before FROM`);
    stages.at(-1)!.instructions.push({ op, args, line: start });
  }
  return stages;
}

/** Arguments of an exec-form (JSON array) or shell-form instruction. */
export function execForm(args: string): string[] {
  if (args.startsWith('[')) return JSON.parse(args) as string[];
  return ['/bin/sh', '-c', args];
}

/** Docker's .dockerignore rules (last match wins, `!` re-includes; a match on a directory covers what is inside). */
export function dockerignore(text: string): (path: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => ({ include: l.startsWith('!'), pattern: posix.normalize(l.replace(/^!/, '').replace(/^\/+/, '')).replace(/\/+$/, '') }));
  return (path) => {
    const parts = path.split('/');
    let ignored = false;
    for (const r of rules) {
      for (let n = 1; n <= parts.length; n++) {
        if (matchesGlob(parts.slice(0, n).join('/'), r.pattern)) {
          ignored = !r.include;
          break;
        }
      }
    }
    return ignored;
  };
}

export interface AssembleOptions {
  /** The build context (repository root). */
  context: string;
  /** Where the image's filesystem root goes. */
  rootfs: string;
  dockerfile?: string;
}

export interface Assembled {
  stage: Stage;
  workdir: string;
  user: string | undefined;
  env: Record<string, string>;
  entrypoint: string[];
  /** Paths copied from the context, relative to it. */
  copied: string[];
}

/** Builds the final stage's layout under `rootfs`: COPY from the context and from the build stage's /app/node_modules. */
export function assembleFinalStage(o: AssembleOptions): Assembled {
  const stages = parseDockerfile(readFileSync(o.dockerfile ?? join(o.context, 'Dockerfile'), 'utf8'));
  const stage = stages.at(-1)!;
  const ignoreFile = join(o.context, '.dockerignore');
  const ignored = existsSync(ignoreFile) ? dockerignore(readFileSync(ignoreFile, 'utf8')) : () => false;
  let workdir = '/';
  let user: string | undefined;
  let entrypoint: string[] = [];
  const env: Record<string, string> = {};
  const copied: string[] = [];
  const inRoot = (p: string) => join(o.rootfs, posix.resolve(workdir, p));

  for (const ins of stage.instructions) {
    switch (ins.op) {
      case 'WORKDIR':
        workdir = posix.resolve(workdir, ins.args);
        mkdirSync(inRoot('.'), { recursive: true });
        break;
      case 'ENV': {
        const m = /^(\w+)=(.*)$/.exec(ins.args);
        if (!m) throw new DockerfileUnsupported('Syntax', `line ${ins.line}: ENV ${ins.args} (use ENV KEY=value)`);
        env[m[1]!] = m[2]!;
        break;
      }
      case 'USER':
        user = ins.args;
        break;
      case 'ENTRYPOINT':
        entrypoint = execForm(ins.args);
        break;
      case 'COPY': {
        const words = ins.args.split(/\s+/);
        const flags = words.filter((w) => w.startsWith('--'));
        const [dest, ...srcsReversed] = words.filter((w) => !w.startsWith('--')).reverse();
        const srcs = srcsReversed.reverse();
        if (!dest || srcs.length === 0) throw new DockerfileUnsupported('Syntax', `line ${ins.line}: COPY needs a source and a destination`);
        const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
        if (flags.some((f) => !f.startsWith('--from=') && !f.startsWith('--chown=') && !f.startsWith('--chmod='))) {
          throw new DockerfileUnsupported('Flag', `line ${ins.line}: COPY ${flags.join(' ')} is not emulated`);
        }
        if (from !== undefined) {
          copyFromBuildStage(o, stages, from, srcs, inRoot(dest), ins.line);
          break;
        }
        const toDir = dest.endsWith('/') || srcs.length > 1;
        for (const src of srcs) {
          const abs = join(o.context, src);
          if (!existsSync(abs) || ignored(posix.normalize(src))) throw new DockerfileUnsupported('MissingSource', `line ${ins.line}: COPY ${src}: not in the build context${existsSync(abs) ? ' (excluded by .dockerignore)' : ''}`);
          const target = toDir ? join(inRoot(dest), posix.basename(src)) : inRoot(dest);
          if (statSync(abs).isDirectory()) {
            // Like docker: a directory's contents land in the destination.
            for (const rel of walk(abs)) {
              const path = posix.join(posix.normalize(src), rel);
              if (ignored(path)) continue;
              mkdirSync(dirname(join(inRoot(dest), rel)), { recursive: true });
              cpSync(join(abs, rel), join(inRoot(dest), rel));
              copied.push(path);
            }
          } else {
            mkdirSync(dirname(target), { recursive: true });
            cpSync(abs, target);
            copied.push(posix.normalize(src));
          }
        }
        break;
      }
      case 'RUN':
      case 'VOLUME':
      case 'EXPOSE':
      case 'LABEL':
        break; // no effect on what the entrypoint can import
      default:
        throw new DockerfileUnsupported('Instruction', `line ${ins.line}: ${ins.op} is not emulated`);
    }
  }
  return { stage, workdir, user, env, entrypoint, copied };
}

/**
 * The build stage's output, emulated: its RUN `node scripts/build.ts
 * --runtime-dir <dir>` bundles this checkout's sources and stages what the
 * runtime needs in <dir> (scripts/build.ts stageRuntime); here the same two
 * steps run from the build context into `dest`. The bundles are built into a
 * directory of their own, never the checkout's dist/ that running tests use.
 */
function copyFromBuildStage(o: AssembleOptions, stages: Stage[], from: string, srcs: string[], dest: string, line: number): void {
  const build = stages.find((s) => s.name === from);
  if (!build) throw new DockerfileUnsupported('MissingStage', `line ${line}: COPY --from=${from}: no such stage`);
  const workdir = build.instructions.filter((i) => i.op === 'WORKDIR').reduce((w, i) => posix.resolve(w, i.args), '/');
  const copiesLock = build.instructions.some((i) => i.op === 'COPY' && /\bpackage-lock\.json\b/.test(i.args) && /\bpackage\.json\b/.test(i.args));
  if (!copiesLock) throw new DockerfileUnsupported('NoLockfile', `stage ${from} must COPY package.json and package-lock.json before npm ci`);
  const staging = build.instructions.map((i) => (i.op === 'RUN' ? /\bnode scripts\/build\.ts --runtime-dir (\S+)/.exec(i.args)?.[1] : undefined)).find(Boolean);
  if (!staging) throw new DockerfileUnsupported('NoBundle', `stage ${from} must RUN \`node scripts/build.ts --runtime-dir <dir>\``);
  const runtimeDir = posix.resolve(workdir, staging);
  if (srcs.length !== 1 || posix.resolve(workdir, srcs[0]!).replace(/\/$/, '') !== runtimeDir) {
    throw new DockerfileUnsupported('CopyFromStage', `line ${line}: only ${runtimeDir}/ is emulated from stage ${from}`);
  }
  const bundles = mkdtempSync(join(tmpdir(), 'fleetlet-bundles-'));
  try {
    const res = spawnSync(process.execPath, [join(o.context, 'scripts/build.ts'), `--runtime-dir=${dest}`, `--outdir=${bundles}`], { encoding: 'utf8' });
    if (res.status !== 0) throw new DockerfileUnsupported('BuildFailed', `line ${line}: node scripts/build.ts failed: ${res.stderr}`);
  } finally {
    rmSync(bundles, { recursive: true, force: true });
  }
}

function walk(dir: string, base = dir): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p, base));
    else out.push(relative(base, p).split('\\').join('/'));
  }
  return out;
}
