// manifests/hub/ha against the real control plane, rendered and applied by
// the real kubectl (`kubectl kustomize`, `kubectl apply --server-side -k`):
// three hub replicas come up (kwok runs the pods), the PodDisruptionBudget
// lets one go at a time, the Service and the NetworkPolicy select the hub's
// pods, the database password arrives as a file from a Secret and never in
// an environment variable or argv, and the probes name paths a real hub
// answers (readiness follows the database, liveness does not). The
// CloudNativePG example is rendered and checked against what the Deployment
// expects of it (Service, Secrets, pod labels), and applied server-side
// against the operator's own Cluster CRD (fetched by
// scripts/build-control-plane.sh), so the API server validates it with the
// operator's schema. The operator itself does not run here (it needs images
// no registry here serves): nothing starts PostgreSQL from it.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { eventually, kubeConfig } from '../support/cluster.ts';
import { startHubFixture } from '../support/hub-fixture.ts';
import { kubectl, kubectlRun } from '../support/kubectl.ts';
import { loadBinaries } from '../../src/testbed/control-plane.ts';

const repo = new URL('../../', import.meta.url).pathname;
const ha = `${repo}manifests/hub/ha`;
const NS = 'fleetlet-hub';
const admin = kubeConfig();
const apps = admin.makeApiClient(k8s.AppsV1Api);
const policy = admin.makeApiClient(k8s.PolicyV1Api);
const core = admin.makeApiClient(k8s.CoreV1Api);

// Rendered manifests are read field by field.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type KObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; spec?: any };

async function render(dir: string): Promise<KObject[]> {
  return parseAllDocuments(await kubectl(['kustomize', dir])).map((d) => d.toJS() as KObject).filter((o) => o && typeof o === 'object');
}

function one(objects: KObject[], kind: string, name: string): KObject {
  const found = objects.filter((o) => o.kind === kind && o.metadata.name === name);
  assert.equal(found.length, 1, `one ${kind} ${name} in ${objects.map((o) => `${o.kind}/${o.metadata.name}`).join(', ')}`);
  return found[0] as KObject;
}

const selects = (selector: Record<string, string>, labels: Record<string, string>): boolean => Object.entries(selector).every(([k, v]) => labels[k] === v);

describe('manifests/hub/ha', () => {
  after(async () => {
    await kubectl(['delete', 'namespace', NS, '--ignore-not-found', '--wait=false']);
    await kubectl(['delete', 'crd', 'clusters.postgresql.cnpg.io', '--ignore-not-found', '--wait=false']);
  });

  test('rendered: three replicas spread apart, probes a real hub answers, the database password from a file, a PDB, a Service and a NetworkPolicy that select them', async () => {
    const objects = await render(ha);
    for (const o of objects) if (o.kind !== 'Namespace') assert.equal(o.metadata.namespace, NS, `${o.kind}/${o.metadata.name} in ${NS}`);
    const deployment = one(objects, 'Deployment', 'fleetlet-hub');
    const pod = deployment.spec.template;
    const labels = pod.metadata.labels as Record<string, string>;
    assert.equal(deployment.spec.replicas, 3);
    assert.ok(selects(deployment.spec.selector.matchLabels, labels));
    assert.equal(deployment.spec.strategy.rollingUpdate.maxUnavailable, 0, 'a rollout never takes a replica away before its successor is ready');
    const anti = pod.spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm;
    assert.equal(anti.topologyKey, 'kubernetes.io/hostname');
    assert.ok(selects(anti.labelSelector.matchLabels, labels), 'anti-affinity against its own replicas');
    assert.equal(pod.spec.automountServiceAccountToken, false, 'the hub never calls the Kubernetes API');

    const [container] = pod.spec.containers;
    const args = container.args as string[];
    assert.equal(args[0], 'hub');
    const env = new Map<string, { value?: string; valueFrom?: unknown }>((container.env as { name: string; value?: string }[]).map((e) => [e.name, e]));
    const url = new URL(env.get('FLEETLET_HUB_DATABASE')?.value ?? '');
    assert.equal(url.protocol, 'postgres:');
    assert.equal(url.password, '', 'no password in the database URL');
    assert.ok(!args.some((a) => /password|postgres:\/\//i.test(a)), 'nothing of the database in argv');
    assert.ok(![...env.keys()].some((k) => /PASSWORD$|^PGPASSWORD/.test(k) && k !== 'FLEETLET_HUB_DATABASE_PASSWORD_FILE'), 'no password in the environment');
    // The password file is a key of a Secret volume, mounted read-only where the variable points.
    const passwordFile = env.get('FLEETLET_HUB_DATABASE_PASSWORD_FILE')?.value ?? '';
    const mount = (container.volumeMounts as { name: string; mountPath: string; readOnly?: boolean }[]).find((m) => passwordFile.startsWith(`${m.mountPath}/`));
    assert.ok(mount?.readOnly, `a read-only mount holds ${passwordFile}`);
    const volume = (pod.spec.volumes as { name: string; secret?: { secretName: string; items?: { key: string; path: string }[] } }[]).find((v) => v.name === mount.name);
    assert.deepEqual(volume?.secret?.items, [{ key: 'password', path: passwordFile.slice(mount.mountPath.length + 1) }]);
    const passwordSecret = volume?.secret?.secretName;
    const caFile = url.searchParams.get('sslrootcert') ?? '';
    assert.ok((container.volumeMounts as { mountPath: string }[]).some((m) => caFile.startsWith(`${m.mountPath}/`)), `the database CA ${caFile} is mounted`);

    // Probes: readiness follows the database, liveness and startup do not.
    const port = (container.ports as { name: string; containerPort: number }[]).find((p) => p.name === container.readinessProbe.httpGet.port);
    assert.equal(port?.containerPort, 8443);
    assert.ok(args.includes('--port=8443'));
    assert.equal(container.readinessProbe.httpGet.path, '/readyz');
    assert.equal(container.livenessProbe.httpGet.path, '/livez');
    assert.equal(container.startupProbe.httpGet.path, '/livez');
    for (const p of [container.readinessProbe, container.livenessProbe, container.startupProbe]) assert.equal(p.httpGet.scheme, 'HTTPS', 'the hub serves TLS (--tls-key)');
    const hub = await startHubFixture();
    try {
      for (const p of [container.readinessProbe, container.livenessProbe, container.startupProbe]) {
        const res = await fetch(`${hub.hub.httpUrl}${p.httpGet.path}`);
        assert.equal(res.status, 200, `a hub answers ${p.httpGet.path}`);
      }
    } finally {
      await hub.close();
    }

    const pdb = one(objects, 'PodDisruptionBudget', 'fleetlet-hub');
    assert.equal(pdb.spec.maxUnavailable, 1);
    assert.ok(selects(pdb.spec.selector.matchLabels, labels));
    const service = one(objects, 'Service', 'fleetlet-hub');
    assert.ok(selects(service.spec.selector, labels));
    assert.equal(service.spec.ports[0].targetPort, 'https');
    const netpol = one(objects, 'NetworkPolicy', 'fleetlet-hub');
    assert.ok(selects(netpol.spec.podSelector.matchLabels, labels));
    assert.deepEqual(netpol.spec.ingress, [{ ports: [{ port: 8443, protocol: 'TCP' }] }]);
    const dbRule = (netpol.spec.egress as { to: { podSelector?: { matchLabels: Record<string, string> } }[]; ports: { port: number }[] }[]).find((r) => r.ports.some((p) => p.port === 5432));
    assert.ok(dbRule, 'egress to PostgreSQL');

    // ---- the CloudNativePG example provides what the Deployment and the NetworkPolicy expect of it.
    const cnpg = await render(`${ha}/cloudnative-pg`);
    const cluster = one(cnpg, 'Cluster', 'fleetlet-hub-db');
    assert.equal(cluster.apiVersion, 'postgresql.cnpg.io/v1');
    assert.equal(cluster.metadata.namespace, NS);
    assert.equal(cluster.spec.instances, 3);
    const name = cluster.metadata.name;
    // CloudNativePG names: <cluster>-rw (primary Service), <cluster>-app (owner's password), <cluster>-ca (ca.crt), pods labelled cnpg.io/cluster=<cluster>.
    assert.equal(url.hostname, `${name}-rw`);
    assert.equal(url.username, cluster.spec.bootstrap.initdb.owner);
    assert.equal(url.pathname, `/${cluster.spec.bootstrap.initdb.database}`);
    assert.equal(passwordSecret, `${name}-app`);
    const caVolume = (pod.spec.volumes as { secret?: { secretName: string; items?: { key: string }[] } }[]).find((v) => v.secret?.items?.some((i) => i.key === 'ca.crt'));
    assert.equal(caVolume?.secret?.secretName, `${name}-ca`);
    assert.deepEqual(dbRule.to[0]?.podSelector?.matchLabels, { 'cnpg.io/cluster': name });
  });

  test('applied server-side: three replicas run, the PDB allows one disruption, the probes are as rendered', { timeout: 240_000 }, async () => {
    await kubectl(['apply', '--server-side', '--field-manager=fleetlet-manifests-test', '-k', ha]);
    const ready = await eventually('three hub replicas ready', async () => {
      const d = await apps.readNamespacedDeployment({ name: 'fleetlet-hub', namespace: NS });
      return d.status?.readyReplicas === 3 ? d : undefined;
    }, 180_000);
    const container = ready.spec?.template.spec?.containers[0];
    assert.equal(container?.readinessProbe?.httpGet?.path, '/readyz');
    assert.equal(container?.livenessProbe?.httpGet?.path, '/livez');
    const pods = await core.listNamespacedPod({ namespace: NS, labelSelector: 'app.kubernetes.io/name=fleetlet-hub,app.kubernetes.io/component=hub' });
    assert.equal(pods.items.filter((p) => p.status?.phase === 'Running').length, 3);
    const pdb = await eventually('the disruption budget counted the replicas', async () => {
      const p = await policy.readNamespacedPodDisruptionBudget({ name: 'fleetlet-hub', namespace: NS });
      return p.status?.expectedPods === 3 && p.status.currentHealthy === 3 ? p : undefined;
    }, 120_000);
    assert.equal(pdb.status?.disruptionsAllowed, 1, 'one replica at a time may go');
    const endpoints = await eventually('the Service to list the three replicas', async () => {
      const list = await admin.makeApiClient(k8s.DiscoveryV1Api).listNamespacedEndpointSlice({ namespace: NS, labelSelector: 'kubernetes.io/service-name=fleetlet-hub' });
      const n = list.items.flatMap((s) => s.endpoints ?? []).filter((e) => e.conditions?.ready === true).length;
      return n === 3 ? n : undefined;
    }, 120_000);
    assert.equal(endpoints, 3);
  });

  test('the CloudNativePG example passes the operator\'s own schema, applied server-side; a wrong field in it would not', { timeout: 120_000 }, async () => {
    const crd = loadBinaries().cnpgClusterCrd;
    assert.ok(crd, 'the control-plane cache names the CloudNativePG Cluster CRD: re-run scripts/build-control-plane.sh');
    // Server-side: the CRD is ~400 KB, past what a client-side apply can keep in its last-applied annotation.
    await kubectl(['apply', '--server-side', '--field-manager=fleetlet-manifests-test', '-f', crd]);
    await kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/clusters.postgresql.cnpg.io']);
    await kubectl(['apply', '--server-side', '--field-manager=fleetlet-manifests-test', '-f', `${ha}/namespace.yaml`]);
    await kubectl(['apply', '--server-side', '--field-manager=fleetlet-manifests-test', '-k', `${ha}/cloudnative-pg`]);
    const stored = JSON.parse(await kubectl(['get', 'clusters.postgresql.cnpg.io', 'fleetlet-hub-db', '-n', NS, '-o', 'json'])) as KObject;
    assert.equal(stored.spec.instances, 3);
    assert.equal(stored.spec.bootstrap.initdb.owner, 'app');
    assert.equal(stored.spec.postgresql.parameters.max_connections, '200');

    // The schema check is real: the same example with a wrong field is refused, and the error names it.
    const [cluster] = await render(`${ha}/cloudnative-pg`);
    const broken = { ...cluster, spec: { ...cluster?.spec, instances: 'three' } };
    const refused = await kubectlRun(['apply', '--server-side', '--dry-run=server', '--field-manager=fleetlet-manifests-test', '-f', '-'], { input: JSON.stringify(broken) });
    assert.notEqual(refused.code, 0, 'a Cluster with instances: "three" is refused');
    assert.match(refused.stderr, /spec\.instances/);
  });
});
