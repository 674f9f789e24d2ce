// The `fleetlet` command line as a user meets it: help for every command,
// clear usage errors with the documented exit codes, shell completion run by
// a real bash, output into a closed pipe, `sign` and `status`.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { allCommands, ExitCode, type CliIo } from '../../src/cli/cli-support.ts';
import { buildProgram, main } from '../../src/cli/main.ts';
import { CLI_DOCS_PATH, generateCliDocs } from '../../scripts/gen-cli-docs.ts';
import { demoRelease, demoSteps } from '../../src/cli/demo-command.ts';
import { AGENT_PATH } from '../../src/protocol/messages.ts';
import { exportPrivateKeyPem, exportPublicKeyPem, verifyRelease } from '../../src/protocol/signing.ts';
import type { Release, SignedEnvelope } from '../../src/protocol/release.ts';
import type { Plan } from '../../src/protocol/plan.ts';
import { Journal } from '../../src/store/journal.ts';
import { testSigner } from '../support/releases.ts';
import { sampleRelease } from '../support/releases.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const bin = join(root, 'bin/fleetlet.ts');
const STACK = /^\s+at .+:\d+:\d+\)?$/m;

function fleetlet(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function captured(): CliIo & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (s) => stdout.push(s), err: (s) => stderr.push(s), env: {} };
}

const tmp = () => mkdtempSync(join(tmpdir(), 'fleetlet-cli-'));

describe('fleetlet command line', () => {
  it('every command and subcommand has generated help that exits 0', async () => {
    const paths = allCommands(buildProgram(() => {}))
      .map((c) => {
        const names: string[] = [];
        for (let x: typeof c | null = c; x?.parent; x = x.parent as typeof c | null) names.unshift(x.name());
        return names;
      })
      .filter((p) => p.length > 0);
    assert.ok(paths.length >= 15, `commands found: ${paths.map((p) => p.join(' ')).join(', ')}`);
    for (const path of paths) {
      const io = captured();
      assert.equal(await main([...path, '--help'], io), ExitCode.Ok, path.join(' '));
      assert.match(io.stdout.join(''), new RegExp(`^Usage: fleetlet ${path.join(' ')}`), path.join(' '));
      assert.equal(io.stderr.join(''), '', path.join(' '));
    }
    // The flags that had no way in before are documented.
    const hub = captured();
    await main(['hub', '--help'], hub);
    for (const flag of ['--release-ttl-ms', '--rollout-tick-ms', '--grace-multiplier', '--heartbeat-ms', '--tls-key']) assert.ok(hub.stdout.join('').includes(flag), flag);
  });

  it('hub and agent help name the path agents really connect to', async () => {
    // The hub's --port help once said "/agent": an agent pointed there gets 404 NotFound.
    for (const command of ['hub', 'agent']) {
      const io = captured();
      await main([command, '--help'], io);
      const help = io.stdout.join('').replace(/\s+/g, ' ');
      assert.ok(help.includes(AGENT_PATH), `${command} --help names ${AGENT_PATH}`);
      assert.doesNotMatch(help, /[(\s]\/agent\b/, `${command} --help names no bare /agent`);
    }
  });

  it('--help of the real binary prints usage, never a stack, for the commands that used to crash', () => {
    for (const cmd of ['hub', 'status', 'demo', 'keygen', 'sign', 'agent', 'rollout']) {
      const r = fleetlet([cmd, '--help']);
      assert.equal(r.code, 0, `${cmd}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`Usage: fleetlet ${cmd}`));
      assert.doesNotMatch(r.stderr, STACK);
    }
  });

  it('a wrong command line is a usage error (exit 2) that names what is wrong, without a stack', () => {
    const cases: [string[], RegExp][] = [
      [['hub', '--bogus'], /unknown option '--bogus'/],
      [['agent', '--poll-ms', 'soon'], /--poll-ms <ms>' argument 'soon' is invalid\. must be a whole number/],
      [['rollout', 'frob'], /unknown command 'frob'/],
      [['rollout', 'status'], /missing required argument 'name'/],
      [['stauts'], /unknown command 'stauts'[\s\S]*Did you mean status\?/],
      [['sign', 'release.yaml'], /required option '--key <pem>' not specified/],
      [['completion', 'fish'], /'fish' is invalid for argument 'shell'\. Allowed choices are bash, zsh/],
      [[], /Usage: fleetlet/],
    ];
    for (const [args, message] of cases) {
      const r = fleetlet(args);
      assert.equal(r.code, ExitCode.Usage, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message, args.join(' '));
      assert.doesNotMatch(r.stderr, STACK, args.join(' '));
    }
  });

  it('bash completes commands, subcommands and flags from the generated script', () => {
    const script = fleetlet(['completion', 'bash']).stdout;
    const complete = (line: string) => {
      const words = line.split(' ');
      const r = spawnSync('bash', ['-c', `${script}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _fleetlet_complete; printf '%s\\n' "\${COMPREPLY[@]}"`], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout.trim().split('\n').filter((w) => w !== '');
    };
    assert.deepEqual(complete('fleetlet ro'), ['rollout']);
    assert.deepEqual(complete('fleetlet rollout st').sort(), ['status']);
    assert.deepEqual(complete('fleetlet rollout status x --wa'), ['--watch']);
    assert.deepEqual(complete('fleetlet agent --exit'), ['--exit-when-done']);
    assert.ok(complete('fleetlet hub --').includes('--release-ttl-ms'));
    const zsh = fleetlet(['completion', 'zsh']);
    assert.equal(zsh.code, 0);
    assert.match(zsh.stdout, /^#compdef fleetlet/);
  });

  it('output into a pipe whose reader is gone ends quietly with the command\'s own exit code', () => {
    const dir = tmp();
    Journal.open(join(dir, 'j.db')).close();
    // `true` exits without reading: every write after it is EPIPE.
    for (const args of [`status --journal ${join(dir, 'j.db')}`, 'completion bash', '--help']) {
      const r = spawnSync('bash', ['-c', `set -o pipefail; sleep 0.2 | true; "${process.execPath}" "${bin}" ${args} | (exec 0<&-; true)`], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${args}: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /EPIPE|Error/, args);
    }
  });

  it('sign: a bad release names each wrong field; --revision and --ttl set what the agent checks', () => {
    const dir = tmp();
    const signer = testSigner();
    writeFileSync(join(dir, 'key.pem'), exportPrivateKeyPem(signer.privateKey));
    writeFileSync(join(dir, 'key.pub.pem'), exportPublicKeyPem(signer.publicKey));
    const { components: _, ...noComponents } = sampleRelease();
    writeFileSync(join(dir, 'bad.yaml'), YAML.stringify({ ...noComponents, version: 'latest' }));
    const bad = fleetlet(['sign', '--key', join(dir, 'key.pem'), join(dir, 'bad.yaml')]);
    assert.equal(bad.code, ExitCode.Failed);
    assert.match(bad.stderr, /is not a valid release/);
    assert.match(bad.stderr, /must look like a version[\s\S]*→ at version/);
    assert.match(bad.stderr, /→ at components/);
    assert.doesNotMatch(bad.stderr, STACK);
    assert.doesNotMatch(bad.stderr, /ZodError|"code":/);

    writeFileSync(join(dir, 'good.yaml'), YAML.stringify(sampleRelease({ issuedAt: '2020-01-01T00:00:00Z', expiresAt: '2020-01-02T00:00:00Z' })));
    const good = fleetlet(['sign', '--key', join(dir, 'key.pem'), '--revision', '7', '--ttl', '2h', join(dir, 'good.yaml')]);
    assert.equal(good.code, 0, good.stderr);
    const envelope = JSON.parse(good.stdout) as SignedEnvelope;
    const release = verifyRelease(envelope, signer.publicKey, { now: () => new Date(), lastRevision: 6 });
    assert.equal(release.revision, 7);
    assert.equal(Date.parse(release.expiresAt) - Date.parse(release.issuedAt), 2 * 3600_000);
    assert.ok(Math.abs(Date.parse(release.issuedAt) - Date.now()) < 60_000, 'issued now');
    assert.equal(fleetlet(['sign', '--key', join(dir, 'key.pem'), '--ttl', 'a week', join(dir, 'good.yaml')]).code, ExitCode.Usage);
    assert.equal(fleetlet(['sign', '--key', join(dir, 'key.pem'), join(dir, 'missing.yaml')]).code, ExitCode.Failed);
  });

  it('agent: no kubeconfig anywhere and not in a pod is a usage error that says how to name a cluster', () => {
    const dir = tmp();
    writeFileSync(join(dir, 'key.pub.pem'), exportPublicKeyPem(testSigner().publicKey));
    // An empty HOME (no ~/.kube/config), no KUBECONFIG, not in a pod: client-node would fall back to http://localhost:8080.
    const env = { HOME: dir, KUBECONFIG: '', KUBERNETES_SERVICE_HOST: '', FLEETLET_POD_NAME: '' };
    const r = fleetlet(['agent', '--cluster-id', 'edge-1', '--allowed-namespaces', 'fleetlet-addons', '--release-key', join(dir, 'key.pub.pem'), '--journal', join(dir, 'j.db')], env);
    assert.equal(r.code, ExitCode.Usage, r.stdout + r.stderr);
    assert.match(r.stdout, /"reason":"NoKubeconfig"/);
    assert.match(r.stdout, /pass --kubeconfig <file>, set KUBECONFIG/);
    assert.doesNotMatch(r.stdout + r.stderr, /skipTLSVerify/);
    assert.doesNotMatch(r.stdout + r.stderr, STACK);
  });

  it('status shows each refused release once, the outbox of an agent with a hub (acknowledged or not), and exits 3 after a rollback', async () => {
    const path = join(tmp(), 'j.db');
    const j = Journal.open(path);
    for (let i = 0; i < 3; i++) j.releases.refuse({ revision: 9, reason: 'UnknownKey', message: 'signed by key k2, which this agent does not trust' });
    j.outbox.enqueue('release-refused', { reason: 'UnknownKey' });
    j.overrides.refuse({ name: 'cve-2030-1', revision: 3, reason: 'Expired', message: 'override cve-2030-1 revision 3 expired at 2030-01-08T00:00:00.000Z' });
    j.close();
    const io = captured();
    assert.equal(await main(['status', '--journal', path], io), ExitCode.Ok);
    const text = io.stdout.join('');
    assert.match(text, /REFUSED RELEASES\n {2}\S+ {2}rev 9 {2}UnknownKey: signed by key k2, which this agent does not trust \(received 3 times since /);
    assert.equal(text.match(/UnknownKey/g)?.length, 1, 'once');
    assert.match(text, /REFUSED OVERRIDES\n {2}\S+ {2}cve-2030-1 rev 3 {2}Expired: override cve-2030-1 revision 3 expired at 2030-01-08T00:00:00\.000Z\n/);
    assert.doesNotMatch(text, /Outbox/, 'no hub, no outbox line, though a report waits');

    const j2 = Journal.open(path);
    j2.recordHub('wss://hub.example:8443/api/v1/agent');
    j2.outbox.enqueue('inventory', {});
    const release: Release = { ...(sampleRelease() as Release), critical: false, allowDowngrade: false, kubernetesVersion: {} };
    const r = j2.releases.accept(release, { payload: '{}', signature: 'AAAA', keyId: 'k1' });
    const plan: Plan = { revision: 1, stages: [], unchanged: [], removed: [] };
    j2.attempts.create({ id: 'a1', releaseId: r.id, revision: 1, releaseName: 'edge-addons', releaseVersion: '1.4.2', plan });
    j2.attempts.transition('a1', { phase: 'RolledBack', finished: true, reason: 'HealthCheckFailed', message: 'metrics never Ready' });
    j2.close();
    const io2 = captured();
    assert.equal(await main(['status', '--journal', path], io2), ExitCode.Stopped);
    assert.match(io2.stdout.join(''), /Outbox: 2 report\(s\) not yet acknowledged by the hub at wss:\/\/hub\.example:8443\/api\/v1\/agent \(last seq 2\)/, 'a hub that never acknowledged anything still has an outbox');
    const io3 = captured();
    assert.equal(await main(['status', '--journal', path, '--json'], io3), ExitCode.Stopped);
    const json = JSON.parse(io3.stdout.join('')) as { refusals: { times: number }[]; overrideRefusals: { name: string }[]; attempts: { phase: string }[]; outbox: { hub: string; depth: number } | null };
    assert.deepEqual(json.overrideRefusals.map((r) => r.name), ['cve-2030-1']);
    assert.deepEqual([json.refusals.length, json.refusals[0]?.times, json.attempts[0]?.phase], [1, 3, 'RolledBack']);
    assert.deepEqual([json.outbox?.hub, json.outbox?.depth], ['wss://hub.example:8443/api/v1/agent', 2]);
    const j3 = Journal.open(path);
    j3.recordHub(undefined);
    j3.close();
    const io4 = captured();
    await main(['status', '--journal', path], io4);
    assert.doesNotMatch(io4.stdout.join(''), /Outbox/, 'restarted without a hub: no outbox line');
    const missing = captured();
    assert.equal(await main(['status', '--journal', join(tmp(), 'nope.db')], missing), ExitCode.Failed);
    assert.match(missing.stderr.join(''), /no journal at/);
  });
  /** `fleetlet hub` as a child process; resolves once it logged its HTTP URL. */
  async function hubChild(args: string[], env: Record<string, string>): Promise<{ httpUrl: string; stdout: () => string; stop: () => Promise<number | null> }> {
    const dir = tmp();
    const signer = testSigner();
    writeFileSync(join(dir, 'key.pem'), exportPrivateKeyPem(signer.privateKey));
    const child = spawn(process.execPath, [bin, 'hub', '--port', '0', '--db', join(dir, 'hub.db'), '--release-key', join(dir, 'key.pem'), ...args], {
      env: { ...process.env, LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const httpUrl = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        const m = /"httpUrl":"([^"]+)"/.exec(stdout);
        if (m?.[1]) resolve(m[1]);
      });
      void exited.then((code) => reject(new Error(`hub exited ${code}: ${stdout}`)));
    });
    return {
      httpUrl,
      stdout: () => stdout,
      stop: async () => {
        child.kill('SIGTERM');
        return exited;
      },
    };
  }

  it('hub: flags reach the hub, "hub listening" is logged once, SIGTERM stops it with 0', async () => {
    const hub = await hubChild(['--rollout-tick-ms', '100', '--release-ttl-ms', '3600000', '--grace-multiplier', '3', '--heartbeat-ms', '1000'], { FLEETLET_ADMIN_TOKEN: 'admin-token-from-the-environment' });
    const res = await fetch(`${hub.httpUrl}/api/v1/clusters`, { headers: { authorization: 'Bearer admin-token-from-the-environment' } });
    assert.equal(res.status, 200, 'the admin token came from the environment');
    assert.equal(await hub.stop(), 0);
    assert.equal(hub.stdout().match(/hub listening/g)?.length, 1, hub.stdout());
  });

  it('hub: the admin and bootstrap tokens come from files; a token on the command line is warned about', async () => {
    const dir = tmp();
    const admin = 'admin-token-from-a-file-0123456789';
    const bootstrap = ['b'.repeat(43), 'c'.repeat(43)];
    writeFileSync(join(dir, 'admin.token'), `${admin}\n`);
    writeFileSync(join(dir, 'bootstrap.tokens'), `# two agents\n${bootstrap.join('\n')}\n`);
    const hub = await hubChild(['--admin-token-file', join(dir, 'admin.token'), '--bootstrap-tokens-file', join(dir, 'bootstrap.tokens'), '--bootstrap-token', 'd'.repeat(43)], {});
    const tokens = await fetch(`${hub.httpUrl}/api/v1/bootstrap-tokens`, { headers: { authorization: `Bearer ${admin}` } });
    assert.equal(tokens.status, 200, 'the admin token came from its file');
    assert.equal(((await tokens.json()) as { tokens: unknown[] }).tokens.length, 3, 'both from the file and the one from the command line');
    assert.equal(await hub.stop(), 0);
    assert.match(hub.stdout(), /--bootstrap-token on the command line shows in ps/);
    assert.doesNotMatch(hub.stdout(), new RegExp(`${admin}|${'b'.repeat(43)}`), 'no token is logged');
  });

  it('hub: a missing admin token file is a usage error naming the file', async () => {
    const missing = join(tmp(), 'no-such.token');
    const io = captured();
    assert.equal(await main(['hub', '--release-key', join(tmp(), 'k.pem'), '--admin-token-file', missing], io), ExitCode.Usage);
    assert.match(io.stderr.join(''), /no-such\.token is missing or empty/);
  });

  it('docs/cli.md is the CLI\'s own help, current (node scripts/gen-cli-docs.ts rewrites it)', () => {
    const doc = readFileSync(CLI_DOCS_PATH, 'utf8');
    assert.equal(doc, generateCliDocs(), 'docs/cli.md is stale: run node_modules/.bin/node scripts/gen-cli-docs.ts');
    for (const heading of ['## fleetlet agent', '## fleetlet rollout status', '## fleetlet sign', '## fleetlet completion']) assert.ok(doc.includes(`${heading}\n`), heading);
  });
});

describe('fleetlet demo', () => {
  it('each release it rolls out carries its components at the release version, and the versions climb', () => {
    const versions = demoSteps.map((step) => {
      const r = demoRelease(step);
      assert.deepEqual(new Set(r.components.map((c) => c.version)), new Set([r.version]), `release ${r.version} carries ${r.components.map((c) => `${c.name} ${c.version}`).join(', ')}`);
      return r.version;
    });
    assert.deepEqual(versions, ['1.0.0', '1.1.0', '1.2.0']);
    assert.deepEqual(demoSteps.map((s) => s.breaks), [false, false, true], 'only the last one breaks');
  });
});
