// Agent builds of two versions for tests that run both on one journal
// (test/integration/journal-compat.test.ts): HEAD's, which the global set-up
// bundles into dist/, and a tagged release's, bundled from the tag's own
// sources with its own scripts/build.ts and cached under
// ~/.cache/fleetlet/agent-builds/<commit> (a tag's commit never changes).
// Both start as they ship (the agent's command in the manifests, or the
// Dockerfile's ENTRYPOINT where a release has none; the image's ENV).
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { agentEnv, agentManifest, imageAgentArgv, root } from '../../scripts/build.ts';
import { cacheDir } from '../../src/testbed/control-plane.ts';

export interface AgentBuild {
  /** The tag, or HEAD. */
  label: string;
  /** The commit it was built from (HEAD: the checkout's, which may have changes on top). */
  commit: string;
  /** node's arguments to run `fleetlet agent` with `args`, as the build ships it. */
  argv(args: readonly string[]): string[];
  /** The environment the build's agent ships with. */
  env(): Record<string, string>;
  /** Removes what this use laid out (the cache stays). */
  dispose(): void;
}

function git(args: string[]): { ok: boolean; out: string; err: string } {
  const r = spawnSync('git', args, { cwd: root, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  return { ok: r.status === 0, out: r.stdout ?? '', err: r.stderr ?? r.error?.message ?? '' };
}

export function headBuild(): AgentBuild {
  const head = git(['rev-parse', 'HEAD']);
  return { label: 'HEAD', commit: head.ok ? head.out.trim() : 'unknown', argv: (args) => imageAgentArgv(args), env: () => agentEnv(), dispose: () => {} };
}

/**
 * The agent of release `tag`. Fails (never skips) when the tag is not in
 * the clone. The bundle runs with the tag's own dependency tree (for
 * better-sqlite3's native binary): HEAD's node_modules when the tag's lock
 * file is HEAD's, otherwise its own, installed by `npm ci` from the tag's
 * lock file into the cache (once per tag).
 */
export function releaseBuild(tag: string, releasedCommit: string): AgentBuild {
  // The tag when the clone has it (and it must still name the released
  // commit); otherwise the commit itself, which every full clone of main
  // holds as an ancestor even when tags were not fetched.
  const byTag = git(['rev-parse', '--verify', '--quiet', `${tag}^{commit}`]);
  if (byTag.ok && byTag.out.trim() !== releasedCommit) {
    throw new Error(`the tag ${tag} names ${byTag.out.trim()}, not the released commit ${releasedCommit}: a moved release tag is refused`);
  }
  const resolved = byTag.ok ? byTag : git(['rev-parse', '--verify', '--quiet', `${releasedCommit}^{commit}`]);
  if (!resolved.ok) {
    throw new Error(
      `neither the release tag ${tag} nor its commit ${releasedCommit} is in this clone (${root}), so its agent cannot be built: a shallow clone (CI) has neither. ` +
        `Run \`git fetch --tags --unshallow\` (.ci/run fetches when the clone is shallow); this test runs the real ${tag} build and is never skipped`,
    );
  }
  const commit = resolved.out.trim();
  const lock = git(['show', `${commit}:package-lock.json`]);
  if (!lock.ok) throw new Error(`cannot read ${tag}'s package-lock.json: ${lock.err}`);
  const ownDependencies = lock.out !== readFileSync(join(root, 'package-lock.json'), 'utf8');
  // A build with its own node_modules is kept apart from one that borrowed HEAD's.
  const cached = join(cacheDir(), 'agent-builds', ownDependencies ? `${commit}-own-deps` : commit);
  if (!existsSync(join(cached, 'dist', 'agent.mjs'))) buildRelease(tag, commit, cached, ownDependencies);
  const modules = ownDependencies ? join(cached, 'node_modules') : join(root, 'node_modules');
  // Each use runs from a copy beside a node_modules link: the bundles load
  // better-sqlite3 from next to themselves, and the cache outlives checkouts.
  // The agent's entry points only (`image.mjs agent` loads agent.mjs), not the hub's or the CLI's.
  const checkout = mkdtempSync(join(tmpdir(), `fleetlet-${tag}-`));
  mkdirSync(join(checkout, 'dist'));
  cpSync(join(cached, 'Dockerfile'), join(checkout, 'Dockerfile'));
  // The agent's own command and runtime settings, for a release whose manifests set them.
  if (existsSync(join(cached, agentManifest))) cpSync(join(cached, agentManifest), join(checkout, agentManifest));
  for (const f of ['image.mjs', 'image.mjs.map', 'agent.mjs', 'agent.mjs.map']) cpSync(join(cached, 'dist', f), join(checkout, 'dist', f));
  symlinkSync(modules, join(checkout, 'node_modules'));
  return {
    label: tag,
    commit,
    argv: (args) => imageAgentArgv(args, checkout),
    env: () => agentEnv(checkout),
    dispose: () => rmSync(checkout, { recursive: true, force: true }),
  };
}

/**
 * The tag's sources (git archive), bundled by the tag's scripts/build.ts;
 * only the Dockerfile, the agent's manifest (if the tag has one there) and
 * dist/ are kept, and the tag's node_modules when it
 * has its own dependency tree.
 */
function buildRelease(tag: string, commit: string, dest: string, ownDependencies: boolean): void {
  const parent = join(cacheDir(), 'agent-builds');
  mkdirSync(parent, { recursive: true });
  const work = mkdtempSync(join(parent, `.building-${commit.slice(0, 12)}-`));
  try {
    const sources = join(work, 'sources');
    const out = join(work, 'out');
    mkdirSync(sources);
    const archive = git(['archive', '--format=tar', `--output=${join(work, 'sources.tar')}`, commit]);
    if (!archive.ok) throw new Error(`git archive ${tag}: ${archive.err}`);
    const untar = spawnSync('tar', ['-xf', join(work, 'sources.tar'), '-C', sources], { encoding: 'utf8' });
    if (untar.status !== 0) throw new Error(`unpacking ${tag}'s sources: ${untar.stderr}`);
    if (ownDependencies) installDependencies(tag, sources);
    else symlinkSync(join(root, 'node_modules'), join(sources, 'node_modules'));
    const built = spawnSync(process.execPath, ['scripts/build.ts', `--outdir=${join(out, 'dist')}`], { cwd: sources, encoding: 'utf8' });
    if (built.status !== 0) throw new Error(`building ${tag}'s bundles with its scripts/build.ts failed (${built.status ?? built.signal}): ${built.stderr}${built.error?.message ?? ''}`);
    cpSync(join(sources, 'Dockerfile'), join(out, 'Dockerfile'));
    if (existsSync(join(sources, agentManifest))) cpSync(join(sources, agentManifest), join(out, agentManifest));
    if (ownDependencies) renameSync(join(sources, 'node_modules'), join(out, 'node_modules'));
    writeFileSync(join(out, 'BUILT-FROM'), `${tag} ${commit}\n`);
    try {
      renameSync(out, dest);
    } catch (err) {
      // Another run built it at the same time: theirs is the same build.
      if (!existsSync(join(dest, 'dist', 'agent.mjs'))) throw err;
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * `npm ci` from the tag's lock file, better-sqlite3 compiled against the
 * running Node's headers as scripts/setup.sh does (no prebuilt binary or
 * header download is reachable here).
 */
function installDependencies(tag: string, sources: string): void {
  const nodedir = join(root, 'node_modules', 'node', 'node_modules', `node-${process.platform}-${process.arch}`);
  if (!existsSync(join(nodedir, 'include', 'node'))) throw new Error(`Node's headers are not at ${nodedir}: run scripts/setup.sh`);
  const npm = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], {
    cwd: sources,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, npm_config_nodedir: nodedir, npm_config_build_from_source: 'true' },
  });
  if (npm.status !== 0) throw new Error(`npm ci for ${tag}'s own dependencies failed (${npm.status ?? npm.signal}): ${npm.stderr.slice(-4000)}${npm.error?.message ?? ''}`);
}
