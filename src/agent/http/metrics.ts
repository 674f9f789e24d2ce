// The agent's Prometheus metrics, on a Registry of its own: two agents in one
// process (tests, a self-upgrade candidate beside its supervisor) never share
// or overwrite each other's series, and nothing depends on prom-client's
// global default registry.
//
// Most values are read from the journal when Prometheus scrapes, not kept in
// memory: the journal is the record, so a restarted agent reports the same
// phase and last result it had before (level-triggered, like the agent loop).
// Only what happens in this process (stage durations observed, attempts
// finished, journal errors) is counted here, with the usual counter semantics
// (reset on restart; Prometheus' rate/increase handle that).
import { statSync } from 'node:fs';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { attemptPhase } from '../../protocol/attempt.ts';
import type { AttemptRecord, TransitionRecord } from '../../store/attempt-repo.ts';
import type { Journal } from '../../store/journal.ts';
import { hubStandingStates, type HubStandingState } from '../hub-standing.ts';

/** Metric names, shared with manifests/components/prometheus-rules (the alerts use them). */
export const metricNames = {
  info: 'fleetlet_agent_info',
  attemptPhase: 'fleetlet_agent_attempt_phase',
  lastAttemptResult: 'fleetlet_agent_last_attempt_result',
  lastAttemptFinished: 'fleetlet_agent_last_attempt_finished_timestamp_seconds',
  attemptsFinished: 'fleetlet_agent_attempts_finished_total',
  stageDuration: 'fleetlet_agent_stage_duration_seconds',
  outboxDepth: 'fleetlet_agent_outbox_depth',
  outboxOldestAge: 'fleetlet_agent_outbox_oldest_report_age_seconds',
  hubReconnects: 'fleetlet_agent_hub_reconnects_total',
  hubConnected: 'fleetlet_agent_hub_connected',
  hubStanding: 'fleetlet_agent_hub_standing',
  journalSize: 'fleetlet_agent_journal_size_bytes',
  journalErrors: 'fleetlet_agent_journal_errors_total',
} as const;

export interface AgentMetricsOptions {
  journal: Journal;
  clusterId: string;
  version: string;
  now?: () => Date;
  /** Reconnects of the hub link so far (a monotonic count); omit when no hub link exists. */
  hubReconnects?: () => number;
  /** Is the hub link connected now? Omit when no hub link exists (then no series, so no alert). */
  hubConnected?: () => boolean;
  /** Registering, Registered or Revoked (hub-standing.ts); omit when no hub link exists. */
  hubStanding?: () => HubStandingState | undefined;
  /** Also export process metrics (CPU, memory, event loop) on this registry. */
  processMetrics?: boolean;
}

export class AgentMetrics {
  readonly registry = new Registry();
  private readonly o: AgentMetricsOptions;
  private readonly now: () => Date;
  private readonly journalErrors: Counter<'operation'>;
  private readonly attemptsFinished: Counter<'result'>;
  private readonly stageDuration: Histogram<'result'>;
  /** Stage timings and finished attempts already counted, so each counts once per process. */
  private readonly observed = new Set<string>();

  constructor(o: AgentMetricsOptions) {
    this.o = o;
    this.now = o.now ?? (() => new Date());
    const registers = [this.registry];
    // Read through `self` in collect callbacks: prom-client binds `this` to the metric there.
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;

    new Gauge({ name: metricNames.info, help: 'Always 1; labels name the cluster and the agent version', labelNames: ['cluster_id', 'version'], registers }).set(
      { cluster_id: o.clusterId, version: o.version },
      1,
    );

    new Gauge({
      name: metricNames.attemptPhase,
      help: "1 for the phase the latest upgrade attempt is in (terminal phases included), 0 for the others; all 0 before the first attempt",
      labelNames: ['phase'],
      registers,
      collect() {
        const latest = self.read('attempt-phase', () => o.journal.attempts.latest());
        // Unknown is no series, never a stale or made-up phase.
        if (latest === ERROR) return this.reset();
        for (const p of attemptPhase.options) this.set({ phase: p }, latest?.phase === p ? 1 : 0);
      },
    });

    const results = ['Succeeded', 'RolledBack', 'Failed'] as const;
    new Gauge({
      name: metricNames.lastAttemptResult,
      help: 'The result of the latest finished attempt: 1 on its result (with its reason), nothing before the first one finishes',
      labelNames: ['result', 'reason'],
      registers,
      collect() {
        const last = self.read('last-attempt', () => lastFinished(o.journal));
        this.reset();
        if (last === ERROR || !last) return;
        // One series per result, so `result="Failed"` alerts clear once a later attempt succeeds.
        for (const r of results) this.set({ result: r, reason: last.phase === r ? (last.reason ?? '') : '' }, last.phase === r ? 1 : 0);
      },
    });

    new Gauge({
      name: metricNames.lastAttemptFinished,
      help: 'When the latest finished attempt finished (Unix seconds)',
      registers,
      collect() {
        const last = self.read('last-attempt', () => lastFinished(o.journal));
        this.set(last === ERROR || !last?.finishedAt ? NaN : Date.parse(last.finishedAt) / 1000);
      },
    });

    this.attemptsFinished = new Counter({ name: metricNames.attemptsFinished, help: 'Attempts this process saw finish, by result', labelNames: ['result'], registers });
    for (const r of results) this.attemptsFinished.inc({ result: r }, 0);

    this.stageDuration = new Histogram({
      name: metricNames.stageDuration,
      help: 'How long a component stage took from its snapshot to its result (seconds), by result',
      labelNames: ['result'],
      buckets: [5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200],
      registers,
    });

    new Gauge({
      name: metricNames.outboxDepth,
      help: 'Reports in the outbox the hub has not acknowledged yet',
      registers,
      collect() {
        const stats = self.read('outbox', () => o.journal.outbox.stats());
        // NaN (unknown) rather than a stale value: comparisons with it are false, the journal-error alert speaks instead.
        this.set(stats === ERROR ? NaN : stats.depth);
      },
    });

    new Gauge({
      name: metricNames.outboxOldestAge,
      help: 'Age of the oldest unacknowledged report (seconds); 0 when the outbox is empty',
      registers,
      collect() {
        const first = self.read('outbox', () => o.journal.outbox.pending(0, 1)[0]);
        if (first === ERROR) this.set(NaN);
        else this.set(first ? Math.max(0, (self.now().getTime() - Date.parse(first.createdAt)) / 1000) : 0);
      },
    });

    if (o.hubReconnects) {
      const source = o.hubReconnects;
      let seen = 0;
      new Counter({
        name: metricNames.hubReconnects,
        help: 'Times the hub link reconnected',
        registers,
        collect() {
          // The source counts; this mirrors it so the series stays a counter.
          const v = source();
          if (v > seen) this.inc(v - seen);
          seen = Math.max(seen, v);
        },
      });
    }

    if (o.hubConnected) {
      const source = o.hubConnected;
      new Gauge({
        name: metricNames.hubConnected,
        help: '1 while the hub link is connected, else 0',
        registers,
        collect() {
          this.set(source() ? 1 : 0);
        },
      });
    }

    if (o.hubStanding) {
      const source = o.hubStanding;
      new Gauge({
        name: metricNames.hubStanding,
        help: '1 for this agent\'s standing with the hub (Registering, Registered, Revoked: stopped, waiting for a new bootstrap), 0 for the others; no series before it is known',
        labelNames: ['state'],
        registers,
        collect() {
          const current = source();
          if (current === undefined) return this.reset();
          for (const state of hubStandingStates) this.set({ state }, state === current ? 1 : 0);
        },
      });
    }

    new Gauge({
      name: metricNames.journalSize,
      help: 'Bytes the journal takes on disk (database and write-ahead log)',
      registers,
      collect() {
        const size = self.read('size', () => journalBytes(o.journal));
        this.set(size === ERROR ? NaN : size);
      },
    });

    // Failed writes are counted by the journal itself (they happen wherever a
    // decision is committed); each scrape adds the ones since the last.
    let writeErrorsSeen = o.journal.writeErrors;
    this.journalErrors = new Counter({
      name: metricNames.journalErrors,
      help: 'Journal reads or writes that failed, by operation',
      labelNames: ['operation'],
      registers,
      collect() {
        const n = o.journal.writeErrors;
        if (n > writeErrorsSeen) this.inc({ operation: 'write' }, n - writeErrorsSeen);
        writeErrorsSeen = n;
      },
    });
    this.journalErrors.inc({ operation: 'readiness' }, 0);
    this.journalErrors.inc({ operation: 'write' }, 0);

    // The event-loop lag histogram samples once a second: prom-client's
    // default (every 10 ms) woke an idle agent 100 times a second and cost
    // ~0.7 % of a core on its own (docs/footprint.md).
    if (o.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'fleetlet_agent_', eventLoopMonitoringPrecision: 1000 });

    // Stages finished before this process started were observed by the previous one.
    const current = this.read('init', () => o.journal.attempts.current());
    if (current && current !== ERROR) for (const s of o.journal.attempts.stageTimings(current.id)) if (s.finishedAt) this.observed.add(stageKey(current.id, s));
  }

  /** Feed from the engine's transition listener: stage durations and finished attempts. */
  onTransition(attempt: AttemptRecord, t: TransitionRecord): void {
    const timings = this.read('stage-timings', () => this.o.journal.attempts.stageTimings(attempt.id));
    if (timings !== ERROR) {
      for (const s of timings) {
        if (!s.finishedAt || this.observed.has(stageKey(attempt.id, s))) continue;
        this.observed.add(stageKey(attempt.id, s));
        this.stageDuration.observe({ result: s.result ?? 'Unknown' }, Math.max(0, Date.parse(s.finishedAt) - Date.parse(s.startedAt)) / 1000);
      }
    }
    if (attempt.finishedAt && attempt.id === t.attemptId && !this.observed.has(attempt.id)) {
      this.observed.add(attempt.id);
      this.attemptsFinished.inc({ result: t.phase });
    }
  }

  /** Counts a journal failure seen elsewhere (readiness probe, a failed write). */
  journalError(operation: string): void {
    this.journalErrors.inc({ operation });
  }

  /** Prometheus text exposition of every metric of this agent. */
  async expose(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  private read<T>(operation: string, fn: () => T): T | typeof ERROR {
    try {
      return fn();
    } catch {
      // A scrape must still answer when the journal does not: the error count is the signal.
      this.journalErrors.inc({ operation });
      return ERROR;
    }
  }
}

const ERROR = Symbol('journal-error');

const stageKey = (attemptId: string, s: { component: string; stage: number }) => `${attemptId}/${s.stage}/${s.component}`;

function lastFinished(journal: Journal): AttemptRecord | undefined {
  return journal.attempts.list(2).find((a) => a.finishedAt);
}

function journalBytes(journal: Journal): number {
  if (journal.path === ':memory:') return journal.sizeBytes();
  let total = 0;
  for (const suffix of ['', '-wal', '-shm']) {
    try {
      total += statSync(journal.path + suffix).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return total;
}
