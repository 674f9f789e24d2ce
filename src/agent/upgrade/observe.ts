// What the engine looks at before it decides: the journal, the cluster's
// workloads, the gate, the post-flight checks and the agent's own successor.
// Nothing here changes the cluster or moves an attempt; the gate and the
// checks record the evidence they gathered (check results) and nothing else.
import type { AttemptPhase } from '../../protocol/attempt.ts';
import type { Component, Release, WorkloadRef } from '../../protocol/release.ts';
import type { AttemptRecord, Snapshot } from '../../store/attempt-repo.ts';
import type { Journal } from '../../store/journal.ts';
import type { Gate, PostflightChecks } from '../gate/gate.ts';
import { withOverrides } from '../intake/overrides.ts';
import type { ClusterClient } from '../kube/cluster-client.ts';
import { refOf } from '../kube/object-ref.ts';
import { asWorkload, workloadsOf } from '../kube/workload-health.ts';
import { gateStage, progressDeadlineMs, soakMs, type GateObservation, type ObservedContainer, type RollbackObservation, type SoakObservation, type TakeoverProof, type VerifyObservation } from './decide.ts';
import { checkWorkloads, currentContainers } from './health-watch.ts';
import { compareText } from '../../lib/compare.ts';

/** What the engine needs to upgrade the agent itself (src/agent/upgrade/self-upgrade.ts). */
export interface SelfUpgradeSupervisor {
  /** Is this process the version being installed (the candidate that took over)? */
  isRunningVersion(version: string): boolean;
  /** Has the candidate of `version` reported ready (journal, Kubernetes API, hub checks passed)? */
  candidateReady(version: string, since: Date): Promise<{ ready: boolean; message: string }>;
  /** With a hub configured: the new version must reach it within `timeoutMs` of taking over, or it reverts itself. */
  hub?: { connected(): boolean; timeoutMs: number };
}

export interface ObserverDeps {
  journal: Journal;
  cluster: ClusterClient;
  gate: Gate;
  postflight?: PostflightChecks | undefined;
  selfUpgrade?: SelfUpgradeSupervisor | undefined;
  now: () => Date;
}

export class Observer {
  readonly #journal: Journal;
  readonly #cluster: ClusterClient;
  readonly #gate: Gate;
  readonly #postflight: PostflightChecks | undefined;
  readonly #selfUpgrade: SelfUpgradeSupervisor | undefined;
  readonly #now: () => Date;
  /** Per attempt and stage, since when this process (the new agent version) has looked for the hub, and whether it found it. */
  readonly #takeovers = new Map<string, { sinceMs: number; reachedHub: boolean }>();
  /** Since when this process has seen each container down (pod/container/restart count): a waiting reason's duration, which the kubelet does not report. */
  #down = new Map<string, number>();

  constructor(deps: ObserverDeps) {
    this.#journal = deps.journal;
    this.#cluster = deps.cluster;
    this.#gate = deps.gate;
    this.#postflight = deps.postflight;
    this.#selfUpgrade = deps.selfUpgrade;
    this.#now = deps.now;
  }

  async gate(a: AttemptRecord, signal: AbortSignal): Promise<GateObservation> {
    if (a.plan.stages.length === 0 && a.plan.removed.length === 0) return { kind: 'nothingToDo' };
    // A newer release replaces an attempt that has not changed anything yet;
    // once a stage has run, the attempt finishes first (never half-upgraded).
    const newest = this.#journal.releases.lastAcceptedRevision();
    if (newest > a.revision && this.#journal.attempts.snapshots(a.id).length === 0) return { kind: 'superseded', newest };
    const stage = gateStage(a);
    const decision = await this.#gate.evaluate({ attempt: a, release: this.release(a), stage, now: this.#now(), signal });
    return { kind: 'gate', stage, decision };
  }

  async verify(a: AttemptRecord, signal: AbortSignal): Promise<VerifyObservation> {
    const stage = a.stage ?? 0;
    const components = this.stageComponents(a, stage);
    const sinceMs = this.enteredAt(a.id, 'Upgrading', stage);
    const health = await checkWorkloads(this.#cluster, workloadsOfStage(components));
    const self = components.find((c) => c.self);
    // This process is the old version, supervising the new one it applied.
    const supervising = self && this.#selfUpgrade && !this.#selfUpgrade.isRunningVersion(self.version) ? self.version : undefined;
    const o: VerifyObservation = { stage, sinceMs, deadlineMs: progressDeadlineMs(components), soakMs: soakMs(components), health, ...(supervising ? { selfVersion: supervising } : {}) };
    // This process is the new version and leads its own stage before any soak: the rolling update
    // replaced the old pod as soon as this one was ready, so it took over from the record in Verifying.
    const takeover = self && !supervising ? this.#takeover(a, stage) : undefined;
    if (takeover) o.takeover = { version: self!.version, ...takeover };
    if (health.failed) return o;
    if (!health.healthy) {
      // What the new pods' containers say, so a crash loop ends the stage before its deadline.
      o.containers = await this.#containers(health.notReady.map((h) => h.ref));
      return o;
    }
    if (supervising) {
      const candidate = await this.#selfUpgrade!.candidateReady(supervising, new Date(sinceMs));
      return { ...o, candidate: { version: supervising, ...candidate } };
    }
    if (this.#postflight) o.postflight = await this.#postflight.run({ attempt: a, release: this.release(a), stage, now: this.#now(), signal });
    return o;
  }

  /** The new agent version's proof that it reaches the hub, per attempt and stage (from Verifying into Soaking); undefined without a hub. */
  #takeover(a: AttemptRecord, stage: number): TakeoverProof | undefined {
    const hub = this.#selfUpgrade?.hub;
    if (!hub) return undefined;
    const key = `${a.id}:${stage}`;
    const proof = this.#takeovers.get(key) ?? { sinceMs: this.#now().getTime(), reachedHub: false };
    proof.reachedHub ||= hub.connected();
    this.#takeovers.set(key, proof);
    return { ...proof, timeoutMs: hub.timeoutMs };
  }

  /** The not-running containers of these workloads' current pods, each with since when this process has seen it down at its restart count. */
  async #containers(refs: WorkloadRef[]): Promise<ObservedContainer[]> {
    const nowMs = this.#now().getTime();
    const seen = new Map<string, number>();
    const out: ObservedContainer[] = [];
    for (const ref of refs) {
      for (const c of await currentContainers(this.#cluster, ref)) {
        // A restart is a new try: the clock starts again.
        const key = `${c.pod}/${c.init ? 'init:' : ''}${c.container}/${c.restartCount}`;
        const since = this.#down.get(key) ?? nowMs;
        seen.set(key, since);
        out.push({ ...c, workload: ref, downSinceMs: since });
      }
    }
    // Only what is down now counts: a container that ran in between starts again from zero.
    this.#down = seen;
    return out;
  }

  async soak(a: AttemptRecord): Promise<SoakObservation> {
    const stage = a.stage ?? 0;
    const components = this.stageComponents(a, stage);
    const untilMs = this.enteredAt(a.id, 'Soaking', stage) + soakMs(components);
    const self = components.find((c) => c.self);
    const su = this.#selfUpgrade;
    let selfView: SoakObservation['self'];
    if (self && su) {
      if (!su.isRunningVersion(self.version)) {
        // Still (or again) the old version here: the candidate should have taken over.
        const candidate = await su.candidateReady(self.version, new Date(this.enteredAt(a.id, 'Upgrading', stage)));
        return { stage, untilMs, self: { running: 'old', version: self.version, candidate } };
      }
      selfView = { running: 'new', version: self.version };
      // We are the new version and lead now: we prove we reach the hub once, then the soak counts.
      const takeover = this.#takeover(a, stage);
      if (takeover) {
        selfView.takeover = takeover;
        if (!takeover.reachedHub) return { stage, untilMs, self: selfView };
      }
    }
    const health = await checkWorkloads(this.#cluster, workloadsOfStage(components));
    return { stage, untilMs, ...(selfView ? { self: selfView } : {}), health };
  }

  async rollback(a: AttemptRecord): Promise<RollbackObservation> {
    const refs = this.snapshotsNewestFirst(a.id).flatMap((s) => s.objects.flatMap((o) => asWorkload(refOf(o)) ?? []));
    return {
      sinceMs: this.enteredAt(a.id, 'RollingBack', a.stage),
      deadlineMs: progressDeadlineMs(this.release(a).components),
      health: await checkWorkloads(this.#cluster, refs),
    };
  }

  /** Newest first: the last stage changed is the first restored. */
  snapshotsNewestFirst(attemptId: string): Snapshot[] {
    return this.#journal.attempts.snapshots(attemptId).sort((x, y) => y.stage - x.stage || compareText(x.component, y.component));
  }

  /** The release this attempt works towards, with the hotfix overrides its plan folded in. */
  release(a: AttemptRecord): Release {
    const r = this.#journal.releases.byId(a.releaseId);
    if (!r) throw new Error(`release ${a.releaseId} of attempt ${a.id} is missing from the journal`);
    return withOverrides(r.release, a.plan.overrides);
  }

  stageComponents(a: AttemptRecord, stage: number): Component[] {
    const planned = a.plan.stages[stage]?.components ?? [];
    const release = this.release(a);
    return planned.map((p) => release.components.find((c) => c.name === p.name)!);
  }

  /** When the attempt last entered (phase, stage): deadlines survive restarts because they come from the journal. */
  enteredAt(attemptId: string, phase: AttemptPhase, stage: number | null): number {
    const ts = this.#journal.attempts.transitions(attemptId);
    for (let i = ts.length - 1; i >= 0; i--) {
      if (ts[i]!.phase === phase && ts[i]!.stage === stage) return Date.parse(ts[i]!.at);
    }
    return this.#now().getTime();
  }
}

function workloadsOfStage(components: Component[]): WorkloadRef[] {
  return components.flatMap((c) => workloadsOf(c.manifests, c.health.workloads));
}
