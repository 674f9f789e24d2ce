// The agent's node flags and runtime environment live in its own manifests
// (the image's ENTRYPOINT serves the hub too), and the image carries a
// compile cache made for exactly those flags: Node keys the cache by them, so
// with other flags the agent would parse its 2.4 MB bundle at every start
// and keep the parser's memory. These pin what docs/footprint.md chose and
// keep the Deployment, the DaemonSet and the Dockerfile in step; the image
// test checks that the cache is accepted in the built image.
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { agentEnv, agentManifest, agentRuntimeEnv, imageAgentArgv } from '../../scripts/build.ts';

const repo = new URL('../../', import.meta.url).pathname;
const overlays = ['manifests/overlays/deployment/deployment.yaml', 'manifests/overlays/daemonset/daemonset.yaml'];

/** The settings docs/footprint.md chose for the agent (sixth pass: flags and arenas; seventh: malloc thresholds). */
const shipped = {
  command: ['node', '--max-semi-space-size=1', '--single-threaded', '--optimize-for-size', '/app/dist/image.mjs'],
  runtimeEnv: { MALLOC_ARENA_MAX: '2', MALLOC_TRIM_THRESHOLD_: '131072', MALLOC_MMAP_THRESHOLD_: '131072' },
};

type Container = { name: string; command?: string[]; args?: string[]; env?: { name: string; value?: string }[] };

function agentOf(file: string): Container {
  const doc = parse(readFileSync(join(repo, file), 'utf8')) as { spec: { template: { spec: { containers: Container[] } } } };
  const agent = doc.spec.template.spec.containers.find((c) => c.name === 'agent');
  assert.ok(agent, `${file}: a container named agent`);
  return agent;
}

const dockerfile = () => readFileSync(join(repo, 'Dockerfile'), 'utf8');

/** The node flags of the Dockerfile's ENTRYPOINT (between `node` and the script). */
function entrypointFlags(): string[] {
  const m = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(dockerfile());
  assert.ok(m, 'an exec-form ENTRYPOINT');
  const argv = JSON.parse(m[1]!) as string[];
  assert.equal(argv[0], 'node');
  assert.equal(argv.at(-1), '/app/dist/image.mjs');
  return argv.slice(1, -1);
}

/** Every compile cache the Dockerfile makes: `<node flags> <command>`. */
function cachesMade(): string[] {
  return [...dockerfile().matchAll(/NODE_COMPILE_CACHE=\/app\/\.compile-cache .*?\/usr\/local\/bin\/node((?: --\S+)*) \/app\/dist\/image\.mjs (\w+) --help/g)].map((m) => `${m[1]!.trim()} ${m[2]}`);
}

describe("the agent's own command", () => {
  test('the Deployment and the DaemonSet run the agent with the node flags and malloc setting docs/footprint.md chose', () => {
    for (const file of overlays) {
      const agent = agentOf(file);
      assert.deepEqual(agent.command, shipped.command, `${file}: the agent's command`);
      assert.equal(agent.args?.[0], 'agent', `${file}: the first argument picks the agent`);
      const runtime = Object.fromEntries((agent.env ?? []).filter((e) => /^(NODE_|UV_|MALLOC_|GLIBC_)/.test(e.name)).map((e) => [e.name, e.value]));
      assert.deepEqual(runtime, shipped.runtimeEnv, `${file}: the runtime's environment`);
    }
    assert.deepEqual(agentRuntimeEnv(), shipped.runtimeEnv);
  });

  test("the image makes a compile cache for the agent's own flags, and for the ENTRYPOINT's (the hub; `docker run` of the agent)", () => {
    const made = cachesMade();
    const agentFlags = shipped.command.slice(1, -1).join(' ');
    const entry = entrypointFlags().join(' ');
    assert.notEqual(agentFlags, entry, 'the agent has flags of its own');
    assert.deepEqual(made.sort(), [`${agentFlags} agent`, `${entry} agent`, `${entry} hub`].sort());
    // The agent's command runs the image's own entry bundle, with the ENTRYPOINT's flags among its own.
    assert.equal(shipped.command.at(-1), '/app/dist/image.mjs');
    for (const flag of entrypointFlags()) assert.ok(shipped.command.includes(flag), `the agent keeps the image's ${flag}`);
  });

  test('tests and benchmarks start the agent as the manifests ship it; a release without a command of its own runs the ENTRYPOINT', () => {
    const checkout = mkdtempSync(join(tmpdir(), 'fleetlet-agent-command-'));
    try {
      cpSync(join(repo, 'Dockerfile'), join(checkout, 'Dockerfile'));
      cpSync(join(repo, agentManifest), join(checkout, agentManifest));
      mkdirSync(join(checkout, 'dist'));
      writeFileSync(join(checkout, 'dist/image.mjs'), '');
      const script = join(checkout, 'dist/image.mjs');
      assert.deepEqual(imageAgentArgv(['--cluster-id=c'], checkout), [...shipped.command.slice(1, -1), script, 'agent', '--cluster-id=c']);
      const env = agentEnv(checkout);
      assert.equal(env.MALLOC_ARENA_MAX, '2');
      assert.equal(env.NODE_COMPILE_CACHE, join(checkout, '.compile-cache'));
      assert.equal(env.NODE_ENV, 'production');
      // The pod's own inputs are the caller's to give, not the runtime's settings.
      assert.equal(env.LOG_LEVEL, undefined);
      assert.equal(env.FLEETLET_BOOTSTRAP_TOKEN_FILE, undefined);

      rmSync(join(checkout, 'manifests'), { recursive: true });
      assert.deepEqual(imageAgentArgv(['--cluster-id=c'], checkout), [...entrypointFlags(), script, 'agent', '--cluster-id=c']);
      assert.equal(agentEnv(checkout).MALLOC_ARENA_MAX, undefined);
    } finally {
      rmSync(checkout, { recursive: true, force: true });
    }
  });
});
