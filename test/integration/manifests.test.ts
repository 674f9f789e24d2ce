// manifests/ against the real control plane, rendered and applied by the real
// kubectl (`kubectl kustomize`, `kubectl apply --server-side -k`, built from
// the API server's own Kubernetes version): the pod passes the Pod Security
// Standard its namespace enforces; and the RBAC is both enough and no more:
// acting as the fleetlet ServiceAccount (a TokenRequest token), a real
// upgrade and a real rollback succeed in an allowed namespace, `kubectl auth
// can-i --list` shows exactly the rights fleetlet uses, and writes anywhere
// else, Secrets elsewhere, ClusterRoleBindings and node deletion are refused.
//
// These tests use the real namespace the manifests name (fleetlet-system),
// not a per-test one: the layout fixes it, and that is what is under test.
// real-node.test.ts uses it too: the two files take turns (runLock).
// The tests in this file run in order and build on each other.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { agentContainer, agentRuntimeEnv } from '../../scripts/build.ts';
import { agentRbacYaml } from '../../src/lib/agent-rbac.ts';
import { KubeApiError, KubeClusterClient } from '../../src/agent/kube/cluster-client.ts';
import { secretCredentialStore } from '../../src/agent/kube/credential-secret.ts';
import { StatusPublisher, STATUS_CONFIGMAP } from '../../src/agent/kube/status-publisher.ts';
import { attemptStatus } from '../../src/agent/upgrade/attempt-status.ts';
import { AgentMetrics, metricNames } from '../../src/agent/http/metrics.ts';
import { defaultAdmission } from '../../src/agent/intake/admission.ts';
import { parsePolicyYaml } from '../../src/agent/gate/policy-loader.ts';
import { Journal } from '../../src/store/journal.ts';
import { agentHarness } from '../support/agent-harness.ts';
import { eventually, kubeConfig, testNamespace } from '../support/cluster.ts';
import { kubectl, kubectlRun } from '../support/kubectl.ts';
import { DocShell, shellBlocks } from '../support/doc-shell.ts';
import { docker, dockerClient } from '../support/docker-engine.ts';
import { runImage } from '../support/fleetlet-image.ts';
import { runPodContainer, type PodContainer } from '../support/pod-container.ts';
import { runLock } from '../support/run-lock.ts';
import { freePort, loadBinaries } from '../../src/testbed/control-plane.ts';
import { addonsRelease, testSigner } from '../support/releases.ts';
import { canI, serviceAccountKubeConfig } from '../support/service-account.ts';
import { testLogger } from '../support/test-log.ts';

const repo = new URL('../../', import.meta.url).pathname;
const manifests = `${repo}manifests/`;
const NS = 'fleetlet-system';
/** The namespace the shipped list (manifests/base/allowed-namespaces.yaml) lets releases touch. */
const ADDONS = 'fleetlet-addons';
const admin = kubeConfig();
const objects = k8s.KubernetesObjectApi.makeApiClient(admin);
const core = admin.makeApiClient(k8s.CoreV1Api);
const apps = admin.makeApiClient(k8s.AppsV1Api);

type KObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; [k: string]: unknown };

const parseDocs = (text: string): KObject[] => parseAllDocuments(text).map((d) => d.toJS() as KObject).filter((o) => o && typeof o === 'object');

/** `kubectl kustomize <dir>`: what `kubectl apply -k` would send. */
async function render(dir: string): Promise<KObject[]> {
  return parseDocs(await kubectl(['kustomize', dir]));
}

/** An overlay with components added, as a user's own kustomization would add them. */
async function renderWith(overlay: string, components: string[]): Promise<KObject[]> {
  const dir = mkdtempSync(join(tmpdir(), 'fleetlet-kustomization-'));
  try {
    // kustomize takes relative paths only.
    const rel = (p: string) => relative(dir, p);
    writeFileSync(join(dir, 'kustomization.yaml'), `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ${rel(overlay)}\ncomponents:\n${components.map((c) => `  - ${rel(c)}\n`).join('')}`);
    return await render(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `kubectl apply --server-side -k <dir>`, as the cluster admin. */
async function applyKustomization(dir: string): Promise<void> {
  await kubectl(['apply', '--server-side', '--field-manager=fleetlet-manifests-test', '-k', dir]);
}

/** `kubectl auth can-i --list` as the fleetlet ServiceAccount, one `resource [names] [verbs]` line per rule, self-review rules left out. */
async function canIList(namespace: string): Promise<string[]> {
  const out = await kubectl(['auth', 'can-i', '--list', `--as=system:serviceaccount:${NS}:fleetlet`, '-n', namespace]);
  const [header, ...rows] = out.trimEnd().split('\n');
  const cols = ['Non-Resource URLs', 'Resource Names', 'Verbs'].map((c) => header!.indexOf(c));
  assert.ok(cols.every((c) => c > 0), `can-i --list header: ${header}`);
  return rows
    .map((row) => {
      const resource = row.slice(0, cols[0]).trim();
      const urls = row.slice(cols[0], cols[1]).trim();
      const names = row.slice(cols[1], cols[2]).trim().replace(/^\[|\]$/g, '').split(' ').filter(Boolean).sort();
      const verbs = row.slice(cols[2]).trim().replace(/^\[|\]$/g, '').split(' ').filter(Boolean).sort();
      return { resource, urls, line: `${resource} [${names.join(' ')}] [${verbs.join(' ')}]` };
    })
    // Every authenticated identity may review itself and read discovery (system:basic-user, system:discovery).
    .filter((r) => r.urls === '[]' && !/^selfsubject(access|rules)?reviews\.|^selfsubjectreviews\./.test(r.resource))
    .map((r) => r.line);
}

/** Rules as `resource [names] [verbs]`, merged per resource and names (kubectl compacts rules the same way). */
function mergeRules(lines: string[]): string[] {
  const merged = new Map<string, Set<string>>();
  for (const line of lines) {
    const m = /^(\S+) \[([^\]]*)\] \[([^\]]*)\]$/.exec(line);
    assert.ok(m, `rule line: ${line}`);
    // One entry per resource name (kubectl prints a line per name).
    const names = m[2]!.split(' ').filter(Boolean);
    for (const name of names.length > 0 ? names : ['']) {
      const key = `${m[1]} [${name}]`;
      const verbs = merged.get(key) ?? new Set<string>();
      for (const v of m[3]!.split(' ').filter(Boolean)) verbs.add(v);
      merged.set(key, verbs);
    }
  }
  return [...merged].map(([k, v]) => `${k} [${[...v].sort().join(' ')}]`).sort();
}

type PodTemplate = { spec: Record<string, unknown> & { volumes: { name: string }[]; initContainers?: unknown[]; tolerations?: unknown[] } };
const templateOf = (o: KObject) => (o.spec as { template: PodTemplate }).template;

/** Namespaces a test generated RBAC for (deleted at the end). */
const generatedFor: string[] = [];

describe('manifests', () => {
  let unlock: (() => Promise<void>) | undefined;
  before(async () => {
    unlock = await runLock(NS);
  });
  after(async () => {
    // The cluster-scoped objects outlive the namespace; remove both.
    for (const name of ['fleetlet-agent']) {
      await admin.makeApiClient(k8s.RbacAuthorizationV1Api).deleteClusterRoleBinding({ name }).catch(() => {});
      await admin.makeApiClient(k8s.RbacAuthorizationV1Api).deleteClusterRole({ name }).catch(() => {});
    }
    for (const name of ['fleetlet-agent-cluster']) {
      await admin.makeApiClient(k8s.RbacAuthorizationV1Api).deleteClusterRoleBinding({ name }).catch(() => {});
      await admin.makeApiClient(k8s.RbacAuthorizationV1Api).deleteClusterRole({ name }).catch(() => {});
    }
    for (const name of [NS, ADDONS, ...generatedFor]) await core.deleteNamespace({ name }).catch(() => {});
    await unlock?.();
  });

  test('docs/deploy.md, executed: build, apply, register, first rollout', async (t) => {
    const { host } = await runImage();
    const work = mkdtempSync(join(tmpdir(), 'fleetlet-newcomer-'));
    // A clone of the repository, as the reader has it.
    const clone = join(work, 'fleetlet');
    mkdirSync(clone);
    for (const entry of ['Dockerfile', '.dockerignore', 'package.json', 'package-lock.json', 'bin', 'src', 'web', 'scripts', 'manifests', 'schema']) cpSync(join(repo, entry), join(clone, entry), { recursive: true });
    // `kubectl`, `docker` and `fleetlet` as the reader has them.
    const bin = join(work, 'bin');
    mkdirSync(bin);
    symlinkSync(loadBinaries().kubectl, join(bin, 'kubectl'));
    symlinkSync(dockerClient(), join(bin, 'docker'));
    writeFileSync(join(bin, 'fleetlet'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(join(repo, 'bin/fleetlet.ts'))} "$@"\n`, { mode: 0o755 });
    const hubPort = await freePort();
    const shell = new DocShell({
      cwd: clone,
      env: { PATH: `${bin}:${process.env.PATH}`, HOME: work, KUBECONFIG: process.env.FLEETLET_TEST_KUBECONFIG!, DOCKER_HOST: host, DOCKER_BUILDKIT: '1', LOG_LEVEL: 'warn' },
      // This machine's address and a free port for the document's example ones; the build as the
      // harness runs it (this engine has no bridge network, and the registry is behind a
      // TLS-intercepting proxy: the CA goes in as a build secret, as the document says).
      substitutions: [
        ['192.0.2.10', '127.0.0.1'],
        ['8443', String(hubPort)],
        ['docker build -t', `docker build --network=host --secret id=ca-certificates,src=${process.env.FLEETLET_BUILD_CA ?? '/etc/ssl/certs/ca-certificates.crt'} -t`],
      ],
    });
    const blocks = shellBlocks(readFileSync(join(repo, 'docs/deploy.md'), 'utf8'));
    // The one block not run here: loading the image into kind or k3d (neither is installed; the
    // image is already in the engine the test runs it from).
    assert.deepEqual(blocks.filter((b) => b.mode === 'skip').map((b) => b.code.split('\n')[0]!.split(' ')[0]), ['kind']);
    // The cluster's storage, where kind's or k3d's provisioner would make it: a volume for the journal's claim.
    const journalVolume = join(work, 'journal-volume');
    mkdirSync(journalVolume);
    const volumeName = `fleetlet-journal-${randomBytes(3).toString('hex')}`;
    t.after(() => core.deletePersistentVolume({ name: volumeName }).then(() => {}, () => {}));
    await core.createPersistentVolume({
      body: {
        metadata: { name: volumeName },
        spec: { capacity: { storage: '1Gi' }, accessModes: ['ReadWriteOnce'], persistentVolumeReclaimPolicy: 'Retain', hostPath: { path: journalVolume } },
      },
    });
    let pod: PodContainer | undefined;
    let hub: { output: () => string } | undefined;
    const outputs: string[] = [];
    try {
      for (const block of blocks) {
        if (block.mode === 'skip') continue;
        if (block.mode === 'background') {
          hub = shell.start(block);
          await eventually('the hub listens', async () => ((await fetch(`http://127.0.0.1:${hubPort}/healthz`).catch(() => undefined)) ? true : undefined), 30_000);
          continue;
        }
        const res = await shell.run(block);
        assert.equal(res.code, 0, `docs/deploy.md line ${block.line}:\n${block.code}\n--- exit ${res.code}\n${res.stdout}\n${res.stderr}${hub ? `\n--- hub\n${hub.output()}` : ''}`);
        outputs.push(res.stdout);
        if (/rollout status deploy\/fleetlet/.test(block.code)) {
          // Where a kubelet would start the pod: the applied Deployment's container, with the built image.
          const dep = await apps.readNamespacedDeployment({ name: 'fleetlet', namespace: NS });
          const image = dep.spec!.template.spec!.containers[0]!.image!;
          assert.equal(image, 'fleetlet:0.1.0', 'the overlay named the image the reader built');
          const httpPort = await freePort();
          const server = new URL(admin.getCurrentCluster()!.server);
          pod = await runPodContainer({
            kc: admin,
            dockerHost: host,
            image,
            namespace: NS,
            podName: `fleetlet-${randomBytes(3).toString('hex')}`,
            template: dep.spec!.template,
            container: 'agent',
            caFile: join(process.env.FLEETLET_TEST_CP_DIR!, 'pki', 'apiserver.crt'),
            apiHost: server.hostname,
            apiPort: Number(server.port),
            rewriteArg: (a) => (a === '--http-addr=:8080' ? `--http-addr=127.0.0.1:${httpPort}` : a),
            volumeDirs: { journal: journalVolume },
          });
          const started = pod;
          t.after(() => started.remove());
        }
      }
      assert.ok(pod, 'the document applied the Deployment');
      // Step 1 printed the agent's usage from the image; step 7 showed the status ConfigMap's phase.
      assert.match(outputs[0]!, /^Usage: fleetlet agent \[options\]/);
      assert.equal(outputs.at(-1)!.split('\n')[0], 'Succeeded');
      const hello = await apps.readNamespacedDeployment({ name: 'hello', namespace: ADDONS });
      assert.equal(hello.spec?.template.spec?.containers[0]?.image, 'registry.k8s.io/pause:3.10');
      // The agent ran with a read-only root filesystem as uid 65532, its journal on the volume.
      const journalFile = join(journalVolume, 'journal.db');
      assert.equal(statSync(journalFile).uid, 65532);
      const inspect = JSON.parse((await docker(host, ['inspect', pod.id])).stdout) as { HostConfig: { ReadonlyRootfs: boolean; CapDrop: string[] }; Config: { User: string; Entrypoint: string[]; Cmd: string[]; Env: string[] } }[];
      assert.equal(inspect[0]!.HostConfig.ReadonlyRootfs, true);
      assert.deepEqual(inspect[0]!.HostConfig.CapDrop, ['ALL']);
      assert.equal(inspect[0]!.Config.User, '65532:65532');
      // With the agent's own node flags and malloc setting: the applied Deployment's command and env, not the image's ENTRYPOINT.
      const command = agentContainer()!.command!;
      assert.deepEqual(inspect[0]!.Config.Entrypoint, command.slice(0, 1));
      assert.deepEqual(inspect[0]!.Config.Cmd.slice(0, command.length), [...command.slice(1), 'agent']);
      for (const [k, v] of Object.entries(agentRuntimeEnv())) assert.ok(inspect[0]!.Config.Env.includes(`${k}=${v}`), `the agent runs with ${k}=${v}`);
      // SIGTERM (docker stop): a graceful stop within the pod's grace period, exit 0.
      assert.equal(await pod.stop(), 0, await pod.logs());
    } catch (err) {
      if (pod) t.diagnostic(`agent logs:\n${(await pod.logs().catch(() => '')).slice(-6000)}`);
      throw err;
    } finally {
      await shell.stop();
      await pod?.remove();
      // Leave no trace for the tests below: everything the document applied, its namespaces included.
      const removed = await kubectlRun(['delete', '-k', 'my-fleetlet', '--ignore-not-found', '--wait=true', '--timeout=120s'], { cwd: clone });
      if (removed.code !== 0) t.diagnostic(`kubectl delete -k my-fleetlet: ${removed.stderr}`);
      rmSync(work, { recursive: true, force: true });
    }
  });

  test('the PrometheusRule component parses and alerts on metrics the agent exports', async () => {
    // Not applied: PrometheusRule needs the Prometheus Operator's CRD, which
    // this control plane does not have (that is also why it is an opt-in
    // component, not part of base). Validated as YAML and against the metrics.
    const withRules = await renderWith(`${manifests}overlays/deployment`, [`${manifests}components/prometheus-rules`]);
    const [rule, ...rest] = withRules.filter((o) => o.kind === 'PrometheusRule');
    assert.equal(rest.length, 0);
    assert.equal(rule!.apiVersion, 'monitoring.coreos.com/v1');
    assert.equal(rule!.kind, 'PrometheusRule');
    assert.equal(rule!.metadata.namespace, NS);
    const rules = (rule!.spec as { groups: { name: string; rules: { alert: string; expr: string; labels: { severity: string }; annotations: { summary: string } }[] }[] }).groups.flatMap((g) => g.rules);
    assert.deepEqual(
      rules.map((r) => r.alert).sort(),
      ['FleetletAgentAbsent', 'FleetletHubRevoked', 'FleetletHubUnreachable', 'FleetletJournalErrors', 'FleetletOutboxBacklog', 'FleetletUpgradeFailed', 'FleetletUpgradeRolledBack', 'FleetletUpgradeStuck'],
    );
    for (const r of rules) {
      assert.ok(['warning', 'critical'].includes(r.labels.severity), `${r.alert} has a severity`);
      assert.ok(r.annotations.summary, `${r.alert} has a summary`);
    }

    // Every metric an alert uses is one the agent really exposes (with a hub configured).
    const journal = Journal.open(':memory:');
    try {
      const metrics = new AgentMetrics({ journal, clusterId: 'c', version: '0.1.0', hubReconnects: () => 3, hubConnected: () => false, hubStanding: () => 'Revoked' });
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
    for (const overlay of ['deployment', 'daemonset']) assert.ok(!(await render(`${manifests}overlays/${overlay}`)).some((o) => o.kind === 'PrometheusRule'));
  });

  test('base and the deployment overlay apply; the pod meets the restricted Pod Security Standard', async () => {
    const rendered = await render(`${manifests}overlays/deployment`);
    assert.deepEqual(
      rendered.map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`).sort(),
      [
        'ClusterRole//fleetlet-agent-cluster',
        'ClusterRoleBinding//fleetlet-agent-cluster',
        'ConfigMap/fleetlet-system/fleetlet-allowed-namespaces',
        'ConfigMap/fleetlet-system/fleetlet-policy',
        'Deployment/fleetlet-system/fleetlet',
        'Namespace//fleetlet-addons',
        'Namespace//fleetlet-system',
        'NetworkPolicy/fleetlet-system/fleetlet-agent',
        'PersistentVolumeClaim/fleetlet-system/fleetlet-journal',
        'Role/fleetlet-addons/fleetlet-agent-addons',
        'Role/fleetlet-system/fleetlet-agent',
        'Role/fleetlet-system/fleetlet-agent-addons',
        'RoleBinding/fleetlet-addons/fleetlet-agent-addons',
        'RoleBinding/fleetlet-system/fleetlet-agent',
        'RoleBinding/fleetlet-system/fleetlet-agent-addons',
        'Service/fleetlet-system/fleetlet-metrics',
        'ServiceAccount/fleetlet-system/fleetlet',
      ],
    );
    // Nothing in kube-system unless named.
    assert.ok(!rendered.some((o) => o.metadata.namespace === 'kube-system'));
    await applyKustomization(`${manifests}overlays/deployment`);
    for (const o of rendered) {
      const live = await objects.read({ apiVersion: o.apiVersion, kind: o.kind, metadata: { name: o.metadata.name, namespace: o.metadata.namespace } });
      assert.equal(live.metadata?.name, o.metadata.name, `${o.kind} ${o.metadata.name} exists`);
    }
    // The shipped policy allows any time and runs only the built-in checks; the example lives in manifests/examples.
    const policy = await core.readNamespacedConfigMap({ name: 'fleetlet-policy', namespace: NS });
    const shipped = parsePolicyYaml(policy.data?.['policy.yaml'] ?? '');
    assert.equal(shipped.windows, undefined, 'no windows: any time');
    assert.equal(shipped.blackouts.length, 0);
    assert.deepEqual([shipped.checks.preflight.length, shipped.checks.postflight.length], [0, 0], 'built-in checks only');
    // The example swaps in as a component, replacing the shipped one.
    const example = (await renderWith(`${manifests}overlays/deployment`, [`${manifests}examples`])).filter((o) => o.kind === 'ConfigMap' && o.metadata.name === 'fleetlet-policy');
    assert.equal(example.length, 1);
    assert.equal((example[0]!.data as Record<string, string>)['policy.yaml'], readFileSync(`${manifests}examples/policy.yaml`, 'utf8'));
    assert.ok(parsePolicyYaml((example[0]!.data as Record<string, string>)['policy.yaml']!).checks.preflight.length > 0);

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
    const rendered = await render(`${manifests}overlays/daemonset`);
    await applyKustomization(`${manifests}overlays/daemonset`);
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
    const depTemplate = structuredClone(templateOf((await render(`${manifests}overlays/deployment`)).find((o) => o.kind === 'Deployment')!));
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
      // The namespace the shipped list allows (its Role came with the overlay).
      const addons = { name: ADDONS, dispose: async () => {} };
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

      // Exactly the rights fleetlet uses, per namespace (`kubectl auth can-i --list` as the
      // ServiceAccount): a missing right and a surplus one both fail here.
      const addonRules = [
        ...['configmaps', 'services', 'serviceaccounts', 'deployments.apps', 'daemonsets.apps', 'statefulsets.apps', 'roles.rbac.authorization.k8s.io', 'rolebindings.rbac.authorization.k8s.io', 'poddisruptionbudgets.policy', 'networkpolicies.networking.k8s.io'].map(
          (r) => `${r} [] [create delete get list patch]`,
        ),
        'pods [] [get list]',
        'controllerrevisions.apps [] [get list]',
        'replicasets.apps [] [get list]',
      ];
      const clusterRules = ['nodes [] [get list]', `namespaces [${ADDONS} ${NS}] [get patch]`];
      const ownRules = [
        'leases.coordination.k8s.io [] [create]',
        'leases.coordination.k8s.io [fleetlet-leader] [get patch update]',
        'leases.coordination.k8s.io [fleetlet-defer] [get]',
        'secrets [] [create]',
        'secrets [fleetlet-hub-credential] [delete get patch]',
        'configmaps [] [create]',
        'configmaps [fleetlet-candidate fleetlet-handover fleetlet-status] [get patch]',
        'events [] [create patch]',
      ];
      const expected: Record<string, string[]> = {
        [NS]: [...ownRules, ...addonRules, ...clusterRules],
        [ADDONS]: [...addonRules, ...clusterRules],
        'kube-system': clusterRules,
        default: clusterRules,
      };
      for (const [namespace, want] of Object.entries(expected)) {
        const got = mergeRules(await canIList(namespace));
        const wanted = mergeRules(want);
        const missing = wanted.filter((r) => !got.includes(r));
        const surplus = got.filter((r) => !wanted.includes(r));
        assert.deepEqual({ missing, surplus }, { missing: [], surplus: [] }, `kubectl auth can-i --list -n ${namespace} as the fleetlet ServiceAccount`);
      }

      // The review itself works: what the agent needs is allowed.
      for (const q of [
        { verb: 'patch', group: 'apps', resource: 'deployments', namespace: ADDONS },
        { verb: 'delete', resource: 'configmaps', namespace: ADDONS },
        { verb: 'list', resource: 'nodes' },
        { verb: 'update', group: 'coordination.k8s.io', resource: 'leases', namespace: NS, name: 'fleetlet-leader' },
        { verb: 'get', resource: 'secrets', namespace: NS, name: 'fleetlet-hub-credential' },
      ]) {
        assert.equal((await canI(saKc, q)).allowed, true, `allowed: ${JSON.stringify(q)}`);
      }
      for (const q of [
        // Outside the list, no writes at all; kube-system above all.
        { verb: 'patch', group: 'apps', resource: 'deployments', namespace: 'anywhere' },
        { verb: 'create', group: 'apps', resource: 'daemonsets', namespace: 'kube-system' },
        { verb: 'create', resource: 'serviceaccounts', namespace: 'kube-system' },
        { verb: 'create', group: 'rbac.authorization.k8s.io', resource: 'rolebindings', namespace: 'kube-system' },
        { verb: 'create', resource: 'namespaces' },
        { verb: 'delete', resource: 'namespaces', name: ADDONS },
        { verb: 'get', resource: 'secrets', namespace: 'kube-system' },
        { verb: 'get', resource: 'secrets', namespace: ADDONS },
        { verb: 'list', resource: 'secrets' },
        { verb: 'get', resource: 'secrets', namespace: NS, name: 'someone-elses-secret' },
        { verb: 'create', group: 'rbac.authorization.k8s.io', resource: 'clusterrolebindings' },
        { verb: 'create', group: 'rbac.authorization.k8s.io', resource: 'clusterroles' },
        { verb: 'escalate', group: 'rbac.authorization.k8s.io', resource: 'roles', namespace: ADDONS },
        { verb: 'bind', group: 'rbac.authorization.k8s.io', resource: 'clusterroles', name: 'cluster-admin' },
        { verb: 'delete', resource: 'nodes' },
        { verb: 'patch', resource: 'nodes' },
        { verb: 'create', resource: 'pods', namespace: ADDONS },
        { verb: 'create', resource: 'pods/exec', namespace: ADDONS },
        { verb: 'update', group: 'apps', resource: 'deployments', namespace: ADDONS },
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
      const ns = { name: ADDONS };
      {
        await assert.rejects(
          saCluster.apply({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'reads-secrets', namespace: ns.name }, rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }] } as never),
          (err: unknown) => forbidden(err) && /escalat|not currently held/i.test((err as Error).message),
        );
        // One granting what it holds is fine: add-ons may bring such Roles.
        await saCluster.apply({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'reads-config', namespace: ns.name }, rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list'] }] } as never);
      }
      // And a namespace outside the list is out of reach, even for an object the agent could write elsewhere.
      const outside = await testNamespace('outside');
      try {
        await assert.rejects(saCluster.apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x', namespace: outside.name }, data: {} } as never), forbidden);
      } finally {
        await outside.dispose();
      }
    });

    test('the RBAC comes from one list: the shipped file is `fleetlet rbac` output, and another list grants writes only in its namespaces', async () => {
      const cli = spawnSync(process.execPath, [new URL('../../bin/fleetlet.ts', import.meta.url).pathname, 'rbac', '--allowed-namespaces', ADDONS], { encoding: 'utf8' });
      assert.equal(cli.status, 0, cli.stderr);
      assert.equal(readFileSync(`${manifests}base/allowed-namespaces.yaml`, 'utf8'), cli.stdout, 'manifests/base/allowed-namespaces.yaml is up to date: regenerate it with `fleetlet rbac`');

      const [a, b, other] = [await testNamespace('list-a'), await testNamespace('list-b'), await testNamespace('list-other')];
      generatedFor.push(a.name, b.name, other.name);
      await kubectl(['apply', '--server-side', '--field-manager=fleetlet-manifests-test', '-f', '-'], { input: agentRbacYaml({ allowedNamespaces: [a.name, b.name], agentNamespace: NS }, 'test') });
      const saKc = await serviceAccountKubeConfig(NS, 'fleetlet');
      for (const [namespace, allowed] of [[a.name, true], [b.name, true], [other.name, false], ['kube-system', false]] as const) {
        assert.equal((await canI(saKc, { verb: 'create', group: 'apps', resource: 'deployments', namespace })).allowed, allowed, `create deployments in ${namespace}`);
      }
      const cm = await core.readNamespacedConfigMap({ name: 'fleetlet-allowed-namespaces', namespace: NS });
      assert.equal(cm.data?.namespaces, `${NS},${a.name},${b.name}`, 'the agent gets the same list (plus its own namespace)');
    });
  });
});
