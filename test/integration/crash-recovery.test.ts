// The agent process is SIGKILLed right after each journal transition of an
// upgrade and of a rollback (a failpoint in the CLI, like etcd's gofail), and
// at arbitrary instants; restarted each time, every run must end Succeeded or
// RolledBack with the cluster consistent and the journal complete.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { assertTransition } from '../../src/agent/upgrade/lifecycle.ts';
import { exportPublicKeyPem } from '../../src/protocol/signing.ts';
import type { SignedEnvelope } from '../../src/protocol/release.ts';
import { Journal } from '../../src/store/journal.ts';
import { KubeClusterClient } from '../../src/agent/kube/cluster-client.ts';
import { imageAgentArgv } from '../../scripts/build.ts';
import { kubeConfig, testNamespace } from '../support/cluster.ts';
import { addonsRelease, testSigner, type TestSigner } from '../support/releases.ts';
import { testPolicyYaml } from '../support/test-policy.ts';


interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

function runAgent(dir: string, releaseFile: string, env: Record<string, string> = {}, killAfterMs?: number): Promise<Run> {
  writeFileSync(join(dir, 'policy.yaml'), testPolicyYaml());
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      imageAgentArgv([
        '--cluster-id=crash-test',
        `--journal=${join(dir, 'journal.db')}`,
        `--kubeconfig=${process.env.FLEETLET_TEST_KUBECONFIG}`,
        `--release-key=${join(dir, 'release.pub.pem')}`,
        `--release-file=${releaseFile}`,
        `--namespace=${readFileSync(join(dir, 'namespace'), 'utf8')}`,
        `--allowed-namespaces=${readFileSync(join(dir, 'namespace'), 'utf8')}`,
        `--policy=${join(dir, 'policy.yaml')}`,
        '--poll-ms=200',
        '--exit-when-done',
      ]),
      { env: { ...process.env, LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    // The log (stdout) and stderr both: a run that ends unexpectedly says why.
    const keep = (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8000));
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stderr });
    });
  });
}

/** The exit code only says a run was not what was expected; the journal says how its attempt ended. */
function howItEnded(dir: string): string {
  const j = Journal.open(join(dir, 'journal.db'));
  try {
    const a = j.attempts.latest();
    return a ? `the attempt for revision ${a.revision} is ${a.phase} (${a.reason}: ${a.message})` : 'the journal holds no attempt';
  } finally {
    j.close();
  }
}

async function scenario(signer: TestSigner, failing: boolean, kill: { afterTransition?: number; afterMs?: number }) {
  const ns = await testNamespace(failing ? 'crb' : 'cru');
  const dir = mkdtempSync(join(tmpdir(), 'fleetlet-crash-'));
  writeFileSync(join(dir, 'release.pub.pem'), exportPublicKeyPem(signer.publicKey));
  writeFileSync(join(dir, 'namespace'), ns.name);
  const write = (name: string, env: SignedEnvelope) => {
    writeFileSync(join(dir, name), JSON.stringify(env));
    return join(dir, name);
  };
  try {
    const v1 = write('v1.json', signer.sign(addonsRelease(ns.name, 1, { dns: '1.0.0', proxy: '1.0.0', metrics: '1.0.0', dnsLegacyConfig: true })));
    const install = await runAgent(dir, v1);
    if (install.code !== 0) assert.fail(`installing v1 exited ${install.code ?? install.signal}: ${howItEnded(dir)}; ${install.stderr}`);

    const v2 = write('v2.json', signer.sign(addonsRelease(ns.name, 2, { dns: '2.0.0', proxy: '2.0.0', metrics: '2.0.0', ...(failing ? { metricsApiSuffix: '-unready' } : {}) })));
    const crashed = await runAgent(dir, v2, kill.afterTransition ? { FLEETLET_FAILPOINT_KILL_AFTER_TRANSITION: String(kill.afterTransition) } : {}, kill.afterMs);
    const wasKilled = crashed.signal === 'SIGKILL';
    // --exit-when-done: 0 once the release is installed, 3 once it rolled back.
    const expectedCode = failing ? 3 : 0;
    if (!wasKilled) assert.equal(crashed.code, expectedCode, crashed.stderr);
    const resumed = await runAgent(dir, v2);
    if (resumed.code !== expectedCode) assert.fail(`resumed agent exited ${resumed.code}, expected ${expectedCode}; ${howItEnded(dir)}; ${resumed.stderr}`);

    const journal = Journal.open(join(dir, 'journal.db'));
    try {
      const attempt = journal.attempts.latest()!;
      assert.equal(attempt.revision, 2);
      assert.equal(attempt.phase, failing ? 'RolledBack' : 'Succeeded', `${attempt.reason}: ${attempt.message}`);
      // Journal complete: a legal path from Pending to the end, reported once per transition.
      const transitions = journal.attempts.transitions(attempt.id);
      assert.equal(transitions[0]!.phase, 'Pending');
      for (let i = 1; i < transitions.length; i++) assertTransition(transitions[i - 1]!.phase, transitions[i]!.phase);
      const reported = journal.outbox.pending(0, 10_000).filter((r) => r.kind === 'attempt-transition' && (r.body as { attemptId: string }).attemptId === attempt.id);
      assert.equal(reported.length, transitions.length, 'every transition, Pending included, has exactly one report');
      // Cluster consistent with the outcome.
      const cluster = new KubeClusterClient(kubeConfig());
      const want = failing ? '1.0.0' : '2.0.0';
      for (const [kind, name, img] of [
        ['Deployment', 'dns', `registry.example/dns:${want}`],
        ['DaemonSet', 'proxy', `registry.example/proxy:${want}`],
        ['StatefulSet', 'metrics-store', `registry.example/metrics-store:${want}`],
        ['Deployment', 'metrics-api', `registry.example/metrics-api:${want}`],
      ] as const) {
        const o = (await cluster.read({ apiVersion: 'apps/v1', kind, name, namespace: ns.name })) as unknown as { spec: { template: { spec: { containers: { image: string }[] } } } };
        assert.equal(o.spec.template.spec.containers[0]!.image, img, `${kind} ${name}`);
      }
      const legacy = await cluster.read({ apiVersion: 'v1', kind: 'ConfigMap', name: 'dns-legacy', namespace: ns.name });
      assert.equal(Boolean(legacy), failing, failing ? 'pruned object restored by rollback' : 'dropped object pruned');
      for (const c of journal.installed.all()) assert.equal(c.version, want, `journal records ${c.component} on ${want}`);
      return { wasKilled, transitions: transitions.length };
    } finally {
      journal.close();
    }
  } finally {
    await ns.dispose();
  }
}

const signer = testSigner();

for (const failing of [false, true]) {
  const kind = failing ? 'rollback' : 'upgrade';
  test(`${kind}: killed after every journal transition, the restarted agent finishes consistently`, async () => {
    let killedRuns = 0;
    // Transitions of a two-stage attempt: 6 for an upgrade, 7 with a rollback; one more proves the count.
    const n = failing ? 8 : 7;
    const results = await Promise.all(Array.from({ length: n }, (_, i) => scenario(signer, failing, { afterTransition: i + 1 })));
    for (const r of results) if (r.wasKilled) killedRuns++;
    assert.equal(killedRuns, n - 1, 'the agent died at every transition but the one after the last');
  });
}

test('upgrade: killed at arbitrary instants, the restarted agent finishes consistently', async () => {
  const results = await Promise.all([400, 900, 1500, 2200].map((ms) => scenario(signer, false, { afterMs: ms })));
  assert.ok(results.some((r) => r.wasKilled), 'at least one run was killed mid-way');
});

test('a crash loop inside one attempt ends it with a rollback and the reason CrashLoop', async () => {
  const ns = await testNamespace('crl');
  const dir = mkdtempSync(join(tmpdir(), 'fleetlet-crashloop-'));
  writeFileSync(join(dir, 'release.pub.pem'), exportPublicKeyPem(signer.publicKey));
  writeFileSync(join(dir, 'namespace'), ns.name);
  try {
    writeFileSync(join(dir, 'v1.json'), JSON.stringify(signer.sign(addonsRelease(ns.name, 1, { dns: '1.0.0', proxy: '1.0.0', metrics: '1.0.0' }))));
    assert.equal((await runAgent(dir, join(dir, 'v1.json'))).code, 0);
    writeFileSync(join(dir, 'v2.json'), JSON.stringify(signer.sign(addonsRelease(ns.name, 2, { dns: '2.0.0', proxy: '2.0.0', metrics: '2.0.0' }))));
    // The agent dies whenever it starts verifying stage 0: a crash loop inside one attempt.
    // The limit is 5 starts; the 6th start must end the attempt instead of dying again.
    const loop = { FLEETLET_FAILPOINT_KILL_IN_PHASE: 'Verifying' };
    for (let i = 0; i < 5; i++) {
      const run = await runAgent(dir, join(dir, 'v2.json'), loop);
      assert.equal(run.signal, 'SIGKILL', `start ${i + 1} died while verifying`);
    }
    const last = await runAgent(dir, join(dir, 'v2.json'), loop);
    assert.equal(last.code, 3, `the 6th start ends the loop with a rollback (exit 3): ${last.stderr}`);
    const journal = Journal.open(join(dir, 'journal.db'));
    try {
      const a = journal.attempts.latest()!;
      assert.equal(a.revision, 2);
      assert.equal(a.phase, 'RolledBack', `${a.reason}: ${a.message}`);
      assert.equal(a.reason, 'CrashLoop');
      assert.match(a.message ?? '', /started 6 times/);
      for (const c of journal.installed.all()) assert.equal(c.version, '1.0.0');
    } finally {
      journal.close();
    }
  } finally {
    await ns.dispose();
  }
});
