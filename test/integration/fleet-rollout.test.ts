// Fleet rollouts end to end: a real hub, three real agents (each its own
// "cluster": its own namespaces on the run's control plane), releases and a
// hotfix override rolled out in groups. A canary whose release fails rolls
// back there and pauses the rollout before any other cluster starts; a hub
// restarted mid-rollout continues where it was.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createAgentRuntime, type AgentRuntime } from '../../src/cli/agent-runtime.ts';
import { startHub, type RunningHub } from '../../src/hub/start-hub.ts';
import { generateReleaseKey } from '../../src/protocol/signing.ts';
import { addonsRelease, asReleaseRequest } from '../../src/testbed/sample-releases.ts';
import { eventually, kubeConfig, testNamespace, type TestNamespace } from '../support/cluster.ts';
import { testPolicy } from '../support/test-policy.ts';
import { testLogger } from '../support/test-log.ts';

const keys = generateReleaseKey();
const adminToken = randomBytes(16).toString('hex');
const bootstrapToken = randomBytes(32).toString('base64url');
const work = mkdtempSync(join(tmpdir(), 'fleetlet-rollout-'));
const logger = testLogger();

interface Cluster {
  id: string;
  labels: Record<string, string>;
  agentNs: TestNamespace;
  addonsNs: TestNamespace;
  runtime: AgentRuntime;
  stop: () => Promise<void>;
}

type View = { upgrade?: { phase: string; release: { version: string; revision: number } }; desiredRelease?: { version: string; revision: number } | null; overrides?: { name: string }[] };
type Rollout = { phase: string; reason: string | null; counts: Record<string, number>; failed?: { clusterId: string; reason: string | null }[]; groups: { name: string; counts: Record<string, number> }[] };

describe('fleet rollouts with real agents', () => {
  let hub: RunningHub;
  let port = 0;
  const clusters: Cluster[] = [];
  const startTheHub = async () => {
    hub = await startHub({ port, dbPath: join(work, 'hub.db'), releaseKey: keys.privateKey, adminToken, bootstrapTokens: [bootstrapToken], heartbeatMs: 500, rolloutTickMs: 200, now: () => new Date(), logger });
    port = hub.port;
  };
  const api = async <T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${hub.httpUrl}${path}`, { method, headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
    const json = (await res.json()) as T;
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  const release = (version: string, v: Parameters<typeof addonsRelease>[2]) => {
    // No namespaces in the manifests: each agent puts them in its own target namespace.
    const body = asReleaseRequest(addonsRelease(undefined, 1, v));
    return { ...body, version };
  };
  const view = (id: string) => api<View>('GET', `/api/v1/clusters/${id}`);

  before(async () => {
    await startTheHub();
    for (const [id, labels] of [
      ['canary-1', { env: 'canary' }],
      ['prod-1', { env: 'prod' }],
      ['prod-2', { env: 'prod' }],
    ] as const) {
      const agentNs = await testNamespace(`${id}-sys`);
      const addonsNs = await testNamespace(`${id}-app`);
      const runtime = await createAgentRuntime({
        clusterId: id,
        journalPath: join(work, `${id}.db`),
        kubeConfig: kubeConfig(),
        releaseKeys: [keys.publicKey],
        logger,
        namespace: agentNs.name,
        targetNamespace: addonsNs.name,
        policy: testPolicy(),
        pollMs: 200,
        hub: { url: hub.url, bootstrapToken, heartbeatMs: 500 },
        agent: { idleMs: 200 },
      });
      const controller = new AbortController();
      const running = runtime.run(controller.signal);
      clusters.push({ id, labels, agentNs, addonsNs, runtime, stop: async () => (controller.abort(), await running) });
      await eventually(`${id} asks to register`, async () => ((await api<{ registration: string }>('GET', `/api/v1/clusters/${id}`).catch(() => undefined))?.registration === 'Pending' ? true : undefined));
      await api('POST', `/api/v1/clusters/${id}/accept`);
      await api('PUT', `/api/v1/clusters/${id}/labels`, { labels });
    }
    // Every cluster starts on 1.0.0.
    for (const c of clusters) await api('PUT', `/api/v1/clusters/${c.id}/release`, release('1.0.0', { dns: '1.0.0', proxy: '1.0.0', metrics: '1.0.0' }));
    for (const c of clusters) {
      await eventually(`${c.id} on 1.0.0`, async () => ((await view(c.id)).upgrade?.phase === 'Succeeded' ? true : undefined), 120_000);
    }
  });
  after(async () => {
    for (const c of clusters) await c.stop();
    await hub.close();
    for (const c of clusters) {
      await c.agentNs.dispose();
      await c.addonsNs.dispose();
    }
  });

  test('a failing canary rolls back there and pauses the rollout before any other cluster starts', async () => {
    const revisionsBefore = new Map<string, number | undefined>();
    for (const c of clusters) revisionsBefore.set(c.id, (await view(c.id)).desiredRelease?.revision);
    await api('POST', '/api/v1/rollouts', {
      name: 'bad-2-0',
      groups: [{ name: 'canary', mandatory: true, selector: { matchLabels: { env: 'canary' } } }],
      strategy: { type: 'ProgressivePerGroup', progressDeadline: '5m' },
      target: { kind: 'Release', release: release('2.0.0', { dns: '2.0.0', proxy: '2.0.0', metrics: '2.0.0', metricsApiSuffix: '-unready' }) },
    });
    const paused = await eventually('the rollout to pause', async () => {
      const r = await api<Rollout>('GET', '/api/v1/rollouts/bad-2-0');
      return r.phase === 'Paused' ? r : undefined;
    }, 120_000);
    assert.equal(paused.reason, 'MandatoryGroupFailed');
    assert.equal((await view('canary-1')).upgrade?.phase, 'RolledBack', 'the canary rolled back on its own');
    assert.equal(paused.counts.Failed, 1);
    // The other clusters were never sent the release.
    for (const id of ['prod-1', 'prod-2']) {
      assert.equal((await view(id)).desiredRelease?.revision, revisionsBefore.get(id), `${id} received nothing`);
      assert.equal((await view(id)).upgrade?.release.version, '1.0.0');
    }
    const canary = clusters.find((c) => c.id === 'canary-1')!;
    const dns = await canary.addonsNs.apps.readNamespacedDeployment({ name: 'dns', namespace: canary.addonsNs.name });
    assert.equal(dns.spec?.template.spec?.containers[0]?.image, 'registry.example/dns:1.0.0', 'the canary cluster is back on its old objects');
    await api('POST', '/api/v1/rollouts/bad-2-0/cancel');
  });

  test('a hub restarted mid-rollout continues where it was, and every cluster ends on the new release', async () => {
    await api('POST', '/api/v1/rollouts', {
      name: 'good-2-1',
      groups: [{ name: 'canary', mandatory: true, selector: { matchLabels: { env: 'canary' } } }],
      strategy: { type: 'ProgressivePerGroup', minSuccessTime: '3s', progressDeadline: '5m' },
      target: { kind: 'Release', release: release('2.1.0', { dns: '2.1.0', proxy: '2.1.0', metrics: '2.1.0' }) },
    });
    // The canary succeeds and soaks (minSuccessTime): restart the hub in the middle of it.
    await eventually('canary on 2.1.0', async () => ((await view('canary-1')).upgrade?.release.version === '2.1.0' && (await view('canary-1')).upgrade?.phase === 'Succeeded' ? true : undefined), 120_000);
    const before = await api<Rollout>('GET', '/api/v1/rollouts/good-2-1');
    assert.equal(before.groups.find((g) => g.name !== 'canary')?.counts.ToApply, 2, 'the prod group has not started while the canary soaks');
    await hub.close();
    await startTheHub();
    const done = await eventually('the rollout to succeed', async () => {
      const r = await api<Rollout>('GET', '/api/v1/rollouts/good-2-1');
      return r.phase === 'Succeeded' || r.phase === 'Completed' ? r : undefined;
    }, 180_000);
    assert.equal(done.counts.Succeeded, 3);
    for (const c of clusters) assert.equal((await view(c.id)).upgrade?.release.version, '2.1.0');
  });

  test('a hotfix override reaches every affected cluster; the hub knows which run it', async () => {
    await api('POST', '/api/v1/rollouts', {
      name: 'fix-dns',
      groups: [{ name: 'canary', mandatory: true, selector: { matchLabels: { env: 'canary' } } }],
      strategy: { type: 'Progressive', maxConcurrency: 2, progressDeadline: '5m' },
      target: { kind: 'Override', override: { name: 'cve-dns', version: '2.1.0-hf1', appliesTo: { releaseName: 'edge-addons', versions: ['2.1.0'] }, component: 'dns', images: { dns: 'registry.example/dns:2.1.0-hf1' } } },
    });
    await eventually('the override rollout to finish', async () => {
      const r = await api<Rollout>('GET', '/api/v1/rollouts/fix-dns');
      return r.phase === 'Succeeded' || r.phase === 'Completed' ? r : undefined;
    }, 180_000);
    const running = await api<{ clusters: { clusterId: string }[] }>('GET', '/api/v1/overrides/cve-dns/clusters?state=running');
    assert.deepEqual(running.clusters.map((c) => c.clusterId).sort(), ['canary-1', 'prod-1', 'prod-2']);
    const missing = await api<{ clusters: unknown[] }>('GET', '/api/v1/overrides/cve-dns/clusters?state=missing');
    assert.equal(missing.clusters.length, 0);
    for (const c of clusters) {
      const dns = await c.addonsNs.apps.readNamespacedDeployment({ name: 'dns', namespace: c.addonsNs.name });
      assert.equal(dns.spec?.template.spec?.containers[0]?.image, 'registry.example/dns:2.1.0-hf1', `${c.id} runs the fix`);
      assert.equal((await view(c.id)).upgrade?.release.version, '2.1.0', 'no new release version');
    }
  });
});
