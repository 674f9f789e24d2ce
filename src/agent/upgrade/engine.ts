// Drives one attempt through the lifecycle (src/agent/upgrade/lifecycle.ts)
// in one loop: observe the attempt in its phase (observe.ts), decide purely
// (decide.ts), commit the decision to the journal with its report, then act
// or wait. A phase's action runs only once the journal names the phase
// (docs/architecture.md, invariant 1), so the journal always says what may be
// half done, and a restarted agent resumes by calling `drive` again.
import type { Logger } from 'pino';
import type { Inventory } from '../../protocol/inventory.ts';
import type { AttemptTransitionReport, UpgradeCompletedReport } from '../../protocol/reports.ts';
import type { AttemptRecord, TransitionRecord } from '../../store/attempt-repo.ts';
import type { Journal } from '../../store/journal.ts';
import { openGate, type Gate, type PostflightChecks } from '../gate/gate.ts';
import { KubeApiError, type ClusterClient } from '../kube/cluster-client.ts';
import { refOf } from '../kube/object-ref.ts';
import { decideApplied, decideError, decideGate, decideResume, decideRollback, decideSoak, decideVerify, stepOf, type Decision, type Move, type Timing } from './decide.ts';
import { explain } from './health-watch.ts';
import { isTerminal } from './lifecycle.ts';
import { Observer, type SelfUpgradeSupervisor } from './observe.ts';
import { applyComponent, pruneComponent, restoreSnapshot, takeSnapshot } from './stage-actions.ts';

export type { SelfUpgradeSupervisor } from './observe.ts';

export interface TransitionListener {
  (attempt: AttemptRecord, t: TransitionRecord): void;
}

export interface EngineDeps {
  journal: Journal;
  cluster: ClusterClient;
  logger: Logger;
  now: () => Date;
  sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  clusterId: string;
  targetInfrastructure: () => string;
  gate?: Gate;
  postflight?: PostflightChecks;
  onTransition?: TransitionListener;
  /** How often health is polled while verifying, soaking and rolling back. */
  pollMs?: number;
  /** Process starts inside one attempt before it is declared a crash loop. */
  maxStarts?: number;
  /** Called as each state's action begins (tracing; the CLI's crash failpoint). */
  onStep?: (attempt: AttemptRecord) => void;
  /** Writes the journal's state to the in-cluster hand-over record; must succeed before an action starts. */
  mirror?: (attemptId: string) => Promise<void>;
  /** Supervises the agent's own upgrade (the `self` component). */
  selfUpgrade?: SelfUpgradeSupervisor;
  /** What the cluster runs, reported with an attempt's end (it may have changed). */
  inventory?: () => Inventory;
}

/** How a drive ended: the attempt finished, or this (old) agent handed it to its successor `handedOverTo`. */
export type DriveResult = { attempt: AttemptRecord; handedOverTo?: string };

/** The transition report the hub reads, for every move including the first (Pending). */
export function transitionReport(a: AttemptRecord, t: TransitionRecord): AttemptTransitionReport {
  return {
    attemptId: a.id,
    release: { name: a.releaseName, version: a.releaseVersion, revision: a.revision },
    phase: t.phase,
    stage: t.stage,
    reason: t.reason,
    message: t.message,
    at: t.at,
  };
}

export class Engine {
  readonly #journal: Journal;
  readonly #cluster: ClusterClient;
  readonly #logger: Logger;
  readonly #now: () => Date;
  readonly #sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  readonly #clusterId: string;
  readonly #targetInfrastructure: () => string;
  readonly #timing: Timing;
  readonly #onTransition: TransitionListener | undefined;
  readonly #onStep: ((attempt: AttemptRecord) => void) | undefined;
  readonly #mirror: ((attemptId: string) => Promise<void>) | undefined;
  readonly #inventory: (() => Inventory) | undefined;
  readonly #observe: Observer;
  /** The signal of the attempt being driven (stops waits that are not tied to one action). */
  #signal: AbortSignal = new AbortController().signal;
  /** The rollback this process restored already (attempt and entry): restoring is idempotent, but once per entry is enough. */
  #restored: string | undefined;

  constructor(deps: EngineDeps) {
    this.#journal = deps.journal;
    this.#cluster = deps.cluster;
    this.#logger = deps.logger;
    this.#now = deps.now;
    this.#clusterId = deps.clusterId;
    this.#targetInfrastructure = deps.targetInfrastructure;
    this.#timing = { pollMs: deps.pollMs ?? 1000, maxStarts: deps.maxStarts ?? 5 };
    this.#onTransition = deps.onTransition;
    this.#onStep = deps.onStep;
    this.#mirror = deps.mirror;
    this.#inventory = deps.inventory;
    this.#observe = new Observer({ journal: deps.journal, cluster: deps.cluster, gate: deps.gate ?? openGate, postflight: deps.postflight, selfUpgrade: deps.selfUpgrade, now: deps.now });
    // A wait cut short by the stop signal must end the step, not lead into
    // the next poll: otherwise a SIGTERM during a soak sits the soak out.
    this.#sleep = async (ms, signal) => {
      await deps.sleep(ms, signal);
      signal.throwIfAborted();
    };
  }

  /** Called once per process start for the unfinished attempt: counts the start and detects crash loops. */
  async resume(attemptId: string): Promise<void> {
    const starts = this.#journal.attempts.recordStart(attemptId);
    const a = this.#attempt(attemptId);
    if (a.finishedAt) return;
    const decision = decideResume(a, starts, this.#timing);
    if (decision) await this.#carryOut(a, decision, this.#signal);
  }

  /** The only loop: observe, decide, commit, act, until the attempt finishes or is handed over. */
  async drive(attemptId: string, signal: AbortSignal): Promise<DriveResult> {
    this.#signal = signal;
    for (;;) {
      signal.throwIfAborted();
      const a = this.#attempt(attemptId);
      if (a.finishedAt) return { attempt: a };
      this.#onStep?.(a);
      let decision: Decision;
      try {
        decision = await this.#step(a, signal);
      } catch (err) {
        if (signal.aborted) throw err;
        const transient = err instanceof KubeApiError && (err.reason === 'Unreachable' || err.status >= 500 || err.status === 429);
        if (transient) this.#logger.warn({ attemptId, phase: a.phase, stage: a.stage, err: (err as Error).message }, 'Kubernetes API unavailable; retrying the current step');
        decision = decideError(a, { transient, message: (err as Error).message }, this.#timing);
      }
      const handedOverTo = await this.#carryOut(a, decision, signal);
      if (handedOverTo) {
        this.#logger.info({ attemptId, version: handedOverTo }, `the agent's own upgrade reached its candidate ${handedOverTo}; this (old) agent hands over and stands by`);
        return { attempt: this.#attempt(attemptId), handedOverTo };
      }
    }
  }

  /** Observes the attempt in its phase (after the phase's action, if it has one) and decides. */
  async #step(a: AttemptRecord, signal: AbortSignal): Promise<Decision> {
    const now = () => this.#now().getTime();
    switch (stepOf(a.phase)) {
      case 'gate': {
        const o = await this.#observe.gate(a, signal);
        return decideGate(a, o, now());
      }
      case 'apply':
        await this.#applyStage(a, signal);
        return decideApplied(a);
      case 'verify': {
        const o = await this.#observe.verify(a, signal);
        return decideVerify(a, o, now(), this.#timing);
      }
      case 'soak': {
        const o = await this.#observe.soak(a);
        return decideSoak(a, o, now(), this.#timing);
      }
      case 'rollback': {
        await this.#restoreOnce(a, signal);
        const o = await this.#observe.rollback(a);
        return decideRollback(a, o, now(), this.#timing);
      }
      case undefined:
        throw new Error(`no action for phase ${a.phase}`);
    }
  }

  /** Commits the decision's move, then waits or reports the hand-over. */
  async #carryOut(a: AttemptRecord, d: Decision, signal: AbortSignal): Promise<string | undefined> {
    if ('move' in d) await this.#commit(a, d.move);
    if ('handOver' in d && d.handOver) return d.handOver;
    if ('waitMs' in d && d.waitMs !== undefined) await this.#sleep(d.waitMs, signal);
    return undefined;
  }

  // ── actions ───────────────────────────────────────────────────────────

  async #applyStage(a: AttemptRecord, signal: AbortSignal): Promise<void> {
    const stage = a.stage ?? 0;
    const journal = this.#journal;
    const cluster = this.#cluster;
    const snapshotted = (component: string) => journal.attempts.snapshots(a.id).find((s) => s.component === component);
    if (stage < a.plan.stages.length) {
      const components = this.#observe.stageComponents(a, stage);
      // Last known good first, for the whole stage, before any of it changes.
      for (const c of components) {
        if (snapshotted(c.name)) continue;
        const snap = await takeSnapshot(cluster, c, journal.installed.get(c.name));
        journal.transaction(() => {
          journal.attempts.saveSnapshotOnce({ attemptId: a.id, component: c.name, stage, ...snap });
          journal.attempts.stageStarted(a.id, c.name, stage);
        });
      }
      await this.#mirrorState(a.id);
      for (const c of components) await applyComponent(cluster, c, signal);
      for (const c of components) await pruneComponent(cluster, c, snapshotted(c.name)!.owned);
      return;
    }
    // The removal stage: components no longer in the release.
    for (const r of a.plan.removed) {
      const installed = journal.installed.get(r.name);
      if (!installed) continue;
      if (!snapshotted(r.name)) {
        const snap = await takeSnapshot(cluster, { name: r.name, version: r.version, manifests: [], self: false, stage, health: { progressDeadlineSeconds: 600, soakSeconds: 0 } }, installed);
        journal.attempts.saveSnapshotOnce({ attemptId: a.id, component: r.name, stage, ...snap });
      }
      await pruneComponent(cluster, { name: r.name, manifests: [] }, installed.objects);
    }
  }

  /** Puts every snapshot back, newest stage first, once per entry into RollingBack in this process. */
  async #restoreOnce(a: AttemptRecord, signal: AbortSignal): Promise<void> {
    const key = `${a.id}@${a.updatedAt}`;
    if (this.#restored === key) return;
    for (const s of this.#observe.snapshotsNewestFirst(a.id)) {
      signal.throwIfAborted();
      await restoreSnapshot(this.#cluster, s);
    }
    this.#restored = key;
  }

  // ── commit ────────────────────────────────────────────────────────────

  /** The bookkeeping a move commits with: what is installed follows what passed or was restored. */
  #record(a: AttemptRecord, m: Move): void {
    const journal = this.#journal;
    if (m.record?.kind === 'snapshotsRestored') {
      for (const s of journal.attempts.snapshots(a.id)) {
        if (s.version === null) journal.installed.remove(s.component);
        else journal.installed.set({ component: s.component, version: s.version, digest: s.digest ?? '', objects: s.owned, attemptId: null });
        journal.attempts.stageFinished(a.id, s.component, 'RolledBack');
      }
    } else if (m.record?.kind === 'stageInstalled') {
      const stage = m.record.stage;
      if (stage >= a.plan.stages.length) {
        for (const r of a.plan.removed) journal.installed.remove(r.name);
        return;
      }
      for (const c of this.#observe.stageComponents(a, stage)) {
        const planned = a.plan.stages[stage]!.components.find((p) => p.name === c.name)!;
        journal.installed.set({ component: c.name, version: c.version, digest: planned.digest, objects: c.manifests.map(refOf), attemptId: a.id });
        journal.attempts.stageFinished(a.id, c.name, 'Succeeded');
      }
    }
  }

  /**
   * Persists the next state (its report, and the move's bookkeeping) in one
   * transaction before its action starts; listeners hear of it only after
   * the commit, so whatever they do (even dying) sees a durable state.
   */
  async #commit(a: AttemptRecord, m: Move): Promise<void> {
    const message = typeof m.message === 'string' ? m.message : m.message.text(await explain(this.#cluster, m.message.workload));
    const finished = isTerminal(m.to);
    const journal = this.#journal;
    const record = journal.transaction(() => {
      this.#record(a, m);
      const tr = journal.attempts.transition(a.id, { phase: m.to, stage: m.stage, reason: m.reason, message, data: m.data, finished });
      journal.outbox.enqueue('attempt-transition', transitionReport(a, tr));
      if (finished) {
        const completed: UpgradeCompletedReport = {
          cluster_id: this.#clusterId,
          target_infrastructure: this.#targetInfrastructure(),
          release: { name: a.releaseName, version: a.releaseVersion },
          result: tr.phase as UpgradeCompletedReport['result'],
          durationMs: Math.max(0, Date.parse(tr.at) - Date.parse(a.startedAt)),
          attemptId: a.id,
          completedAt: tr.at,
        };
        journal.outbox.enqueue('upgrade-completed', completed);
        if (this.#inventory) journal.outbox.enqueue('inventory', this.#inventory());
      }
      return tr;
    });
    this.#logger.info({ attemptId: a.id, from: a.phase, to: m.to, stage: m.stage, reason: m.reason }, `attempt ${m.to}${message ? `: ${message}` : ''}`);
    // The in-cluster copy must name the state before its action starts, too:
    // a new leader elsewhere resumes from it.
    await this.#mirrorState(a.id);
    this.#onTransition?.(this.#attempt(a.id), record);
  }

  async #mirrorState(attemptId: string): Promise<void> {
    if (!this.#mirror) return;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#mirror(attemptId);
        return;
      } catch (err) {
        // No action may start before the in-cluster copy names it; the API
        // is needed for the action anyway, so waiting costs nothing.
        this.#logger.warn({ attemptId, err: (err as Error).message, attempt }, 'could not write the hand-over record; retrying');
        // A stop ends the wait: the state is in the journal, the next start writes the record.
        this.#signal.throwIfAborted();
        await this.#sleep(Math.min(10_000, 500 * attempt), this.#signal);
      }
    }
  }

  #attempt(id: string): AttemptRecord {
    const a = this.#journal.attempts.get(id);
    if (!a) throw new Error(`attempt ${id} is not in the journal`);
    return a;
  }
}
