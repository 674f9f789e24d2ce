// Maintenance windows and pre-/post-flight checks enforced on the real
// control plane: the agent runs with the policy gate and an injected clock
// (journal and engine share it), and each blocker is produced for real: a
// not-Ready node, a PodDisruptionBudget at zero, an unhealthy component, a
// consent Lease, a firing alert after a stage.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { defaultAdmission } from '../../src/agent/intake/admission.ts';
import { Agent } from '../../src/agent/agent.ts';
import type { TransitionListener } from '../../src/agent/upgrade/engine.ts';
import { createPolicyGate, type PolicyGate } from '../../src/agent/gate/gate-policy.ts';
import { KubeClusterClient } from '../../src/agent/kube/cluster-client.ts';
import { watchPolicyFile } from '../../src/agent/gate/policy-loader.ts';
import { DaemonSetPrePuller, PRE_PULL_LABEL } from '../../src/agent/preflight/index.ts';
import { maintenancePolicy, type Policy, type PolicyInput } from '../../src/protocol/policy.ts';
import { withSharedNodes } from '../support/test-policy.ts';
import type { KubeObject, ReleaseInput } from '../../src/protocol/release.ts';
import type { AttemptRecord } from '../../src/store/attempt-repo.ts';
import { Journal } from '../../src/store/journal.ts';
import { eventually, kubeConfig, testNamespace, type TestNamespace } from '../support/cluster.ts';
import { addonsRelease, testSigner, type TestSigner } from '../support/releases.ts';
import { testLogger } from '../support/test-log.ts';

const MIN = 60_000;
const HOUR = 60 * MIN;

type Workload = KubeObject & { spec: { template: { spec: { containers: { image: string }[] } } } };
const image = (o: KubeObject | undefined) => (o as Workload | undefined)?.spec.template.spec.containers[0]?.image;

function policyOf(rest: Omit<PolicyInput, 'apiVersion' | 'kind'>): Policy {
  return maintenancePolicy.parse({ apiVersion: 'fleetlet.io/v1', kind: 'MaintenancePolicy', ...withSharedNodes(rest) });
}

/** An agent with the policy gate, a shiftable clock and a swappable policy, running in the background. */
interface PolicyAgent {
  agent: Agent;
  journal: Journal;
  cluster: KubeClusterClient;
  gate: PolicyGate;
  clock: { offset: number };
  now(): Date;
  policy: { current: () => Policy | undefined };
  onTransition: { hook: TransitionListener | undefined };
  /** The attempt for `revision` once `probe` holds for it. */
  attemptWhere(revision: number, what: string, probe: (a: AttemptRecord) => boolean, timeoutMs?: number): Promise<AttemptRecord>;
  finished(revision: number, timeoutMs?: number): Promise<AttemptRecord>;
  stop(): Promise<void>;
}

function policyAgent(signer: TestSigner, agentNamespace: string, initial: Policy): PolicyAgent {
  const clock = { offset: 0 };
  const now = () => new Date(Date.now() + clock.offset);
  const journal = Journal.open(join(mkdtempSync(join(tmpdir(), 'fleetlet-gate-')), 'journal.db'), { durability: 'normal', now });
  const cluster = new KubeClusterClient(kubeConfig());
  const policy = { current: (): Policy | undefined => initial };
  const { gate, postflight } = createPolicyGate({
    policy: () => policy.current(),
    journal,
    cluster,
    now,
    prePuller: new DaemonSetPrePuller({ cluster, namespace: agentNamespace }),
  });
  const onTransition: { hook: TransitionListener | undefined } = { hook: undefined };
  const agent = new Agent({
    journal,
    cluster,
    logger: testLogger(),
    now,
    clusterId: 'test-cluster',
    targetInfrastructure: () => 'kwok',
    releaseKeys: [signer.publicKey],
    admission: defaultAdmission,
    pollMs: 200,
    idleMs: 200,
    gate,
    postflight,
    onTransition: (a, t) => onTransition.hook?.(a, t),
  });
  const controller = new AbortController();
  const running = agent.run(controller.signal).catch(() => {});
  const attemptWhere = (revision: number, what: string, probe: (a: AttemptRecord) => boolean, timeoutMs = 60_000) =>
    eventually(
      `attempt for revision ${revision}: ${what}`,
      () => {
        const a = journal.attempts.list(50).find((x) => x.revision === revision);
        return Promise.resolve(a && probe(a) ? a : undefined);
      },
      timeoutMs,
      100,
    );
  return {
    agent,
    journal,
    cluster,
    gate,
    clock,
    now,
    policy,
    onTransition,
    attemptWhere,
    finished: (revision, timeoutMs) => attemptWhere(revision, 'finished', (a) => a.finishedAt !== null, timeoutMs),
    async stop() {
      controller.abort();
      await running;
      journal.close();
    },
  };
}

const versions = (v: string) => ({ dns: v, proxy: v, metrics: v });

/** Shifts the agent's clock so that it reads `to`, and makes it look again now. */
function advanceTo(pa: PolicyAgent, to: number): void {
  pa.clock.offset += to - pa.now().getTime();
  pa.agent.wakeUp();
}

/** A daily UTC window starting at `start` (minute precision) for `duration`. */
function dailyWindow(name: string, start: number, duration: string) {
  const d = new Date(start);
  return { name, cron: `${d.getUTCMinutes()} ${d.getUTCHours()} * * *`, duration, timeZone: 'UTC' };
}

const floorMinute = (t: number) => Math.floor(t / MIN) * MIN;

describe('maintenance windows on the cluster', () => {
  let ns: TestNamespace;
  const signer = testSigner();
  let pa: PolicyAgent;
  before(async () => {
    ns = await testNamespace('win');
    pa = policyAgent(signer, ns.name, policyOf({}));
  });
  after(async () => {
    await pa.stop();
    await ns.dispose();
  });
  const read = (kind: string, name: string, apiVersion = 'apps/v1') => pa.cluster.read({ apiVersion, kind, name, namespace: ns.name });

  test('outside the window the attempt waits (pulling images meanwhile) and starts when the window opens', async () => {
    const opens = floorMinute(pa.now().getTime() + 30 * MIN);
    pa.policy.current = () => policyOf({ windows: [dailyWindow('daily', opens, '1h')], prePull: { enabled: true } });
    assert.equal((await pa.agent.offer(signer.sign(addonsRelease(ns.name, 1, versions('1.0.0'))))).accepted, true);

    const waiting = await pa.attemptWhere(1, 'WaitingForWindow', (a) => a.phase === 'WaitingForWindow');
    assert.equal(waiting.reason, 'OutsideWindow');
    assert.match(waiting.message ?? '', new RegExp(`the next window opens at ${new Date(opens).toISOString()}`));
    assert.equal(await read('Deployment', 'dns'), undefined, 'nothing applied before the window');

    // Work that changes nothing happens before the window: the stage's images are pulled on every node.
    const ds = await eventually('the pre-pull DaemonSet', async () => (await pa.cluster.list('apps/v1', 'DaemonSet', ns.name, PRE_PULL_LABEL))[0]);
    const init = (ds as KubeObject & { spec: { template: { spec: { initContainers: { image: string; command: string[] }[] } } } }).spec.template.spec.initContainers;
    assert.deepEqual(init.map((c) => [c.image, c.command.join(' ')]), [
      ['registry.example/dns:1.0.0', 'true'],
      ['registry.example/proxy:1.0.0', 'true'],
    ]);

    advanceTo(pa, opens + 1000);
    const a = await pa.finished(1);
    assert.equal(a.phase, 'Succeeded', `${a.reason}: ${a.message}`);
    const phases = pa.journal.attempts.transitions(a.id).map((t) => `${t.phase}${t.stage ?? ''}`);
    assert.deepEqual(phases.slice(0, 3), ['Pending', 'WaitingForWindow0', 'Upgrading0']);
    const started = pa.journal.attempts.transitions(a.id).find((t) => t.phase === 'Upgrading')!;
    assert.ok(Date.parse(started.at) >= opens, 'the first stage started inside the window');
    assert.equal(image(await read('Deployment', 'dns')), 'registry.example/dns:1.0.0');
    // The pre-pull DaemonSet goes once the stage may start.
    await eventually('pre-pull DaemonSet removed', async () => ((await pa.cluster.list('apps/v1', 'DaemonSet', ns.name, PRE_PULL_LABEL)).length === 0 ? true : undefined));
  });

  test('a stage running when the window closes is finished; the next stage waits for the next window', async () => {
    // We are one second into the 1h window opened above.
    const opens = floorMinute(pa.now().getTime());
    pa.policy.current = () => policyOf({ windows: [dailyWindow('daily', opens, '1h')] });
    const release: ReleaseInput = addonsRelease(ns.name, 2, versions('1.1.0'));
    for (const c of release.components) if (c.stage === 0) c.health = { ...c.health, soakSeconds: 20 };
    const closes = opens + HOUR;
    // The window closes while stage 0 soaks.
    pa.onTransition.hook = (a, t) => {
      if (a.revision === 2 && t.phase === 'Soaking' && t.stage === 0) pa.clock.offset += closes + MIN - pa.now().getTime();
    };
    assert.equal((await pa.agent.offer(signer.sign(release))).accepted, true);
    const waiting = await pa.attemptWhere(2, 'stage 1 WaitingForWindow', (a) => a.phase === 'WaitingForWindow' || a.finishedAt !== null);
    pa.onTransition.hook = undefined;
    assert.equal(waiting.phase, 'WaitingForWindow', `${waiting.reason}: ${waiting.message}`);
    assert.equal(waiting.stage, 1);
    assert.equal(waiting.reason, 'OutsideWindow');
    const phases = pa.journal.attempts.transitions(waiting.id).map((t) => `${t.phase}${t.stage ?? ''}`);
    assert.deepEqual(phases, ['Pending', 'Upgrading0', 'Verifying0', 'Soaking0', 'PreflightChecking1', 'WaitingForWindow1']);
    // Stage 0 ran to its end after the window closed: its components are on the new version.
    assert.equal(pa.journal.installed.get('dns')?.version, '1.1.0');
    assert.equal(pa.journal.installed.get('proxy')?.version, '1.1.0');
    assert.equal(pa.journal.installed.get('metrics')?.version, '1.0.0');
    assert.equal(image(await read('StatefulSet', 'metrics-store')), 'registry.example/metrics-store:1.0.0');

    advanceTo(pa, opens + 24 * HOUR + 1000);
    const a = await pa.finished(2);
    assert.equal(a.phase, 'Succeeded', `${a.reason}: ${a.message}`);
    assert.equal(image(await read('StatefulSet', 'metrics-store')), 'registry.example/metrics-store:1.1.0');
  });

  test('an invalid policy file keeps the last valid one in force', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fleetlet-policy-'));
    const file = join(dir, 'policy.yaml');
    const opens = new Date(floorMinute(pa.now().getTime() + 2 * HOUR));
    const valid = `apiVersion: fleetlet.io/v1\nkind: MaintenancePolicy\ntimeZone: UTC\nwindows:\n  - name: later\n    cron: "${opens.getUTCMinutes()} ${opens.getUTCHours()} * * *"\n    duration: 1h\n`;
    writeFileSync(file, valid);
    const stop = new AbortController();
    const watch = await watchPolicyFile({ path: file, signal: stop.signal, now: () => pa.now(), onPolicy: () => pa.agent.wakeUp(), onInvalid: () => {}, pollIntervalMs: 0 });
    try {
      pa.policy.current = () => watch.current()?.policy;
      // The clock is a day ahead by now: the release is issued on the agent's clock.
      const t = pa.now().getTime();
      const offer = await pa.agent.offer(signer.sign(addonsRelease(ns.name, 3, versions('1.2.0'), { issuedAt: new Date(t - MIN).toISOString(), expiresAt: new Date(t + 24 * HOUR).toISOString() })));
      assert.equal(offer.accepted, true, JSON.stringify(offer));
      const waiting = await pa.attemptWhere(3, 'WaitingForWindow', (a) => a.phase === 'WaitingForWindow');

      // A typo: `windws` would silently mean "always allowed" if it were accepted.
      writeFileSync(file, valid.replace('windows:', 'windws:'));
      await watch.reload();
      assert.match(watch.lastError()?.message ?? '', /windws \(line 5\): is not a known field/);
      const release = pa.journal.releases.byId(waiting.releaseId)!.release;
      const d = await pa.gate.evaluate({ attempt: waiting, release, stage: 0, now: pa.now(), signal: stop.signal });
      assert.equal(d.go, false, 'the last valid policy (a window two hours away) still holds');
      assert.match((d as { message: string }).message, new RegExp(`opens at ${opens.toISOString()}`));

      writeFileSync(file, 'apiVersion: fleetlet.io/v1\nkind: MaintenancePolicy\n');
      await watch.reload();
      const a = await pa.finished(3);
      assert.equal(a.phase, 'Succeeded', `${a.reason}: ${a.message}`);
    } finally {
      stop.abort();
    }
  });
});

describe('pre-flight and post-flight checks on the cluster', () => {
  let ns: TestNamespace;
  const signer = testSigner();
  let pa: PolicyAgent;
  let revision = 1;
  let prometheus: Server;
  let firing: string[] = [];
  const base = (extra: Omit<PolicyInput, 'apiVersion' | 'kind'> = {}) =>
    policyOf({
      consent: { leaseName: 'fleetlet-defer', namespace: ns.name, maxDeferral: '1h' },
      ...extra,
      checks: {
        recheck: { initialBackoff: '1s', maxBackoff: '2s' },
        // A custom check read from a real object, on every attempt.
        preflight: [{ name: 'node-0-ready', type: 'kubernetesCondition', object: { apiVersion: 'v1', kind: 'Node', name: 'kwok-node-0' }, conditionType: 'Ready' }],
        ...extra.checks,
      },
    });

  before(async () => {
    ns = await testNamespace('chk');
    prometheus = createServer((req, res) => {
      const result = firing.map((alertname) => ({ metric: { __name__: 'ALERTS', alertname, alertstate: 'firing' }, value: [Date.now() / 1000, '1'] }));
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'success', data: { resultType: 'vector', result } }));
    });
    await new Promise<void>((r) => prometheus.listen(0, '127.0.0.1', r));
    pa = policyAgent(signer, ns.name, policyOf({}));
    pa.policy.current = () => base();
    assert.equal((await pa.agent.offer(signer.sign(addonsRelease(ns.name, revision, versions('1.0.0'))))).accepted, true);
    const a = await pa.finished(revision);
    assert.equal(a.phase, 'Succeeded', `${a.reason}: ${a.message}`);
  });
  after(async () => {
    await pa.stop();
    await new Promise<void>((r) => prometheus.close(() => r()));
    await ns.dispose();
  });

  /** Offers the next revision and returns its attempt once pre-flight blocks it. */
  async function blockedBy(check: string, message: RegExp): Promise<AttemptRecord> {
    const dnsBefore = image(await pa.cluster.read({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'dns', namespace: ns.name }));
    revision++;
    assert.equal((await pa.agent.offer(signer.sign(addonsRelease(ns.name, revision, versions(`1.${revision}.0`))))).accepted, true);
    const a = await pa.attemptWhere(revision, 'PreflightFailed', (x) => x.reason === 'PreflightFailed' || x.finishedAt !== null);
    assert.equal(a.phase, 'PreflightChecking', `${a.reason}: ${a.message}`);
    assert.equal(a.reason, 'PreflightFailed');
    assert.match(a.message ?? '', new RegExp(`${check} fail: ${message.source}`));
    const journaled = pa.journal.attempts.checks(a.id).filter((c) => c.name === check);
    assert.ok(journaled.length > 0 && journaled.every((c) => c.kind === 'preflight' && c.result === 'fail'), `${check} results journaled`);
    assert.equal(image(await pa.cluster.read({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'dns', namespace: ns.name })), dnsBefore, 'nothing changed');
    return a;
  }

  async function proceeds(): Promise<AttemptRecord> {
    pa.agent.wakeUp();
    const a = await pa.finished(revision);
    assert.equal(a.phase, 'Succeeded', `${a.reason}: ${a.message}`);
    assert.equal(image(await pa.cluster.read({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'dns', namespace: ns.name })), `registry.example/dns:1.${revision}.0`);
    assert.ok(pa.journal.attempts.checks(a.id).some((c) => c.name === 'node-0-ready' && c.result === 'pass'), 'the custom condition check ran');
    return a;
  }

  test('a node that is not Ready blocks (nodes-ready) until it is Ready', async () => {
    const core = kubeConfig().makeApiClient(k8s.CoreV1Api);
    const name = `fleetlet-extra-${randomBytes(3).toString('hex')}`;
    // A pool of our own (kwok-node-0 and an extra node whose status is in our hands), so the
    // not-Ready node is seen by this test's policy only, never by other tests' agents.
    const pool = { [`fleetlet.io/pool-${name}`]: 'in' };
    await core.createNode({
      body: {
        metadata: { name, annotations: { 'kwok.x-k8s.io/node': 'fake', 'kwok.x-k8s.io/status': 'custom' }, labels: { ...pool, 'fleetlet.io/test': 'true' } },
        spec: { taints: [{ key: 'fleetlet.io/test-node', value: 'extra', effect: 'NoSchedule' }] },
      },
    });
    const label = (value: string | null) => core.patchNode({ name: 'kwok-node-0', body: [{ op: value === null ? 'remove' : 'add', path: `/metadata/labels/fleetlet.io~1pool-${name}`, ...(value === null ? {} : { value }) }] });
    await label('in');
    // A patch, not read-modify-replace: kwok writes this node's status too, and a
    // replace carrying the resourceVersion we read loses that race with 409 Conflict.
    const setReady = async (status: 'True' | 'False') => {
      const now = new Date().toISOString();
      const conditions = [{ type: 'Ready', status, reason: status === 'True' ? 'KubeletReady' : 'KubeletNotReady', message: 'set by the test', lastHeartbeatTime: now, lastTransitionTime: now }];
      await core.patchNodeStatus({ name, body: [{ op: 'add', path: '/status/conditions', value: conditions }] });
    };
    const previous = pa.policy.current;
    pa.policy.current = () => base({ checks: { builtin: { nodeSelector: pool } } });
    try {
      await setReady('False');
      await blockedBy('nodes-ready', new RegExp(`1/2 nodes Ready \\(50%, policy needs 100%\\); not Ready: ${name}`));
      await setReady('True');
      await proceeds();
    } finally {
      pa.policy.current = previous;
      await label(null).catch(() => {});
      await core.deleteNode({ name }).catch(() => {});
    }
  });

  test('a PodDisruptionBudget at zero allowed disruptions blocks (disruption-budgets), named, until it allows one', async () => {
    const pdb = (minAvailable: number): KubeObject =>
      ({ apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: { name: 'dns-pdb', namespace: ns.name }, spec: { minAvailable, selector: { matchLabels: { app: 'dns' } } } }) as KubeObject;
    await pa.cluster.apply(pdb(2));
    await eventually('dns-pdb evaluated at 0 allowed', async () => {
      const p = (await pa.cluster.read({ apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', name: 'dns-pdb', namespace: ns.name })) as KubeObject & { status?: { expectedPods?: number; disruptionsAllowed?: number } };
      return p?.status?.expectedPods === 2 && p.status.disruptionsAllowed === 0 ? true : undefined;
    });
    await blockedBy('disruption-budgets', new RegExp(`PodDisruptionBudget ${ns.name}/dns-pdb allows 0 disruptions \\(2 healthy, 2 required, 2 expected\\)`));
    await pa.cluster.apply(pdb(1));
    await eventually('dns-pdb allows 1', async () => {
      const p = (await pa.cluster.read({ apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', name: 'dns-pdb', namespace: ns.name })) as KubeObject & { status?: { disruptionsAllowed?: number } };
      return (p?.status?.disruptionsAllowed ?? 0) > 0 ? true : undefined;
    });
    await proceeds();
    await pa.cluster.remove({ apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', name: 'dns-pdb', namespace: ns.name });
  });

  test('an installed component that is unhealthy blocks (components-healthy) until it recovers', async () => {
    const apps = kubeConfig().makeApiClient(k8s.AppsV1Api);
    // A patch for the same reason as setReady: the Deployment controller writes this object's status meanwhile.
    const setImage = async (img: string) => {
      await apps.patchNamespacedDeployment({ name: 'dns', namespace: ns.name, body: [{ op: 'replace', path: '/spec/template/spec/containers/0/image', value: img }] });
    };
    const current = image(await pa.cluster.read({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'dns', namespace: ns.name }))!;
    // Someone rolled dns out by hand to an image that never gets Ready.
    await setImage(`${current}-unready`);
    await blockedBy('components-healthy', new RegExp(`component dns 1\\.\\d+\\.0: Deployment ${ns.name}/dns: `));
    await setImage(current);
    await proceeds();
  });

  test('a consent Lease defers (consent) until it is released', async () => {
    const lease = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: 'fleetlet-defer', namespace: ns.name },
      spec: { holderIdentity: 'nightly-batch', leaseDurationSeconds: 3600, renewTime: new Date().toISOString().replace('Z', '000Z') },
    } as KubeObject;
    await pa.cluster.apply(lease);
    await blockedBy('consent', new RegExp(`upgrades deferred by nightly-batch through Lease ${ns.name}/fleetlet-defer until `));
    await pa.cluster.remove({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', name: 'fleetlet-defer', namespace: ns.name });
    await proceeds();
  });

  test('a deferral held beyond maxDeferral is escalated in the status, not obeyed', async () => {
    const lease = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: 'fleetlet-defer', namespace: ns.name },
      spec: { holderIdentity: 'forgotten-job', leaseDurationSeconds: 86_400, renewTime: new Date().toISOString().replace('Z', '000Z') },
    } as KubeObject;
    await pa.cluster.apply(lease);
    try {
      await blockedBy('consent', /upgrades deferred by forgotten-job/);
      advanceTo(pa, pa.now().getTime() + HOUR + MIN);
      const a = await proceeds();
      const started = pa.journal.attempts.transitions(a.id).find((t) => t.phase === 'Upgrading')!;
      assert.match(started.message ?? '', /DeferralLimitExceeded: forgotten-job has deferred upgrades through Lease .*\/fleetlet-defer for 1h1m/);
    } finally {
      await pa.cluster.remove({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', name: 'fleetlet-defer', namespace: ns.name });
    }
  });

  test('a failing post-flight check fails the stage and rolls back (PostflightFailed)', async () => {
    const url = `http://127.0.0.1:${(prometheus.address() as AddressInfo).port}`;
    pa.policy.current = () => base({ checks: { postflight: [{ name: 'no-alerts', type: 'prometheus', url, alertFilter: '^(?!Watchdog$).*' }] } });
    firing = ['Watchdog', 'DNSErrorsHigh'];
    const before = image(await pa.cluster.read({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'dns', namespace: ns.name }));
    revision++;
    assert.equal((await pa.agent.offer(signer.sign(addonsRelease(ns.name, revision, versions(`1.${revision}.0`))))).accepted, true);
    const a = await pa.finished(revision);
    assert.equal(a.phase, 'RolledBack', `${a.reason}: ${a.message}`);
    assert.equal(a.reason, 'PostflightFailed');
    assert.match(a.message ?? '', /post-flight check\(s\) no-alerts failed after stage 0: no-alerts fail: 1 alert\(s\) firing that block upgrades .*: DNSErrorsHigh/);
    assert.deepEqual(
      pa.journal.attempts.checks(a.id).filter((c) => c.kind === 'postflight').map((c) => [c.stage, c.name, c.result]),
      [[0, 'no-alerts', 'fail']],
    );
    assert.equal(image(await pa.cluster.read({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'dns', namespace: ns.name })), before, 'dns is back on its previous version');

    // The alert clears: the next release passes its post-flight checks after every stage.
    firing = ['Watchdog'];
    revision++;
    assert.equal((await pa.agent.offer(signer.sign(addonsRelease(ns.name, revision, versions(`1.${revision}.0`))))).accepted, true);
    const ok = await proceeds();
    assert.deepEqual(
      pa.journal.attempts.checks(ok.id).filter((c) => c.kind === 'postflight').map((c) => [c.stage, c.name, c.result]),
      [
        [0, 'no-alerts', 'pass'],
        [1, 'no-alerts', 'pass'],
      ],
    );
  });
});
