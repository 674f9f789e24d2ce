// The policy gate's decisions, evaluated directly with an injected clock
// against the run's real control plane: windows, window fit, pre-flight
// checks, consent escalation, hot-reloaded policy, hub narrowing, and
// post-flight. Every cluster fact is real: the API server's version, the kwok
// nodes, objects created in the test's own namespace, dry-runs the API server
// rejects, and an API server that does not answer (a closed port).
import { withSharedNodes } from '../support/test-policy.ts';
import type { HubWindowsInput } from '../../src/protocol/policy.ts';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it, type TestContext } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { createPolicyGate, type GateData } from '../../src/agent/gate/gate-policy.ts';
import type { GateContext, GateDecision } from '../../src/agent/gate/gate.ts';
import { KubeClusterClient } from '../../src/agent/kube/cluster-client.ts';
import { planRelease } from '../../src/agent/upgrade/planner.ts';
import { DEFERRAL_META_KEY } from '../../src/agent/preflight/index.ts';
import { hubWindows, maintenancePolicy, type HubWindows, type Policy, type PolicyInput } from '../../src/protocol/policy.ts';
import { release as releaseSchema, type KubeObject, type Release } from '../../src/protocol/release.ts';
import type { AttemptRecord } from '../../src/store/attempt-repo.ts';
import { Journal } from '../../src/store/journal.ts';
import { eventually, kubeConfig, testNamespace, type TestNamespace } from '../support/cluster.ts';
import { addonsRelease, testSigner } from '../support/releases.ts';

const MIN = 60_000;
const signer = testSigner();

type PolicyRest = Omit<PolicyInput, 'apiVersion' | 'kind'>;

const nightly = { timeZone: 'UTC', windows: [{ name: 'nightly', cron: '0 22 * * *', duration: '2h' }], checks: { recheck: { initialBackoff: '30s', maxBackoff: '10m' } } } satisfies PolicyRest;

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

interface Setup {
  ns: TestNamespace;
  clock: { t: number };
  journal: Journal;
  cluster: KubeClusterClient;
  attempt: AttemptRecord;
  release: Release;
  policy: { current: Policy | undefined };
  hub: { current: HubWindows | undefined };
  /** A policy whose consent Lease (unless given) lives in the test's namespace, so no other test's Lease can defer this one. */
  policyOf(rest: PolicyRest): Policy;
  evaluate(stage?: number): Promise<GateDecision>;
  postflight(stage?: number): Promise<{ ok: true } | { ok: false; reason: string; message: string }>;
  ctx(stage?: number): GateContext;
}

interface SetupOptions {
  critical?: boolean;
  /** The hub's windows carried (signed) in the release itself. */
  releaseWindows?: HubWindowsInput;
  start?: string;
  /** The gate's cluster client; the real control plane's unless given. */
  cluster?: KubeClusterClient;
}

/** A gate over a fresh namespace (deleted after the test) holding the release's objects, and an attempt of its release. */
async function setup(t: TestContext, rest: PolicyRest = nightly, opts: SetupOptions = {}): Promise<Setup> {
  const ns = await testNamespace('gate');
  t.after(() => ns.dispose());
  const clock = { t: Date.parse(opts.start ?? '2026-03-03T10:00:00Z') };
  const now = () => new Date(clock.t);
  const journal = Journal.open(':memory:', { now });
  t.after(() => journal.close());
  const cluster = opts.cluster ?? new KubeClusterClient(kubeConfig());
  const input = addonsRelease(ns.name, 1, { dns: '1.0.0', proxy: '1.0.0', metrics: '1.0.0' }, { critical: opts.critical ?? false, ...(opts.releaseWindows ? { windows: opts.releaseWindows } : {}) });
  const release = releaseSchema.parse(input);
  const stored = journal.releases.accept(release, signer.sign(input));
  const attempt = journal.attempts.create({ id: 'a1', releaseId: stored.id, revision: 1, releaseName: release.name, releaseVersion: release.version, plan: planRelease(release, []) });
  const policyOf = (r: PolicyRest): Policy => maintenancePolicy.parse({ apiVersion: 'fleetlet.io/v1', kind: 'MaintenancePolicy', ...withSharedNodes(r), consent: { namespace: ns.name, ...r.consent } });
  const policy = { current: policyOf(rest) as Policy | undefined };
  const hub = { current: undefined as HubWindows | undefined };
  const { gate, postflight } = createPolicyGate({
    policy: () => policy.current,
    hubWindows: () => hub.current,
    journal,
    cluster,
    now,
    random: () => 0.5,
  });
  const ctx = (stage = 0): GateContext => ({ attempt, release, stage, now: now(), signal: new AbortController().signal });
  return { ns, clock, journal, cluster, attempt, release, policy, hub, policyOf, ctx, evaluate: (stage = 0) => gate.evaluate(ctx(stage)), postflight: (stage = 0) => postflight.run(ctx(stage)) };
}

function blocked(d: GateDecision): Extract<GateDecision, { go: false }> {
  assert.equal(d.go, false, `expected the gate to block: ${JSON.stringify(d)}`);
  return d as Extract<GateDecision, { go: false }>;
}

function passed(d: GateDecision): Extract<GateDecision, { go: true }> {
  assert.equal(d.go, true, `expected the gate to let the stage start: ${(d as { message?: string }).message}`);
  return d as Extract<GateDecision, { go: true }>;
}

/** The objects stage 0 would create; none may exist after evaluations that change nothing. */
async function stageZeroObjects(s: Setup): Promise<(KubeObject | undefined)[]> {
  return Promise.all([
    s.cluster.read({ apiVersion: 'v1', kind: 'ConfigMap', name: 'dns-config', namespace: s.ns.name }),
    s.cluster.read({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'dns', namespace: s.ns.name }),
    s.cluster.read({ apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'proxy', namespace: s.ns.name }),
  ]);
}

/** A KubeConfig with the real cluster's credentials whose server is a closed port: an API server that does not answer. */
function unreachableKubeConfig(): k8s.KubeConfig {
  const real = kubeConfig();
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    clusters: real.clusters.map((c) => ({ ...c, server: 'https://127.0.0.1:9' })),
    users: real.users,
    contexts: real.contexts,
    currentContext: real.currentContext,
  });
  return kc;
}

type Status = { observedGeneration?: number; replicas?: number; updatedReplicas?: number; availableReplicas?: number };
type WithStatus<S> = KubeObject & { metadata: { generation?: number }; status?: S };

/** A Deployment in the test's namespace whose pods kwok runs (an image tag containing "unready" never gets Ready). */
function deployment(ns: string, name: string, replicas: number, image: string): KubeObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: ns },
    spec: { replicas, selector: { matchLabels: { app: name } }, template: { metadata: { labels: { app: name } }, spec: { containers: [{ name, image }], terminationGracePeriodSeconds: 0 } } },
  } as KubeObject;
}

/** Waits until the deployment controller has rolled `name` out to `replicas` updated replicas, `available` of them available. */
function rolledOut(s: Setup, name: string, replicas: number, available: number): Promise<true> {
  return eventually(`Deployment ${name}: ${available} of ${replicas} updated replicas available`, async () => {
    const d = (await s.cluster.read({ apiVersion: 'apps/v1', kind: 'Deployment', name, namespace: s.ns.name })) as WithStatus<Status> | undefined;
    const st = d?.status;
    return st && st.observedGeneration === d.metadata.generation && st.replicas === replicas && st.updatedReplicas === replicas && (st.availableReplicas ?? 0) === available ? true : undefined;
  });
}

describe('policy gate: windows', () => {
  it('outside the window: WaitingForWindow, names when it opens, retries then; the dry-run runs meanwhile', async (t) => {
    const s = await setup(t);
    const d = blocked(await s.evaluate());
    assert.equal(d.phase, 'WaitingForWindow');
    assert.equal(d.reason, 'OutsideWindow');
    assert.match(d.message, /the next window opens at 2026-03-03T22:00:00.000Z/);
    assert.equal(d.retryAt.toISOString(), '2026-03-03T22:00:00.000Z');
    const data = d.data as GateData;
    assert.deepEqual(data.checks?.map((c) => [c.name, c.result]), [['dry-run', 'pass']]);
    // Stage 0 is dns (ConfigMap, Deployment) and proxy (DaemonSet): the API server accepted all three.
    assert.equal(data.checks?.[0]?.message, 'server-side dry-run accepted 3 object(s) of dns, proxy');
    assert.deepEqual(await stageZeroObjects(s), [undefined, undefined, undefined], 'nothing changed while waiting');
    // Waiting again does not repeat the dry-run.
    await s.evaluate();
    assert.deepEqual(s.journal.attempts.checks(s.attempt.id).map((c) => [c.kind, c.name, c.result]), [['preflight', 'dry-run', 'pass']]);
    assert.deepEqual(await stageZeroObjects(s), [undefined, undefined, undefined]);
  });

  it('a dry-run that the API server now rejects shows while waiting', async (t) => {
    const s = await setup(t);
    // An invalid manifest: the real API server's validation rejects it.
    const dns = s.release.components.find((c) => c.name === 'dns')!.manifests.find((m) => m.kind === 'Deployment') as KubeObject & { spec: { replicas: number } };
    dns.spec.replicas = -1;
    const d = blocked(await s.evaluate());
    assert.equal(d.reason, 'OutsideWindow');
    assert.match(d.message, new RegExp(`meanwhile dry-run fail: component dns: Deployment ${s.ns.name}/dns: .*spec\\.replicas: Invalid value: -1`));
    assert.deepEqual((d.data as GateData).checks?.map((c) => [c.name, c.result]), [['dry-run', 'fail']]);
    assert.deepEqual(await stageZeroObjects(s), [undefined, undefined, undefined], 'nothing created');
  });

  it('inside the window but too little time left: WindowTooShort until a long enough stretch', async (t) => {
    const s = await setup(t, nightly, { start: '2026-03-03T23:59:30Z' });
    const d = blocked(await s.evaluate());
    assert.equal(d.phase, 'WaitingForWindow');
    assert.equal(d.reason, 'WindowTooShort');
    // No history: the estimate is the engine's deadline (at least 60 s) + soak.
    assert.equal((d.data as GateData).estimatedStageMs, 60_000);
    assert.match(d.message, /stage needs ~1m but allowed time ends at 2026-03-04T00:00:00.000Z \(30s left\)/);
    assert.equal(d.retryAt.toISOString(), '2026-03-04T22:00:00.000Z');
  });

  it('the estimate is the longest component of the stage, from its past durations', async (t) => {
    const s = await setup(t, nightly, { start: '2026-03-03T23:50:00Z' });
    s.release.components.find((c) => c.name === 'dns')!.health.progressDeadlineSeconds = 1800;
    // No history: dns may take its whole 30 m deadline, more than the 10 m left; proxy's 60 s does not count.
    const d = blocked(await s.evaluate());
    assert.equal(d.reason, 'WindowTooShort');
    assert.equal((d.data as GateData).estimatedStageMs, 30 * MIN);
    // dns took 6 minutes each time before: 6m × 1.5 = 9m fits the 10 minutes left.
    for (let i = 0; i < 3; i++) {
      const past = s.journal.attempts.create({ id: `past-${i}`, releaseId: 1, revision: 1, releaseName: 'edge-addons', releaseVersion: '1.0.0', plan: s.attempt.plan });
      s.journal.attempts.transition(past.id, { phase: 'Failed', finished: true });
      const at = s.clock.t;
      s.clock.t = Date.parse(`2026-01-0${i + 1}T00:00:00Z`);
      s.journal.attempts.stageStarted(past.id, 'dns', 0);
      s.clock.t += 6 * MIN;
      s.journal.attempts.stageFinished(past.id, 'dns', 'Succeeded');
      s.clock.t = at;
    }
    const go = passed(await s.evaluate());
    assert.equal((go.data as GateData | undefined)?.estimatedStageMs, 9 * MIN);
  });

  it('inside the window with every check passing: go, and every result journaled', async (t) => {
    const s = await setup(t, nightly, { start: '2026-03-03T22:00:00Z' });
    const d = passed(await s.evaluate());
    const names = s.journal.attempts.checks(s.attempt.id).map((c) => `${c.kind}/${c.name}/${c.result}`);
    assert.deepEqual(names.sort(), [
      'preflight/components-healthy/pass',
      'preflight/consent/pass',
      'preflight/disruption-budgets/pass',
      'preflight/dry-run/pass',
      'preflight/journal-disk/pass',
      'preflight/kubernetes-api/pass',
      'preflight/nodes-ready/pass',
      'preflight/single-attempt/pass',
    ]);
    const checks = (d.data as GateData | undefined)?.checks ?? [];
    assert.equal(checks.length, 8);
    // The facts come from the real cluster: its version and its Ready kwok nodes.
    const version = await s.cluster.serverVersion();
    assert.equal(version, process.env.FLEETLET_TEST_KUBE_VERSION);
    assert.equal(checks.find((c) => c.name === 'kubernetes-api')?.message, `API reachable, Kubernetes ${version}`);
    assert.match(checks.find((c) => c.name === 'nodes-ready')?.message ?? '', /^(\d+)\/\1 nodes Ready \(100%, policy needs 100%\)$/);
    assert.equal(checks.find((c) => c.name === 'dry-run')?.message, 'server-side dry-run accepted 3 object(s) of dns, proxy');
    assert.deepEqual(await stageZeroObjects(s), [undefined, undefined, undefined], 'the gate changes nothing');
  });

  it('windows signed into the release (a rollout\'s window) narrow local policy the same way', async (t) => {
    // Local: nightly 22:00-24:00. The release's hub window: 23:00 for 5 h. Effective: 23:00-24:00.
    const s = await setup(t, nightly, { start: '2026-03-03T22:30:00Z', releaseWindows: { timeZone: 'UTC', windows: [{ name: 'rollout-r1', cron: '0 23 * * *', duration: '5h' }] } });
    const d = blocked(await s.evaluate());
    assert.equal(d.phase, 'WaitingForWindow');
    assert.equal(d.reason, 'HubRestricted');
    assert.equal(d.retryAt.toISOString(), '2026-03-03T23:00:00.000Z');
    s.clock.t = Date.parse('2026-03-03T23:10:00Z');
    passed(await s.evaluate());
    // Past local midnight the hub window is still open, but local policy closed: never widened.
    s.clock.t = Date.parse('2026-03-04T00:30:00Z');
    assert.equal(blocked(await s.evaluate()).phase, 'WaitingForWindow');
  });

  it('a blackout wins over the window; the hub can narrow but never widen', async (t) => {
    const s = await setup(t, { ...nightly, blackouts: [{ name: 'freeze', from: '2026-03-03', to: '2026-03-03' }] }, { start: '2026-03-03T22:30:00Z' });
    let d = blocked(await s.evaluate());
    assert.equal(d.reason, 'Blackout');
    assert.equal(d.retryAt.toISOString(), '2026-03-04T22:00:00.000Z');
    s.policy.current = s.policyOf(nightly);
    passed(await s.evaluate());
    s.hub.current = hubWindows.parse({ timeZone: 'UTC', windows: [{ name: 'hub-late', cron: '0 23 * * *', duration: '5h' }] });
    d = blocked(await s.evaluate());
    assert.equal(d.reason, 'HubRestricted');
    assert.equal(d.retryAt.toISOString(), '2026-03-03T23:00:00.000Z');
    // The hub's window runs to 04:00, but local policy still closes at 24:00: it never widens.
    s.clock.t = Date.parse('2026-03-04T00:30:00Z');
    d = blocked(await s.evaluate());
    assert.equal(d.reason, 'OutsideWindow');
    assert.equal(d.retryAt.toISOString(), '2026-03-04T23:00:00.000Z');
  });

  it('a critical release starts outside windows only where local policy allows', async (t) => {
    const s = await setup(t, nightly, { critical: true });
    assert.equal(blocked(await s.evaluate()).reason, 'OutsideWindow');
    s.policy.current = s.policyOf({ ...nightly, critical: { mayStartOutsideWindows: true } });
    passed(await s.evaluate());
  });

  it('follows the policy getter (hot reload) and blocks while no policy has loaded', async (t) => {
    const s = await setup(t);
    s.policy.current = undefined;
    const d = blocked(await s.evaluate());
    assert.equal(d.reason, 'NoPolicy');
    assert.equal(d.retryAt.getTime(), s.clock.t + 60_000);
    s.policy.current = s.policyOf({});
    passed(await s.evaluate());
  });
});

describe('policy gate: pre-flight checks', () => {
  it('a node that is not Ready fails nodes-ready, listed, with a backoff; the threshold comes from the policy', async (t) => {
    const s = await setup(t, { timeZone: 'UTC' });
    const core = kubeConfig().makeApiClient(k8s.CoreV1Api);
    // A node nobody runs (kwok manages only nodes annotated for it): it never becomes Ready.
    // Tainted so that nothing is scheduled onto it; named to sort after other tests' extra nodes.
    const name = `fleetlet-gate-notready-${randomBytes(3).toString('hex')}`;
    // A pool of our own: kwok-node-0 (Ready) and a node nobody runs (kwok manages only nodes
    // annotated for it), which never becomes Ready. Only this test's policy selects the pool,
    // so other tests' agents never see the not-Ready node. Tainted so nothing lands on it.
    const poolKey = `fleetlet.io/pool-${name}`;
    await core.createNode({ body: { metadata: { name, labels: { 'fleetlet.io/test': 'true', [poolKey]: 'in' } }, spec: { taints: [{ key: 'fleetlet.io/test-node', value: 'not-ready', effect: 'NoSchedule' }] } } });
    t.after(() => core.deleteNode({ name }).catch(() => {}));
    const label = (add: boolean) => core.patchNode({ name: 'kwok-node-0', body: [add ? { op: 'add', path: `/metadata/labels/${poolKey.replace('/', '~1')}`, value: 'in' } : { op: 'remove', path: `/metadata/labels/${poolKey.replace('/', '~1')}` }] });
    await label(true);
    t.after(() => label(false).catch(() => {}));
    s.policy.current = s.policyOf({ timeZone: 'UTC', checks: { builtin: { nodeSelector: { [poolKey]: 'in' } } } });

    let d = blocked(await s.evaluate());
    assert.equal(d.phase, 'PreflightChecking');
    assert.equal(d.reason, 'PreflightFailed');
    const m = /nodes-ready fail: (\d+)\/(\d+) nodes Ready \((\S+), policy needs 100%\); not Ready: ([^;]+)/.exec(d.message);
    assert.ok(m, d.message);
    const [ready, total, notReady] = [Number(m[1]), Number(m[2]), m[4]!.split(', ')];
    assert.deepEqual(notReady, [name], 'only the pool\'s not-Ready node is listed');
    assert.deepEqual([ready, total], [1, 2]);
    // Full jitter with random() = 0.5: 30 s × 2^0 × 0.5, then 30 s × 2^1 × 0.5.
    assert.equal(d.retryAt.getTime() - s.clock.t, 15_000);
    d = blocked(await s.evaluate());
    assert.equal(d.retryAt.getTime() - s.clock.t, 30_000);
    const failing = (d.data as GateData).checks?.filter((c) => c.result !== 'pass').map((c) => c.name);
    assert.deepEqual(failing, ['nodes-ready']);
    // The threshold comes from the policy: the same pool passes at 50%.
    s.policy.current = s.policyOf({ timeZone: 'UTC', checks: { builtin: { minReadyNodesPercent: 50, nodeSelector: { [poolKey]: 'in' } } } });
    const go = passed(await s.evaluate());
    assert.match((go.data as GateData | undefined)?.checks?.find((c) => c.name === 'nodes-ready')?.message ?? '', new RegExp(`1/2 nodes Ready \\(50%, policy needs 50%\\); not Ready: ${name}`));
  });

  it('an API server that does not answer is an error, which blocks too', async (t) => {
    const s = await setup(t, {}, { cluster: new KubeClusterClient(unreachableKubeConfig()) });
    const d = blocked(await s.evaluate());
    assert.equal(d.reason, 'PreflightFailed');
    assert.match(d.message, /kubernetes-api error: the Kubernetes API did not answer: read \/version: /);
    const results = Object.fromEntries(((d.data as GateData).checks ?? []).map((c) => [c.name, c.result]));
    // Everything that asks the API server errors (not fails: nothing is known to be wrong); the rest passes.
    assert.deepEqual(results, {
      'kubernetes-api': 'error',
      'nodes-ready': 'error',
      'components-healthy': 'pass',
      'disruption-budgets': 'error',
      'journal-disk': 'pass',
      'single-attempt': 'pass',
      consent: 'error',
      'dry-run': 'error',
    });
  });

  it('a consent Lease defers until it expires; beyond maxDeferral it is escalated, not obeyed', async (t) => {
    const s = await setup(t, { consent: { leaseName: 'hold', maxDeferral: '2h' } });
    const ns = s.ns.name;
    const holdLease = (renew: number) =>
      s.cluster.apply({
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: 'hold', namespace: ns },
        // MicroTime: the API server wants microseconds.
        spec: { holderIdentity: 'night-batch', leaseDurationSeconds: 600, renewTime: new Date(renew).toISOString().replace('Z', '000Z') },
      } as KubeObject);
    await holdLease(s.clock.t);
    const first = s.clock.t;
    let d = blocked(await s.evaluate());
    assert.match(d.message, new RegExp(`consent fail: upgrades deferred by night-batch through Lease ${ns}/hold until 2026-03-03T10:10:00.000Z`));
    assert.equal(JSON.parse(s.journal.getMeta(DEFERRAL_META_KEY)!).firstSeenAt, new Date(first).toISOString());
    // An expired lease defers nothing.
    s.clock.t += 11 * MIN;
    passed(await s.evaluate());
    // Renewed: deferred again; measured from when this attempt first saw it.
    await holdLease(s.clock.t);
    d = blocked(await s.evaluate());
    assert.match(d.message, /deferred for 11m so far/);
    s.clock.t = first + 2 * 3_600_000 + MIN;
    await holdLease(s.clock.t);
    const go = passed(await s.evaluate());
    assert.match(go.message ?? '', new RegExp(`^DeferralLimitExceeded: night-batch has deferred upgrades through Lease ${ns}/hold for 2h1m`));
    const consent = s.journal.attempts.checks(s.attempt.id).filter((c) => c.name === 'consent').at(-1);
    assert.equal(consent?.result, 'pass');
    assert.match(consent?.message ?? '', /^DeferralLimitExceeded/);
  });

  it('a PodDisruptionBudget at zero allowed disruptions in a stage namespace blocks, named', async (t) => {
    const s = await setup(t, {});
    const other = await testNamespace('gate-other');
    t.after(() => other.dispose());
    const pdb = (namespace: string, name: string, app: string, minAvailable: number) =>
      s.cluster.apply({ apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: { name, namespace }, spec: { minAvailable, selector: { matchLabels: { app } } } } as KubeObject);
    type PdbStatus = { expectedPods?: number; currentHealthy?: number; desiredHealthy?: number; disruptionsAllowed?: number };
    const pdbStatus = (namespace: string, name: string, ok: (st: PdbStatus) => boolean) =>
      eventually(`PodDisruptionBudget ${namespace}/${name} evaluated`, async () => {
        const p = (await s.cluster.read({ apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', name, namespace })) as WithStatus<PdbStatus> | undefined;
        return p?.status && ok(p.status) ? true : undefined;
      });
    // A workload with two Ready pods, protected by a budget that needs both.
    await s.cluster.apply(deployment(s.ns.name, 'db', 2, 'registry.example/db:1.0.0'));
    await rolledOut(s, 'db', 2, 2);
    await pdb(s.ns.name, 'db-pdb', 'db', 2);
    await pdbStatus(s.ns.name, 'db-pdb', (st) => st.expectedPods === 2 && st.currentHealthy === 2 && st.disruptionsAllowed === 0);
    // Also at zero, but in a namespace the stage does not touch.
    await pdb(other.name, 'elsewhere', 'nothing', 1);
    await pdbStatus(other.name, 'elsewhere', (st) => st.disruptionsAllowed === 0 && st.desiredHealthy === 1);

    const d = blocked(await s.evaluate());
    assert.match(d.message, new RegExp(`disruption-budgets fail: PodDisruptionBudget ${s.ns.name}/db-pdb allows 0 disruptions \\(2 healthy, 2 required, 2 expected\\)`));
    assert.doesNotMatch(d.message, /elsewhere/);
    // Once the budget allows a disruption, it no longer blocks (the other namespace's still does not count).
    await pdb(s.ns.name, 'db-pdb', 'db', 1);
    await pdbStatus(s.ns.name, 'db-pdb', (st) => st.disruptionsAllowed === 1);
    const go = passed(await s.evaluate());
    assert.equal((go.data as GateData | undefined)?.checks?.find((c) => c.name === 'disruption-budgets')?.message, `1 PodDisruptionBudget(s) in ${s.ns.name}; none at zero allowed disruptions`);
  });

  it('an installed component that is not healthy blocks; one not installed yet passes', async (t) => {
    const s = await setup(t, {});
    s.journal.installed.set({ component: 'dns', version: '0.9.0', digest: 'x', objects: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'dns', namespace: s.ns.name }], attemptId: null });
    // dns 0.9.0 as installed, but its pods never get Ready.
    await s.cluster.apply(deployment(s.ns.name, 'dns', 2, 'registry.example/dns:0.9.0-unready'));
    await rolledOut(s, 'dns', 2, 0);
    const d = blocked(await s.evaluate());
    assert.match(d.message, new RegExp(`components-healthy fail: component dns 0.9.0: Deployment ${s.ns.name}/dns: 0 of 2 updated replicas available \\(Rolling\\)`));
    assert.deepEqual((d.data as GateData).checks?.filter((c) => c.result !== 'pass').map((c) => c.name), ['components-healthy']);
    // Rolled out to an image that gets Ready: healthy; proxy and metrics are not installed and do not count.
    await s.cluster.apply(deployment(s.ns.name, 'dns', 2, 'registry.example/dns:0.9.0'));
    await rolledOut(s, 'dns', 2, 2);
    const go = passed(await s.evaluate());
    assert.equal((go.data as GateData | undefined)?.checks?.find((c) => c.name === 'components-healthy')?.message, '1 installed workload(s) of 3 touched component(s) healthy');
  });

  it('another unfinished attempt blocks', async (t) => {
    const s = await setup(t, {});
    s.journal.attempts.create({ id: 'other', releaseId: 1, revision: 1, releaseName: 'x', releaseVersion: '1.0.0', plan: s.attempt.plan });
    const d = blocked(await s.evaluate());
    assert.match(d.message, /single-attempt fail: another attempt is unfinished: other/);
  });

  it('a release that does not support the cluster\'s Kubernetes version blocks', async (t) => {
    const s = await setup(t, {});
    const version = await s.cluster.serverVersion();
    const [, major, minor] = /^v?(\d+)\.(\d+)\./.exec(version) ?? [];
    assert.ok(major && minor && Number(minor) > 0, `the API server's version ${version}`);
    // One minor below the real API server's.
    const max = `${major}.${Number(minor) - 1}.0`;
    s.release.kubernetesVersion.max = max;
    const d = blocked(await s.evaluate());
    assert.match(d.message, new RegExp(`kubernetes-api fail: the cluster runs Kubernetes ${escape(version)}; release edge-addons 1.1.0 supports <= ${escape(max)}`));
    // Up to the real minor: supported.
    s.release.kubernetesVersion.max = `${major}.${minor}.999`;
    passed(await s.evaluate());
  });

  it('policy checks whose runner is the cluster: kubernetesCondition', async (t) => {
    // A real custom resource type; status is plain data (no status subresource), so the test can set conditions.
    const group = `g${randomBytes(4).toString('hex')}.fleetlet.test`;
    const crds = kubeConfig().makeApiClient(k8s.ApiextensionsV1Api);
    const crdName = `databases.${group}`;
    await crds.createCustomResourceDefinition({
      body: {
        metadata: { name: crdName, labels: { 'fleetlet.io/test': 'true' } },
        spec: {
          group,
          scope: 'Namespaced',
          names: { plural: 'databases', singular: 'database', kind: 'Database', listKind: 'DatabaseList' },
          versions: [
            {
              name: 'v1',
              served: true,
              storage: true,
              schema: {
                openAPIV3Schema: {
                  type: 'object',
                  properties: {
                    status: {
                      type: 'object',
                      properties: {
                        conditions: { type: 'array', items: { type: 'object', properties: { type: { type: 'string' }, status: { type: 'string' }, reason: { type: 'string' }, message: { type: 'string' } } } },
                      },
                    },
                  },
                },
              },
            },
          ],
        },
      },
    });
    t.after(() => crds.deleteCustomResourceDefinition({ name: crdName }).catch(() => {}));
    await eventually(`CRD ${crdName} established`, async () => {
      const crd = await crds.readCustomResourceDefinition({ name: crdName });
      return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') ? true : undefined;
    });

    const apiVersion = `${group}/v1`;
    const s = await setup(t, {});
    s.policy.current = s.policyOf({ checks: { preflight: [{ name: 'db-ready', type: 'kubernetesCondition', object: { apiVersion, kind: 'Database', namespace: s.ns.name, name: 'db' }, conditionType: 'Ready' }] } });
    const database = (conditions: { type: string; status: string; reason?: string }[]) =>
      s.cluster.apply({ apiVersion, kind: 'Database', metadata: { name: 'db', namespace: s.ns.name }, status: { conditions } } as KubeObject);

    let d = blocked(await s.evaluate());
    assert.match(d.message, new RegExp(`db-ready fail: Database ${s.ns.name}/db \\(${escape(apiVersion)}\\) does not exist`));
    await database([{ type: 'Ready', status: 'False', reason: 'Replicating' }]);
    d = blocked(await s.evaluate());
    assert.match(d.message, new RegExp(`db-ready fail: Database ${s.ns.name}/db Ready=False \\(Replicating\\); needs Ready=True`));
    await database([{ type: 'Ready', status: 'True' }]);
    passed(await s.evaluate());
  });
});

describe('policy post-flight', () => {
  it('no postflight checks: ok; a failing one: PostflightFailed naming it, journaled as postflight', async (t) => {
    const s = await setup(t, {});
    assert.deepEqual(await s.postflight(), { ok: true });
    s.policy.current = s.policyOf({
      checks: { postflight: [{ name: 'db-ready', type: 'kubernetesCondition', object: { apiVersion: 'v1', kind: 'ConfigMap', namespace: s.ns.name, name: 'missing' }, conditionType: 'Ready' }] },
    });
    const r = await s.postflight(0);
    assert.equal(r.ok, false);
    assert.equal((r as { reason: string }).reason, 'PostflightFailed');
    assert.match((r as { message: string }).message, new RegExp(`^post-flight check\\(s\\) db-ready failed after stage 0: db-ready fail: ConfigMap ${s.ns.name}/missing \\(v1\\) does not exist`));
    assert.deepEqual(s.journal.attempts.checks(s.attempt.id).map((c) => [c.kind, c.stage, c.name, c.result]), [['postflight', 0, 'db-ready', 'fail']]);
  });
});
