// An agent whose ServiceAccount lacks a permission it needs does not sit
// Ready and silent: the real agent process, acting as a ServiceAccount
// without rights on its leader Lease, logs one line naming the missing
// permission and how to grant it, reports NotReady with that reason, keeps
// retrying with backoff, and becomes Ready once the Role is granted. The same
// for a ConfigMap the pod mounts that does not exist yet: the agent (in its
// pod, as the Deployment overlay describes it) names the ConfigMap and the
// command that creates it, stays up NotReady, and starts once the file is there.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { parse, parseAllDocuments } from 'yaml';
import { imageAgentArgv } from '../../scripts/build.ts';
import { freePort } from '../../src/testbed/control-plane.ts';
import { exportPublicKeyPem } from '../../src/protocol/signing.ts';
import { eventually, kubeConfig, testNamespace } from '../support/cluster.ts';
import { testSigner } from '../support/releases.ts';
import { serviceAccountKubeConfig } from '../support/service-account.ts';
import { testPolicyYaml } from '../support/test-policy.ts';

const root = new URL('../../', import.meta.url).pathname;

test('a missing Lease permission: one log line naming it, NotReady with the reason, Ready once granted', async () => {
  const ns = await testNamespace('perm');
  const admin = kubeConfig();
  const core = admin.makeApiClient(k8s.CoreV1Api);
  const rbac = admin.makeApiClient(k8s.RbacAuthorizationV1Api);
  const dir = mkdtempSync(join(tmpdir(), 'fleetlet-perm-'));
  await core.createNamespacedServiceAccount({ namespace: ns.name, body: { metadata: { name: 'fleetlet' } } });
  const saKc = await serviceAccountKubeConfig(ns.name, 'fleetlet');
  writeFileSync(join(dir, 'kubeconfig'), saKc.exportConfig());
  writeFileSync(join(dir, 'key.pub.pem'), exportPublicKeyPem(testSigner().publicKey));
  writeFileSync(join(dir, 'policy.yaml'), testPolicyYaml());
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [
      join(root, 'bin/fleetlet.ts'),
      'agent',
      '--cluster-id=perm',
      `--journal=${join(dir, 'journal.db')}`,
      `--kubeconfig=${join(dir, 'kubeconfig')}`,
      `--namespace=${ns.name}`,
      `--release-key=${join(dir, 'key.pub.pem')}`,
      `--policy=${join(dir, 'policy.yaml')}`,
      `--allowed-namespaces=${ns.name}`,
      '--leader-elect',
      '--identity=perm-a',
      `--http-addr=127.0.0.1:${port}`,
    ],
    { env: { ...process.env, LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (log += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (log += c));
  const readyz = async () => {
    const res = await fetch(`http://127.0.0.1:${port}/readyz?verbose`).catch(() => undefined);
    return res ? { status: res.status, body: await res.text() } : undefined;
  };
  try {
    const notReady = await eventually('/readyz names the missing permission', async () => {
      const r = await readyz();
      return r && r.status === 503 && /leases/.test(r.body) ? r : undefined;
    });
    assert.match(notReady.body, /forbidden/i);
    assert.match(notReady.body, /rbac-own-namespace\.yaml/);
    // Retries go on (with backoff), but the log says it once, not once per retry.
    await new Promise((r) => setTimeout(r, 5_000));
    // (The readiness endpoint also logs each failed probe, with the check's name; the elector's own line has none.)
    const lines = log
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { level: number; msg: string; check?: string })
      .filter((l) => l.check === undefined && /cannot take part in leader election/.test(l.msg));
    assert.equal(lines.length, 1, `one log line, not one per retry:\n${lines.map((l) => l.msg).join('\n')}`);
    assert.equal(lines[0]!.level, 50, 'logged as an error');
    assert.match(lines[0]!.msg, /forbidden.*rbac-own-namespace\.yaml/);
    assert.ok(!log.includes('became leader'));

    // The operator grants what the line asked for (the agent's own-namespace Role from the
    // manifests, in this namespace): the agent recovers by itself.
    const own = parseAllDocuments(readFileSync(join(root, 'manifests/base/rbac-own-namespace.yaml'), 'utf8')).map((d) => d.toJS() as { kind: string; metadata: { namespace: string }; subjects?: { namespace: string }[] });
    for (const o of own) {
      o.metadata.namespace = ns.name;
      for (const sub of o.subjects ?? []) sub.namespace = ns.name;
    }
    await rbac.createNamespacedRole({ namespace: ns.name, body: own.find((o) => o.kind === 'Role') as k8s.V1Role });
    await rbac.createNamespacedRoleBinding({ namespace: ns.name, body: own.find((o) => o.kind === 'RoleBinding') as k8s.V1RoleBinding });
    await eventually('the agent leads once the Role is granted', async () => (log.includes('became leader') ? true : undefined), 60_000);
    await eventually('the leader-election check passes', async () => {
      const r = await readyz();
      return r && !/leader-election failed/.test(r.body) && /leader-election ok/.test(r.body) ? true : undefined;
    });
  } catch (err) {
    throw new Error(`${(err as Error).message}\n--- agent output (exit ${child.exitCode ?? 'running'}):\n${log.slice(-4000)}`, { cause: err });
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    await ns.dispose();
  }
});

test("a missing ConfigMap the pod mounts: one line naming it and how to create it, NotReady meanwhile, starts once it is there", async () => {
  const ns = await testNamespace('cm');
  const dir = mkdtempSync(join(tmpdir(), 'fleetlet-cm-'));
  const keyDir = join(dir, 'release-key');
  mkdirSync(keyDir);
  writeFileSync(join(dir, 'policy.yaml'), testPolicyYaml());
  // The pod as the Deployment overlay makes it, in this namespace; its release-key volume is
  // mounted where this process finds it (the kubelet leaves an optional ConfigMap's volume empty).
  const deployment = parse(readFileSync(join(root, 'manifests/overlays/deployment/deployment.yaml'), 'utf8')) as { spec: { template: { spec: k8s.V1PodSpec } } };
  const spec = deployment.spec.template.spec;
  for (const m of spec.containers[0]!.volumeMounts ?? []) if (m.name === 'release-key') m.mountPath = keyDir;
  const podName = 'fleetlet-agent-cm';
  await ns.core.createNamespacedServiceAccount({ namespace: ns.name, body: { metadata: { name: spec.serviceAccountName! } } });
  await ns.core.createNamespacedPod({ namespace: ns.name, body: { metadata: { name: podName }, spec } });
  const port = await freePort();
  const child = spawn(
    process.execPath,
    imageAgentArgv([
      '--cluster-id=cm',
      `--journal=${join(dir, 'journal.db')}`,
      `--kubeconfig=${process.env.FLEETLET_TEST_KUBECONFIG}`,
      `--namespace=${ns.name}`,
      `--release-key=${join(keyDir, 'release.pub.pem')}`,
      `--policy=${join(dir, 'policy.yaml')}`,
      `--allowed-namespaces=${ns.name}`,
      '--no-leader-elect',
      `--http-addr=127.0.0.1:${port}`,
    ]),
    { env: { ...process.env, LOG_LEVEL: 'info', FLEETLET_POD_NAME: podName }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (log += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (log += c));
  const get = async (path: string) => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`).catch(() => undefined);
    return res ? { status: res.status, body: await res.text() } : undefined;
  };
  const create = `kubectl -n ${ns.name} create configmap fleetlet-release-key --from-file=release.pub.pem=<file>`;
  try {
    const notReady = await eventually('/readyz names the missing ConfigMap', async () => {
      const r = await get('/readyz');
      return r && r.status === 503 && r.body.includes('fleetlet-release-key') ? r : undefined;
    });
    assert.ok(notReady.body.includes(create), notReady.body);
    assert.equal((await get('/healthz'))?.status, 200, 'alive while it waits: no restart loop');
    // Retries go on with backoff; the log says it once.
    await new Promise((r) => setTimeout(r, 4_000));
    const lines = log
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { level: number; msg: string; check?: string })
      .filter((l) => l.check === undefined && l.msg.includes('fleetlet-release-key'));
    assert.equal(lines.length, 1, `one log line, not one per retry:\n${lines.map((l) => l.msg).join('\n')}`);
    assert.equal(lines[0]!.level, 50, 'logged as an error');
    assert.ok(lines[0]!.msg.includes(`ConfigMap ${ns.name}/fleetlet-release-key key release.pub.pem`), lines[0]!.msg);
    assert.ok(lines[0]!.msg.includes(create), lines[0]!.msg);
    assert.equal(child.exitCode, null, 'still running');

    // The ConfigMap is created; the kubelet puts its key into the volume.
    writeFileSync(join(keyDir, 'release.pub.pem'), exportPublicKeyPem(testSigner().publicKey));
    await eventually('the agent starts and becomes Ready', async () => ((await get('/readyz'))?.status === 200 ? true : undefined), 60_000);
    assert.match(log, /start-up inputs are present now/);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n--- agent output (exit ${child.exitCode ?? 'running'}):\n${log.slice(-4000)}`, { cause: err });
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    await ns.dispose();
  }
});
