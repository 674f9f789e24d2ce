// The engine's decisions, pure: given an attempt, what was observed of it
// and the time, each phase's `decide` says where the attempt goes (an
// outcome the lifecycle table turns into a phase, with the reason and
// message the journal and the hub will read) or how long to wait before
// looking again. Nothing here reads a clock, the journal or the cluster, so
// every row of the table is tested in milliseconds (test/unit/engine-decide).
import type { AttemptPhase } from '../../protocol/attempt.ts';
import type { Component } from '../../protocol/release.ts';
import type { AttemptRecord } from '../../store/attempt-repo.ts';
import type { GateDecision } from '../gate/gate.ts';
import type { WorkloadRef } from '../../protocol/release.ts';
import type { ContainerFact, WorkloadHealth } from '../kube/workload-health.ts';
import type { HealthSummary } from './health-watch.ts';
import { next, type Outcome } from './lifecycle.ts';

/** The part of an attempt a decision reads. */
export type AttemptView = Pick<AttemptRecord, 'phase' | 'stage' | 'reason' | 'message' | 'plan' | 'releaseName' | 'releaseVersion'>;

/** A message that ends with what a workload's pods say; the engine reads the pods before it commits. */
export interface Explained {
  workload: WorkloadHealth;
  text: (why: string) => string;
}

export interface Move {
  outcome: Outcome;
  /** Looked up in the lifecycle table, never chosen here. */
  to: AttemptPhase;
  stage: number | null;
  reason: string;
  message: string | Explained;
  data?: unknown;
  /** Bookkeeping that commits with the move: a passed stage's components are installed, or the snapshots are again. */
  record?: { kind: 'stageInstalled'; stage: number } | { kind: 'snapshotsRestored' };
}

export type Decision =
  /** Commit the move; then wait (the gate's retry), or hand the attempt to the new agent version. */
  | { move: Move; waitMs?: number; handOver?: string }
  | { waitMs: number }
  /** This (old) agent version stops driving: its successor leads the attempt. */
  | { handOver: string };

export interface Timing {
  /** How often health is looked at while verifying, soaking and rolling back. */
  pollMs: number;
  /** Process starts inside one attempt before it is declared a crash loop. */
  maxStarts: number;
}

/** The gate never sleeps longer than this, so a changed policy or window is seen within a minute. */
export const MAX_GATE_WAIT_MS = 60_000;
/** How often a new agent version looks for the hub after taking over. */
export const TAKEOVER_POLL_MS = 250;

function move(a: AttemptView, outcome: Outcome, m: Omit<Move, 'outcome' | 'to'>): Move {
  return { outcome, to: next(a.phase, outcome), ...m };
}

// ── deadlines: the one rule ─────────────────────────────────────────────

/** How long a stage (or its rollback) may take to become healthy: the longest progress deadline of its components, at least a second. */
export function progressDeadlineMs(components: readonly Pick<Component, 'health'>[]): number {
  return Math.max(1, ...components.map((c) => c.health.progressDeadlineSeconds)) * 1000;
}

/** How long a healthy stage soaks before it counts: the longest soak of its components. */
export function soakMs(components: readonly Pick<Component, 'health'>[]): number {
  return Math.max(0, ...components.map((c) => c.health.soakSeconds)) * 1000;
}

/** Has a phase entered at `sinceMs` with `allowedMs` to finish run out of time? */
export function pastDeadline(sinceMs: number, allowedMs: number, nowMs: number): boolean {
  return nowMs > sinceMs + allowedMs;
}

// ── every phase ─────────────────────────────────────────────────────────

/** At a process start inside an unfinished attempt: too many starts is a crash loop. */
export function decideResume(a: AttemptView, starts: number, t: Pick<Timing, 'maxStarts'>): Decision | undefined {
  if (a.phase === 'RollingBack') {
    if (starts <= t.maxStarts * 2) return undefined;
    return { move: move(a, 'CrashLoop', { stage: null, reason: 'CrashLoop', message: `the agent started ${starts} times during this attempt, including during rollback; a person must look at the cluster` }) };
  }
  if (starts <= t.maxStarts) return undefined;
  return { move: move(a, 'CrashLoop', { stage: a.stage, reason: 'CrashLoop', message: `the agent started ${starts} times during this attempt (limit ${t.maxStarts})` }) };
}

/** A phase's action or observation threw. A transient API failure is waited out: the state is persisted, so the action is redone. */
export function decideError(a: AttemptView, err: { transient: boolean; message: string }, t: Pick<Timing, 'pollMs'>): Decision {
  if (err.transient) return { waitMs: t.pollMs * 2 };
  if (a.phase === 'RollingBack') return { move: move(a, 'Error', { stage: a.stage, reason: 'RollbackError', message: `rollback could not complete: ${err.message}` }) };
  if (isGatePhase(a.phase)) return { move: move(a, 'Error', { stage: null, reason: 'GateError', message: err.message }) };
  return { move: move(a, 'Error', { stage: a.stage, reason: 'ApplyFailed', message: err.message }) };
}

export function isGatePhase(phase: AttemptPhase): phase is 'Pending' | 'WaitingForWindow' | 'PreflightChecking' {
  return phase === 'Pending' || phase === 'WaitingForWindow' || phase === 'PreflightChecking';
}

/** What the engine does in a phase before it decides (and so which `decide*` applies); undefined for the terminal phases. */
export type Step = 'gate' | 'apply' | 'verify' | 'soak' | 'rollback';

export function stepOf(phase: AttemptPhase): Step | undefined {
  if (isGatePhase(phase)) return 'gate';
  const steps: Partial<Record<AttemptPhase, Step>> = { Upgrading: 'apply', Verifying: 'verify', Soaking: 'soak', RollingBack: 'rollback' };
  return steps[phase];
}

// ── before a stage: Pending, WaitingForWindow, PreflightChecking ─────────

export type GateObservation =
  | { kind: 'nothingToDo' }
  /** A newer release was accepted and this attempt has changed nothing yet. */
  | { kind: 'superseded'; newest: number }
  | { kind: 'gate'; stage: number; decision: GateDecision };

export function decideGate(a: AttemptView, o: GateObservation, nowMs: number): Decision {
  if (o.kind === 'nothingToDo') return { move: move(a, 'NothingToDo', { stage: null, reason: 'NothingToDo', message: 'every component is already on its version' }) };
  if (o.kind === 'superseded') return { move: move(a, 'Superseded', { stage: null, reason: 'Superseded', message: `revision ${o.newest} arrived before this attempt changed anything` }) };
  const { stage, decision } = o;
  if (decision.go) {
    const note = decision.message ? `; ${decision.message}` : '';
    return { move: move(a, 'GateOpen', { stage, reason: 'StageStarted', message: `stage ${stage}: ${stageNames(a, stage)}${note}`, data: decision.data }) };
  }
  const waitMs = Math.min(Math.max(0, decision.retryAt.getTime() - nowMs), MAX_GATE_WAIT_MS);
  // The same wait again is not news: the journal and the hub hear of a change only.
  if (a.phase === decision.phase && a.reason === decision.reason && a.stage === stage) return { waitMs };
  const outcome = decision.phase === 'WaitingForWindow' ? 'WindowClosed' : 'ChecksBlocked';
  return { move: move(a, outcome, { stage, reason: decision.reason, message: decision.message, data: decision.data }), waitMs };
}

/** The stage the gate evaluates: a new attempt starts at stage 0. */
export function gateStage(a: AttemptView): number {
  return a.phase === 'Pending' ? 0 : (a.stage ?? 0);
}

// ── Upgrading ──────────────────────────────────────────────────────────

/** The stage's action (snapshot, apply, prune) has run to its end. */
export function decideApplied(a: AttemptView): Decision {
  const stage = a.stage ?? 0;
  return { move: move(a, 'Applied', { stage, reason: 'Applied', message: `stage ${stage} applied; waiting for rollout` }) };
}

// ── Verifying ──────────────────────────────────────────────────────────

export interface VerifyObservation {
  stage: number;
  /** When the stage started (entered Upgrading): its progress deadline runs from here. */
  sinceMs: number;
  deadlineMs: number;
  soakMs: number;
  health: HealthSummary;
  /** The version of the agent's own stage component, while this (old) version supervises it. */
  selfVersion?: string;
  /** The agent's own new version, while this (old) version supervises it; looked at only once the stage is healthy. */
  candidate?: { version: string; ready: boolean; message: string };
  /** The not-running containers of the stage's workloads' current revision, looked at while the stage is not healthy. */
  containers?: ObservedContainer[];
  /** This process is the agent's new version and leads its own stage: it proves it reaches the hub first. */
  takeover?: { version: string } & TakeoverProof;
  /** Post-flight checks, run only once the stage is healthy. */
  postflight?: { ok: true } | { ok: false; reason: string; message: string };
}

export function decideVerify(a: AttemptView, o: VerifyObservation, nowMs: number, t: Pick<Timing, 'pollMs'>): Decision {
  const { stage, health } = o;
  if (health.failed) return { move: move(a, 'Unhealthy', { stage, reason: health.failed.reason, message: { workload: health.failed, text: (why) => why } }) };
  const down = health.healthy ? undefined : containerFailure(o.containers ?? [], nowMs);
  if (down) {
    // The agent's own stage holds the agent alone: its new version cannot start, so it will never report ready.
    if (o.selfVersion) {
      return { move: move(a, 'Unhealthy', { stage, reason: 'CandidateNotReady', message: `the new agent ${o.selfVersion} cannot start: ${down.text}` }) };
    }
    return { move: move(a, 'Unhealthy', { stage, reason: down.reason, message: `stage ${stage}: ${down.text}` }) };
  }
  if (o.takeover) {
    const proving = proveTakeover(a, stage, o.takeover.version, o.takeover, nowMs);
    if (proving) return proving;
  }
  const late = pastDeadline(o.sinceMs, o.deadlineMs, nowMs);
  if (health.healthy && o.candidate) {
    const c = o.candidate;
    if (c.ready) {
      // The candidate takes the attempt over: it soaks and confirms itself.
      return { move: move(a, 'CandidateReady', { stage, reason: 'CandidateReady', message: `new agent ${c.version} is ready and takes over: ${c.message}` }), handOver: c.version };
    }
    if (late) return { move: move(a, 'Unhealthy', { stage, reason: 'CandidateNotReady', message: `the new agent ${c.version} did not report ready by its deadline: ${c.message}` }) };
    return { waitMs: t.pollMs };
  }
  if (health.healthy) {
    if (o.postflight && !o.postflight.ok) return { move: move(a, 'Unhealthy', { stage, reason: o.postflight.reason, message: o.postflight.message }) };
    if (o.soakMs > 0) return { move: move(a, 'RolledOut', { stage, reason: 'RolledOut', message: `stage ${stage} healthy; soaking for ${o.soakMs / 1000}s` }) };
    return stagePassed(a, stage);
  }
  if (late) {
    return { move: move(a, 'Unhealthy', { stage, reason: 'StageDeadlineExceeded', message: { workload: health.notReady[0]!, text: (why) => `stage ${stage} not healthy by its deadline: ${why}` } }) };
  }
  return { waitMs: t.pollMs };
}

/**
 * Restarts after which a container that is down again is crash-looping.
 * One or two failed starts are common and pass (a database, DNS or a
 * webhook the new pod needs is not up yet; a kill during warm-up). The
 * kubelet restarts a failed container at once, then after 10 s, then after
 * 20 s, so a third restart comes about half a minute after the first exit:
 * three failed starts in a row, each after a longer wait, are a pattern and
 * not a blip, and the fourth try would only come after another 40 s. That
 * is still well inside any sensible progress deadline (600 s by default),
 * which is what would end the stage otherwise.
 */
export const CRASH_LOOP_RESTARTS = 3;
/** Waiting reasons under which a container never starts by itself: an image that cannot be pulled, a spec the runtime refuses. */
export const BLOCKING_WAIT_REASONS: ReadonlySet<string> = new Set(['ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'CreateContainerConfigError', 'CreateContainerError']);
/**
 * How long a container may sit under a blocking reason before the stage
 * fails early. These do not count restarts, and each can pass on its own:
 * a registry blip (the kubelet retries a pull after 10 s, then 20 s), a
 * Secret another controller creates a moment later. Half a minute covers two
 * retries of the kubelet.
 */
export const BLOCKED_MS = 30_000;

/** A container as the engine observed it: what the kubelet says, its workload, and since when it has been down at this restart count. */
export interface ObservedContainer extends ContainerFact {
  workload: WorkloadRef;
  downSinceMs: number;
}

/**
 * The one rule for a new pod that will not come up on its own (invariant:
 * the stage ends early rather than at its deadline): a container down again
 * after CRASH_LOOP_RESTARTS restarts, or held under a blocking waiting reason
 * for BLOCKED_MS. The text names the pod, container, reason and exit code.
 */
export function containerFailure(containers: readonly ObservedContainer[], nowMs: number): { container: ObservedContainer; reason: 'CrashLoopBackOff' | 'ContainerCannotStart'; text: string } | undefined {
  const describe = (c: ObservedContainer, why: string) => {
    const exit = c.exit ? `, exit code ${c.exit.code}${c.exit.reason ? ` (${c.exit.reason})` : ''}` : '';
    const restarts = c.restartCount ? `, ${c.restartCount} restarts` : '';
    const detail = c.waiting?.message ? `: ${c.waiting.message}` : '';
    return `pod ${c.pod} ${c.init ? 'init container' : 'container'} ${c.container}: ${why}${exit}${restarts}${detail}`;
  };
  for (const c of containers) {
    if (c.restartCount >= CRASH_LOOP_RESTARTS) {
      return { container: c, reason: 'CrashLoopBackOff', text: describe(c, c.waiting?.reason ?? 'Terminated') };
    }
  }
  for (const c of containers) {
    if (c.waiting && BLOCKING_WAIT_REASONS.has(c.waiting.reason) && nowMs - c.downSinceMs >= BLOCKED_MS) {
      return { container: c, reason: 'ContainerCannotStart', text: describe(c, `${c.waiting.reason} for ${Math.round((nowMs - c.downSinceMs) / 1000)}s`) };
    }
  }
  return undefined;
}

// ── Soaking ────────────────────────────────────────────────────────────

export interface SoakObservation {
  stage: number;
  /** When the soak ends (entered Soaking + the stage's soak). */
  untilMs: number;
  /** The stage holds the agent itself. */
  self?:
    /** This process is the old version: its candidate should lead by now. */
    | { running: 'old'; version: string; candidate: { ready: boolean; message: string } }
    /** This process is the new version: it proves it reaches the hub before the soak counts. */
    | { running: 'new'; version: string; takeover?: TakeoverProof };
  /** Absent when the soak cannot count yet (the old version, or a new one still proving itself). */
  health?: HealthSummary;
}

export function decideSoak(a: AttemptView, o: SoakObservation, nowMs: number, t: Pick<Timing, 'pollMs'>): Decision {
  const { stage, self } = o;
  if (self?.running === 'old') {
    if (self.candidate.ready) return { handOver: self.version };
    return { move: move(a, 'Unhealthy', { stage, reason: 'CandidateLost', message: `the new agent ${self.version} stopped answering after it was handed the upgrade: ${self.candidate.message}` }) };
  }
  if (self?.takeover) {
    const proving = proveTakeover(a, stage, self.version, self.takeover, nowMs);
    if (proving) return proving;
  }
  const health = o.health;
  if (!health) return { waitMs: t.pollMs };
  if (!health.healthy) {
    return { move: move(a, 'Unhealthy', { stage, reason: 'HealthDegradedDuringSoak', message: { workload: health.failed ?? health.notReady[0]!, text: (why) => why } }) };
  }
  const left = o.untilMs - nowMs;
  if (left > 0) return { waitMs: Math.min(t.pollMs, left) };
  return stagePassed(a, stage);
}

/** What the new agent version proves after it took the attempt over (it reaches the hub), once. */
export interface TakeoverProof {
  reachedHub: boolean;
  /** Since when this process has led the attempt's self stage and looked for the hub. */
  sinceMs: number;
  timeoutMs: number;
}

/**
 * The new agent version leads its own stage (handed over, or it took the
 * attempt over from the record when the rolling update replaced the old
 * pod first): until it has reached the hub nothing else counts, and if it
 * cannot within its timeout it reverts itself. Undefined once proven.
 */
function proveTakeover(a: AttemptView, stage: number, version: string, proof: TakeoverProof, nowMs: number): Decision | undefined {
  if (proof.reachedHub) return undefined;
  if (pastDeadline(proof.sinceMs, proof.timeoutMs, nowMs)) {
    return {
      move: move(a, 'Unhealthy', {
        stage,
        reason: 'CandidateCannotReachHub',
        message: `new agent ${version} could not reach the hub within ${Math.round(proof.timeoutMs / 1000)}s after taking over; reverting to the previous agent`,
      }),
    };
  }
  return { waitMs: TAKEOVER_POLL_MS };
}

/** A healthy stage counts: its components are installed, and the next stage goes through the gate, or the attempt succeeded. */
function stagePassed(a: AttemptView, stage: number): Decision {
  const isRemoval = stage >= a.plan.stages.length;
  const last = isRemoval || (stage === a.plan.stages.length - 1 && a.plan.removed.length === 0);
  if (last) {
    return { move: move(a, 'AllPassed', { stage, reason: 'AllComponentsHealthy', message: `every component of ${a.releaseName} ${a.releaseVersion} is on its version and healthy`, record: { kind: 'stageInstalled', stage } }) };
  }
  return { move: move(a, 'StagePassed', { stage: stage + 1, reason: 'NextStage', message: `stage ${stage} passed; checking before stage ${stage + 1}`, record: { kind: 'stageInstalled', stage } }) };
}

// ── RollingBack ────────────────────────────────────────────────────────

export interface RollbackObservation {
  /** When the rollback started: the restored version has the release's longest progress deadline from here. */
  sinceMs: number;
  deadlineMs: number;
  /** Health of the restored workloads (after the snapshots were applied again). */
  health: HealthSummary;
}

export function decideRollback(a: AttemptView, o: RollbackObservation, nowMs: number, t: Pick<Timing, 'pollMs'>): Decision {
  if (o.health.healthy) {
    return { move: move(a, 'Restored', { stage: a.stage, reason: a.reason ?? 'RolledBack', message: `back on the previous version after: ${a.message ?? a.reason}`, record: { kind: 'snapshotsRestored' } }) };
  }
  if (pastDeadline(o.sinceMs, o.deadlineMs, nowMs)) {
    return {
      move: move(a, 'Unhealthy', {
        stage: a.stage,
        reason: 'RollbackUnhealthy',
        message: { workload: o.health.failed ?? o.health.notReady[0]!, text: (why) => `rolled back after ${a.reason} but the previous version is not healthy: ${why}; a person must look at the cluster` },
      }),
    };
  }
  return { waitMs: t.pollMs };
}

/** What a stage does, for the StageStarted message. */
export function stageNames(a: Pick<AttemptView, 'plan'>, stage: number): string {
  if (stage >= a.plan.stages.length) return `remove ${a.plan.removed.map((r) => r.name).join(', ')}`;
  return a.plan.stages[stage]!.components.map((c) => `${c.name} ${c.fromVersion ?? '(new)'} → ${c.version}`).join(', ');
}
