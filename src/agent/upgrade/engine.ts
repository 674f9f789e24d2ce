// Drives one attempt through the lifecycle (src/agent/upgrade/lifecycle.ts). The
// loop reads the attempt's state from the journal, performs that state's
// action, and persists the next state before its action starts; so the
// journal always names what may be half done, and a restarted agent resumes
// by calling `drive` again.
import type { Logger } from 'pino';
import type { AttemptPhase } from '../../protocol/attempt.ts';
import type { AttemptTransitionReport, UpgradeCompletedReport } from '../../protocol/reports.ts';
import type { Component, Release, WorkloadRef } from '../../protocol/release.ts';
import type { AttemptRecord, TransitionInput, TransitionRecord } from '../../store/attempt-repo.ts';
import type { Journal } from '../../store/journal.ts';
import { openGate, type Gate, type PostflightChecks } from '../gate/gate.ts';
import { checkWorkloads, explain } from './health-watch.ts';
import { KubeApiError, type ClusterClient } from '../kube/cluster-client.ts';
import { workloadsOf } from '../kube/workload-health.ts';
import { assertTransition } from './lifecycle.ts';
import { withOverrides } from '../intake/overrides.ts';
import { refOf } from '../kube/object-ref.ts';
import { applyComponent, pruneComponent, restoreSnapshot, takeSnapshot } from './stage-actions.ts';

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
  /** How often health is polled while verifying and soaking. */
  pollMs?: number;
  /** Process starts inside one attempt before it is declared a crash loop. */
  maxStarts?: number;
  /** Called as each state's action begins (tracing; the CLI's crash failpoint). */
  onStep?: (attempt: AttemptRecord) => void;
  /** Writes the journal's state to the in-cluster hand-over record; must succeed before an action starts. */
  mirror?: (attemptId: string) => Promise<void>;
  /** Supervises the agent's own upgrade (the `self` component). */
  selfUpgrade?: SelfUpgradeSupervisor;
}

/** What the engine needs to upgrade the agent itself (src/agent/upgrade/self-upgrade.ts). */
export interface SelfUpgradeSupervisor {
  /** Is this process the version being installed (the candidate that took over)? */
  isRunningVersion(version: string): boolean;
  /** Has the candidate of `version` reported ready (journal, Kubernetes API, hub checks passed)? */
  candidateReady(version: string, since: Date): Promise<{ ready: boolean; message: string }>;
  /** Checks the new version runs after it took over (e.g. reaches the hub); a failure reverts it. */
  postTakeover(signal: AbortSignal): Promise<{ ok: true } | { ok: false; reason: string; message: string }>;
}

/** Thrown out of `drive` when the old version has handed the attempt over to its successor. */
export class HandedOver extends Error {
  readonly reason = 'HandedOver';
  constructor(version: string) {
    super(`the agent's own upgrade reached its candidate ${version}; this (old) agent hands over and stands by`);
    this.name = 'HandedOver';
  }
}

type Optional = 'postflight' | 'onTransition' | 'mirror' | 'selfUpgrade' | 'onStep';

export class Engine {
  /** The signal of the attempt being driven (stops waits that are not tied to one action). */
  private signal: AbortSignal = new AbortController().signal;
  private readonly d: Required<Omit<EngineDeps, Optional>> & Pick<EngineDeps, Optional>;

  constructor(deps: EngineDeps) {
    this.d = {
      gate: openGate,
      pollMs: 1000,
      maxStarts: 5,
      ...deps,
      // A wait cut short by the stop signal must end the step, not lead into
      // the next poll: otherwise a SIGTERM during a soak sits the soak out.
      sleep: async (ms, signal) => {
        await deps.sleep(ms, signal);
        signal.throwIfAborted();
      },
    };
  }

  /** Called once per process start for the unfinished attempt: counts the start and detects crash loops. */
  async resume(attemptId: string): Promise<void> {
    const starts = this.d.journal.attempts.recordStart(attemptId);
    const a = this.attempt(attemptId);
    if (a.finishedAt) return;
    if (starts > this.d.maxStarts * 2 && a.phase === 'RollingBack') {
      await this.enter(a, { phase: 'Failed', reason: 'CrashLoop', message: `the agent started ${starts} times during this attempt, including during rollback; a person must look at the cluster`, finished: true });
    } else if (starts > this.d.maxStarts && a.phase !== 'RollingBack') {
      await this.enter(a, { phase: 'RollingBack', stage: a.stage, reason: 'CrashLoop', message: `the agent started ${starts} times during this attempt (limit ${this.d.maxStarts})` });
    }
  }

  async drive(attemptId: string, signal: AbortSignal): Promise<AttemptRecord> {
    this.signal = signal;
    for (;;) {
      signal.throwIfAborted();
      const a = this.attempt(attemptId);
      if (a.finishedAt) return a;
      const log = this.d.logger.child({ attemptId, phase: a.phase, stage: a.stage });
      this.d.onStep?.(a);
      try {
        switch (a.phase) {
          case 'Pending':
          case 'WaitingForWindow':
          case 'PreflightChecking':
            await this.gateStage(a, a.phase === 'Pending' ? 0 : (a.stage ?? 0), signal);
            break;
          case 'Upgrading':
            await this.upgrade(a, signal);
            break;
          case 'Verifying':
            await this.verify(a, signal);
            break;
          case 'Soaking':
            await this.soak(a, signal);
            break;
          case 'RollingBack':
            await this.rollBack(a, signal);
            break;
          default:
            throw new Error(`no action for phase ${a.phase}`);
        }
      } catch (err) {
        if (signal.aborted || err instanceof HandedOver) throw err;
        if (err instanceof KubeApiError && (err.reason === 'Unreachable' || err.status >= 500 || err.status === 429)) {
          // The API server is away: the state is persisted, so wait and redo the action.
          log.warn({ err: err.message }, 'Kubernetes API unavailable; retrying the current step');
          await this.d.sleep(this.d.pollMs * 2, signal);
          continue;
        }
        if (a.phase === 'RollingBack') {
          await this.enter(a, { phase: 'Failed', stage: a.stage, reason: 'RollbackError', message: `rollback could not complete: ${(err as Error).message}`, finished: true });
        } else if (a.phase === 'Pending' || a.phase === 'WaitingForWindow' || a.phase === 'PreflightChecking') {
          await this.enter(a, { phase: 'Failed', reason: 'GateError', message: (err as Error).message, finished: true });
        } else {
          await this.enter(a, { phase: 'RollingBack', stage: a.stage, reason: 'ApplyFailed', message: (err as Error).message });
        }
      }
    }
  }

  // ── states ────────────────────────────────────────────────────────────

  private async gateStage(a: AttemptRecord, stage: number, signal: AbortSignal): Promise<void> {
    if (a.plan.stages.length === 0 && a.plan.removed.length === 0) {
      await this.enter(a, { phase: 'Succeeded', reason: 'NothingToDo', message: 'every component is already on its version', finished: true });
      return;
    }
    // A newer release replaces an attempt that has not changed anything yet;
    // once a stage has run, the attempt finishes first (never half-upgraded).
    const newest = this.d.journal.releases.lastAcceptedRevision();
    if (newest > a.revision && this.d.journal.attempts.snapshots(a.id).length === 0) {
      await this.enter(a, { phase: 'Failed', reason: 'Superseded', message: `revision ${newest} arrived before this attempt changed anything`, finished: true });
      return;
    }
    const release = this.release(a);
    const decision = await this.d.gate.evaluate({ attempt: a, release, stage, now: this.d.now(), signal });
    if (decision.go) {
      const note = decision.message ? `; ${decision.message}` : '';
      await this.enter(a, { phase: 'Upgrading', stage, reason: 'StageStarted', message: `stage ${stage}: ${this.stageNames(a, stage)}${note}`, data: decision.data });
      return;
    }
    if (a.phase !== decision.phase || a.reason !== decision.reason || a.stage !== stage) {
      await this.enter(a, { phase: decision.phase, stage, reason: decision.reason, message: decision.message, data: decision.data });
    }
    const wait = Math.max(0, decision.retryAt.getTime() - this.d.now().getTime());
    await this.d.sleep(Math.min(wait, 60_000), signal);
  }

  private async upgrade(a: AttemptRecord, signal: AbortSignal): Promise<void> {
    const stage = a.stage ?? 0;
    const components = this.stageComponents(a, stage);
    const { journal, cluster } = this.d;
    if (stage < a.plan.stages.length) {
      // Last known good first, for the whole stage, before any of it changes.
      for (const c of components) {
        const installed = journal.installed.get(c.name);
        if (!journal.attempts.snapshots(a.id).some((s) => s.component === c.name)) {
          const snap = await takeSnapshot(cluster, c, installed);
          journal.transaction(() => {
            journal.attempts.saveSnapshotOnce({ attemptId: a.id, component: c.name, stage, ...snap });
            journal.attempts.stageStarted(a.id, c.name, stage);
          });
        }
      }
      await this.mirror(a.id);
      for (const c of components) await applyComponent(cluster, c, signal);
      for (const c of components) {
        const snap = journal.attempts.snapshots(a.id).find((s) => s.component === c.name)!;
        await pruneComponent(cluster, c, snap.owned);
      }
    } else {
      // The removal stage: components no longer in the release.
      for (const r of a.plan.removed) {
        const installed = journal.installed.get(r.name);
        if (!installed) continue;
        if (!journal.attempts.snapshots(a.id).some((s) => s.component === r.name)) {
          const snap = await takeSnapshot(cluster, { name: r.name, version: r.version, manifests: [], self: false, stage, health: { progressDeadlineSeconds: 600, soakSeconds: 0 } }, installed);
          journal.attempts.saveSnapshotOnce({ attemptId: a.id, component: r.name, stage, ...snap });
        }
        await pruneComponent(cluster, { name: r.name, manifests: [] }, installed.objects);
      }
    }
    await this.enter(a, { phase: 'Verifying', stage, reason: 'Applied', message: `stage ${stage} applied; waiting for rollout` });
  }

  private async verify(a: AttemptRecord, signal: AbortSignal): Promise<void> {
    const stage = a.stage ?? 0;
    const components = this.stageComponents(a, stage);
    const deadline = this.enteredAt(a.id, 'Upgrading', stage) + Math.max(1, ...components.map((c) => c.health.progressDeadlineSeconds)) * 1000;
    const refs = components.flatMap((c) => workloadsOf(c.manifests, c.health.workloads));
    for (;;) {
      const health = await checkWorkloads(this.d.cluster, refs);
      if (health.failed) {
        await this.enter(a, { phase: 'RollingBack', stage, reason: health.failed.reason, message: await explain(this.d.cluster, health.failed) });
        return;
      }
      const self = components.find((c) => c.self);
      if (health.healthy && self && this.d.selfUpgrade && !this.d.selfUpgrade.isRunningVersion(self.version)) {
        const candidate = await this.d.selfUpgrade.candidateReady(self.version, new Date(this.enteredAt(a.id, 'Upgrading', stage)));
        if (!candidate.ready) {
          if (this.d.now().getTime() > deadline) {
            await this.enter(a, { phase: 'RollingBack', stage, reason: 'CandidateNotReady', message: `the new agent ${self.version} did not report ready by its deadline: ${candidate.message}` });
            return;
          }
          await this.d.sleep(this.d.pollMs, signal);
          continue;
        }
        // The candidate is ready: hand the attempt over. It soaks and confirms itself.
        await this.enter(a, { phase: 'Soaking', stage, reason: 'CandidateReady', message: `new agent ${self.version} is ready and takes over: ${candidate.message}` });
        throw new HandedOver(self.version);
      }
      if (health.healthy) {
        if (this.d.postflight) {
          const res = await this.d.postflight.run({ attempt: a, release: this.release(a), stage, now: this.d.now(), signal });
          if (!res.ok) {
            await this.enter(a, { phase: 'RollingBack', stage, reason: res.reason, message: res.message });
            return;
          }
        }
        const soak = Math.max(0, ...components.map((c) => c.health.soakSeconds));
        if (soak > 0) await this.enter(a, { phase: 'Soaking', stage, reason: 'RolledOut', message: `stage ${stage} healthy; soaking for ${soak}s` });
        else await this.finishStage(a, stage);
        return;
      }
      if (this.d.now().getTime() > deadline) {
        const first = health.notReady[0]!;
        await this.enter(a, { phase: 'RollingBack', stage, reason: 'StageDeadlineExceeded', message: `stage ${stage} not healthy by its deadline: ${await explain(this.d.cluster, first)}` });
        return;
      }
      await this.d.sleep(this.d.pollMs, signal);
    }
  }

  private async soak(a: AttemptRecord, signal: AbortSignal): Promise<void> {
    const stage = a.stage ?? 0;
    const components = this.stageComponents(a, stage);
    const until = this.enteredAt(a.id, 'Soaking', stage) + Math.max(0, ...components.map((c) => c.health.soakSeconds)) * 1000;
    const refs = components.flatMap((c) => workloadsOf(c.manifests, c.health.workloads));
    const self = components.find((c) => c.self);
    if (self && this.d.selfUpgrade) {
      if (!this.d.selfUpgrade.isRunningVersion(self.version)) {
        // Still (or again) the old version here: the candidate should have taken over.
        const candidate = await this.d.selfUpgrade.candidateReady(self.version, new Date(this.enteredAt(a.id, 'Upgrading', stage)));
        if (candidate.ready) throw new HandedOver(self.version);
        await this.enter(a, { phase: 'RollingBack', stage, reason: 'CandidateLost', message: `the new agent ${self.version} stopped answering after it was handed the upgrade: ${candidate.message}` });
        return;
      }
      // We are the new version and lead now: prove we work, or revert ourselves.
      const check = await this.d.selfUpgrade.postTakeover(signal);
      if (!check.ok) {
        await this.enter(a, { phase: 'RollingBack', stage, reason: check.reason, message: check.message });
        return;
      }
    }
    for (;;) {
      const health = await checkWorkloads(this.d.cluster, refs);
      if (!health.healthy) {
        const bad = health.failed ?? health.notReady[0]!;
        await this.enter(a, { phase: 'RollingBack', stage, reason: 'HealthDegradedDuringSoak', message: await explain(this.d.cluster, bad) });
        return;
      }
      const left = until - this.d.now().getTime();
      if (left <= 0) break;
      await this.d.sleep(Math.min(this.d.pollMs, left), signal);
    }
    await this.finishStage(a, stage);
  }

  /** Records the stage's components as installed and moves on, in one transaction. */
  private async finishStage(a: AttemptRecord, stage: number): Promise<void> {
    const { journal } = this.d;
    const isRemoval = stage >= a.plan.stages.length;
    const hasRemovalStage = a.plan.removed.length > 0;
    const last = isRemoval || (stage === a.plan.stages.length - 1 && !hasRemovalStage);
    const recordInstalled = () => {
      if (isRemoval) {
        for (const r of a.plan.removed) journal.installed.remove(r.name);
        return;
      }
      for (const c of this.stageComponents(a, stage)) {
        const planned = a.plan.stages[stage]!.components.find((p) => p.name === c.name)!;
        journal.installed.set({ component: c.name, version: c.version, digest: planned.digest, objects: c.manifests.map(refOf), attemptId: a.id });
        journal.attempts.stageFinished(a.id, c.name, 'Succeeded');
      }
    };
    if (last) {
      await this.enter(a, { phase: 'Succeeded', stage, reason: 'AllComponentsHealthy', message: `every component of ${a.releaseName} ${a.releaseVersion} is on its version and healthy`, finished: true }, recordInstalled);
    } else {
      await this.enter(a, { phase: 'PreflightChecking', stage: stage + 1, reason: 'NextStage', message: `stage ${stage} passed; checking before stage ${stage + 1}` }, recordInstalled);
    }
  }

  private async rollBack(a: AttemptRecord, signal: AbortSignal): Promise<void> {
    const { journal, cluster } = this.d;
    // Newest first: the last stage changed is the first restored.
    const snaps = journal.attempts.snapshots(a.id).sort((x, y) => y.stage - x.stage || x.component.localeCompare(y.component));
    for (const s of snaps) {
      signal.throwIfAborted();
      await restoreSnapshot(cluster, s);
    }
    const refs = snaps.flatMap((s) =>
      s.objects
        .filter((o) => o.kind === 'Deployment' || o.kind === 'DaemonSet' || o.kind === 'StatefulSet')
        .map((o) => ({ kind: o.kind as WorkloadRef['kind'], name: o.metadata.name, namespace: o.metadata.namespace ?? 'default' })),
    );
    const deadlineSeconds = Math.max(1, ...this.release(a).components.map((c) => c.health.progressDeadlineSeconds));
    const deadline = this.enteredAt(a.id, 'RollingBack', a.stage) + deadlineSeconds * 1000;
    for (;;) {
      const health = await checkWorkloads(cluster, refs);
      if (health.healthy) break;
      if (this.d.now().getTime() > deadline) {
        const bad = health.failed ?? health.notReady[0]!;
        await this.enter(a, {
          phase: 'Failed',
          stage: a.stage,
          reason: 'RollbackUnhealthy',
          message: `rolled back after ${a.reason} but the previous version is not healthy: ${await explain(cluster, bad)}; a person must look at the cluster`,
          finished: true,
        });
        return;
      }
      await this.d.sleep(this.d.pollMs, signal);
    }
    await this.enter(a, { phase: 'RolledBack', stage: a.stage, reason: a.reason ?? 'RolledBack', message: `back on the previous version after: ${a.message ?? a.reason}`, finished: true }, () => {
      for (const s of snaps) {
        if (s.version === null) journal.installed.remove(s.component);
        else journal.installed.set({ component: s.component, version: s.version, digest: s.digest ?? '', objects: s.owned, attemptId: null });
        journal.attempts.stageFinished(a.id, s.component, 'RolledBack');
      }
    });
  }

  // ── persistence ───────────────────────────────────────────────────────

  /**
   * Persists the next state (its report, and `alongside` bookkeeping) in one
   * transaction before its action starts; listeners hear of it only after
   * the commit, so whatever they do (even dying) sees a durable state.
   */
  private async enter(a: AttemptRecord, t: TransitionInput, alongside?: () => void): Promise<void> {
    assertTransition(a.phase, t.phase);
    const { journal } = this.d;
    const record = journal.transaction(() => {
      alongside?.();
      const tr = journal.attempts.transition(a.id, t);
      const transition: AttemptTransitionReport = {
        attemptId: a.id,
        release: { name: a.releaseName, version: a.releaseVersion, revision: a.revision },
        phase: tr.phase,
        stage: tr.stage,
        reason: tr.reason,
        message: tr.message,
        at: tr.at,
      };
      journal.outbox.enqueue('attempt-transition', transition);
      if (t.finished) {
        const completed: UpgradeCompletedReport = {
          cluster_id: this.d.clusterId,
          target_infrastructure: this.d.targetInfrastructure(),
          release: { name: a.releaseName, version: a.releaseVersion },
          result: tr.phase as UpgradeCompletedReport['result'],
          durationMs: Math.max(0, Date.parse(tr.at) - Date.parse(a.startedAt)),
          attemptId: a.id,
          completedAt: tr.at,
        };
        journal.outbox.enqueue('upgrade-completed', completed);
      }
      return tr;
    });
    this.d.logger.info({ attemptId: a.id, from: a.phase, to: t.phase, stage: t.stage ?? null, reason: t.reason }, `attempt ${t.phase}${t.message ? `: ${t.message}` : ''}`);
    // The in-cluster copy must name the state before its action starts, too:
    // a new leader elsewhere resumes from it.
    await this.mirror(a.id);
    this.d.onTransition?.(this.attempt(a.id), record);
  }

  private async mirror(attemptId: string): Promise<void> {
    if (!this.d.mirror) return;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.d.mirror(attemptId);
        return;
      } catch (err) {
        // No action may start before the in-cluster copy names it; the API
        // is needed for the action anyway, so waiting costs nothing.
        this.d.logger.warn({ attemptId, err: (err as Error).message, attempt }, 'could not write the hand-over record; retrying');
        // A stop ends the wait: the state is in the journal, the next start writes the record.
        this.signal.throwIfAborted();
        await this.d.sleep(Math.min(10_000, 500 * attempt), this.signal);
      }
    }
  }

  // ── lookups ───────────────────────────────────────────────────────────

  private attempt(id: string): AttemptRecord {
    const a = this.d.journal.attempts.get(id);
    if (!a) throw new Error(`attempt ${id} is not in the journal`);
    return a;
  }

  /** The release this attempt works towards, with the hotfix overrides its plan folded in. */
  private release(a: AttemptRecord): Release {
    const r = this.d.journal.releases.byId(a.releaseId);
    if (!r) throw new Error(`release ${a.releaseId} of attempt ${a.id} is missing from the journal`);
    return withOverrides(r.release, a.plan.overrides);
  }

  private stageComponents(a: AttemptRecord, stage: number): Component[] {
    const planned = a.plan.stages[stage]?.components ?? [];
    const release = this.release(a);
    return planned.map((p) => release.components.find((c) => c.name === p.name)!);
  }

  private stageNames(a: AttemptRecord, stage: number): string {
    if (stage >= a.plan.stages.length) return `remove ${a.plan.removed.map((r) => r.name).join(', ')}`;
    return a.plan.stages[stage]!.components.map((c) => `${c.name} ${c.fromVersion ?? '(new)'} → ${c.version}`).join(', ');
  }

  /** When the attempt last entered (phase, stage): deadlines survive restarts because they come from the journal. */
  private enteredAt(attemptId: string, phase: AttemptPhase, stage: number | null): number {
    const ts = this.d.journal.attempts.transitions(attemptId);
    for (let i = ts.length - 1; i >= 0; i--) {
      if (ts[i]!.phase === phase && ts[i]!.stage === stage) return Date.parse(ts[i]!.at);
    }
    return this.d.now().getTime();
  }
}
