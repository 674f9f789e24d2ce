// manifests/ against the real control plane: base and each overlay apply
// server-side (as `kubectl apply -k --server-side` would, rendered by
// test/support/kustomize.ts); the pod passes the Pod Security Standard its
// namespace enforces; and the RBAC is both enough and no more: acting as the
// fleetlet ServiceAccount (a TokenRequest token), a real upgrade and a real
// rollback succeed, while Secrets elsewhere, ClusterRoleBindings and node
// deletion are refused.
//
// These tests use the real namespace the manifests name (fleetlet-system),
// not a per-test one: the layout fixes it, and that is what is under test.
// The tests in this file run in order and build on each other.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { KubeApiError, KubeClusterClient } from '../../src/agent/kube/cluster-client.ts';
import { secretCredentialStore } from '../../src/agent/kube/credential-secret.ts';
import { StatusPublisher, STATUS_CONFIGMAP } from '../../src/agent/kube/status-publisher.ts';
import { attemptStatus } from '../../src/agent/upgrade/attempt-status.ts';
import { AgentMetrics, metricNames } from '../../src/agent/http/metrics.ts';
import { defaultAdmission } from '../../src/agent/intake/admission.ts';
import { Journal } from '../../src/store/journal.ts';
import { agentHarness } from '../support/agent-harness.ts';
import { eventually, kubeConfig, testNamespace } from '../support/cluster.ts';
import { renderComponent, renderKustomization, type KObject } from '../support/kustomize.ts';
import { addonsRelease, testSigner } from '../support/releases.ts';
import { canI, serviceAccountKubeConfig } from '../support/service-account.ts';
import { testLogger } from '../support/test-log.ts';

const manifests = new URL('../../manifests/', import.meta.url).pathname;
const NS = 'fleetlet-system';
const admin = kubeConfig();
const objects = k8s.KubernetesObjectApi.makeApiClient(admin);
const core = admin.makeApiClient(k8s.CoreV1Api);
const apps = admin.makeApiClient(k8s.AppsV1Api);

/** Server-side apply as the cluster admin, Namespaces first (what `kubectl apply -k --server-side` does). */
async function applyAll(objs: KObject[]): Promise<void> {
  const ordered = [...objs].sort((a, b) => Number(b.kind === 'Namespace') - Number(a.kind === 'Namespace'));
  for (const o of ordered) {
    await objects.patch(o as k8s.KubernetesObject, undefined, undefined, 'fleetlet-manifests-test', true, k8s.PatchStrategy.ServerSideApply);
  }
}

type PodTemplate = { spec: Record<string, unknown> & { volumes: { name: string }[]; initContainers?: unknown[]; tolerations?: unknown[] } };
const templateOf = (o: KObject) => (o.spec as { template: PodTemplate }).template;

describe('manifests', () => {
  after(async () => {
    // The cluster-scoped objects outlive the namespace; remove both.
    for (const name of ['fleetlet-agent']) {
      await admin.makeApiClient(k8s.RbacAuthorizationV1Api).deleteClusterRoleBinding({ name }).catch(() => {});
      await admin.makeApiClient(k8s.RbacAuthorizationV1Api).deleteClusterRole({ name }).catch(() => {});
    }
    await core.deleteNamespace({ name: NS }).catch(() => {});
  });

  test('the PrometheusRule component parses and alerts on metrics the agent exports', async () => {
    // Not applied: PrometheusRule needs the Prometheus Operator's CRD, which
    // this control plane does not have (that is also why it is an opt-in
    // component, not part of base). Validated as YAML and against the metrics.
    const [rule, ...rest] = renderComponent(`${manifests}components/prometheus-rules`);
    assert.equal(rest.length, 0);
    assert.equal(rule!.apiVersion, 'monitoring.coreos.com/v1');
    assert.equal(rule!.kind, 'PrometheusRule');
    assert.equal(rule!.metadata.namespace, NS);
    const rules = (rule!.spec as { groups: { name: string; rules: { alert: string; expr: string; labels: { severity: string }; annotations: { summary: string } }[] }[] }).groups.flatMap((g) => g.rules);
    assert.deepEqual(
      rules.map((r) => r.alert).sort(),
      ['FleetletAgentAbsent', 'FleetletHubUnreachable', 'FleetletJournalErrors', 'FleetletOutboxBacklog', 'FleetletUpgradeFailed', 'FleetletUpgradeRolledBack', 'FleetletUpgradeStuck'],
    );
    for (const r of rules) {
      assert.ok(['warning', 'critical'].includes(r.labels.severity), `${r.alert} has a severity`);
      assert.ok(r.annotations.summary, `${r.alert} has a summary`);
    }

    // Every metric an alert uses is one the agent really exposes (with a hub configured).
    const journal = Journal.open(':memory:');
    try {
      const metrics = new AgentMetrics({ journal, clusterId: 'c', version: '0.1.0', hubReconnects: () => 3, hubConnected: () => false });
      const exposed = new Set([...(await metrics.expose()).body.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
      for (const r of rules) {
        const used = [...r.expr.matchAll(/\bfleetlet_agent_[a-z_]+/g)].map((m) => m[0]);
        assert.ok(used.length > 0, `${r.alert} uses a fleetlet metric`);
        for (const name of used) assert.ok(exposed.has(name), `${r.alert}: ${name} is exposed by the agent (exposed: ${[...exposed].join(', ')})`);
      }
      for (const name of Object.values(metricNames)) assert.ok(exposed.has(name), `${name} is exposed`);
    } finally {
      journal.close();
    }
    // Opt-in only: no overlay applies it by default.
    for (const overlay of ['deployment', 'daemonset']) assert.ok(!renderKustomization(`${manifests}overlays/${overlay}`).some((o) => o.kind === 'PrometheusRule'));
  });

  test('base and the deployment overlay apply; the pod meets the restricted Pod Security Standard', async () => {
    const rendered = renderKustomization(`${manifests}overlays/deployment`);
    assert.deepEqual(
      rendered.map((o) => `${o.kind}/${o.metadata.name}`).sort(),
      [
        'ClusterRole/fleetlet-agent',
        'ClusterRoleBinding/fleetlet-agent',
        'ConfigMap/fleetlet-policy',
        'Deployment/fleetlet',
        'Namespace/fleetlet-system',
        'NetworkPolicy/fleetlet-agent',
        'PersistentVolumeClaim/fleetlet-journal',
        'Role/fleetlet-agent',
        'RoleBinding/fleetlet-agent',
        'Service/fleetlet-metrics',
        'ServiceAccount/fleetlet',
      ],
    );
    await applyAll(rendered);
    for (const o of rendered) {
      const live = await objects.read({ apiVersion: o.apiVersion, kind: o.kind, metadata: { name: o.metadata.name, namespace: o.metadata.namespace } });
      assert.equal(live.metadata?.name, o.metadata.name, `${o.kind} ${o.metadata.name} exists`);
    }
    // The policy ConfigMap carries manifests/examples/policy.yaml verbatim.
    const policy = await core.readNamespacedConfigMap({ name: 'fleetlet-policy', namespace: NS });
    assert.match(policy.data?.['policy.yaml'] ?? '', /kind: MaintenancePolicy/);

    // Non-root, read-only root filesystem, journal writable.
    const dep = rendered.find((o) => o.kind === 'Deployment')!;
    const pod = templateOf(dep).spec as unknown as { securityContext: { runAsNonRoot: boolean; runAsUser: number }; containers: { securityContext: { readOnlyRootFilesystem: boolean }; volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[] }[] };
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.equal(pod.securityContext.runAsUser, 65532);
    assert.equal(pod.containers[0]!.securityContext.readOnlyRootFilesystem, true);
    const journalMount = pod.containers[0]!.volumeMounts.find((m) => m.name === 'journal')!;
    assert.equal(journalMount.mountPath, '/var/lib/fleetlet');
    assert.notEqual(journalMount.readOnly, true);

    // The ReplicaSet's pod got past Pod Security admission (restricted is enforced here)...
    const pods = await eventually('the agent pod is created', async () => {
      const list = await core.listNamespacedPod({ namespace: NS, labelSelector: 'app.kubernetes.io/name=fleetlet,app.kubernetes.io/component=agent' });
      return list.items.length > 0 ? list.items : undefined;
    });
    assert.equal(pods[0]!.spec?.securityContext?.runAsUser, 65532);
    // ...and that admission really is enforced: a root pod is refused in the same namespace.
    await assert.rejects(
      core.createNamespacedPod({ namespace: NS, dryRun: 'All', body: { metadata: { name: 'root-pod' }, spec: { containers: [{ name: 'c', image: 'busybox', securityContext: { runAsUser: 0 } }] } } }),
      (err: k8s.ApiException<unknown>) => err.code === 403 && /violates PodSecurity/.test(String(err.body)),
    );
  });

  test('the daemonset overlay applies; its pod template is the deployment one but for the journal volume', async () => {
    const rendered = renderKustomization(`${manifests}overlays/daemonset`);
    await applyAll(rendered);
    const ns = await core.readNamespace({ name: NS });
    assert.equal(ns.metadata?.labels?.['pod-security.kubernetes.io/enforce'], 'privileged', 'hostPath needs the privileged level');
    assert.equal(ns.metadata?.labels?.['pod-security.kubernetes.io/warn'], 'restricted');
    const ds = await apps.readNamespacedDaemonSet({ name: 'fleetlet', namespace: NS });
    assert.equal(ds.spec?.template.spec?.volumes?.find((v) => v.name === 'journal')?.hostPath?.path, '/var/lib/fleetlet');
    await eventually('a DaemonSet pod on every node', async () => {
      const d = await apps.readNamespacedDaemonSet({ name: 'fleetlet', namespace: NS });
      const want = d.status?.desiredNumberScheduled ?? 0;
      return want > 0 && d.status?.currentNumberScheduled === want ? true : undefined;
    });

    // The two overlays carry copies of one pod template; keep them in step.
    const dsTemplate = structuredClone(templateOf(rendered.find((o) => o.kind === 'DaemonSet')!));
    const depTemplate = structuredClone(templateOf(renderKustomization(`${manifests}overlays/deployment`).find((o) => o.kind === 'Deployment')!));
    for (const t of [dsTemplate, depTemplate]) {
      t.spec.volumes = t.spec.volumes.filter((v) => v.name !== 'journal');
      delete t.spec.initContainers;
      delete t.spec.tolerations;
    }
    assert.deepEqual(dsTemplate, depTemplate);
  });

  describe('as the fleetlet ServiceAccount', () => {
    const signer = testSigner();

    test('RBAC is enough: the agent installs, upgrades and rolls back add-ons, and keeps its own records', async () => {
      const saKc = await serviceAccountKubeConfig(NS, 'fleetlet');
      const saCluster = new KubeClusterClient(saKc);
      const addons = await testNamespace('rbac');
      const harness = agentHarness(signer, { cluster: saCluster, admission: { ...defaultAdmission, allowedNamespaces: [addons.name] } });
      try {
        const admin = harness.cluster;
        const image = async (kind: string, name: string) =>
          ((await admin.read({ apiVersion: 'apps/v1', kind, name, namespace: addons.name })) as unknown as { spec: { template: { spec: { containers: { image: string }[] } } } }).spec.template.spec.containers[0]!.image;

        assert.deepEqual(await harness.agent.offer(signer.sign(addonsRelease(addons.name, 1, { dns: '1.0.0', proxy: '1.0.0', metrics: '1.0.0', dnsLegacyConfig: true }))), { accepted: true, revision: 1 });
        const v1 = await harness.runUntilFinished(1);
        assert.equal(v1.phase, 'Succeeded', `${v1.reason}: ${v1.message}`);

        // Upgrade with a pruned object (delete).
        assert.equal((await harness.agent.offer(signer.sign(addonsRelease(addons.name, 2, { dns: '2.0.0', proxy: '2.0.0', metrics: '2.0.0' })))).accepted, true);
        const v2 = await harness.runUntilFinished(2);
        assert.equal(v2.phase, 'Succeeded', `${v2.reason}: ${v2.message}`);
        assert.equal(await image('Deployment', 'dns'), 'registry.example/dns:2.0.0');
        assert.equal(await admin.read({ apiVersion: 'v1', kind: 'ConfigMap', name: 'dns-legacy', namespace: addons.name }), undefined, 'pruned');

        // A failing stage 2: rollback restores stage 1 and 2 with the same identity.
        assert.equal((await harness.agent.offer(signer.sign(addonsRelease(addons.name, 3, { dns: '3.0.0', proxy: '3.0.0', metrics: '3.0.0', metricsApiSuffix: '-unready' })))).accepted, true);
        const v3 = await harness.runUntilFinished(3);
        assert.equal(v3.phase, 'RolledBack', `${v3.reason}: ${v3.message}`);
        assert.equal(await image('Deployment', 'dns'), 'registry.example/dns:2.0.0');
        assert.equal(await image('Deployment', 'metrics-api'), 'registry.example/metrics-api:2.0.0');

        // Its own records in its own namespace: status ConfigMap + Events, hub credential Secret, leader Lease.
        const publisher = new StatusPublisher(saCluster, NS, testLogger());
        const last = harness.journal.attempts.transitions(v3.id).at(-1)!;
        publisher.publish(attemptStatus(harness.journal, v3), last);
        await publisher.idle();
        const cm = await core.readNamespacedConfigMap({ name: STATUS_CONFIGMAP, namespace: NS });
        assert.equal(cm.data?.phase, 'RolledBack', 'status ConfigMap written (a failed publish is only logged, so read it back)');
        const events = await core.listNamespacedEvent({ namespace: NS });
        assert.ok(events.items.some((e) => e.involvedObject.name === STATUS_CONFIGMAP && e.reason === 'RolledBack'), 'transition Event created');

        const credentials = secretCredentialStore(saCluster, NS);
        const identity = await credentials.loadOrCreate();
        assert.equal((await credentials.loadOrCreate()).key.publicKey, identity.key.publicKey, 'the key is created once');
        await credentials.save({ ...identity, registered: true });
        assert.equal((await credentials.load())?.registered, true);
        await credentials.clear();
        assert.equal(await credentials.load(), undefined);

        const lease = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'fleetlet-leader', namespace: NS } };
        const created = await saCluster.create({ ...lease, spec: { holderIdentity: 'pod-a', leaseDurationSeconds: 15 } } as never);
        await saCluster.replace({ ...created, spec: { holderIdentity: 'pod-b', leaseDurationSeconds: 15 } } as never);
        assert.equal(((await saCluster.read({ apiVersion: lease.apiVersion, kind: lease.kind, name: 'fleetlet-leader', namespace: NS })) as { spec?: { holderIdentity?: string } } | undefined)?.spec?.holderIdentity, 'pod-b');
      } finally {
        harness.close();
        await addons.dispose();
      }
    });

    test('and no more: no Secrets elsewhere, no ClusterRoleBindings, no node deletion, no Roles beyond its own rights', async () => {
      const saKc = await serviceAccountKubeConfig(NS, 'fleetlet');
      const saCluster = new KubeClusterClient(saKc);

      // The review itself works: what the agent needs is allowed.
      for (const q of [
        { verb: 'patch', group: 'apps', resource: 'deployments', namespace: 'anywhere' },
        { verb: 'delete', resource: 'configmaps', namespace: 'anywhere' },
        { verb: 'list', resource: 'nodes' },
        { verb: 'update', group: 'coordination.k8s.io', resource: 'leases', namespace: NS, name: 'fleetlet-leader' },
        { verb: 'get', resource: 'secrets', namespace: NS, name: 'fleetlet-hub-credential' },
      ]) {
        assert.equal((await canI(saKc, q)).allowed, true, `allowed: ${JSON.stringify(q)}`);
      }
      for (const q of [
        { verb: 'get', resource: 'secrets', namespace: 'kube-system' },
        { verb: 'list', resource: 'secrets' },
        { verb: 'get', resource: 'secrets', namespace: NS, name: 'someone-elses-secret' },
        { verb: 'create', group: 'rbac.authorization.k8s.io', resource: 'clusterrolebindings' },
        { verb: 'create', group: 'rbac.authorization.k8s.io', resource: 'clusterroles' },
        { verb: 'escalate', group: 'rbac.authorization.k8s.io', resource: 'roles', namespace: 'anywhere' },
        { verb: 'bind', group: 'rbac.authorization.k8s.io', resource: 'clusterroles', name: 'cluster-admin' },
        { verb: 'delete', resource: 'nodes' },
        { verb: 'patch', resource: 'nodes' },
        { verb: 'create', resource: 'pods', namespace: 'default' },
        { verb: 'create', resource: 'pods/exec', namespace: 'default' },
        { verb: 'update', group: 'apps', resource: 'deployments', namespace: 'anywhere' },
        { verb: 'update', group: 'coordination.k8s.io', resource: 'leases', namespace: 'kube-system', name: 'kube-scheduler' },
      ]) {
        assert.equal((await canI(saKc, q)).allowed, false, `denied: ${JSON.stringify(q)}`);
      }

      // And real requests are refused by the API server, not just by the review.
      const forbidden = (err: unknown) => err instanceof KubeApiError && err.status === 403;
      await assert.rejects(saCluster.read({ apiVersion: 'v1', kind: 'Secret', name: 'anything', namespace: 'kube-system' }), forbidden);
      await assert.rejects(saCluster.list('v1', 'Secret', 'default'), forbidden);
      await assert.rejects(
        saCluster.create({
          apiVersion: 'rbac.authorization.k8s.io/v1',
          kind: 'ClusterRoleBinding',
          metadata: { name: 'fleetlet-should-not' },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' },
          subjects: [{ kind: 'ServiceAccount', name: 'fleetlet', namespace: NS }],
        } as never),
        forbidden,
      );
      // Dry-run: were it (wrongly) allowed, nothing would be deleted.
      await assert.rejects(saKc.makeApiClient(k8s.CoreV1Api).deleteNode({ name: 'kwok-node-0', dryRun: 'All' }), (err: k8s.ApiException<unknown>) => err.code === 403);

      // Without escalate/bind, a Role granting what fleetlet does not hold is refused (the documented choice).
      const ns = await testNamespace('rbac-role');
      try {
        await assert.rejects(
          saCluster.apply({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'reads-secrets', namespace: ns.name }, rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }] } as never),
          (err: unknown) => forbidden(err) && /escalat|not currently held/i.test((err as Error).message),
        );
        // One granting what it holds is fine: add-ons may bring such Roles.
        await saCluster.apply({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'reads-config', namespace: ns.name }, rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list'] }] } as never);
      } finally {
        await ns.dispose();
      }
    });
  });
});
