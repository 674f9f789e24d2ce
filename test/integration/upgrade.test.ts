// The agent core against the real control plane: staged upgrades with health
// gates, automatic rollback, and refusal of bad releases with nothing changed.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { KubeObject, ReleaseInput } from '../../src/protocol/release.ts';
import { attemptStatus } from '../../src/agent/upgrade/attempt-status.ts';
import { eventually, testNamespace, type TestNamespace } from '../support/cluster.ts';
import { agentHarness } from '../support/agent-harness.ts';
import { addonsRelease, testSigner } from '../support/releases.ts';

type Workload = KubeObject & { spec: { template: { spec: { containers: { image: string }[] } } } };
const image = (o: KubeObject | undefined) => (o as Workload | undefined)?.spec.template.spec.containers[0]?.image;

describe('staged upgrade', () => {
  let ns: TestNamespace;
  const signer = testSigner();
  const h = () => harness;
  let harness: ReturnType<typeof agentHarness>;
  before(async () => {
    ns = await testNamespace('up');
    harness = agentHarness(signer);
  });
  after(async () => {
    harness.close();
    await ns.dispose();
  });

  const read = (kind: string, name: string, apiVersion = 'apps/v1') => h().cluster.read({ apiVersion, kind, name, namespace: ns.name });

  test('installs a three-component, two-stage release and reads Succeeded', async () => {
    const offer = await h().agent.offer(signer.sign(addonsRelease(ns.name, 1, { dns: '1.0.0', proxy: '1.0.0', metrics: '1.0.0', dnsLegacyConfig: true })));
    assert.deepEqual(offer, { accepted: true, revision: 1 });
    const a = await h().runUntilFinished(1);
    assert.equal(a.phase, 'Succeeded', `${a.reason}: ${a.message}`);
    assert.deepEqual(
      a.plan.stages.map((s) => s.components.map((c) => c.name)),
      [['dns', 'proxy'], ['metrics']],
    );
    assert.equal(image(await read('Deployment', 'dns')), 'registry.example/dns:1.0.0');
    assert.ok(await read('ConfigMap', 'dns-legacy', 'v1'));
  });

  test('upgrades stage by stage; status has versions and times; the dropped object is pruned', async () => {
    await h().agent.offer(signer.sign(addonsRelease(ns.name, 2, { dns: '1.1.0', proxy: '1.1.0', metrics: '1.1.0' })));
    const a = await h().runUntilFinished(2);
    assert.equal(a.phase, 'Succeeded', `${a.reason}: ${a.message}`);
    const status = attemptStatus(h().journal, a);
    assert.equal(status.upgradeStatus, 'Succeeded');
    for (const c of status.components) {
      assert.equal(c.current, '1.1.0', `${c.name} current`);
      assert.equal(c.desired, '1.1.0');
      assert.equal(c.lastKnownGood, '1.0.0');
      assert.ok(c.startedAt && c.finishedAt && c.finishedAt >= c.startedAt, `${c.name} has stage times`);
    }
    // Stage 1 (metrics) started only after stage 0 finished.
    const dns = status.components.find((c) => c.name === 'dns')!;
    const metrics = status.components.find((c) => c.name === 'metrics')!;
    assert.ok(metrics.startedAt! >= dns.finishedAt!, 'stages ran in order');
    assert.ok(status.conditions.some((c) => c.type === 'Succeeded' && c.status === 'True'));
    assert.equal(image(await read('Deployment', 'dns')), 'registry.example/dns:1.1.0');
    assert.equal(image(await read('DaemonSet', 'proxy')), 'registry.example/proxy:1.1.0');
    assert.equal(image(await read('StatefulSet', 'metrics-store')), 'registry.example/metrics-store:1.1.0');
    assert.equal(await read('ConfigMap', 'dns-legacy', 'v1'), undefined, 'dropped object pruned');
    const phases = h().journal.attempts.transitions(a.id).map((t) => `${t.phase}${t.stage ?? ''}`);
    assert.deepEqual(phases, ['Pending', 'Upgrading0', 'Verifying0', 'PreflightChecking1', 'Upgrading1', 'Verifying1', 'Succeeded1']);
    const kinds = h().journal.outbox.pending(0, 1000).map((r) => r.kind);
    assert.ok(kinds.includes('upgrade-completed'));
  });

  test('a config-only change is an upgrade like any other; unchanged components are skipped', async () => {
    const r = addonsRelease(ns.name, 3, { dns: '1.1.0', proxy: '1.1.0', metrics: '1.1.0' });
    const dns = r.components[0]!;
    (dns.manifests[0] as unknown as { data: Record<string, string> }).data.extra = 'tuned';
    const offer = await h().agent.offer(signer.sign(r));
    assert.equal(offer.accepted, true);
    const a = await h().runUntilFinished(3);
    assert.equal(a.phase, 'Succeeded');
    assert.deepEqual(
      a.plan.stages.map((s) => s.components.map((c) => c.name)),
      [['dns']],
    );
    assert.deepEqual(a.plan.unchanged.map((u) => u.name).sort(), ['metrics', 'proxy']);
    const cm = (await read('ConfigMap', 'dns-config', 'v1')) as KubeObject & { data: Record<string, string> };
    assert.equal(cm.data.extra, 'tuned');
  });

  test('a failure in stage 2 rolls back stages 2 and 1; the cluster is on the old objects', async () => {
    const before = { dns: image(await read('Deployment', 'dns')), proxy: image(await read('DaemonSet', 'proxy')), api: image(await read('Deployment', 'metrics-api')) };
    await h().agent.offer(signer.sign(addonsRelease(ns.name, 4, { dns: '1.2.0', proxy: '1.2.0', metrics: '1.2.0', metricsApiSuffix: '-unready', dnsLegacyConfig: true })));
    const a = await h().runUntilFinished(4);
    assert.equal(a.phase, 'RolledBack', `${a.reason}: ${a.message}`);
    assert.equal(a.reason, 'ProgressDeadlineExceeded');
    assert.match(a.message ?? '', /Deployment .*\/metrics-api/);
    const phases = h().journal.attempts.transitions(a.id).map((t) => t.phase);
    assert.deepEqual(phases.slice(-2), ['RollingBack', 'RolledBack']);
    assert.equal(image(await read('Deployment', 'dns')), before.dns);
    assert.equal(image(await read('DaemonSet', 'proxy')), before.proxy);
    assert.equal(image(await read('Deployment', 'metrics-api')), before.api);
    assert.equal(await read('ConfigMap', 'dns-legacy', 'v1'), undefined, 'object the attempt created was pruned on rollback');
    const status = attemptStatus(h().journal, a);
    assert.equal(status.upgradeStatus, 'Failed');
    for (const c of status.components) assert.equal(c.current, '1.1.0', `${c.name} is back on its previous version`);
    assert.ok(status.conditions.some((c) => c.type === 'RolledBack' && c.status === 'True'));
  });
});

describe('bad releases are refused with nothing changed', () => {
  let ns: TestNamespace;
  const signer = testSigner();
  let harness: ReturnType<typeof agentHarness>;
  before(async () => {
    ns = await testNamespace('bad');
    harness = agentHarness(signer, { admission: { allowedNamespaces: [`${ns.name}`], allowedKinds: ['ConfigMap', 'Service', 'Deployment', 'DaemonSet', 'StatefulSet'] } });
    await harness.agent.offer(signer.sign(addonsRelease(ns.name, 1, { dns: '2.0.0', proxy: '2.0.0', metrics: '2.0.0' })));
    const a = await harness.runUntilFinished(1);
    assert.equal(a.phase, 'Succeeded');
  });
  after(async () => {
    harness.close();
    await ns.dispose();
  });

  const cases: { name: string; reason: string; build: () => unknown }[] = [
    {
      name: 'a namespace the agent may not touch',
      reason: 'ForbiddenNamespace',
      build: () => {
        const r = addonsRelease(ns.name, 2, { dns: '2.1.0', proxy: '2.1.0', metrics: '2.1.0' });
        (r.components[0]!.manifests[0]!.metadata as { namespace: string }).namespace = 'kube-system';
        return signer.sign(r);
      },
    },
    {
      name: 'a kind the agent may not touch',
      reason: 'ForbiddenKind',
      build: () => {
        const r = addonsRelease(ns.name, 2, { dns: '2.1.0', proxy: '2.1.0', metrics: '2.1.0' });
        r.components[0]!.manifests.push({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'take-over' } });
        return signer.sign(r);
      },
    },
    {
      name: 'manifests the API server rejects',
      reason: 'DryRunRejected',
      build: () => {
        const r = addonsRelease(ns.name, 2, { dns: '2.1.0', proxy: '2.1.0', metrics: '2.1.0' });
        ((r.components[0]!.manifests[1] as unknown as { spec: { replicas: number } }).spec).replicas = -3;
        return signer.sign(r);
      },
    },
    {
      name: 'a downgrade the release does not allow',
      reason: 'Downgrade',
      build: () => signer.sign(addonsRelease(ns.name, 2, { dns: '1.9.0', proxy: '2.0.0', metrics: '2.0.0' })),
    },
    {
      name: 'a forged signature',
      reason: 'BadSignature',
      build: () => {
        const env = signer.sign(addonsRelease(ns.name, 2, { dns: '2.1.0', proxy: '2.1.0', metrics: '2.1.0' }));
        return { ...env, payload: env.payload.replace('registry.example/dns:2.1.0', 'evil.example/dns:2.1.0') };
      },
    },
    {
      name: 'an unsigned release',
      reason: 'Unsigned',
      build: () => ({ payload: JSON.stringify(addonsRelease(ns.name, 2, { dns: '2.1.0', proxy: '2.1.0', metrics: '2.1.0' })) }),
    },
    {
      name: 'a release signed by another key',
      reason: 'UnknownKey',
      build: () => testSigner().sign(addonsRelease(ns.name, 2, { dns: '2.1.0', proxy: '2.1.0', metrics: '2.1.0' })),
    },
    {
      name: 'an expired release',
      reason: 'Expired',
      build: () => signer.sign(addonsRelease(ns.name, 2, { dns: '2.1.0', proxy: '2.1.0', metrics: '2.1.0' }, { issuedAt: '2020-01-01T00:00:00Z', expiresAt: '2020-01-02T00:00:00Z' })),
    },
    {
      name: 'a replayed (old) revision',
      reason: 'Replayed',
      build: () => signer.sign(addonsRelease(ns.name, 1, { dns: '2.1.0', proxy: '2.1.0', metrics: '2.1.0' })),
    },
    {
      name: 'a release that fails schema validation',
      reason: 'Malformed',
      build: () => {
        const r = addonsRelease(ns.name, 2, { dns: '2.1.0', proxy: '2.1.0', metrics: '2.1.0' }) as unknown as { components: unknown[] };
        // Sign the bad payload directly: the hub-side signRelease refuses to sign invalid releases.
        return signRawPayload(signer.privateKey, JSON.stringify({ ...r, components: [] }));
      },
    },
  ];

  test('the same refused revision, offered again after a reconnect, is reported once', async () => {
    const r = addonsRelease(ns.name, 5, { dns: '2.1.0', proxy: '2.1.0', metrics: '2.1.0' });
    ((r.components[0]!.manifests[1] as unknown as { spec: { replicas: number } }).spec).replicas = -1;
    const env = signer.sign(r);
    const before = harness.journal.outbox.stats().lastSeq;
    assert.equal((await harness.agent.offer(env)).accepted, false);
    assert.equal((await harness.agent.offer(env)).accepted, false);
    const reports = harness.journal.outbox.pending(before, 10).filter((x) => x.kind === 'release-refused');
    assert.equal(reports.length, 1);
  });

  for (const c of cases) {
    test(`refuses ${c.name} (${c.reason})`, async () => {
      const dnsBefore = await harness.cluster.read({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'dns', namespace: ns.name });
      const outboxBefore = harness.journal.outbox.stats().lastSeq;
      const result = await harness.agent.offer(c.build());
      assert.equal(result.accepted, false);
      assert.equal(!result.accepted && result.reason, c.reason, !result.accepted ? result.message : '');
      assert.ok(!result.accepted && result.message.length > 10, 'the refusal says what is wrong');
      assert.equal(harness.journal.releases.lastAcceptedRevision(), 1, 'the previous release stays in force');
      assert.equal(harness.journal.attempts.current(), undefined, 'no attempt started');
      const dnsAfter = await harness.cluster.read({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'dns', namespace: ns.name });
      assert.equal(dnsAfter?.metadata.resourceVersion, dnsBefore?.metadata.resourceVersion, 'cluster unchanged');
      const refusal = harness.journal.outbox.pending(outboxBefore, 10).find((r) => r.kind === 'release-refused');
      assert.ok(refusal, 'the refusal is reported to the hub');
      assert.equal((refusal.body as { reason: string }).reason, c.reason);
    });
  }
});

import { sign, type KeyObject } from 'node:crypto';
import { keyIdOf } from '../../src/protocol/signing.ts';
function signRawPayload(key: KeyObject, payload: string) {
  return { payload, signature: sign(null, Buffer.from(payload), key).toString('base64'), keyId: keyIdOf(key) };
}

describe('a rollback that cannot restore health', () => {
  test('ends Failed, says so, and names the workload: a person must look', async () => {
    const ns = await testNamespace('fail');
    const signer = testSigner();
    const harness = agentHarness(signer);
    try {
      const short = (r: ReturnType<typeof addonsRelease>) => {
        for (const c of r.components) c.health = { progressDeadlineSeconds: 12 };
        return r;
      };
      await harness.agent.offer(signer.sign(short(addonsRelease(ns.name, 1, { dns: '1.0.0', proxy: '1.0.0', metrics: '1.0.0' }))));
      assert.equal((await harness.runUntilFinished(1)).phase, 'Succeeded');
      // Someone breaks the running version by hand (drift): the last known good is now unhealthy.
      await ns.apps.patchNamespacedDeployment({ name: 'metrics-api', namespace: ns.name, body: [{ op: 'replace', path: '/spec/template/spec/containers/0/image', value: 'registry.example/metrics-api:1.0.0-unready' }] });
      await harness.agent.offer(signer.sign(short(addonsRelease(ns.name, 2, { dns: '1.0.0', proxy: '1.0.0', metrics: '2.0.0', metricsApiSuffix: '-unready' }))));
      const a = await harness.runUntilFinished(2, 180_000);
      assert.equal(a.phase, 'Failed', `${a.reason}: ${a.message}`);
      assert.equal(a.reason, 'RollbackUnhealthy');
      assert.match(a.message ?? '', /metrics-api/);
      assert.match(a.message ?? '', /a person must look/);
      assert.equal(attemptStatus(harness.journal, a).upgradeStatus, 'Failed');
      assert.ok(attemptStatus(harness.journal, a).conditions.some((c) => c.type === 'Failed' && c.status === 'True'));
    } finally {
      harness.close();
      await ns.dispose();
    }
  });
});

describe('new pods that cannot start', () => {
  // Deadlines of ten minutes, on the stage and on the Deployment itself: only the pods can end these stages in time.
  const release = (ns: string, revision: number, workloads: KubeObject[]): ReleaseInput => ({
    apiVersion: 'fleetlet.io/v1',
    kind: 'Release',
    name: 'edge-addons',
    version: `2.${revision}.0`,
    revision,
    issuedAt: new Date(Date.now() - 60_000).toISOString(),
    expiresAt: new Date(Date.now() + 86_400_000).toISOString(),
    components: [{ name: 'web', version: `2.${revision}.0`, stage: 0, health: { progressDeadlineSeconds: 600 }, manifests: workloads.map((w) => ({ ...w, metadata: { ...w.metadata, namespace: ns } })) }],
  });
  const template = (app: string, image: string) => ({ metadata: { labels: { app } }, spec: { containers: [{ name: app, image }], terminationGracePeriodSeconds: 0 } });
  const deployment = (image: string): KubeObject =>
    ({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web' }, spec: { replicas: 2, progressDeadlineSeconds: 600, selector: { matchLabels: { app: 'web' } }, template: template('web', image) } }) as KubeObject;
  const daemonSet = (image: string): KubeObject => ({ apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'edge' }, spec: { selector: { matchLabels: { app: 'edge' } }, template: template('edge', image) } }) as KubeObject;

  test("a Deployment's or DaemonSet's crash-looping new pods end the stage at once (CrashLoopBackOff, naming pod and container); an old revision's crash loop does not fail the upgrade that replaces it", async () => {
    const ns = await testNamespace('crash');
    const signer = testSigner();
    const harness = agentHarness(signer);
    try {
      // The running version crash-loops (made by hand, not by fleetlet): an upgrade to a sound image must not fail on the old pods.
      await ns.apps.createNamespacedDeployment({ namespace: ns.name, body: deployment('registry.example/web:0.9.0-crash') as never });
      await eventually('the old pods crash-loop', async () => ((await ns.core.listNamespacedPod({ namespace: ns.name, labelSelector: 'app=web' })).items.some((p) => p.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'CrashLoopBackOff') ? true : undefined));
      await harness.agent.offer(signer.sign(release(ns.name, 1, [deployment('registry.example/web:1.0.0')])));
      const sound = await harness.runUntilFinished(1);
      assert.equal(sound.phase, 'Succeeded', `${sound.reason}: ${sound.message}`);

      await harness.agent.offer(signer.sign(release(ns.name, 2, [deployment('registry.example/web:2.0.0-crash')])));
      const crashed = await harness.runUntilFinished(2);
      assert.equal(crashed.phase, 'RolledBack', `${crashed.reason}: ${crashed.message}`);
      assert.equal(crashed.reason, 'CrashLoopBackOff', crashed.message ?? '');
      assert.match(crashed.message ?? '', new RegExp(`stage 0: pod ${ns.name}/web-[a-z0-9]+-[a-z0-9]+ container web: CrashLoopBackOff, 5 restarts: back-off restarting failed container`));
      assert.equal(image(await ns.apps.readNamespacedDeployment({ name: 'web', namespace: ns.name }) as unknown as KubeObject), 'registry.example/web:1.0.0', 'back on the sound version');

      await harness.agent.offer(signer.sign(release(ns.name, 3, [deployment('registry.example/web:1.0.0'), daemonSet('registry.example/edge:3.0.0-crash')])));
      const ds = await harness.runUntilFinished(3);
      assert.equal(ds.reason, 'CrashLoopBackOff', ds.message ?? '');
      assert.match(ds.message ?? '', new RegExp(`pod ${ns.name}/edge-[a-z0-9]+ container edge: CrashLoopBackOff`));
    } finally {
      harness.close();
      await ns.dispose();
    }
  });
});
