// fleetlet as users run it, on a real node: the image the run's Docker engine
// built, loaded into the node's containerd; the Deployment overlay applied by
// the real kubectl (`apply --server-side -k`), with the node selected and its
// taint tolerated; the kubelet starts the pod (its ServiceAccount token and
// the cluster CA projected, probes, security context, volumes all for real)
// on the bridge network, and the agent talks to the API server in-cluster
// (KUBERNETES_SERVICE_HOST from the kubelet, the token it projected). The
// agent registers with a hub, is accepted, and installs the first rollout's
// release, whose Deployment the kubelet runs on the same node.
//
// It uses the namespaces the manifests name (fleetlet-system,
// fleetlet-addons), as manifests.test.ts does: the two take turns (runLock).
import assert from 'node:assert/strict';
import { chownSync, chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { HandoverStore } from '../../src/agent/kube/handover-store.ts';
import { KubeClusterClient } from '../../src/agent/kube/cluster-client.ts';
import { startHub, type RunningHub } from '../../src/hub/start-hub.ts';
import { exportPublicKeyPem, generateReleaseKey } from '../../src/protocol/signing.ts';
import { eventually, kubeConfig } from '../support/cluster.ts';
import { kubectl, kubectlRun } from '../support/kubectl.ts';
import { runImage } from '../support/fleetlet-image.ts';
import { docker } from '../support/docker-engine.ts';
import { PAUSE_IMAGE, REAL_NODE_TAINT, startRealNode, type RealNode } from '../support/real-node.ts';
import { runLock } from '../support/run-lock.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';
import { testLogger } from '../support/test-log.ts';

const repo = new URL('../../', import.meta.url).pathname;
const NS = 'fleetlet-system';
const ADDONS = 'fleetlet-addons';
const CLUSTER_ID = 'real-node-1';
const admin = kubeConfig();
const core = admin.makeApiClient(k8s.CoreV1Api);
const apps = admin.makeApiClient(k8s.AppsV1Api);
const coordination = admin.makeApiClient(k8s.CoordinationV1Api);

/** Waits until the namespace is gone (a previous test's deletion may still be running). */
async function namespaceGone(name: string): Promise<void> {
  await eventually(`namespace ${name} gone`, async () => ((await core.readNamespace({ name }).then(() => false, () => true)) ? true : undefined), 180_000, 500);
}

describe('fleetlet on a real node (kubelet, containerd, runc)', () => {
  let node: RealNode;
  let hub: RunningHub;
  /** The agents' way to the hub: a relay on the node's address that refuses the pods `unreachable` names (a firewall in front of the hub). */
  let hubDoor: TcpProxy;
  let hubUrl = '';
  let unreachable: (pod: k8s.V1Pod) => boolean = () => false;
  let unlock: () => Promise<void>;
  /** The run's image (name:tag), for kustomize's images transformer, and its engine. */
  let image = '';
  let dockerHost = '';
  const work = mkdtempSync(join(tmpdir(), 'fleetlet-real-node-'));
  const adminToken = randomBytes(16).toString('hex');
  const bootstrapToken = randomBytes(32).toString('base64url');
  const keys = generateReleaseKey();
  const volumeName = `fleetlet-journal-${randomBytes(3).toString('hex')}`;
  const api = async <T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> => {
    const res = await fetch(`${hub.httpUrl}${path}`, { method, headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
  };

  /** The add-on every release here carries: a Deployment the kubelet runs on the node (the pause image is in its containerd). */
  const hello = () => ({
    name: 'hello',
    version: '1.0.0',
    manifests: [
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'hello', namespace: ADDONS },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'hello' } },
          template: {
            metadata: { labels: { app: 'hello' } },
            spec: {
              nodeSelector: { 'kubernetes.io/hostname': node.name },
              tolerations: [{ key: REAL_NODE_TAINT.key, operator: 'Exists', effect: REAL_NODE_TAINT.effect }],
              containers: [{ name: 'hello', image: PAUSE_IMAGE, imagePullPolicy: 'IfNotPresent' }],
            },
          },
        },
      },
    ],
  });
  /** Starts a rollout of `components` to this cluster; resolves with its final phase. */
  const rollOut = async (name: string, version: string, components: unknown[]): Promise<{ phase: string; reason: string | null }> => {
    const created = await api('POST', '/api/v1/rollouts', { name, strategy: { type: 'All', progressDeadline: '10m' }, target: { kind: 'Release', release: { name: 'edge-addons', version, components } } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    return eventually(`rollout ${name} to end`, async () => {
      const r = (await api<{ phase: string; reason: string | null }>('GET', `/api/v1/rollouts/${name}`)).body;
      return ['Succeeded', 'Failed', 'Paused', 'Completed', 'Cancelled'].includes(r.phase) ? r : undefined;
    }, 480_000, 1000);
  };
  /** The agent's own pods that are not on their way out. */
  const agentPods = async () => (await core.listNamespacedPod({ namespace: NS, labelSelector: 'app.kubernetes.io/name=fleetlet' })).items.filter((p) => !p.metadata?.deletionTimestamp);

  /** An image derived from the run's, loaded into the node's containerd (B: the same build, another version; the agent takes its version from FLEETLET_AGENT_VERSION). */
  const derive = async (tag: string, lines: string[]) => {
    const ctx = mkdtempSync(join(tmpdir(), 'fleetlet-image-b-'));
    try {
      writeFileSync(join(ctx, 'Dockerfile'), [`FROM ${image}`, ...lines, ''].join('\n'));
      await docker(dockerHost, ['build', '-q', '-t', tag, ctx], { env: { DOCKER_BUILDKIT: '1' } });
      await node.loadImage(dockerHost, tag);
    } finally {
      rmSync(ctx, { recursive: true, force: true });
    }
    return tag;
  };
  /** The agent's own component in a release: its Deployment with another image. */
  const self = (version: string, agentImage: string) => ({
    name: 'fleetlet',
    version,
    self: true,
    health: { progressDeadlineSeconds: 90 },
    // Only what changes: the server-side apply takes the image field over from kubectl's.
    manifests: [{ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'fleetlet', namespace: NS }, spec: { template: { spec: { containers: [{ name: 'agent', image: agentImage }] } } } }],
  });
  const logsOf = async () => (await agentPods()).map((p) => `--- ${p.metadata!.name}\n${node.containerLogs(NS, p.metadata!.name!, 'agent').slice(-4000)}`).join('\n');
  type UpgradeView = { phase: string; reason: string | null; message: string | null; attemptId: string };
  const upgradeView = async () => (await api<{ upgrade: UpgradeView | null; agentVersion: string | null }>('GET', `/api/v1/clusters/${CLUSTER_ID}`)).body;

  before(async () => {
    const { host, tag } = await runImage();
    image = tag;
    dockerHost = host;
    unlock = await runLock(NS);
    await Promise.all([NS, ADDONS].map(namespaceGone));
    node = await startRealNode({
      kc: admin,
      kubeconfigPath: process.env.FLEETLET_TEST_KUBECONFIG!,
      kubeVersion: process.env.FLEETLET_TEST_KUBE_VERSION!,
      dockerHost: host,
      log: (l) => process.stderr.write(`# real-node: ${l}\n`),
    });
    await node.loadImage(host, tag);
    // The hub where the node's pods reach this machine.
    hub = await startHub({ host: node.address, port: 0, dbPath: join(work, 'hub.db'), releaseKey: keys.privateKey, adminToken, bootstrapTokens: [bootstrapToken], heartbeatMs: 1000, rolloutTickMs: 500, now: () => new Date(), logger: testLogger() });
    const hubAddress = new URL(hub.url);
    hubDoor = await startTcpProxy(Number(hubAddress.port), {
      host: node.address,
      targetHost: node.address,
      // Which pod is calling, by its address (bridge networking, no masquerade): its IP is in its status
      // by the time it leads, since a candidate only calls the hub once it has taken over.
      admit: async (address) => {
        const pod = await eventually(`the pod at ${address}`, async () => (await core.listNamespacedPod({ namespace: NS })).items.find((p) => p.status?.podIP === address), 15_000, 250).catch(() => undefined);
        return pod !== undefined && !unreachable(pod);
      },
    });
    hubUrl = hubDoor.url(hubAddress.pathname);
  });

  after(async () => {
    // Everything the test applied, then the node (its pods gone first), the hub and the volume.
    const removed = await kubectlRun(['delete', '-k', join(work, 'overlay'), '--ignore-not-found', '--wait=true', '--timeout=120s']);
    if (removed.code !== 0) process.stderr.write(`# kubectl delete -k: ${removed.stderr}\n`);
    for (const name of [NS, ADDONS]) await core.deleteNamespace({ name }).catch(() => {});
    await Promise.all([NS, ADDONS].map((n) => namespaceGone(n).catch(() => {})));
    await core.deletePersistentVolume({ name: volumeName }).catch(() => {});
    await node?.stop();
    await hubDoor?.close();
    await hub?.close();
    await unlock?.();
    rmSync(work, { recursive: true, force: true });
  });

  test('the Deployment overlay runs the agent as a real pod: Running and Ready with its ServiceAccount, registered with the hub, installing a release on the node', async (t) => {
    // Step 4 of docs/deploy.md: who it is, its hub, whose releases to trust.
    await kubectl(['create', 'namespace', NS]);
    await kubectl(['-n', NS, 'create', 'configmap', 'fleetlet-cluster', `--from-literal=cluster-id=${CLUSTER_ID}`, `--from-literal=hub-url=${hubUrl}`]);
    writeFileSync(join(work, 'release.pub.pem'), exportPublicKeyPem(keys.publicKey));
    await kubectl(['-n', NS, 'create', 'configmap', 'fleetlet-release-key', `--from-file=release.pub.pem=${join(work, 'release.pub.pem')}`]);
    await kubectl(['-n', NS, 'create', 'secret', 'generic', 'fleetlet-bootstrap', `--from-literal=token=${bootstrapToken}`]);
    // The journal's volume, where a provisioner would make it: a directory on the node, the pod's user its owner.
    const journalDir = join(work, 'journal');
    mkdirSync(journalDir);
    chownSync(journalDir, 65532, 65532);
    chmodSync(journalDir, 0o770);
    await core.createPersistentVolume({
      body: {
        metadata: { name: volumeName },
        spec: {
          capacity: { storage: '1Gi' },
          accessModes: ['ReadWriteOnce'],
          persistentVolumeReclaimPolicy: 'Retain',
          claimRef: { namespace: NS, name: 'fleetlet-journal' },
          hostPath: { path: journalDir, type: 'Directory' },
        },
      },
    });

    // Step 5: the overlay as shipped, with the image built here and this node chosen.
    const overlay = join(work, 'overlay');
    mkdirSync(overlay);
    writeFileSync(
      join(overlay, 'kustomization.yaml'),
      `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ${relative(overlay, join(repo, 'manifests/overlays/deployment'))}
images:
  - name: ghcr.io/fleetlet/fleetlet
    newName: ${image.slice(0, image.lastIndexOf(':'))}
    newTag: ${image.slice(image.lastIndexOf(':') + 1)}
patches:
  - target: {kind: Deployment, name: fleetlet}
    patch: |-
      apiVersion: apps/v1
      kind: Deployment
      metadata: {name: fleetlet, namespace: ${NS}}
      spec:
        template:
          spec:
            nodeSelector: {kubernetes.io/hostname: ${node.name}}
            tolerations: [{key: ${REAL_NODE_TAINT.key}, operator: Exists, effect: ${REAL_NODE_TAINT.effect}}]
            containers:
              - name: agent
                # A new version that cannot reach the hub reverts itself after this long (default 120 s).
                env: [{name: FLEETLET_UPGRADE_HUB_TIMEOUT_MS, value: "20000"}]
`,
    );
    await kubectl(['apply', '--server-side', '--field-manager=fleetlet-real-node-test', '-k', overlay]);

    let pod: k8s.V1Pod;
    try {
      pod = await eventually(
        'the agent pod Running and Ready on the real node',
        async () => {
          const [p] = await agentPods();
          return p?.status?.phase === 'Running' && p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? p : undefined;
        },
        240_000,
        1000,
      );
    } catch (err) {
      const [p] = await agentPods().catch(() => []);
      t.diagnostic(`pod: ${JSON.stringify(p?.status)}`);
      if (p?.status?.podIP) t.diagnostic(`readyz: ${await fetch(`http://${p.status.podIP}:8080/readyz?verbose`).then((r) => r.text(), String)}`);
      if (p) t.diagnostic(`agent log:\n${node.containerLogs(NS, p.metadata!.name!, 'agent').slice(-8000)}`);
      t.diagnostic(node.logs());
      throw err;
    }
    // Scheduled onto the real node, on the pod network (not the host's), with the manifests' ServiceAccount.
    assert.equal(pod.spec?.nodeName, node.name);
    assert.equal(pod.spec?.serviceAccountName, 'fleetlet');
    assert.notEqual(pod.status?.podIP, node.address, 'a pod IP of its own');
    assert.ok(pod.status?.podIP && !pod.spec?.hostNetwork);
    const status = pod.status!.containerStatuses![0]!;
    assert.equal(status.ready, true);
    assert.equal(status.restartCount, 0, 'no restarts');
    assert.match(status.imageID ?? '', /sha256:/);
    // In-cluster: no kubeconfig anywhere in the pod spec; the kubelet projected the token and CA.
    assert.ok(!(pod.spec?.containers[0]?.args ?? []).some((a) => a.includes('kubeconfig')));
    assert.ok(pod.spec?.volumes?.some((v) => v.projected?.sources?.some((s) => s.serviceAccountToken)), 'the kubelet projects the ServiceAccount token');
    // Its ServiceAccount took the leader Lease (only the fleetlet ServiceAccount may write it).
    const lease = await eventually('the leader Lease', async () => (await coordination.readNamespacedLease({ name: 'fleetlet-leader', namespace: NS }).catch(() => undefined))?.spec?.holderIdentity ?? undefined, 60_000);
    assert.equal(lease, pod.metadata!.name);
    // The journal is on the volume, written by the pod's user.
    await eventually('the journal on the volume', async () => (statSync(join(journalDir, 'journal.db'), { throwIfNoEntry: false })?.uid === 65532 ? true : undefined), 30_000);

    // Step 6: the hub sees it ask to register; accepted, it keeps its credential in its Secret.
    await eventually('the agent asks the hub to register', async () => ((await api<{ registration: string }>('GET', `/api/v1/clusters/${CLUSTER_ID}`)).body?.registration === 'Pending' ? true : undefined), 120_000);
    assert.equal((await api('POST', `/api/v1/clusters/${CLUSTER_ID}/accept`)).status, 200);
    await eventually('the hub credential Secret', async () => (await core.readNamespacedSecret({ name: 'fleetlet-hub-credential', namespace: NS }).catch(() => undefined)) ? true : undefined, 60_000);

    // Step 7: a rollout whose release runs on this node too.
    let first: { phase: string; reason: string | null };
    try {
      first = await rollOut('first', '1.0.0', [hello()]);
    } catch (err) {
      t.diagnostic(`agent log:\n${node.containerLogs(NS, pod.metadata!.name!, 'agent').slice(-8000)}`);
      throw err;
    }
    assert.equal(first.phase, 'Succeeded', `${first.reason}\n${node.containerLogs(NS, pod.metadata!.name!, 'agent').slice(-6000)}`);
    const helloDeployment = await apps.readNamespacedDeployment({ name: 'hello', namespace: ADDONS });
    assert.equal(helloDeployment.status?.availableReplicas, 1);
    const [helloPod] = (await core.listNamespacedPod({ namespace: ADDONS, labelSelector: 'app=hello' })).items;
    assert.equal(helloPod?.spec?.nodeName, node.name, 'the release runs on the real node');
    assert.equal(helloPod?.status?.phase, 'Running');
    const phase = await core.readNamespacedConfigMap({ name: 'fleetlet-status', namespace: NS });
    assert.equal(phase.data?.phase, 'Succeeded');
  });
  test('the agent upgrades itself between real images: A to B, B taking over from the in-cluster record; a version that crashes at start is reverted by the one running', async (t) => {
    const imageB = await derive('fleetlet.local/fleetlet:0.2.0', ['ENV FLEETLET_AGENT_VERSION=0.2.0']);
    // It crashes whatever command starts it: the agent's Deployment replaces the image's ENTRYPOINT with its own.
    const imageC = await derive('fleetlet.local/fleetlet:0.3.0-crash', ['ENV FLEETLET_AGENT_VERSION=0.3.0 NODE_OPTIONS=--import=data:text/javascript,process.exit(70)']);
    const [a] = await agentPods();

    const toB = await rollOut('self-b', '1.1.0', [hello(), self('0.2.0', imageB)]);
    if (toB.phase !== 'Succeeded') t.diagnostic(await logsOf());
    assert.equal(toB.phase, 'Succeeded', toB.reason ?? '');
    const b = await eventually('one agent pod, B, Ready', async () => {
      const pods = await agentPods();
      const [p] = pods;
      return pods.length === 1 && p!.spec?.containers[0]?.image === imageB && p!.status?.containerStatuses?.[0]?.ready ? p : undefined;
    }, 120_000, 1000);
    assert.notEqual(b.metadata!.name, a!.metadata!.name, 'a new pod');
    assert.equal(b.spec?.nodeName, node.name);
    // The rolling update replaces A as soon as B's pod is Ready, so the hand-over is B's: it takes the
    // Lease and finishes the attempt from the in-cluster record (A never sees a CandidateReady step).
    const record = await new HandoverStore(new KubeClusterClient(admin), NS).read();
    const path = (record?.attempt?.transitions ?? []).map((tr) => `${tr.phase}/${tr.reason ?? '-'}`).join(' > ');
    t.diagnostic(`A to B: ${path}, record written by ${record?.writtenBy} (A ${a!.metadata!.name}, B ${b.metadata!.name})`);
    assert.equal(record?.attempt?.phase, 'Succeeded', path);
    assert.equal(record?.writtenBy, b.metadata!.name, 'B finished the attempt');
    const leader = async () => (await coordination.readNamespacedLease({ name: 'fleetlet-leader', namespace: NS })).spec?.holderIdentity;
    assert.equal(await eventually('B leads', async () => ((await leader()) === b.metadata!.name ? true : undefined), 60_000), true);

    // C exits at once: it never reports as a candidate. B sees its pod crash-loop and restores its own spec
    // then, not at the stage's deadline: the reason and message are the crash's, not the deadline's.
    const toC = await rollOut('self-c', '1.2.0', [hello(), self('0.3.0', imageC)]);
    assert.notEqual(toC.phase, 'Succeeded');
    const view = await upgradeView();
    t.diagnostic(`B to C: ${JSON.stringify(view.upgrade)}`);
    assert.equal(view.upgrade?.phase, 'RolledBack', JSON.stringify(view.upgrade));
    assert.equal(view.upgrade?.reason, 'CandidateNotReady', JSON.stringify(view.upgrade));
    assert.match(view.upgrade?.message ?? '', /the new agent 0\.3\.0 cannot start: pod fleetlet-system\/fleetlet-[a-z0-9-]+ container agent: \w+, exit code 70\b.*, \d+ restarts/);
    const dep = await apps.readNamespacedDeployment({ name: 'fleetlet', namespace: NS });
    assert.equal(dep.spec?.template.spec?.containers[0]?.image, imageB, 'B restored its own previous spec');
    const after = await eventually('B alone again, Ready', async () => {
      const pods = await agentPods();
      return pods.length === 1 && pods[0]!.status?.containerStatuses?.[0]?.ready ? pods[0] : undefined;
    }, 180_000, 1000);
    assert.equal(after.metadata!.name, b.metadata!.name, 'B kept running throughout');
  });

  test('a new version that starts but cannot reach the hub reverts itself: the cluster is back on the previous version, which leads and reports why, once', async (t) => {
    // Runs on what the test before left: 0.2.0 leads. D is a sound build of 0.4.0, but a firewall in front
    // of the hub turns its pod away (and only its pod): it becomes ready as the candidate, takes the
    // attempt over, cannot prove itself to the hub within its 20 s, and restores 0.2.0 itself.
    const [running] = await agentPods();
    const previousImage = running!.spec!.containers[0]!.image!;
    assert.match(previousImage, /:0\.2\.0$/, 'the test before left 0.2.0 running');
    const imageD = await derive('fleetlet.local/fleetlet:0.4.0', ['ENV FLEETLET_AGENT_VERSION=0.4.0']);
    unreachable = (pod) => pod.spec?.containers.some((c) => c.image === imageD) ?? false;
    let toD: { phase: string; reason: string | null };
    try {
      toD = await rollOut('self-d', '1.3.0', [hello(), self('0.4.0', imageD)]);
    } finally {
      unreachable = () => false;
    }
    const view = await upgradeView();
    t.diagnostic(`0.2.0 to D: rollout ${JSON.stringify(toD)}, cluster ${JSON.stringify(view.upgrade)}`);
    if (view.upgrade?.phase !== 'RolledBack') t.diagnostic(await logsOf());
    assert.notEqual(toD.phase, 'Succeeded');
    assert.equal(view.upgrade?.phase, 'RolledBack', JSON.stringify(view.upgrade));
    assert.equal(view.upgrade?.reason, 'CandidateCannotReachHub', JSON.stringify(view.upgrade));
    assert.match(view.upgrade?.message ?? '', /new agent 0\.4\.0 could not reach the hub within 20s after taking over/);
    assert.equal(view.agentVersion, '0.2.0', 'the hub never heard from D');

    // The cluster is back on the previous version, one pod of it, leading.
    const dep = await apps.readNamespacedDeployment({ name: 'fleetlet', namespace: NS });
    assert.equal(dep.spec?.template.spec?.containers[0]?.image, previousImage, "D restored the previous agent's spec");
    const back = await eventually('one agent pod, the previous version, Ready', async () => {
      const pods = await agentPods();
      return pods.length === 1 && pods[0]!.spec?.containers[0]?.image === previousImage && pods[0]!.status?.containerStatuses?.[0]?.ready ? pods[0] : undefined;
    }, 180_000, 1000);
    assert.notEqual(back.metadata!.name, running!.metadata!.name, 'a new pod of the previous version: the rolling update had replaced the old one with D');
    const leader = async () => (await coordination.readNamespacedLease({ name: 'fleetlet-leader', namespace: NS })).spec?.holderIdentity;
    assert.equal(await eventually('the previous version leads', async () => ((await leader()) === back.metadata!.name ? true : undefined), 60_000), true);

    // The in-cluster record and the journal's reports agree: D handed the attempt back through RollingBack, once.
    // Only the new version decides CandidateCannotReachHub (the old one cannot know): D took the attempt over.
    const handover = new HandoverStore(new KubeClusterClient(admin), NS);
    const record = await eventually('the record of the finished attempt', async () => {
      const r = await handover.read();
      return r?.attempt?.id === view.upgrade?.attemptId && r?.attempt?.finishedAt ? r : undefined;
    }, 60_000, 1000);
    const path = (record.attempt?.transitions ?? []).map((tr) => `${tr.phase}/${tr.reason ?? '-'}`);
    t.diagnostic(`0.2.0 to D: ${path.join(' > ')}, record written by ${record?.writtenBy}`);
    assert.equal(record.attempt?.phase, 'RolledBack', path.join(' > '));
    assert.equal(record.attempt?.reason, 'CandidateCannotReachHub');
    assert.deepEqual(path.filter((p) => p.startsWith('RollingBack/') || p.startsWith('RolledBack/')), ['RollingBack/CandidateCannotReachHub', 'RolledBack/CandidateCannotReachHub']);

    // The hub holds each report once, in the order the journal wrote them (D's waited in the journal for 0.2.0 to send them).
    type Report = { seq: number; kind: string; body: { attemptId?: string; phase?: string; reason?: string | null; result?: string } };
    const reports = await eventually('the attempt’s reports at the hub', async () => {
      const all = (await api<{ reports: Report[] }>('GET', `/api/v1/clusters/${CLUSTER_ID}/reports?limit=1000`)).body.reports.filter((r) => r.body.attemptId === view.upgrade?.attemptId);
      return all.some((r) => r.kind === 'upgrade-completed') ? all : undefined;
    }, 60_000, 1000);
    const transitions = reports.filter((r) => r.kind === 'attempt-transition').map((r) => `${r.body.phase}/${r.body.reason ?? '-'}`);
    assert.deepEqual(transitions, path, 'the hub has the transitions the record has, each once');
    assert.deepEqual(reports.filter((r) => r.kind === 'upgrade-completed').map((r) => r.body.result), ['RolledBack']);
    const seqs = reports.map((r) => r.seq);
    assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y));
    assert.equal(new Set(seqs).size, seqs.length);
  });
});

