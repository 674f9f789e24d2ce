// The rollout decision as one pure, level-triggered function: from the
// rollout's parameters, what the hub observes of each cluster and the
// bookkeeping of what it sent when, to the clusters to start now, the status
// counts and the phase change. No I/O and no clock: the caller passes `now`,
// so the same inputs always give the same answer, a restarted hub simply
// recomputes where it was, and a soak or deadline that ends without any
// report (the OCM bug where ProgressivePerGroup never advanced after
// minSuccessTime) is seen by the next call, whatever triggered it.
//
// One pass over the clusters in rollout order, O(n): 10,000 clusters take a
// few milliseconds.
import type { ClusterRolloutStatus, RolloutPhase, StatusCounts, StrategyType, UnknownClusterPolicy } from '../../protocol/rollout.ts';

/** What the cluster did with what the rollout sent it, as far as the hub knows. */
export type Outcome =
  | { kind: 'NotReported' }
  | { kind: 'InProgress'; phase: string }
  | { kind: 'Succeeded'; at: number | null }
  | { kind: 'Failed'; reason: string; message: string | null; at: number | null }
  /** Someone sent the cluster something newer: the rollout no longer owns it. */
  | { kind: 'Superseded' }
  /** The cluster was deregistered. */
  | { kind: 'Gone' };

export interface ClusterState {
  id: string;
  /** Index into WaveInput.groups; clusters come sorted by (group, position). */
  group: number;
  available: boolean;
  /** Bookkeeping (persisted by the hub). */
  sentAt: number | null;
  succeededAt: number | null;
  skippedAt: number | null;
  /** The failure first seen for what was sent (bookkeeping): it outlives a later release or a deregistration. */
  failure: { reason: string; message: string | null; at: number | null } | null;
  /** Meaningful only once sent. */
  outcome: Outcome;
}

export interface WaveGroup {
  name: string;
  mandatory: boolean;
}

export interface WindowState {
  open: boolean;
  nextOpeningAt: number | null;
}

export interface WaveInput {
  strategy: StrategyType;
  /** Absolute (percentages resolved by resolveLimit); ignored unless Progressive. */
  maxConcurrency: number;
  maxFailures: number;
  /**
   * ProgressivePerGroup: maxFailures as written (a count or "N%"), applied to
   * each group on its own, a percentage of that group's size, as OCM does.
   * Undefined: maxFailures counts over the whole rollout.
   */
  maxFailuresPerGroup?: number | string;
  minSuccessMs: number;
  progressDeadlineMs: number | null;
  unknownClusters: UnknownClusterPolicy;
  phase: RolloutPhase;
  reason: string | null;
  message: string | null;
  /** Failures an operator accepted by resuming: only failures beyond these count against maxFailures. */
  acknowledgedFailures: number;
  acknowledgedMandatoryFailures: number;
  groups: readonly WaveGroup[];
  clusters: readonly ClusterState[];
  /** Undefined: no hub window (always open). */
  window?: WindowState;
  /** False: report only (an operator reading status); nothing starts or is newly skipped. Default true. */
  mayStart?: boolean;
}

export interface ClusterDecision {
  status: ClusterRolloutStatus;
  reason: string | null;
  message: string | null;
  /** When the status was reached, where known (ms). */
  at: number | null;
}

export interface GroupSummary {
  counts: StatusCounts;
  state: 'Pending' | 'Active' | 'Done';
  startedAt: number | null;
  endedAt: number | null;
}

export interface WaveDecision {
  /** Cluster ids to send the target to now, in rollout order. */
  start: string[];
  /** Bookkeeping to persist: success first seen now, failure first seen now, skipped now. */
  succeededNow: string[];
  failedNow: { id: string; reason: string; message: string | null; at: number | null }[];
  skippedNow: string[];
  /** Per cluster, index-aligned with WaveInput.clusters (the ones started now are Progressing). */
  clusters: ClusterDecision[];
  counts: StatusCounts;
  groups: GroupSummary[];
  failures: number;
  mandatoryFailures: number;
  phase: RolloutPhase;
  reason: string | null;
  message: string | null;
  /** Set when the phase changed now. */
  phaseChanged: boolean;
  expectedEndAt: number | null;
  /** Earliest instant something changes by time alone. */
  nextWakeAt: number | null;
}

/** A count or "N%" of total. Percentages round up for concurrency (at least one) and down for failures (tolerate less, never more). */
export function resolveLimit(value: number | string, total: number, round: 'up' | 'down'): number {
  if (typeof value === 'number') return value;
  const pct = Number(value.slice(0, -1));
  const exact = (pct * total) / 100;
  return round === 'up' ? Math.ceil(exact) : Math.floor(exact);
}

export function emptyCounts(): StatusCounts {
  return { total: 0, unknown: 0, ToApply: 0, Progressing: 0, Succeeded: 0, Failed: 0, TimedOut: 0, Skipped: 0 };
}

const FINAL_SKIP_REASONS = new Set(['Superseded', 'Deregistered']);

/** Statuses after which nothing more happens to the cluster in this rollout. */
function isFinal(d: ClusterDecision): boolean {
  return d.status === 'Succeeded' || d.status === 'Failed' || d.status === 'TimedOut' || (d.status === 'Skipped' && FINAL_SKIP_REASONS.has(d.reason ?? ''));
}

function classify(c: ClusterState, input: WaveInput, now: number, wake: (t: number) => void, succeededNow: string[], failedNow: WaveDecision['failedNow']): ClusterDecision {
  if (c.sentAt === null) {
    if (c.outcome.kind === 'Gone') return { status: 'Skipped', reason: 'Deregistered', message: 'the cluster was deregistered', at: null };
    if (c.skippedAt !== null) return { status: 'Skipped', reason: 'ClusterUnknown', message: 'the cluster was Unknown when its turn came; it starts when it is back', at: c.skippedAt };
    return { status: 'ToApply', reason: null, message: null, at: null };
  }
  const o = c.outcome;
  if (o.kind === 'Gone' || o.kind === 'Superseded') {
    // What the cluster did with this rollout's release stays true after something newer replaced it.
    if (c.succeededAt !== null && now >= c.succeededAt + input.minSuccessMs) return { status: 'Succeeded', reason: null, message: null, at: c.succeededAt + input.minSuccessMs };
    if (c.failure !== null) return { status: 'Failed', reason: c.failure.reason, message: c.failure.message, at: c.failure.at };
  }
  switch (o.kind) {
    case 'Gone':
      return { status: 'Skipped', reason: 'Deregistered', message: 'the cluster was deregistered', at: null };
    case 'Superseded':
      return { status: 'Skipped', reason: 'Superseded', message: 'the cluster was sent something newer outside this rollout', at: null };
    case 'Failed':
      if (c.failure === null) failedNow.push({ id: c.id, reason: o.reason, message: o.message, at: o.at });
      return { status: 'Failed', reason: o.reason, message: o.message, at: o.at };
    case 'Succeeded': {
      let since = c.succeededAt;
      if (since === null) {
        since = now;
        succeededNow.push(c.id);
      }
      const counted = since + input.minSuccessMs;
      if (now >= counted) return { status: 'Succeeded', reason: null, message: null, at: counted };
      wake(counted);
      return { status: 'Progressing', reason: 'Soaking', message: `succeeded; counts after minSuccessTime, at ${new Date(counted).toISOString()}`, at: since };
    }
    case 'NotReported':
    case 'InProgress': {
      if (input.progressDeadlineMs !== null) {
        const deadline = c.sentAt + input.progressDeadlineMs;
        if (now >= deadline) {
          return {
            status: 'TimedOut',
            reason: 'ProgressDeadlineExceeded',
            message: `not Succeeded within progressDeadline${o.kind === 'InProgress' ? ` (last phase ${o.phase})` : ' (nothing reported)'}${c.available ? '' : '; the cluster is Unknown'}`,
            at: deadline,
          };
        }
        wake(deadline);
      }
      return { status: 'Progressing', reason: o.kind === 'InProgress' ? o.phase : 'Sent', message: null, at: c.sentAt };
    }
  }
}

export function planWave(input: WaveInput, now: number): WaveDecision {
  let nextWakeAt: number | null = null;
  const wake = (t: number): void => {
    if (t > now && (nextWakeAt === null || t < nextWakeAt)) nextWakeAt = t;
  };
  const succeededNow: string[] = [];
  const failedNow: WaveDecision['failedNow'] = [];
  const skippedNow: string[] = [];
  const start: string[] = [];
  const startedIdx = new Set<number>();
  const n = input.clusters.length;
  const decisions: ClusterDecision[] = new Array<ClusterDecision>(n);

  // 1. Where every cluster is, from observation and bookkeeping alone.
  let failures = 0;
  let mandatoryFailures = 0;
  let inFlight = 0;
  let succeededDurations = 0;
  let succeededCount = 0;
  for (let i = 0; i < n; i++) {
    const c = input.clusters[i] as ClusterState;
    const d = classify(c, input, now, wake, succeededNow, failedNow);
    decisions[i] = d;
    if (d.status === 'Failed' || d.status === 'TimedOut') {
      failures++;
      if (input.groups[c.group]?.mandatory) mandatoryFailures++;
    } else if (d.status === 'Progressing') inFlight++;
    else if (d.status === 'Succeeded' && c.sentAt !== null && d.at !== null) {
      succeededDurations += d.at - c.sentAt;
      succeededCount++;
    }
  }

  // 2. Failure thresholds: breached means no new cluster starts (the OCM bug
  // where maxFailures did not stop a rollout). A pause only holds something
  // back: once every cluster has been sent, a breach pauses nothing and the
  // rollout runs to its end, Completed with its failures counted.
  let phase = input.phase;
  let reason = input.reason;
  let message = input.message;
  let phaseChanged = false;
  const newMandatory = mandatoryFailures - input.acknowledgedMandatoryFailures;
  const breach = failureBreach(input, decisions, failures);
  const leftToStart = decisions.some((d) => d.status === 'ToApply' || (d.status === 'Skipped' && !FINAL_SKIP_REASONS.has(d.reason ?? '')));
  if (phase === 'Progressing' && leftToStart) {
    if (newMandatory > 0) {
      phase = 'Paused';
      reason = 'MandatoryGroupFailed';
      message = `${mandatoryFailures} cluster(s) of a mandatory group failed or timed out; no further cluster starts. Roll back, or resume to continue anyway`;
      phaseChanged = true;
    } else if (breach !== null) {
      phase = 'Paused';
      reason = 'MaxFailuresExceeded';
      message = `${breach}; no further cluster starts. Roll back, or resume to continue`;
      phaseChanged = true;
    }
  }

  // 3. Which clusters may start now.
  const windowOpen = input.window === undefined || input.window.open;
  if (!windowOpen && input.window?.nextOpeningAt != null) wake(input.window.nextOpeningAt);
  const groupDone = doneGroups(input, decisions);
  if (phase === 'Progressing' && windowOpen && input.mayStart !== false) {
    const limit = input.strategy === 'Progressive' ? Math.max(0, input.maxConcurrency - inFlight) : Number.POSITIVE_INFINITY;
    // Mandatory groups go one at a time, first; then the rest by strategy.
    const firstOpenMandatory = input.groups.findIndex((g, gi) => g.mandatory && !groupDone[gi]);
    // ProgressivePerGroup: the first group not done, and every group before it (a skipped cluster that returned).
    const firstOpen = groupDone.findIndex((done) => !done);
    const lastEligible =
      firstOpenMandatory >= 0 ? firstOpenMandatory : input.strategy === 'ProgressivePerGroup' ? (firstOpen >= 0 ? firstOpen : input.groups.length - 1) : input.groups.length - 1;
    let started = 0;
    for (let i = 0; i < n && started < limit; i++) {
      const c = input.clusters[i] as ClusterState;
      if (c.group > lastEligible) break;
      if (firstOpenMandatory >= 0 && c.group !== firstOpenMandatory) continue;
      if (c.sentAt !== null || c.outcome.kind === 'Gone') continue;
      const mandatory = input.groups[c.group]?.mandatory ?? false;
      if (!c.available && input.unknownClusters === 'Skip' && !mandatory) {
        if (c.skippedAt === null) {
          skippedNow.push(c.id);
          decisions[i] = { status: 'Skipped', reason: 'ClusterUnknown', message: 'the cluster was Unknown when its turn came; it starts when it is back', at: now };
        }
        continue;
      }
      start.push(c.id);
      startedIdx.add(i);
      started++;
      decisions[i] = { status: 'Progressing', reason: 'Sent', message: c.available ? null : 'sent while the cluster is Unknown: delivered when it reconnects', at: now };
      if (input.progressDeadlineMs !== null) wake(now + input.progressDeadlineMs);
    }
  }

  // 4. Counts, per group and overall.
  const counts = emptyCounts();
  const groups: GroupSummary[] = input.groups.map(() => ({ counts: emptyCounts(), state: 'Pending', startedAt: null, endedAt: null }));
  const finalAt: (number | null)[] = input.groups.map(() => null);
  const allFinal: boolean[] = input.groups.map(() => true);
  let skippedWaiting = 0;
  let toApply = 0;
  for (let i = 0; i < n; i++) {
    const c = input.clusters[i] as ClusterState;
    const d = decisions[i] as ClusterDecision;
    const g = groups[c.group] as GroupSummary;
    counts.total++;
    counts[d.status]++;
    g.counts.total++;
    g.counts[d.status]++;
    if (!c.available) {
      counts.unknown++;
      g.counts.unknown++;
    }
    const sentAt = startedIdx.has(i) ? now : c.sentAt;
    if (sentAt !== null && (g.startedAt === null || sentAt < g.startedAt)) g.startedAt = sentAt;
    if (isFinal(d)) {
      const t = d.at ?? sentAt;
      if (t !== null && (finalAt[c.group] === null || t > (finalAt[c.group] as number))) finalAt[c.group] = t;
    } else {
      allFinal[c.group] = false;
      if (d.status === 'Skipped') skippedWaiting++;
      else if (d.status === 'ToApply') toApply++;
    }
  }
  groups.forEach((g, gi) => {
    if (allFinal[gi] && g.counts.total > 0) {
      g.state = 'Done';
      g.endedAt = finalAt[gi] ?? null;
    } else if (groupDone[gi]) g.state = 'Done';
    else if (g.startedAt !== null) g.state = 'Active';
  });

  // 5. The end: everything final. Skipped clusters waiting to return keep a rollout going (they start when they are back).
  // A pause holds something back, or it ends too: a Paused rollout whose
  // clusters all became final (those in flight when it paused finished, none
  // was left to start) has nothing left to resume, so it ends as a
  // Progressing one would.
  const everythingFinal = counts.total === counts.Succeeded + counts.Failed + counts.TimedOut + countFinalSkips(decisions);
  if (phase === 'Progressing' || (phase === 'Paused' && everythingFinal)) {
    if (everythingFinal) {
      const pausedBy = phase === 'Paused' ? (reason ?? 'Paused') : null;
      phase = counts.Failed + counts.TimedOut === 0 ? 'Succeeded' : 'Completed';
      reason = phase === 'Succeeded' ? 'AllSucceeded' : 'CompletedWithFailures';
      const beyond = breach !== null || newMandatory > 0 ? `more than allowed (${breach ?? 'a mandatory group failed'}), but every cluster had been sent: nothing was left to hold back` : 'within maxFailures';
      message = phase === 'Succeeded' ? `all ${counts.Succeeded} cluster(s) succeeded` : `${counts.Succeeded} succeeded, ${counts.Failed} failed, ${counts.TimedOut} timed out (${beyond})`;
      if (pausedBy !== null) message += `; it was paused (${pausedBy}) once every cluster had been sent, so the pause had nothing left to hold back`;
      phaseChanged = true;
    } else if (!windowOpen) {
      reason = 'WaitingForWindow';
      message = `the rollout window is closed${input.window?.nextOpeningAt != null ? `; it opens at ${new Date(input.window.nextOpeningAt).toISOString()}` : ''}`;
    } else if (toApply === 0 && inFlight + start.length === 0 && skippedWaiting > 0) {
      reason = 'WaitingForUnknownClusters';
      message = `${skippedWaiting} cluster(s) were skipped while Unknown; they start when they are back`;
    } else {
      reason = null;
      message = null;
    }
  }

  const expectedEndAt = estimateEnd(input, decisions, now, succeededCount > 0 ? succeededDurations / succeededCount : null, phase);
  return { start, succeededNow, failedNow, skippedNow, clusters: decisions, counts, groups, failures, mandatoryFailures, phase, reason, message, phaseChanged, expectedEndAt, nextWakeAt };
}

/**
 * Whether failures exceed maxFailures, and how, in words; null when not.
 * Over the rollout, or with maxFailuresPerGroup per (non-mandatory) group:
 * a percentage of the group's size, rounded down like every failure limit
 * (10% of a 5-cluster group tolerates none: one would be 20%). Failures an
 * operator accepted by resuming are set against the groups in rollout order,
 * the order in which they happened.
 */
function failureBreach(input: WaveInput, decisions: readonly ClusterDecision[], failures: number): string | null {
  if (input.maxFailuresPerGroup === undefined) {
    const fresh = failures - input.acknowledgedFailures;
    return fresh > input.maxFailures ? `${fresh} failed or timed-out cluster(s) exceed maxFailures ${input.maxFailures}` : null;
  }
  const size = input.groups.map(() => 0);
  const failed = input.groups.map(() => 0);
  input.clusters.forEach((c, i) => {
    size[c.group] = (size[c.group] ?? 0) + 1;
    const d = decisions[i] as ClusterDecision;
    if (d.status === 'Failed' || d.status === 'TimedOut') failed[c.group] = (failed[c.group] ?? 0) + 1;
  });
  let accepted = input.acknowledgedFailures;
  for (let g = 0; g < input.groups.length; g++) {
    const f = failed[g] ?? 0;
    const acceptedHere = Math.min(f, accepted);
    accepted -= acceptedHere;
    const group = input.groups[g] as WaveGroup;
    if (group.mandatory) continue;
    const limit = resolveLimit(input.maxFailuresPerGroup, size[g] ?? 0, 'down');
    if (f - acceptedHere > limit) {
      return `${f - acceptedHere} failed or timed-out cluster(s) in group "${group.name}" exceed maxFailures ${input.maxFailuresPerGroup} of its ${size[g]} (${limit})`;
    }
  }
  return null;
}

function countFinalSkips(decisions: readonly ClusterDecision[]): number {
  let k = 0;
  for (const d of decisions) if (d.status === 'Skipped' && FINAL_SKIP_REASONS.has(d.reason ?? '')) k++;
  return k;
}

/**
 * A group is done when nothing in it can change the decision to move on:
 * every cluster is final, or (not for mandatory groups) skipped while
 * Unknown. Mandatory groups also need every failure acknowledged by an
 * operator's resume, which the failure check enforces by pausing.
 */
function doneGroups(input: WaveInput, decisions: readonly ClusterDecision[]): boolean[] {
  const done = input.groups.map(() => true);
  input.clusters.forEach((c, i) => {
    const d = decisions[i] as ClusterDecision;
    if (isFinal(d)) return;
    if (d.status === 'Skipped' && !input.groups[c.group]?.mandatory) return;
    done[c.group] = false;
  });
  return done;
}

/**
 * Expected end, from what the rollout has seen: the mean time from sent to
 * counted-Succeeded (or, before any success, progressDeadline +
 * minSuccessTime as the worst case), times the waves still to run. A closed
 * window is not predicted; the estimate moves when it opens.
 */
function estimateEnd(input: WaveInput, decisions: readonly ClusterDecision[], now: number, meanMs: number | null, phase: RolloutPhase): number | null {
  if (phase !== 'Progressing') return null;
  const per = meanMs ?? (input.progressDeadlineMs !== null ? input.progressDeadlineMs + input.minSuccessMs : null);
  if (per === null) return null;
  let inflightEnd = now;
  let pending = 0;
  const pendingGroups = new Set<number>();
  input.clusters.forEach((c, i) => {
    const d = decisions[i] as ClusterDecision;
    if (d.status === 'Progressing') inflightEnd = Math.max(inflightEnd, (d.reason === 'Soaking' ? (d.at ?? now) + input.minSuccessMs : (d.at ?? now) + per));
    else if (d.status === 'ToApply') {
      pending++;
      pendingGroups.add(c.group);
    }
  });
  if (pending === 0) return inflightEnd;
  const mandatoryPending = [...pendingGroups].filter((g) => input.groups[g]?.mandatory).length;
  const restGroups = pendingGroups.size - mandatoryPending;
  let waves: number;
  if (input.strategy === 'Progressive') waves = mandatoryPending + Math.ceil(pending / Math.max(1, input.maxConcurrency));
  else if (input.strategy === 'ProgressivePerGroup') waves = pendingGroups.size;
  else waves = mandatoryPending + (restGroups > 0 ? 1 : 0);
  return inflightEnd + waves * per;
}
