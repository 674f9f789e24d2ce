// Proves the test control plane is real: the deployment controller, the
// scheduler and kwok together take a Deployment to Available, and a failing
// image tag produces a real ProgressDeadlineExceeded.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { eventually, testNamespace, type TestNamespace } from '../support/cluster.ts';

let ns: TestNamespace;
before(async () => {
  ns = await testNamespace('cp');
});
after(async () => ns.dispose());

const deployment = (namespace: string, image: string) => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'web', namespace },
  spec: {
    replicas: 2,
    progressDeadlineSeconds: 5,
    selector: { matchLabels: { app: 'web' } },
    template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image }] } },
  },
});

test('the API server reports the version the control plane was built from', async () => {
  const version = await ns.kc.makeApiClient((await import('@kubernetes/client-node')).VersionApi).getCode();
  assert.equal(version.gitVersion, process.env.FLEETLET_TEST_KUBE_VERSION);
  assert.match(version.gitVersion, /^v1\.\d+\.\d+$/);
});

test('a Deployment becomes Available through controller-manager, scheduler and kwok', async () => {
  await ns.apps.createNamespacedDeployment({ namespace: ns.name, body: deployment(ns.name, 'registry.example/web:1.0') });
  const d = await eventually('deployment available', async () => {
    const d = await ns.apps.readNamespacedDeployment({ name: 'web', namespace: ns.name });
    return d.status?.availableReplicas === 2 ? d : undefined;
  });
  assert.ok(d.status?.conditions?.some((c) => c.type === 'Available' && c.status === 'True'));
  const pods = await ns.core.listNamespacedPod({ namespace: ns.name });
  assert.equal(pods.items.length, 2);
  for (const p of pods.items) {
    assert.ok(p.spec?.nodeName?.startsWith('kwok-node-'), 'scheduled onto a kwok node');
    assert.equal(p.status?.phase, 'Running');
  }
});

test('an image tag that kwok keeps unready ends in ProgressDeadlineExceeded', async () => {
  await ns.apps.patchNamespacedDeployment(
    { name: 'web', namespace: ns.name, body: [{ op: 'replace', path: '/spec/template/spec/containers/0/image', value: 'registry.example/web:2.0-unready' }] },
  );
  const cond = await eventually('ProgressDeadlineExceeded', async () => {
    const d = await ns.apps.readNamespacedDeployment({ name: 'web', namespace: ns.name });
    return d.status?.conditions?.find((c) => c.type === 'Progressing' && c.reason === 'ProgressDeadlineExceeded');
  }, 90_000);
  assert.equal(cond.status, 'False');
  const pods = await ns.core.listNamespacedPod({ namespace: ns.name });
  const unready = pods.items.filter((p) => p.spec?.containers[0]?.image?.includes('unready'));
  assert.ok(unready.length > 0, 'a new pod exists');
  for (const p of unready) assert.ok(p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'False'));
});

test('an image tag containing "crash" sits in CrashLoopBackOff', async () => {
  await ns.core.createNamespacedPod({
    namespace: ns.name,
    body: { metadata: { name: 'crasher' }, spec: { containers: [{ name: 'c', image: 'registry.example/c:1-crash' }] } },
  });
  const waiting = await eventually('CrashLoopBackOff', async () => {
    const p = await ns.core.readNamespacedPod({ name: 'crasher', namespace: ns.name });
    return p.status?.containerStatuses?.[0]?.state?.waiting;
  });
  assert.equal(waiting.reason, 'CrashLoopBackOff');
});
