// The image users deploy, built by a real Docker engine from the repository's
// Dockerfile (the global set-up builds it once per run, see
// test/support/fleetlet-image.ts), and run with `docker run`: its commands,
// its user, what it leaves out, and that the CA bundle the build was handed
// as a secret is nowhere in it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import { before, describe, test } from 'node:test';
import { agentContainer, agentRuntimeEnv } from '../../scripts/build.ts';
import { Journal } from '../../src/store/journal.ts';
import { docker, dockerClient } from '../support/docker-engine.ts';
import { runImage } from '../support/fleetlet-image.ts';

describe('the fleetlet image (real docker build)', () => {
  let host: string;
  let tag: string;
  const run = (args: string[]) => docker(host, ['run', '--rm', ...args], { timeoutMs: 60_000 }).then(
    (r) => ({ code: 0, ...r }),
    (err: Error) => ({ code: Number(/exited (\d+)/.exec(err.message)?.[1] ?? -1), stdout: '', stderr: err.message }),
  );

  before(async () => {
    ({ host, tag } = await runImage());
  });

  test('one image, two commands: `agent` by default, `hub` on request; numeric non-root user; the journal is a volume', async (t) => {
    const [inspect] = JSON.parse((await docker(host, ['image', 'inspect', tag])).stdout) as { Size: number; Config: { User: string; Entrypoint: string[]; Cmd: string[]; Volumes: Record<string, unknown> } }[];
    const { Config: config, Size: size } = inspect!;
    t.diagnostic(`image size ${(size / 2 ** 20).toFixed(1)} MiB uncompressed`);
    assert.equal(config.User, '65532:65532');
    // node (with the V8 flags docs/footprint.md chose) running the image's entry bundle.
    assert.equal(config.Entrypoint[0], 'node');
    assert.equal(config.Entrypoint.at(-1), '/app/dist/image.mjs');
    assert.deepEqual(config.Cmd, ['agent']);
    assert.ok('/var/lib/fleetlet' in config.Volumes);

    const agent = await run([tag, 'agent', '--help']);
    assert.equal(agent.code, 0, agent.stderr);
    assert.match(agent.stdout, /^Usage: fleetlet agent \[options\]/);
    const hub = await run([tag, 'hub', '--help']);
    assert.equal(hub.code, 0, hub.stderr);
    assert.match(hub.stdout, /fleetlet hub/);
    // The default command is the agent: without a cluster id it says what is missing, not a stack trace.
    const bare = await run([tag]);
    assert.equal(bare.code, 2, bare.stderr);
    assert.match(bare.stderr, /--cluster-id \(or FLEETLET_CLUSTER_ID\) is required/);
    assert.doesNotMatch(bare.stderr, /ERR_MODULE_NOT_FOUND|Cannot find (module|package)/);
  });

  /** `node -e <script>` inside the image: what is (not) in it, as the image's own user sees it. */
  const probe = (script: string) => run(['--entrypoint', 'node', tag, '-e', script]);

  test('the runtime image holds node, the bundles and better-sqlite3 with one native binary: no shell, npm, compiler, sources or tests', async () => {
    const res = await probe(`
      const fs = require('node:fs');
      const out = { absent: [], present: [] };
      for (const p of ['/bin/sh', '/usr/bin/sh', '/bin/bash', '/usr/bin/python3', '/usr/bin/make', '/usr/bin/g++', '/usr/bin/cc', '/usr/local/bin/npm', '/usr/local/lib/node_modules', '/opt', '/root/.npm', '/app/src', '/app/bin', '/app/test', '/app/package-lock.json', '/app/node_modules/better-sqlite3/deps', '/app/node_modules/better-sqlite3/src'])
        (fs.existsSync(p) ? out.present : out.absent).push(p);
      out.modules = fs.readdirSync('/app/node_modules');
      out.natives = fs.readdirSync('/app/node_modules/better-sqlite3', { recursive: true }).map(String).filter((f) => f.endsWith('.node'));
      out.dist = fs.readdirSync('/app/dist').sort();
      new (require('/app/node_modules/better-sqlite3'))(':memory:').close();
      console.log(JSON.stringify(out));`);
    assert.equal(res.code, 0, res.stderr);
    const seen = JSON.parse(res.stdout) as { present: string[]; modules: string[]; natives: string[]; dist: string[] };
    assert.deepEqual(seen.present, [], `in the image but must not be: ${seen.present.join(', ')}`);
    assert.deepEqual(seen.modules, ['better-sqlite3'], 'no node_modules but better-sqlite3');
    assert.equal(seen.natives.length, 1, `one native binary, not one per platform: ${seen.natives.join(', ')}`);
    // Maps for the agent and the hub (and the tiny entry), not for the one-shot CLI.
    assert.deepEqual(seen.dist, ['agent.mjs', 'agent.mjs.map', 'fleetlet.mjs', 'hub.mjs', 'hub.mjs.map', 'image.mjs', 'image.mjs.map']);
  });

  test('`status` runs the whole CLI in the image and opens a journal there (better-sqlite3 loads its binary from the bundle)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fleetlet-image-journal-'));
    try {
      Journal.open(join(dir, 'journal.db')).close();
      // The image's user is 65532; the journal made here belongs to root.
      chmodSync(dir, 0o777);
      for (const f of readdirSync(dir)) chmodSync(join(dir, f), 0o666);
      const res = await run(['-v', `${dir}:/var/lib/fleetlet`, tag, 'status', '--journal=/var/lib/fleetlet/journal.db']);
      assert.equal(res.code, 0, res.stderr);
      assert.match(res.stdout, /no upgrade attempts yet/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the agent in the image loads neither Node's own undici nor the CommonJS lexer (docs/footprint.md)", async () => {
    // What the agent loads before it does anything; each of these is megabytes resident.
    const listModules = "process.on('exit', () => console.error(JSON.stringify(process.moduleLoadList)));";
    const res = await run(['--entrypoint', 'node', tag, '--import', `data:text/javascript,${encodeURIComponent(listModules)}`, '/app/dist/image.mjs', 'agent', '--help']);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /^Usage: fleetlet agent \[options\]/);
    const loaded = JSON.parse(res.stderr.trim().split('\n').at(-1)!) as string[];
    assert.ok(loaded.some((m) => m.includes('better_sqlite3') || m.includes('internal/modules/cjs/loader')), 'the probe saw the module list');
    assert.ok(!loaded.includes('NativeModule internal/deps/undici/undici'), "Node's bundled undici is loaded: an ES import of node:http?");
    assert.ok(!loaded.includes('NativeModule internal/deps/cjs-module-lexer/lexer'), 'the CommonJS lexer is loaded: an ES import of a CommonJS package?');
  });

  test('the agent in the image starts from the compile cache built into it, on a read-only root filesystem (docs/footprint.md)', async () => {
    // Node keys the cache by its version, the node flags and the user: made with the ENTRYPOINT's flags as the image's user, it is accepted.
    const res = await run(['--read-only', '-e', 'NODE_DEBUG_NATIVE=COMPILE_CACHE', tag, 'agent', '--help']);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /^Usage: fleetlet agent \[options\]/);
    assert.match(res.stderr, /V8 code cache for ESM file:\/\/\/app\/dist\/agent\.mjs was accepted/);
    const hub = await run(['--read-only', '-e', 'NODE_DEBUG_NATIVE=COMPILE_CACHE', tag, 'hub', '--help']);
    assert.equal(hub.code, 0, hub.stderr);
    assert.match(hub.stderr, /V8 code cache for ESM file:\/\/\/app\/dist\/hub\.mjs was accepted/);
  });

  test("the agent as its Deployment and DaemonSet start it (the agent's own node flags) starts from a compile cache built into the image (docs/footprint.md)", async () => {
    // The manifests' command replaces the ENTRYPOINT, as the kubelet does; other flags, another cache.
    const command = agentContainer()?.command;
    assert.ok(command && command.length > 1, 'the agent container has a command of its own');
    const env = Object.entries(agentRuntimeEnv()).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
    const res = await run(['--read-only', '-e', 'NODE_DEBUG_NATIVE=COMPILE_CACHE', ...env, '--entrypoint', command[0]!, tag, ...command.slice(1), 'agent', '--help']);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /^Usage: fleetlet agent \[options\]/);
    assert.match(res.stderr, /V8 code cache for ESM file:\/\/\/app\/dist\/agent\.mjs was accepted/);
    assert.doesNotMatch(res.stderr, /agent\.mjs was not initialized/, 'no cache for these flags: the agent would parse its bundle at every start');
  });

  test('an unknown agent flag exits 2 with the usage, not a stack trace', async () => {
    const res = await run([tag, 'agent', '--bogus']);
    assert.equal(res.code, 2);
    assert.match(res.stderr, /unknown option '--bogus'/);
    assert.doesNotMatch(res.stderr, /\n\s+at /);
  });

  test('the CA bundle handed to the build as a secret is in no layer of the image', async () => {
    // Certificates of the host bundle that Node does not ship itself: the
    // proxy's own CA among them. None may appear anywhere in the image.
    const pem = readFileSync(process.env.FLEETLET_BUILD_CA ?? '/etc/ssl/certs/ca-certificates.crt', 'utf8');
    const hostOnly = (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).filter((c) => !rootCertificates.includes(c));
    assert.ok(hostOnly.length > 0, 'the host bundle has certificates of its own');
    const container = (await docker(host, ['create', tag])).stdout.trim();
    try {
      // The whole filesystem as a tar stream, searched for each certificate's body.
      const exported = await new Promise<Buffer>((resolve, reject) => {
        const child = spawn(dockerClient(), ['export', container], { env: { ...process.env, DOCKER_HOST: host }, stdio: ['ignore', 'pipe', 'inherit'] });
        const chunks: Buffer[] = [];
        child.stdout.on('data', (c: Buffer) => chunks.push(c));
        child.on('error', reject);
        child.on('close', (code) => (code === 0 ? resolve(Buffer.concat(chunks)) : reject(new Error(`docker export exited ${code}`))));
      });
      assert.ok(exported.length > 50 * 2 ** 20, 'exported the filesystem');
      for (const cert of hostOnly) {
        const body = cert.split('\n').slice(1, 4).join('\n');
        assert.equal(exported.includes(body), false, 'a host CA certificate leaked into the image');
      }
    } finally {
      await docker(host, ['rm', container]);
    }
  });
});
