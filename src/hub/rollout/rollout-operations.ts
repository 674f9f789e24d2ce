// Rollouts as operations on the hub: create, tick, pause, resume, cancel,
// roll back, and the status an operator reads. tick() applies the pure
// planner's decision: it records what it saw and sends the target to the
// clusters whose turn it is, in one transaction, then pushes the signed
// documents to connected agents once that committed (persist before acting).
import { release as releaseSchema, type Release } from '../../protocol/release.ts';
import { pauseRequest, rollbackRequest, rolloutRequest, rolloutStrategy, type RollbackResult, type RolloutClusterView, type RolloutView } from '../../protocol/rollout.ts';
import { ApiError } from '../api-error.ts';
import { setDesiredRelease } from '../cluster-operations.ts';
import { releaseRequest } from '../../protocol/hub-api.ts';
import type { HubContext } from '../hub-context.ts';
import type { RolloutRecord } from '../store/rollout-repo.ts';
import { groupClusters, matchesLabels, matchesSelector, type Candidate } from './cluster-selection.ts';
import { issueOverride } from './override-delivery.ts';
import { clusterState, overrideOutcome, releaseOutcome } from './observe.ts';
import { planWave, resolveLimit, type ClusterState, type WaveDecision } from './plan-wave.ts';
import { compileRolloutWindow } from './rollout-window.ts';
import { limitsOf, type Limits, type StoredSpec } from './rollout-spec.ts';

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

interface Evaluation {
  record: RolloutRecord;
  spec: StoredSpec;
  limits: Limits;
  groups: { name: string; mandatory: boolean }[];
  states: ClusterState[];
  members: Awaited<ReturnType<HubContext['rollouts']['members']>>;
  window: { open: boolean; nextOpeningAt: number | null } | undefined;
  decision: WaveDecision;
}

async function evaluate(ctx: HubContext, record: RolloutRecord, now: number, mayStart: boolean): Promise<Evaluation> {
  const spec = record.spec;
  const t = spec.target;
  const members = await ctx.rollouts.members(record.name, t.kind === 'Override' ? t.override.name : undefined);
  const states = members.map((m) => {
    const outcome = t.kind === 'Override' ? overrideOutcome(m, t.override.name, t.override.version, t.withdraw === true) : releaseOutcome(m);
    return clusterState(m, outcome, now, ctx.leaseMs);
  });
  const groups = await ctx.rollouts.groups(record.name);
  const limits = limitsOf(spec, states.length);
  const window = spec.window ? compileRolloutWindow(spec.window).stateAt(now) : undefined;
  const decision = planWave(
    {
      strategy: spec.strategy.type,
      ...limits,
      unknownClusters: spec.unknownClusters,
      phase: record.phase,
      reason: record.reason,
      message: record.message,
      acknowledgedFailures: record.acknowledgedFailures,
      acknowledgedMandatoryFailures: record.acknowledgedMandatoryFailures,
      groups,
      clusters: states,
      ...(window ? { window } : {}),
      mayStart,
    },
    now,
  );
  return { record, spec, limits, groups, states, members, window, decision };
}

async function requireRollout(ctx: HubContext, name: string): Promise<RolloutRecord> {
  const r = await ctx.rollouts.get(name);
  if (!r) throw new ApiError(404, 'NotFound', `no rollout "${name}"`);
  return r;
}

// ------------------------------------------------------------------ create

export async function createRollout(ctx: HubContext, body: unknown): Promise<RolloutView> {
  const parsed = rolloutRequest.safeParse(body);
  if (!parsed.success) throw new ApiError(400, 'InvalidRollout', 'the rollout request is invalid', parsed.error.issues);
  const req = parsed.data;
  if (await ctx.rollouts.exists(req.name)) throw new ApiError(409, 'AlreadyExists', `a rollout "${req.name}" exists; pick another name`);
  // Record what is true now first: a rollout the status API already shows as
  // finished must not count as active in the conflict check below.
  await tickRollouts(ctx);
  const spec: StoredSpec = { ...req };
  const target = req.target;
  if (target.kind === 'Release') checkRelease(ctx, target.release);
  if (target.kind === 'Override') {
    // An override only reaches clusters on an affected release version.
    const a = target.override.appliesTo;
    const versions = req.selector.runningRelease?.versions?.filter((v) => a.versions.includes(v)) ?? a.versions;
    spec.selector = { ...req.selector, runningRelease: { name: a.releaseName, versions } };
    const other = (await ctx.rollouts.activeTargets()).find((r) => {
      const s = r.spec;
      return s.target.kind === 'Override' && s.target.override.name === target.override.name;
    });
    if (other) throw new ApiError(409, 'OverrideInActiveRollout', `override "${target.override.name}" is being rolled out by "${other.name}": cancel it first`);
  }

  const candidates = await selectCandidates(ctx, spec.selector);
  if (candidates.length === 0) throw new ApiError(400, 'NoClusters', 'the selector matches no accepted cluster');
  if (target.kind === 'Release') {
    const busy = await releaseConflicts(ctx, candidates.map((c) => c.id));
    if (busy.length > 0) {
      throw new ApiError(409, 'ClusterInActiveRollout', `${busy.length} selected cluster(s) are in another active release rollout: cancel it or narrow the selector`, busy.slice(0, 50));
    }
  }
  const grouping = groupClusters(candidates, req.groups, req.restGroupSize);
  const createdAt = ctx.now().toISOString();
  if (target.kind === 'Override') await ctx.overrides.define(target.override, false, createdAt);
  await ctx.rollouts.create({ name: req.name, spec, rollbackOf: null, createdAt }, grouping.groups, grouping.members);
  ctx.log.info({ rollout: req.name, clusters: candidates.length, groups: grouping.groups.length, strategy: req.strategy.type }, 'rollout created');
  await tickRollout(ctx, req.name);
  return rolloutStatus(ctx, req.name);
}

/** Accepted clusters the selector matches now. */
async function selectCandidates(ctx: HubContext, selector: StoredSpec['selector']): Promise<Candidate[]> {
  const out: Candidate[] = [];
  for (const c of await ctx.clusters.list()) {
    if (c.status !== 'Accepted') continue;
    const up = await ctx.aggregate.upgrade(c.id);
    const cand: Candidate = { id: c.id, labels: c.labels, running: up?.runningName && up.runningVersion ? { name: up.runningName, version: up.runningVersion } : null };
    if (matchesSelector(cand, selector)) out.push(cand);
  }
  return out;
}

/**
 * membership Dynamic, before a wave: clusters that left the selection (or
 * were deregistered) and were not counted yet drop out; clusters that newly
 * match join at the end of their group: the first named group whose
 * selector matches, else the last rest group (added when there is none).
 * A newcomer in another active release rollout waits until that one ends.
 */
/** True when membership changed. */
async function reselect(ctx: HubContext, record: RolloutRecord, nowMs: number): Promise<boolean> {
  const spec = record.spec;
  const current = await evaluate(ctx, record, nowMs, false);
  const selected = new Map((await selectCandidates(ctx, spec.selector)).map((c) => [c.id, c]));
  const leaving = current.states.filter((st, i) => !selected.has(st.id) && !isCounted(current.decision.clusters[i]?.status)).map((st) => st.id);
  if (leaving.length > 0) {
    await ctx.rollouts.removeMembers(record.name, leaving);
    ctx.log.info({ rollout: record.name, clusters: leaving.slice(0, 20), count: leaving.length }, 'clusters left the rollout (membership Dynamic)');
  }
  const members = new Set(current.states.map((st) => st.id));
  let joining = [...selected.values()].filter((c) => !members.has(c.id)).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  if (spec.target.kind !== 'Override') {
    const busy = new Set((await releaseConflicts(ctx, joining.map((c) => c.id))).map((b) => b.clusterId));
    joining = joining.filter((c) => !busy.has(c.id));
  }
  if (joining.length === 0) return leaving.length > 0;
  const groups = current.groups;
  const newGroups: { name: string; mandatory: boolean }[] = [];
  const restIdx = groups.map((g, i) => (/^rest(-\d+)?$/.test(g.name) ? i : -1)).filter((i) => i >= 0).at(-1);
  const additions = joining.map((c) => {
    const named = spec.groups.find((g) => matchesLabels(c.labels, g.selector, c.id));
    const idx = named ? groups.findIndex((g) => g.name === named.name) : -1;
    if (idx >= 0) return { clusterId: c.id, group: idx };
    if (restIdx !== undefined) return { clusterId: c.id, group: restIdx };
    if (newGroups.length === 0) newGroups.push({ name: 'rest', mandatory: false });
    return { clusterId: c.id, group: groups.length };
  });
  await ctx.rollouts.addMembers(record.name, newGroups, additions);
  ctx.log.info({ rollout: record.name, clusters: joining.slice(0, 20).map((c) => c.id), count: joining.length }, 'clusters joined the rollout (membership Dynamic)');
  return true;
}

/** Counted: the cluster's result in this rollout is final. */
const isCounted = (status: string | undefined): boolean => status === 'Succeeded' || status === 'Failed' || status === 'TimedOut';

function checkRelease(ctx: HubContext, body: unknown): void {
  const req = releaseRequest.safeParse(body);
  if (!req.success) throw new ApiError(400, 'InvalidRelease', 'the release request is invalid', req.error.issues);
  const { ttlSeconds: _ttl, ...rest } = req.data;
  const now = ctx.now();
  const check = releaseSchema.safeParse({ apiVersion: 'fleetlet.io/v1', kind: 'Release', ...rest, revision: 1, issuedAt: now.toISOString(), expiresAt: new Date(now.getTime() + 1000).toISOString() });
  if (!check.success) throw new ApiError(400, 'InvalidRelease', 'the release does not validate', check.error.issues);
}

/** Clusters already in an active rollout that sends releases (a release or a rollback). */
async function releaseConflicts(ctx: HubContext, ids: readonly string[]): Promise<{ clusterId: string; rollout: string }[]> {
  const releaseRollouts = new Set((await ctx.rollouts.activeTargets()).filter((r) => r.spec.target.kind !== 'Override').map((r) => r.name));
  if (releaseRollouts.size === 0) return [];
  const memberships = await ctx.rollouts.activeMemberships();
  const out: { clusterId: string; rollout: string }[] = [];
  for (const id of ids) {
    const r = memberships.get(id);
    if (r !== undefined && releaseRollouts.has(r)) out.push({ clusterId: id, rollout: r });
  }
  return out;
}

// ------------------------------------------------------------------ tick

export interface TickResult {
  rollout: string;
  started: number;
  phase: string;
  nextWakeAt: number | null;
  /** Whether the step wrote anything (members, their results, the phase): the dashboard shows it. */
  changed: boolean;
}

/** Evaluates every active rollout and applies the decisions. Safe to call at any time, as often as wanted. */
export async function tickRollouts(ctx: HubContext): Promise<TickResult[]> {
  const out: TickResult[] = [];
  for (const r of await ctx.rollouts.active()) {
    const result = await tickRollout(ctx, r.name);
    if (result !== undefined) out.push(result);
  }
  return out;
}

type Delivery = { clusterId: string; type: 'release' | 'override'; envelope: unknown };

export function tickRollout(ctx: HubContext, name: string): Promise<TickResult | undefined> {
  return applyDecision(ctx, name, true);
}

/**
 * Records what is true now (successes, failures, a breach or the end) without
 * starting anything: operator actions settle first, so they act on the phase
 * the status shows, and a cancelled rollout keeps the results it saw.
 */
async function settle(ctx: HubContext, name: string): Promise<void> {
  await applyDecision(ctx, name, false);
}

async function applyDecision(ctx: HubContext, name: string, mayStart: boolean): Promise<TickResult | undefined> {
  const deliveries: Delivery[] = [];
  const result = await ctx.db.transaction(async () => {
    // One step at a time across replicas; what the previous step did is read below.
    await ctx.rollouts.lockSteps();
    const record = await ctx.rollouts.get(name);
    if (!record || (record.phase !== 'Progressing' && record.phase !== 'Paused')) return undefined;
    const nowMs = ctx.now().getTime();
    const now = new Date(nowMs).toISOString();
    const reselected = mayStart && record.phase === 'Progressing' && record.spec.membership === 'Dynamic' && (await reselect(ctx, record, nowMs));
    const ev = await evaluate(ctx, record, nowMs, mayStart);
    const d = ev.decision;
    if (d.succeededNow.length > 0) await ctx.rollouts.markSucceeded(name, d.succeededNow, now);
    if (d.failedNow.length > 0) await ctx.rollouts.markFailed(name, d.failedNow);
    if (d.skippedNow.length > 0) await ctx.rollouts.markSkipped(name, d.skippedNow, now);
    let started = 0;
    // In cluster-id order, as group commits and lease flushes lock clusters' rows on every replica: no lock cycle with them.
    for (const id of [...d.start].sort()) {
      try {
        // A savepoint each: a cluster that fails is rolled back alone.
        const sent = await ctx.db.transaction(async () => {
          const s = await send(ctx, ev, id);
          await ctx.rollouts.recordSent(name, id, s.revision, now, s.previousRevision);
          // Connected to another replica (or nowhere): the event leaves with the COMMIT, so a replica killed right after it still told them.
          if (ctx.sessions.agent(id) === undefined) await ctx.bus.publish(s.type === 'release' ? { t: 'release', c: id } : { t: 'override', c: id, r: s.revision });
          return s;
        });
        deliveries.push({ clusterId: id, type: sent.type, envelope: sent.envelope });
        started++;
      } catch (err) {
        // One cluster that cannot be sent to (deregistered this instant, no release to roll back to) must not stop the wave; the next tick retries it.
        ctx.log.warn({ rollout: name, clusterId: id, err: err instanceof Error ? err.message : String(err) }, 'rollout could not start a cluster');
      }
    }
    if (started > 0) await ctx.rollouts.markStarted(name, now);
    const terminal = d.phase === 'Succeeded' || d.phase === 'Completed';
    const phaseMoved = d.phase !== record.phase || d.reason !== record.reason || d.message !== record.message;
    if (phaseMoved) {
      await ctx.rollouts.setPhase(name, { phase: d.phase, reason: d.reason, message: d.message, endedAt: terminal ? now : null }, now);
      if (d.phaseChanged) ctx.log.warn({ rollout: name, phase: d.phase, reason: d.reason, message: d.message }, 'rollout phase changed');
    }
    const changed = reselected || phaseMoved || started > 0 || d.succeededNow.length + d.failedNow.length + d.skippedNow.length > 0;
    return { rollout: name, started, phase: d.phase, nextWakeAt: d.nextWakeAt, changed };
  });
  // Committed: agents connected here hear of it now (the others through the events published above).
  for (const dl of deliveries) ctx.sessions.agent(dl.clusterId)?.deliver(dl.type === 'release' ? { type: 'release', envelope: dl.envelope } : { type: 'override', envelope: dl.envelope });
  if (result && result.started > 0) ctx.log.info({ rollout: name, started: result.started }, 'rollout started clusters');
  return result;
}

async function send(ctx: HubContext, ev: Evaluation, clusterId: string): Promise<{ revision: number; previousRevision: number | null; type: 'release' | 'override'; envelope: unknown }> {
  const t = ev.spec.target;
  if (t.kind === 'Override') {
    const doc = await issueOverride(ctx, clusterId, t.override, t.withdraw === true);
    return { revision: doc.revision, previousRevision: null, type: 'override', envelope: doc.envelope };
  }
  const previousRevision = (await ctx.releases.latest(clusterId))?.revision ?? null;
  let body: unknown = t.kind === 'Release' ? t.release : undefined;
  if (t.kind === 'Rollback') {
    const revision = await ctx.rollouts.previousRevisionIn(t.rollbackOf, clusterId);
    const payload = revision === null ? undefined : await ctx.rollouts.releasePayload(clusterId, revision);
    if (payload === undefined) throw new ApiError(409, 'NoPreviousRelease', `cluster "${clusterId}" has no release to roll back to`);
    const r = JSON.parse(payload) as Release;
    // The earlier release again, as a new revision; a downgrade on purpose.
    body = { name: r.name, version: r.version, components: r.components, critical: r.critical, allowDowngrade: true, kubernetesVersion: r.kubernetesVersion };
  }
  // The rollout's window travels with the release, so the agent keeps to it
  // even when the release arrives (or its local window opens) after it closed.
  if (ev.spec.window && body && typeof body === 'object') {
    const w = ev.spec.window;
    const end = w.until !== undefined ? { until: w.until } : { duration: w.duration };
    body = { ...body, windows: { windows: [{ name: `rollout-${ev.spec.name}`, cron: w.cron, ...end, timeZone: w.timeZone }] } };
  }
  const { record } = await setDesiredRelease(ctx, clusterId, body, { deliver: false });
  return { revision: record.revision, previousRevision, type: 'release', envelope: record.envelope };
}

// ------------------------------------------------------------------ operator actions

/** An operator's change to a rollout, under the step lock, so it never interleaves with a step another replica is taking. */
function operatorStep<T>(ctx: HubContext, fn: () => Promise<T>): Promise<T> {
  return ctx.db.transaction(async () => {
    await ctx.rollouts.lockSteps();
    return fn();
  });
}

export async function pauseRollout(ctx: HubContext, name: string, body: unknown): Promise<RolloutView> {
  const req = pauseRequest.safeParse(body ?? {});
  if (!req.success) throw new ApiError(400, 'InvalidRequest', 'the pause request is invalid', req.error.issues);
  await requireRollout(ctx, name);
  await settle(ctx, name);
  await operatorStep(ctx, async () => {
    const r = await requireRollout(ctx, name);
    if (r.phase === 'Progressing') {
      await ctx.rollouts.setPhase(name, { phase: 'Paused', reason: 'PausedByOperator', message: req.data.reason ?? 'paused by an operator: no new cluster starts' }, ctx.now().toISOString());
      ctx.log.warn({ rollout: name }, 'rollout paused by an operator');
    } else if (r.phase !== 'Paused') {
      throw new ApiError(409, 'NotActive', `rollout "${name}" is ${r.phase}`);
    }
  });
  return rolloutStatus(ctx, name);
}

/** Resuming accepts the failures seen so far: only failures beyond them count against maxFailures (and mandatory groups). */
export async function resumeRollout(ctx: HubContext, name: string): Promise<RolloutView> {
  await requireRollout(ctx, name);
  await settle(ctx, name);
  const failures = await operatorStep(ctx, async () => {
    const r = await requireRollout(ctx, name);
    if (r.phase !== 'Paused') throw new ApiError(409, 'NotPaused', `rollout "${name}" is ${r.phase}, not Paused`);
    const now = ctx.now();
    const ev = await evaluate(ctx, r, now.getTime(), false);
    await ctx.rollouts.acknowledge(name, ev.decision.failures, ev.decision.mandatoryFailures, now.toISOString());
    await ctx.rollouts.setPhase(name, { phase: 'Progressing', reason: null, message: null }, now.toISOString());
    return ev.decision.failures;
  });
  ctx.log.warn({ rollout: name, acknowledgedFailures: failures }, 'rollout resumed by an operator');
  await tickRollout(ctx, name);
  return rolloutStatus(ctx, name);
}

export async function cancelRollout(ctx: HubContext, name: string, reason = 'CancelledByOperator', message = 'cancelled by an operator: no new cluster starts; clusters keep what they were sent'): Promise<RolloutView> {
  await requireRollout(ctx, name);
  await settle(ctx, name);
  await operatorStep(ctx, async () => {
    const r = await requireRollout(ctx, name);
    if (r.phase !== 'Progressing' && r.phase !== 'Paused') throw new ApiError(409, 'NotActive', `rollout "${name}" is already ${r.phase}`);
    const now = ctx.now().toISOString();
    await ctx.rollouts.setPhase(name, { phase: 'Cancelled', reason, message, endedAt: now }, now);
  });
  ctx.log.warn({ rollout: name, reason }, 'rollout cancelled');
  return rolloutStatus(ctx, name);
}

/**
 * A new rollout that sends every cluster this one reached the release it had
 * before (a new revision, allowDowngrade), or for an override rollout a
 * withdrawal of the override. Stops this rollout first. Clusters that had no
 * release before this one are left out (nothing to go back to). Groups and
 * their order are kept, without mandatory gating.
 */
export async function rollbackRollout(ctx: HubContext, name: string, body: unknown): Promise<RollbackResult> {
  const req = rollbackRequest.safeParse(body ?? {});
  if (!req.success) throw new ApiError(400, 'InvalidRollback', 'the rollback request is invalid', req.error.issues);
  await requireRollout(ctx, name);
  await settle(ctx, name);
  const orig = await requireRollout(ctx, name);
  const origSpec = orig.spec;
  const rollbackName = req.data.name ?? (await freeName(ctx, `${name}-rollback`));
  if (await ctx.rollouts.exists(rollbackName)) throw new ApiError(409, 'AlreadyExists', `a rollout "${rollbackName}" exists; pick another name`);
  const strategy = req.data.strategy ?? origSpec.strategy;
  const unknownClusters = req.data.unknownClusters ?? origSpec.unknownClusters;
  if (unknownClusters === 'Wait' && rolloutStrategy.parse(strategy).progressDeadline === 'None') {
    throw new ApiError(400, 'InvalidRollback', 'unknownClusters Wait needs a progressDeadline');
  }
  const groups = await ctx.rollouts.groups(name);
  const members = await ctx.rollouts.members(name);
  const reached = members.filter((m) => m.sentRevision !== null);
  const isOverride = origSpec.target.kind === 'Override';
  const included = isOverride ? reached : reached.filter((m) => m.previousRevision !== null);
  const excluded = reached.filter((m) => !included.includes(m)).map((m) => m.clusterId);
  if (included.length === 0) throw new ApiError(409, 'NothingToRollBack', `rollout "${name}" has not sent anything that can be rolled back`);

  const target: StoredSpec['target'] = origSpec.target.kind === 'Override' ? { kind: 'Override', override: origSpec.target.override, withdraw: true } : { kind: 'Rollback', rollbackOf: name };
  const spec: StoredSpec = {
    ...origSpec,
    name: rollbackName,
    description: `rollback of ${name}: the ${included.length} cluster(s) it reached`,
    // Membership is fixed below from the rolled-back rollout; listing 10,000 ids in the spec would only slow every tick.
    selector: {},
    strategy,
    unknownClusters,
    // The clusters the rolled-back rollout reached, and only those.
    membership: 'Fixed',
    target,
  };
  if (req.data.window) spec.window = req.data.window;
  else delete spec.window;
  const now = ctx.now().toISOString();
  await operatorStep(ctx, async () => {
    if (orig.phase === 'Progressing' || orig.phase === 'Paused') {
      await ctx.rollouts.setPhase(name, { phase: 'Cancelled', reason: 'RolledBack', message: `rolled back by ${rollbackName}`, endedAt: now }, now);
    }
    if (target.kind === 'Override') await ctx.overrides.define(target.override, true, now);
    await ctx.rollouts.create(
      { name: rollbackName, spec, rollbackOf: name, createdAt: now },
      // Same groups in the same order, but none mandatory: undoing a change must not wait for canaries to prove the undo.
      groups.map((g) => ({ name: g.name, mandatory: false })),
      included.map((m) => ({ clusterId: m.clusterId, group: m.group })),
    );
    await ctx.rollouts.setRolledBackBy(name, rollbackName, now);
  });
  ctx.log.warn({ rollout: name, rollback: rollbackName, clusters: included.length, excluded: excluded.length }, 'rollout rolled back');
  await tickRollout(ctx, rollbackName);
  return { rollback: await rolloutStatus(ctx, rollbackName), excluded };
}

async function freeName(ctx: HubContext, base: string): Promise<string> {
  const stem = base.slice(0, 56).replace(/-+$/, '');
  if (!(await ctx.rollouts.exists(stem))) return stem;
  for (let i = 2; ; i++) if (!(await ctx.rollouts.exists(`${stem}-${i}`))) return `${stem}-${i}`;
}

// ------------------------------------------------------------------ status

export async function listRollouts(ctx: HubContext): Promise<{ rollouts: RolloutView[] }> {
  const rollouts: RolloutView[] = [];
  for (const r of await ctx.rollouts.list()) rollouts.push(await rolloutStatus(ctx, r.name));
  return { rollouts };
}

/** The status as of now, computed without starting anything (the next tick does). */
export async function rolloutStatus(ctx: HubContext, name: string, opts: { clusters?: 'all' | 'failed' } = {}): Promise<RolloutView> {
  const record = await requireRollout(ctx, name);
  const now = ctx.now().getTime();
  const ev = await evaluate(ctx, record, now, false);
  const { spec, decision: d } = ev;
  const seenNow = new Set(d.succeededNow);
  const clusterView = (i: number): RolloutClusterView => {
    const s = ev.states[i] as ClusterState;
    const c = d.clusters[i] as WaveDecision['clusters'][number];
    const m = ev.members[i] as (typeof ev.members)[number];
    return {
      clusterId: s.id,
      group: ev.groups[s.group]?.name ?? '',
      status: c.status,
      reason: c.reason,
      message: c.message,
      available: s.available,
      revision: m.sentRevision,
      sentAt: m.sentAt,
      succeededAt: iso(s.succeededAt ?? (seenNow.has(s.id) ? now : null)),
      at: iso(c.at),
    };
  };
  const failed: RolloutClusterView[] = [];
  d.clusters.forEach((c, i) => {
    if (c.status === 'Failed' || c.status === 'TimedOut') failed.push(clusterView(i));
  });
  const t = spec.target;
  const view: RolloutView = {
    name: record.name,
    description: spec.description ?? null,
    target:
      t.kind === 'Release'
        ? { kind: 'Release', release: { name: t.release.name, version: t.release.version } }
        : t.kind === 'Override'
          ? { kind: 'Override', override: { name: t.override.name, version: t.override.version, component: t.override.component, withdrawn: t.withdraw === true } }
          : { kind: 'Rollback', rollbackOf: t.rollbackOf },
    selector: spec.selector,
    strategy: spec.strategy,
    window: spec.window ? { ...spec.window, open: ev.window?.open ?? true, nextOpeningAt: iso(ev.window?.nextOpeningAt ?? null) } : null,
    unknownClusters: spec.unknownClusters,
    // Rollouts stored before membership existed are Fixed.
    membership: spec.membership ?? 'Fixed',
    phase: d.phase,
    reason: d.reason,
    message: d.message,
    limits: {
      maxConcurrency: spec.strategy.type === 'Progressive' ? ev.limits.maxConcurrency : null,
      maxFailures: ev.limits.maxFailures,
      failures: d.failures,
      acknowledgedFailures: record.acknowledgedFailures,
    },
    counts: d.counts,
    groups: ev.groups.map((g, gi) => {
      const s = d.groups[gi] as WaveDecision['groups'][number];
      const st = spec.strategy;
      const maxFailures = st.type === 'ProgressivePerGroup' ? (g.mandatory ? 0 : resolveLimit(st.maxFailures, s.counts.total, 'down')) : null;
      return { name: g.name, mandatory: g.mandatory, state: s.state, counts: s.counts, maxFailures, startedAt: iso(s.startedAt), endedAt: iso(s.endedAt) };
    }),
    createdAt: record.createdAt,
    startedAt: record.startedAt,
    expectedEndAt: record.endedAt ?? iso(d.expectedEndAt),
    endedAt: record.endedAt,
    nextWakeAt: iso(d.nextWakeAt),
    rolledBackBy: record.rolledBackBy,
    failed,
  };
  if (opts.clusters === 'all') view.clusters = d.clusters.map((_c, i) => clusterView(i));
  return view;
}
