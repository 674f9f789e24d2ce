// The image users deploy, built by a real Docker engine from the repository's
// Dockerfile (the global set-up builds it once per run, see
// test/support/fleetlet-image.ts), and run with `docker run`: its commands,
// its user, what it leaves out, and that the CA bundle the build was handed
// as a secret is nowhere in it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { before, describe, test } from 'node:test';
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
    assert.deepEqual(config.Entrypoint, ['node', '/app/bin/fleetlet.ts']);
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

  test('the runtime image has no compilers, no npm cache, no dev dependencies and no tests', async () => {
    const probe = await run([
      '--entrypoint', 'sh', tag, '-c',
      'for c in python3 make g++ cc; do command -v $c && exit 10; done; ' +
        'test -d /app/node_modules/better-sqlite3 || exit 11; test -d /app/node_modules/typescript && exit 12; test -d /app/node_modules/eslint && exit 13; ' +
        'test -e /app/test && exit 14; ls /root/.npm/_cacache 2>/dev/null && exit 15; ' +
        'cd /app && node -e "new (require(\'better-sqlite3\'))(\':memory:\').close()" || exit 16; exit 0',
    ]);
    assert.equal(probe.code, 0, `probe exited ${probe.code}: ${probe.stdout}${probe.stderr}`);
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
