// `kubectl get events` tells the story: every transition is an Event on the
// agent's status ConfigMap, which also carries the current status.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { testPolicy } from '../support/test-policy.ts';
import { createAgentRuntime } from '../../src/cli/agent-runtime.ts';
import { STATUS_CONFIGMAP } from '../../src/agent/kube/status-publisher.ts';
import { eventually, kubeConfig, testNamespace } from '../support/cluster.ts';
import { addonsRelease, testSigner } from '../support/releases.ts';
import { testLogger } from '../support/test-log.ts';

test('each transition is a Kubernetes Event and the status ConfigMap shows the result', async () => {
  const agentNs = await testNamespace('agent');
  const addonsNs = await testNamespace('addons');
  const signer = testSigner();
  const runtime = await createAgentRuntime({
    clusterId: 'events-test',
    journalPath: join(mkdtempSync(join(tmpdir(), 'fleetlet-ev-')), 'journal.db'),
    kubeConfig: kubeConfig(),
    releaseKeys: [signer.publicKey],
    logger: testLogger(),
    policy: testPolicy(),
    namespace: agentNs.name,
    pollMs: 200,
  });
  const controller = new AbortController();
  const running = runtime.run(controller.signal);
  try {
    const offer = await runtime.agent.offer(signer.sign(addonsRelease(addonsNs.name, 1, { dns: '1.0.0', proxy: '1.0.0', metrics: '1.0.0' })));
    assert.equal(offer.accepted, true);
    const cm = await eventually('status ConfigMap reads Succeeded', async () => {
      const c = await agentNs.core.readNamespacedConfigMap({ name: STATUS_CONFIGMAP, namespace: agentNs.name });
      return c.data?.upgradeStatus === 'Succeeded' ? c : undefined;
    });
    assert.equal(cm.data?.phase, 'Succeeded');
    const status = JSON.parse(cm.data?.['status.json'] ?? '{}') as { components: { name: string; current: string }[] };
    assert.deepEqual(status.components.map((c) => `${c.name}=${c.current}`).sort(), ['dns=1.0.0', 'metrics=1.0.0', 'proxy=1.0.0']);
    const events = await eventually('one event per transition', async () => {
      const list = await agentNs.core.listNamespacedEvent({ namespace: agentNs.name });
      const ours = list.items.filter((e) => e.involvedObject.name === STATUS_CONFIGMAP);
      return ours.length >= 6 ? ours : undefined;
    });
    const journalTransitions = runtime.journal.attempts.transitions(runtime.journal.attempts.latest()!.id).slice(1);
    assert.deepEqual(
      events.map((e) => e.reason).sort(),
      journalTransitions.map((t) => t.phase).sort(),
    );
    assert.ok(events.every((e) => e.type === 'Normal' && e.involvedObject.kind === 'ConfigMap'));
  } finally {
    controller.abort();
    await running;
    await agentNs.dispose();
    await addonsNs.dispose();
  }
});
