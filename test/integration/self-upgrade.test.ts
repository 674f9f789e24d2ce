// The agent upgrading itself, and leader election, on the real control
// plane: agents of different versions (the same code, a different version
// string) run as separate runtimes with their own journals, electing a
// leader through a Lease and handing over through the in-cluster record.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { randomBytes } from 'node:crypto';
import { HandoverStore, HandoverTooLarge } from '../../src/agent/kube/handover-store.ts';
import { KubeClusterClient } from '../../src/agent/kube/cluster-client.ts';
import type { HandoverRecord } from '../../src/protocol/handover.ts';
import { testPolicy } from '../support/test-policy.ts';
import type { ReleaseInput } from '../../src/protocol/release.ts';
import { createAgentRuntime, type AgentRuntime } from '../../src/cli/agent-runtime.ts';
import { eventually, kubeConfig, testNamespace, type TestNamespace } from '../support/cluster.ts';
import { addonsRelease, testSigner } from '../support/releases.ts';
import { testLogger } from '../support/test-log.ts';

const signer = testSigner();

function withSelf(r: ReleaseInput, agentNs: string, version: string): ReleaseInput {
  return {
    ...r,
    components: [
      ...r.components,
      {
        name: 'fleetlet',
        version,
        self: true,
        stage: 0,
        health: { progressDeadlineSeconds: 20 },
        manifests: [
          {
            apiVersion: 'apps/v1',
            kind: 'Deployment',
            metadata: { name: 'fleetlet-agent', namespace: agentNs },
            spec: {
              replicas: 1,
              progressDeadlineSeconds: 6,
              strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
              selector: { matchLabels: { app: 'fleetlet-agent' } },
              template: { metadata: { labels: { app: 'fleetlet-agent' } }, spec: { containers: [{ name: 'agent', image: `registry.example/fleetlet:${version}` }] } },
            },
          },
        ],
      },
    ],
  };
}

interface Running {
  runtime: AgentRuntime;
  stop(): Promise<void>;
}

async function startAgent(agentNs: string, version: string, identity: string, extra: { hubUrl?: string } = {}): Promise<Running> {
  const runtime = await createAgentRuntime({
    clusterId: 'self-test',
    journalPath: join(mkdtempSync(join(tmpdir(), `fleetlet-${identity}-`)), 'journal.db'),
    kubeConfig: kubeConfig(),
    releaseKeys: [signer.publicKey],
    logger: testLogger(),
    policy: testPolicy(),
    namespace: agentNs,
    pollMs: 200,
    agentVersion: version,
    leaderElection: { identity, leaseDurationMs: 3000, retryMs: 250 },
    selfUpgradeHubTimeoutMs: 2500,
    ...(extra.hubUrl ? { hub: { url: extra.hubUrl, bootstrapToken: 'x'.repeat(20), heartbeatMs: 500 } } : {}),
    agent: { idleMs: 200 },
  });
  const controller = new AbortController();
  const running = runtime.run(controller.signal);
  return {
    runtime,
    async stop() {
      controller.abort();
      await running;
    },
  };
}

describe('self-upgrade with a verified hand-over', () => {
  let agentNs: TestNamespace;
  let addonsNs: TestNamespace;
  const agents: Running[] = [];
  before(async () => {
    agentNs = await testNamespace('fl-sys');
    addonsNs = await testNamespace('fl-addons');
  });
  after(async () => {
    for (const a of agents) await a.stop();
    await agentNs.dispose();
    await addonsNs.dispose();
  });

  const leaderOf = async () => eventually('a leader', async () => agents.find((a) => a.runtime.leading()));
  const recordAttempt = async (revision: number) =>
    eventually(`revision ${revision} to finish (hand-over record)`, async () => {
      const r = await agents[0]!.runtime.handover.read();
      return r?.attempt && r.attempt.revision === revision && r.attempt.finishedAt ? r : undefined;
    }, 120_000);
  const agentImage = async () => {
    const d = await agentNs.apps.readNamespacedDeployment({ name: 'fleetlet-agent', namespace: agentNs.name });
    return d.spec?.template.spec?.containers[0]?.image;
  };

  test('one of two instances leads; the other stands by', async () => {
    agents.push(await startAgent(agentNs.name, '0.1.0', 'agent-a'));
    agents.push(await startAgent(agentNs.name, '0.1.0', 'agent-a2'));
    const leader = await leaderOf();
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(agents.filter((a) => a.runtime.leading()).length, 1, 'exactly one leader');
    const offer = await leader.runtime.agent.offer(signer.sign(withSelf(addonsRelease(addonsNs.name, 1, { dns: '1.0.0', proxy: '1.0.0', metrics: '1.0.0' }), agentNs.name, '0.1.0')));
    assert.equal(offer.accepted, true);
    const record = await recordAttempt(1);
    assert.equal(record.attempt?.phase, 'Succeeded', record.attempt?.message ?? '');
    assert.deepEqual(record.attempt?.plan.stages.at(-1)?.components.map((c) => c.name), ['fleetlet'], 'self is upgraded last, alone');
  });

  test('the leader is killed mid-upgrade; the standby takes over from the in-cluster record and finishes', async () => {
    const leader = await leaderOf();
    const r = addonsRelease(addonsNs.name, 2, { dns: '1.1.0', proxy: '1.1.0', metrics: '1.1.0' });
    r.components[0]!.health = { progressDeadlineSeconds: 30, soakSeconds: 4 };
    await leader.runtime.agent.offer(signer.sign(withSelf(r, agentNs.name, '0.1.0')));
    await eventually('stage 0 soaking', async () => ((await leader.runtime.handover.read())?.attempt?.phase === 'Soaking' ? true : undefined));
    await leader.stop();
    agents.splice(agents.indexOf(leader), 1);
    const record = await recordAttempt(2);
    assert.equal(record.attempt?.phase, 'Succeeded', record.attempt?.message ?? '');
    const standby = agents[0]!;
    assert.ok(standby.runtime.leading(), 'the standby leads now');
    const local = standby.runtime.journal.attempts.latest();
    assert.equal(local?.revision, 2, 'the new leader finished the attempt in its own journal');
    assert.ok(standby.runtime.journal.attempts.transitions(local.id).some((t) => t.phase === 'Soaking'), 'its journal holds the history it took over');
  });

  test('upgrade succeeds: the candidate reports ready, the old agent hands over, the new one confirms', async () => {
    agents.push(await startAgent(agentNs.name, '0.2.0', 'agent-b'));
    const old = await leaderOf();
    await old.runtime.agent.offer(signer.sign(withSelf(addonsRelease(addonsNs.name, 3, { dns: '1.2.0', proxy: '1.1.0', metrics: '1.1.0' }), agentNs.name, '0.2.0')));
    const b0 = agents.find((a) => !a.runtime.leading() && a !== old)!;
    await eventually('the candidate to report ready', async () => ((await b0.runtime.handover.readCandidate())?.ready ? true : undefined));
    const record = await recordAttempt(3);
    assert.equal(record.attempt?.phase, 'Succeeded', `${record.attempt?.reason}: ${record.attempt?.message}`);
    assert.ok(record.attempt?.transitions.some((t) => t.reason === 'CandidateReady'), 'handed over after the candidate reported ready');
    const b = agents.find((a) => a.runtime.journal.attempts.latest()?.revision === 3 && a.runtime.leading());
    assert.ok(b, 'the 0.2.0 agent leads and finished the attempt');
    assert.equal(await agentImage(), 'registry.example/fleetlet:0.2.0');
    assert.equal(record.installed.find((c) => c.component === 'fleetlet')?.version, '0.2.0');
  });

  test('a broken candidate (kwok keeps it unready) is reverted by the old agent', async () => {
    const old = await leaderOf();
    await old.runtime.agent.offer(signer.sign(withSelf(addonsRelease(addonsNs.name, 4, { dns: '1.2.0', proxy: '1.1.0', metrics: '1.1.0' }), agentNs.name, '0.3.0-unready')));
    const record = await recordAttempt(4);
    assert.equal(record.attempt?.phase, 'RolledBack');
    assert.match(record.attempt?.message ?? '', /fleetlet-agent/);
    assert.equal(await agentImage(), 'registry.example/fleetlet:0.2.0', 'the agent restored its own previous spec');
  });

  test('a candidate that cannot reach the hub reverts itself after taking over', async () => {
    const unreachable = 'ws://127.0.0.1:9/api/v1/agent';
    agents.push(await startAgent(agentNs.name, '0.4.0', 'agent-c', { hubUrl: unreachable }));
    const old = await leaderOf();
    await old.runtime.agent.offer(signer.sign(withSelf(addonsRelease(addonsNs.name, 5, { dns: '1.2.0', proxy: '1.1.0', metrics: '1.1.0' }), agentNs.name, '0.4.0')));
    const record = await recordAttempt(5);
    assert.equal(record.attempt?.phase, 'RolledBack', record.attempt?.message ?? '');
    assert.equal(record.attempt?.reason, 'CandidateCannotReachHub');
    assert.equal(record.writtenBy, 'agent-c', 'the candidate itself rolled back');
    assert.equal(await agentImage(), 'registry.example/fleetlet:0.2.0');
  });
});

test('the hand-over record round-trips through the cluster gzipped, and one too large for a ConfigMap is refused, not written', async () => {
  const ns = await testNamespace('handover');
  try {
    const store = new HandoverStore(new KubeClusterClient(kubeConfig()), ns.name);
    const record = (snapshotData: string): HandoverRecord => ({
      generation: 3,
      writtenBy: 'agent-x',
      agentVersion: '0.1.0',
      writtenAt: new Date().toISOString(),
      release: null,
      outbox: { lastSeq: 12, pending: [] },
      installed: [{ component: 'dns', version: '1.0.0', digest: 'd', objects: [] }],
      attempt: {
        id: 'a1', revision: 1, releaseName: 'r', releaseVersion: '1.0.0', plan: { revision: 1, stages: [], unchanged: [], removed: [] },
        phase: 'Verifying', stage: 0, step: null, reason: null, message: null, starts: 1, startedAt: new Date().toISOString(), finishedAt: null,
        transitions: [],
        snapshots: [{ component: 'dns', stage: 0, version: '0.9.0', digest: null, objects: [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'big' }, data: { blob: snapshotData } }], created: [], owned: [] }],
      },
    });
    // 400 KB of manifests that compress well (like real YAML) fit; the same amount of noise does not.
    await store.write(record('x'.repeat(400_000)));
    const back = await store.read();
    assert.equal(back?.generation, 3);
    assert.equal((back?.attempt?.snapshots[0]?.objects[0] as unknown as { data: { blob: string } }).data.blob.length, 400_000);
    await assert.rejects(store.write(record(randomBytes(1_200_000).toString('base64'))), (e: unknown) => e instanceof HandoverTooLarge && /ConfigMap can hold/.test(e.message));
    assert.equal((await store.read())?.generation, 3, 'the previous record is still there');
  } finally {
    await ns.dispose();
  }
});
