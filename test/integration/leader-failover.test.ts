// Two agent processes elect a leader through a Lease; the leader is
// SIGKILLed mid-upgrade (it cannot release anything); once its lease runs
// out the standby, with a journal of its own, takes the attempt over from
// the in-cluster hand-over record and finishes it.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { HandoverStore } from '../../src/agent/kube/handover-store.ts';
import { KubeClusterClient } from '../../src/agent/kube/cluster-client.ts';
import { exportPublicKeyPem } from '../../src/protocol/signing.ts';
import { Journal } from '../../src/store/journal.ts';
import { imageAgentArgv } from '../../scripts/build.ts';
import { eventually, kubeConfig, testNamespace } from '../support/cluster.ts';
import { addonsRelease, testSigner } from '../support/releases.ts';
import { testPolicyYaml } from '../support/test-policy.ts';


test('a SIGKILLed leader is taken over by the standby, which finishes the upgrade', async () => {
  const agentNs = await testNamespace('lf-sys');
  const addonsNs = await testNamespace('lf-app');
  const signer = testSigner();
  const dir = mkdtempSync(join(tmpdir(), 'fleetlet-failover-'));
  writeFileSync(join(dir, 'key.pub.pem'), exportPublicKeyPem(signer.publicKey));
  writeFileSync(join(dir, 'policy.yaml'), testPolicyYaml());
  const r = addonsRelease(addonsNs.name, 1, { dns: '1.0.0', proxy: '1.0.0', metrics: '1.0.0' });
  r.components[0]!.health = { progressDeadlineSeconds: 30, soakSeconds: 6 };
  writeFileSync(join(dir, 'release.json'), JSON.stringify(signer.sign(r)));
  const children: ChildProcess[] = [];
  const start = (identity: string, withRelease: boolean) => {
    const child = spawn(
      process.execPath,
      imageAgentArgv([
        '--cluster-id=failover',
        `--journal=${join(dir, `${identity}.db`)}`,
        `--kubeconfig=${process.env.FLEETLET_TEST_KUBECONFIG}`,
        `--release-key=${join(dir, 'key.pub.pem')}`,
        `--namespace=${agentNs.name}`,
        `--allowed-namespaces=${addonsNs.name}`,
        `--policy=${join(dir, 'policy.yaml')}`,
        '--leader-elect',
        `--identity=${identity}`,
        '--lease-duration-ms=4000',
        '--poll-ms=200',
        ...(withRelease ? [`--release-file=${join(dir, 'release.json')}`] : []),
      ]),
      { env: { ...process.env, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'ignore', 'inherit'] },
    );
    children.push(child);
    return child;
  };
  const handover = new HandoverStore(new KubeClusterClient(kubeConfig()), agentNs.name);
  try {
    const leader = start('agent-a', true);
    await eventually('agent-a to soak stage 0', async () => {
      const rec = await handover.read();
      return rec?.writtenBy === 'agent-a' && rec.attempt?.phase === 'Soaking' ? true : undefined;
    });
    const standby = start('agent-b', false);
    leader.kill('SIGKILL');
    const done = await eventually(
      'agent-b to finish the attempt',
      async () => {
        const rec = await handover.read();
        return rec?.attempt?.finishedAt ? rec : undefined;
      },
      90_000,
    );
    assert.equal(done.writtenBy, 'agent-b', 'the standby finished it');
    assert.equal(done.attempt?.phase, 'Succeeded', done.attempt?.message ?? '');
    const phases = done.attempt!.transitions.map((t) => `${t.phase}${t.stage ?? ''}`);
    assert.equal(phases.filter((p) => p === 'Upgrading0').length, 1, 'stage 0 was not applied again from scratch');
    standby.kill('SIGTERM');
    await new Promise((res) => standby.once('exit', res));
    const j = Journal.open(join(dir, 'agent-b.db'));
    try {
      const a = j.attempts.latest();
      assert.equal(a?.phase, 'Succeeded');
      assert.deepEqual(j.installed.all().map((c) => `${c.component}=${c.version}`).sort(), ['dns=1.0.0', 'metrics=1.0.0', 'proxy=1.0.0']);
    } finally {
      j.close();
    }
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await agentNs.dispose();
    await addonsNs.dispose();
  }
});
