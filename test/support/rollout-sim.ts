// A fleet of simulated clusters driven by the pure rollout planner, the way
// the hub drives it: call planWave, persist its bookkeeping, "send" to the
// clusters it starts, move the clock, let the clusters do what their
// behaviour says. Nothing here touches a database or a socket.
import { planWave, type ClusterState, type Outcome, type WaveDecision, type WaveGroup, type WaveInput, type WindowState } from '../../src/hub/rollout/plan-wave.ts';

export interface Behaviour {
  /** ms after being sent until the agent reports Succeeded; undefined: never succeeds. */
  succeedAfter?: number;
  /** ms after being sent until the agent reports a failure (RolledBack). */
  failAfter?: number;
  /** Reports InProgress after this many ms (until it succeeds or fails). */
  progressAfter?: number;
}

export interface SimCluster {
  state: ClusterState;
  behaviour: Behaviour;
  /** Order in which the planner started clusters. */
  startedSeq: number | null;
}

export type SimParams = Omit<WaveInput, 'clusters' | 'groups' | 'phase' | 'reason' | 'message' | 'acknowledgedFailures' | 'acknowledgedMandatoryFailures'>;

export class FleetSim {
  now: number;
  readonly groups: WaveGroup[];
  readonly clusters: SimCluster[];
  params: SimParams;
  phase: WaveInput['phase'] = 'Progressing';
  reason: string | null = null;
  message: string | null = null;
  acknowledgedFailures = 0;
  acknowledgedMandatoryFailures = 0;
  window: WindowState | undefined;
  /** Max clusters Progressing at once seen after any step. */
  maxInFlight = 0;
  startedTotal = 0;
  last: WaveDecision | undefined;

  constructor(o: { start?: number; groups: { name: string; mandatory?: boolean; size: number; behaviour?: (i: number) => Behaviour }[]; params: SimParams }) {
    this.now = o.start ?? Date.parse('2030-01-02T00:00:00.000Z');
    this.params = o.params;
    this.groups = o.groups.map((g) => ({ name: g.name, mandatory: g.mandatory ?? false }));
    this.clusters = [];
    o.groups.forEach((g, gi) => {
      for (let i = 0; i < g.size; i++) {
        const id = `${g.name}-${String(i).padStart(5, '0')}`;
        this.clusters.push({
          state: { id, group: gi, available: true, sentAt: null, succeededAt: null, skippedAt: null, failure: null, outcome: { kind: 'NotReported' } },
          behaviour: g.behaviour?.(i) ?? { succeedAfter: 60_000 },
          startedSeq: null,
        });
      }
    });
  }

  byId(id: string): SimCluster {
    const c = this.clusters.find((x) => x.state.id === id);
    if (!c) throw new Error(`no simulated cluster ${id}`);
    return c;
  }

  input(): WaveInput {
    return {
      ...this.params,
      phase: this.phase,
      reason: this.reason,
      message: this.message,
      acknowledgedFailures: this.acknowledgedFailures,
      acknowledgedMandatoryFailures: this.acknowledgedMandatoryFailures,
      groups: this.groups,
      clusters: this.clusters.map((c) => c.state),
      ...(this.window ? { window: this.window } : {}),
    };
  }

  /** One tick: plan at `now` and apply the decision as the hub does. */
  tick(): WaveDecision {
    const d = planWave(this.input(), this.now);
    const index = new Map(this.clusters.map((c, i) => [c.state.id, i]));
    for (const id of d.succeededNow) (this.clusters[index.get(id) as number] as SimCluster).state.succeededAt = this.now;
    for (const f of d.failedNow) (this.clusters[index.get(f.id) as number] as SimCluster).state.failure = { reason: f.reason, message: f.message, at: f.at };
    for (const id of d.skippedNow) (this.clusters[index.get(id) as number] as SimCluster).state.skippedAt = this.now;
    for (const id of d.start) {
      const c = this.clusters[index.get(id) as number] as SimCluster;
      c.state.sentAt = this.now;
      c.state.skippedAt = null;
      c.startedSeq = this.startedTotal++;
    }
    this.phase = d.phase;
    this.reason = d.reason;
    this.message = d.message;
    this.maxInFlight = Math.max(this.maxInFlight, d.counts.Progressing);
    this.last = d;
    return d;
  }

  /** Moves the clock and lets every sent cluster report what its behaviour says by then. */
  advance(ms: number): void {
    this.now += ms;
    for (const c of this.clusters) {
      const s = c.state;
      if (s.sentAt === null || s.outcome.kind === 'Superseded' || s.outcome.kind === 'Gone') continue;
      const elapsed = this.now - s.sentAt;
      const b = c.behaviour;
      let outcome: Outcome = { kind: 'NotReported' };
      if (b.progressAfter !== undefined && elapsed >= b.progressAfter) outcome = { kind: 'InProgress', phase: 'Upgrading' };
      if (b.failAfter !== undefined && elapsed >= b.failAfter) outcome = { kind: 'Failed', reason: 'HealthCheckFailed', message: 'metrics-api never became Ready', at: s.sentAt + b.failAfter };
      else if (b.succeedAfter !== undefined && elapsed >= b.succeedAfter) outcome = { kind: 'Succeeded', at: s.sentAt + b.succeedAfter };
      s.outcome = outcome;
    }
  }

  /** Ticks every `stepMs` until the rollout leaves Progressing or `maxMs` passed. */
  run(stepMs: number, maxMs: number): WaveDecision {
    const end = this.now + maxMs;
    let d = this.tick();
    while (d.phase === 'Progressing' && this.now < end) {
      this.advance(stepMs);
      d = this.tick();
    }
    return d;
  }

  resume(): void {
    const d = planWave({ ...this.input(), mayStart: false }, this.now);
    this.acknowledgedFailures = d.failures;
    this.acknowledgedMandatoryFailures = d.mandatoryFailures;
    this.phase = 'Progressing';
    this.reason = null;
    this.message = null;
  }

  statusOf(id: string): string {
    const i = this.clusters.findIndex((c) => c.state.id === id);
    return this.last?.clusters[i]?.status ?? 'unknown';
  }
}

export const baseParams = (over: Partial<SimParams> = {}): SimParams => ({
  strategy: 'All',
  maxConcurrency: Number.MAX_SAFE_INTEGER,
  maxFailures: 0,
  minSuccessMs: 0,
  progressDeadlineMs: null,
  unknownClusters: 'Skip',
  ...over,
});
