// The policy gate's decisions with an injected clock and an in-memory
// cluster: windows, window fit, pre-flight checks, consent escalation,
// hot-reloaded policy, hub narrowing, and post-flight.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createPolicyGate, type GateData } from '../../src/agent/gate-policy.ts';
import type { GateContext, GateDecision } from '../../src/agent/gate.ts';
import { planRelease } from '../../src/agent/planner.ts';
import { DEFERRAL_META_KEY } from '../../src/agent/preflight/index.ts';
import { hubWindows, maintenancePolicy, type HubWindows, type Policy, type PolicyInput } from '../../src/protocol/policy.ts';
import { release as releaseSchema, type Release } from '../../src/protocol/release.ts';
import type { AttemptRecord } from '../../src/store/attempt-repo.ts';
import { Journal } from '../../src/store/journal.ts';
import { FakeCluster } from '../support/fake-cluster.ts';
import { addonsRelease, testSigner } from '../support/releases.ts';

const MIN = 60_000;
const signer = testSigner();

function policyOf(rest: Omit<PolicyInput, 'apiVersion' | 'kind'>): Policy {
  return maintenancePolicy.parse({ apiVersion: 'fleetlet.io/v1', kind: 'MaintenancePolicy', ...rest });
}

const nightly = { timeZone: 'UTC', windows: [{ name: 'nightly', cron: '0 22 * * *', duration: '2h' }], checks: { recheck: { initialBackoff: '30s', maxBackoff: '10m' } } };

interface Setup {
  clock: { t: number };
  journal: Journal;
  cluster: FakeCluster;
  attempt: AttemptRecord;
  release: Release;
  policy: { current: Policy | undefined };
  hub: { current: HubWindows | undefined };
  evaluate(stage?: number): Promise<GateDecision>;
  postflight(stage?: number): Promise<{ ok: true } | { ok: false; reason: string; message: string }>;
  ctx(stage?: number): GateContext;
}

function setup(rest: Omit<PolicyInput, 'apiVersion' | 'kind'> = nightly, opts: { critical?: boolean; start?: string; fetch?: typeof fetch } = {}): Setup {
  const clock = { t: Date.parse(opts.start ?? '2026-03-03T10:00:00Z') };
  const now = () => new Date(clock.t);
  const journal = Journal.open(':memory:', { now });
  const cluster = new FakeCluster();
  const input = addonsRelease('apps', 1, { dns: '1.0.0', proxy: '1.0.0', metrics: '1.0.0' }, { critical: opts.critical ?? false });
  const release = releaseSchema.parse(input);
  const stored = journal.releases.accept(release, signer.sign(input));
  const attempt = journal.attempts.create({ id: 'a1', releaseId: stored.id, revision: 1, releaseName: release.name, releaseVersion: release.version, plan: planRelease(release, []) });
  const policy = { current: policyOf(rest) as Policy | undefined };
  const hub = { current: undefined as HubWindows | undefined };
  const { gate, postflight } = createPolicyGate({
    policy: () => policy.current,
    hubWindows: () => hub.current,
    journal,
    cluster,
    now,
    random: () => 0.5,
    ...(opts.fetch ? { fetch: opts.fetch } : {}),
  });
  const ctx = (stage = 0): GateContext => ({ attempt, release, stage, now: now(), signal: new AbortController().signal });
  return { clock, journal, cluster, attempt, release, policy, hub, ctx, evaluate: (stage = 0) => gate.evaluate(ctx(stage)), postflight: (stage = 0) => postflight.run(ctx(stage)) };
}

function blocked(d: GateDecision): Extract<GateDecision, { go: false }> {
  assert.equal(d.go, false, 'expected the gate to block');
  return d as Extract<GateDecision, { go: false }>;
}

describe('policy gate: windows', () => {
  it('outside the window: WaitingForWindow, names when it opens, retries then; the dry-run runs meanwhile', async () => {
    const s = setup();
    const d = blocked(await s.evaluate());
    assert.equal(d.phase, 'WaitingForWindow');
    assert.equal(d.reason, 'OutsideWindow');
    assert.match(d.message, /the next window opens at 2026-03-03T22:00:00.000Z/);
    assert.equal(d.retryAt.toISOString(), '2026-03-03T22:00:00.000Z');
    const data = d.data as GateData;
    assert.deepEqual(data.checks?.map((c) => [c.name, c.result]), [['dry-run', 'pass']]);
    assert.equal(s.cluster.applied.filter((a) => a.dryRun).length, 3, 'stage 0 (dns: 2 objects, proxy: 1) dry-run');
    assert.equal(s.cluster.applied.filter((a) => !a.dryRun).length, 0, 'nothing changed while waiting');
    // Waiting again does not repeat the dry-run.
    await s.evaluate();
    assert.equal(s.cluster.applied.length, 3);
    assert.deepEqual(s.journal.attempts.checks(s.attempt.id).map((c) => [c.kind, c.name, c.result]), [['preflight', 'dry-run', 'pass']]);
  });

  it('a dry-run that the API server now rejects shows while waiting', async () => {
    const s = setup();
    s.cluster.rejectDryRun.set('dns', 'spec.replicas: Invalid value: -1');
    const d = blocked(await s.evaluate());
    assert.equal(d.reason, 'OutsideWindow');
    assert.match(d.message, /meanwhile dry-run fail: component dns: Deployment apps\/dns: spec.replicas: Invalid value/);
  });

  it('inside the window but too little time left: WindowTooShort until a long enough stretch', async () => {
    const s = setup(nightly, { start: '2026-03-03T23:59:30Z' });
    const d = blocked(await s.evaluate());
    assert.equal(d.phase, 'WaitingForWindow');
    assert.equal(d.reason, 'WindowTooShort');
    // No history: the estimate is the engine's deadline (at least 60 s) + soak.
    assert.equal((d.data as GateData).estimatedStageMs, 60_000);
    assert.match(d.message, /stage needs ~1m but allowed time ends at 2026-03-04T00:00:00.000Z \(30s left\)/);
    assert.equal(d.retryAt.toISOString(), '2026-03-04T22:00:00.000Z');
  });

  it('the estimate is the longest component of the stage, from its past durations', async () => {
    const s = setup(nightly, { start: '2026-03-03T23:50:00Z' });
    s.release.components.find((c) => c.name === 'dns')!.health.progressDeadlineSeconds = 1800;
    // No history: dns may take its whole 30 m deadline, more than the 10 m left; proxy's 60 s does not count.
    let d = blocked(await s.evaluate());
    assert.equal(d.reason, 'WindowTooShort');
    assert.equal((d.data as GateData).estimatedStageMs, 30 * MIN);
    // dns took 6 minutes each time before: 6m × 1.5 = 9m fits the 10 minutes left.
    for (let i = 0; i < 3; i++) {
      const past = s.journal.attempts.create({ id: `past-${i}`, releaseId: 1, revision: 1, releaseName: 'edge-addons', releaseVersion: '1.0.0', plan: s.attempt.plan });
      s.journal.attempts.transition(past.id, { phase: 'Failed', finished: true });
      s.journal.db.prepare(`INSERT INTO stage_timings (attempt_id, component, stage, started_at, finished_at, result, duration_ms) VALUES (?, 'dns', 0, ?, ?, 'Succeeded', ?)`).run(past.id, `2026-01-0${i + 1}T00:00:00Z`, `2026-01-0${i + 1}T00:06:00Z`, 6 * MIN);
    }
    d = (await s.evaluate()) as never;
    assert.equal(d.go, true);
    assert.equal(((d as { data?: GateData }).data)?.estimatedStageMs, 9 * MIN);
  });

  it('inside the window with every check passing: go, and every result journaled', async () => {
    const s = setup(nightly, { start: '2026-03-03T22:00:00Z' });
    const d = await s.evaluate();
    assert.equal(d.go, true);
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
    assert.equal(((d as { data?: GateData }).data?.checks ?? []).length, 8);
  });

  it('a blackout wins over the window; the hub can narrow but never widen', async () => {
    const s = setup({ ...nightly, blackouts: [{ name: 'freeze', from: '2026-03-03', to: '2026-03-03' }] }, { start: '2026-03-03T22:30:00Z' });
    let d = blocked(await s.evaluate());
    assert.equal(d.reason, 'Blackout');
    assert.equal(d.retryAt.toISOString(), '2026-03-04T22:00:00.000Z');
    s.policy.current = policyOf(nightly);
    assert.equal((await s.evaluate()).go, true);
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

  it('a critical release starts outside windows only where local policy allows', async () => {
    const s = setup(nightly, { critical: true });
    assert.equal(blocked(await s.evaluate()).reason, 'OutsideWindow');
    s.policy.current = policyOf({ ...nightly, critical: { mayStartOutsideWindows: true } });
    assert.equal((await s.evaluate()).go, true);
  });

  it('follows the policy getter (hot reload) and blocks while no policy has loaded', async () => {
    const s = setup();
    s.policy.current = undefined;
    const d = blocked(await s.evaluate());
    assert.equal(d.reason, 'NoPolicy');
    assert.equal(d.retryAt.getTime(), s.clock.t + 60_000);
    s.policy.current = policyOf({});
    assert.equal((await s.evaluate()).go, true, 'no windows configured: always allowed');
  });
});

describe('policy gate: pre-flight checks', () => {
  it('a failing check blocks with PreflightFailed, lists it, and backs off', async () => {
    const s = setup({ timeZone: 'UTC' });
    s.cluster.nodeList = [
      { name: 'n0', ready: true, labels: {} },
      { name: 'n1', ready: false, labels: {} },
    ];
    let d = blocked(await s.evaluate());
    assert.equal(d.phase, 'PreflightChecking');
    assert.equal(d.reason, 'PreflightFailed');
    assert.match(d.message, /nodes-ready fail: 1\/2 nodes Ready \(50%, policy needs 100%\); not Ready: n1/);
    // Full jitter with random() = 0.5: 30 s × 2^0 × 0.5, then 30 s × 2^1 × 0.5.
    assert.equal(d.retryAt.getTime() - s.clock.t, 15_000);
    d = blocked(await s.evaluate());
    assert.equal(d.retryAt.getTime() - s.clock.t, 30_000);
    const failing = (d.data as GateData).checks?.filter((c) => c.result !== 'pass').map((c) => c.name);
    assert.deepEqual(failing, ['nodes-ready']);
    // The threshold comes from the policy.
    s.policy.current = policyOf({ timeZone: 'UTC', checks: { builtin: { minReadyNodesPercent: 50 } } });
    assert.equal((await s.evaluate()).go, true);
  });

  it('an API server that does not answer is an error, which blocks too', async () => {
    const s = setup({});
    s.cluster.down = true;
    const d = blocked(await s.evaluate());
    assert.equal(d.reason, 'PreflightFailed');
    assert.match(d.message, /kubernetes-api error: the Kubernetes API did not answer/);
  });

  it('a consent Lease defers until it expires; beyond maxDeferral it is escalated, not obeyed', async () => {
    const s = setup({ consent: { leaseName: 'hold', namespace: 'ops', maxDeferral: '2h' } });
    const lease = (renew: number) => ({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: 'hold', namespace: 'ops' },
      spec: { holderIdentity: 'night-batch', leaseDurationSeconds: 600, renewTime: new Date(renew).toISOString() },
    });
    s.cluster.put(lease(s.clock.t));
    const first = s.clock.t;
    let d = blocked(await s.evaluate());
    assert.match(d.message, /consent fail: upgrades deferred by night-batch through Lease ops\/hold until 2026-03-03T10:10:00.000Z/);
    assert.equal(JSON.parse(s.journal.getMeta(DEFERRAL_META_KEY)!).firstSeenAt, new Date(first).toISOString());
    // An expired lease defers nothing.
    s.clock.t += 11 * MIN;
    assert.equal((await s.evaluate()).go, true);
    // Renewed: deferred again; measured from when this attempt first saw it.
    s.cluster.put(lease(s.clock.t));
    d = blocked(await s.evaluate());
    assert.match(d.message, /deferred for 11m so far/);
    s.clock.t = first + 2 * 3_600_000 + MIN;
    s.cluster.put(lease(s.clock.t));
    const go = await s.evaluate();
    assert.equal(go.go, true);
    assert.match((go as { message?: string }).message ?? '', /^DeferralLimitExceeded: night-batch has deferred upgrades through Lease ops\/hold for 2h1m/);
    const consent = s.journal.attempts.checks(s.attempt.id).filter((c) => c.name === 'consent').at(-1);
    assert.equal(consent?.result, 'pass');
    assert.match(consent?.message ?? '', /^DeferralLimitExceeded/);
  });

  it('a PodDisruptionBudget at zero allowed disruptions in a stage namespace blocks, named', async () => {
    const s = setup({});
    s.cluster.put({ apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: { name: 'db-pdb', namespace: 'apps' }, status: { disruptionsAllowed: 0, currentHealthy: 2, desiredHealthy: 2, expectedPods: 2 } } as never);
    s.cluster.put({ apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: { name: 'elsewhere', namespace: 'other' }, status: { disruptionsAllowed: 0 } } as never);
    const d = blocked(await s.evaluate());
    assert.match(d.message, /disruption-budgets fail: PodDisruptionBudget apps\/db-pdb allows 0 disruptions \(2 healthy, 2 required, 2 expected\)/);
    assert.doesNotMatch(d.message, /elsewhere/);
  });

  it('an installed component that is not healthy blocks; one not installed yet passes', async () => {
    const s = setup({});
    s.journal.installed.set({ component: 'dns', version: '0.9.0', digest: 'x', objects: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'dns', namespace: 'apps' }], attemptId: null });
    s.cluster.put({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'dns', namespace: 'apps', generation: 2 }, spec: { replicas: 2 }, status: { observedGeneration: 2, replicas: 2, updatedReplicas: 2, availableReplicas: 1 } } as never);
    const d = blocked(await s.evaluate());
    assert.match(d.message, /components-healthy fail: component dns 0.9.0: Deployment apps\/dns: 1 of 2 updated replicas available \(Rolling\)/);
    s.cluster.put({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'dns', namespace: 'apps', generation: 2 }, spec: { replicas: 2 }, status: { observedGeneration: 2, replicas: 2, updatedReplicas: 2, availableReplicas: 2 } } as never);
    assert.equal((await s.evaluate()).go, true);
  });

  it('another unfinished attempt blocks', async () => {
    const s = setup({});
    s.journal.attempts.create({ id: 'other', releaseId: 1, revision: 1, releaseName: 'x', releaseVersion: '1.0.0', plan: s.attempt.plan });
    const d = blocked(await s.evaluate());
    assert.match(d.message, /single-attempt fail: another attempt is unfinished: other/);
  });

  it('a release that does not support the cluster\'s Kubernetes version blocks', async () => {
    const s = setup({});
    s.release.kubernetesVersion.max = '1.30.0';
    const d = blocked(await s.evaluate());
    assert.match(d.message, /kubernetes-api fail: the cluster runs Kubernetes v1.35.0; release edge-addons 1.1.0 supports <= 1.30.0/);
  });

  it('policy checks whose runner is the cluster: kubernetesCondition', async () => {
    const s = setup({ checks: { preflight: [{ name: 'db-ready', type: 'kubernetesCondition', object: { apiVersion: 'example.io/v1', kind: 'Database', namespace: 'apps', name: 'db' }, conditionType: 'Ready' }] } });
    let d = blocked(await s.evaluate());
    assert.match(d.message, /db-ready fail: Database apps\/db \(example.io\/v1\) does not exist/);
    s.cluster.put({ apiVersion: 'example.io/v1', kind: 'Database', metadata: { name: 'db', namespace: 'apps' }, status: { conditions: [{ type: 'Ready', status: 'False', reason: 'Replicating' }] } } as never);
    d = blocked(await s.evaluate());
    assert.match(d.message, /db-ready fail: Database apps\/db Ready=False \(Replicating\); needs Ready=True/);
    s.cluster.put({ apiVersion: 'example.io/v1', kind: 'Database', metadata: { name: 'db', namespace: 'apps' }, status: { conditions: [{ type: 'Ready', status: 'True' }] } } as never);
    assert.equal((await s.evaluate()).go, true);
  });
});

describe('policy post-flight', () => {
  it('no postflight checks: ok; a failing one: PostflightFailed naming it, journaled as postflight', async () => {
    const s = setup({});
    assert.deepEqual(await s.postflight(), { ok: true });
    s.policy.current = policyOf({
      checks: { postflight: [{ name: 'db-ready', type: 'kubernetesCondition', object: { apiVersion: 'v1', kind: 'ConfigMap', namespace: 'apps', name: 'missing' }, conditionType: 'Ready' }] },
    });
    const r = await s.postflight(0);
    assert.equal(r.ok, false);
    assert.equal((r as { reason: string }).reason, 'PostflightFailed');
    assert.match((r as { message: string }).message, /^post-flight check\(s\) db-ready failed after stage 0: db-ready fail: ConfigMap apps\/missing/);
    assert.deepEqual(s.journal.attempts.checks(s.attempt.id).map((c) => [c.kind, c.stage, c.name, c.result]), [['postflight', 0, 'db-ready', 'fail']]);
  });
});
