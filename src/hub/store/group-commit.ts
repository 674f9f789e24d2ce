// Group commit: writes that must be durable before the hub answers (report
// batches, because the agent deletes its copy on the ack; hellos) share one
// fsync'd transaction instead of paying one each. With synchronous=FULL a
// commit costs an fsync (about 1 ms on the reference machine, ~900 commits/s),
// so 10,000 agents each sending a batch every 5 s cannot have a commit per
// batch; they can have a commit per event-loop turn.
//
// submit() queues the work; the queue runs in one transaction on the next
// turn of the event loop (setImmediate: after every socket that had data in
// this poll phase was read), or at once when it holds maxBatch jobs. Each job
// runs inside its own savepoint, so one job's failure rolls back only that
// job; `done` runs for every job, in submission order, only after COMMIT
// returned. A connection's frames are submitted in the order they arrived, so
// its writes apply, and its answers go out, in that order.
// One group commits at a time: jobs submitted meanwhile wait for the next.
//
// Jobs run in the order of their lock key (the cluster whose row they lock
// first), submission order within one key. Several replicas commit groups on
// one PostgreSQL at once, and a group holds every row its jobs locked until
// it commits: two groups locking the same clusters in different orders
// deadlock, and the server aborts one of them (a write of an operator queued
// on one of those rows can be the one chosen). In one order everywhere
// (lease flushes and rollout steps lock clusters in id order too), no cycle
// can form. A job the server aborted anyway (a conflict: a job locking a
// second, shared row, such as a bootstrap token's) was rolled back alone; it
// runs again in the next group, a few times, before it fails.
// On PostgreSQL a commit is a round trip rather than an fsync of the hub's
// own, but the same grouping saves one per job there too.
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { DatabaseConflict, HubDatabaseError, type Sql } from './sql.ts';

export type CommitOutcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

export interface GroupCommitOptions {
  /** Jobs in one transaction at most; reaching it commits at once. Default 256. */
  maxBatch?: number;
  /** Runs the queued jobs later. Default setImmediate (the next event-loop turn); tests inject their own. */
  schedule?: (run: () => void) => void;
}

interface Job {
  work: () => Promise<unknown>;
  done: (outcome: CommitOutcome<unknown>) => void;
  /** The cluster whose row the job locks first; jobs without one run first. */
  key: string | undefined;
  /** Times the database aborted it for a conflict with another transaction. */
  conflicts: number;
  /** performance.now() at submit: how long jobs wait for their group is what acks wait for beyond the commit. */
  submittedAt: number;
}

/** Runs of a job the database keeps aborting for conflicts before it fails with the last one. */
const MAX_CONFLICTS = 3;

const byKey = (a: Job, b: Job): number => (a.key === b.key ? 0 : a.key === undefined ? -1 : b.key === undefined ? 1 : a.key < b.key ? -1 : 1);

export class GroupCommitter {
  readonly #sql: Sql;
  readonly #log: Logger;
  readonly #maxBatch: number;
  readonly #schedule: (run: () => void) => void;
  #queue: Job[] = [];
  #scheduled = false;
  #running: Promise<void> | undefined;
  /** Transactions committed (for the benchmark and tests). */
  commits = 0;
  /** Cumulative, for the benchmark (bench/hub-replicas.ts): jobs that ran, time groups took, time jobs waited for their group, the largest group and queue seen. */
  readonly stats = { jobs: 0, busyMs: 0, waitedMs: 0, largestGroup: 0, largestQueue: 0 };

  constructor(sql: Sql, log: Logger, o: GroupCommitOptions = {}) {
    this.#sql = sql;
    this.#log = log;
    this.#maxBatch = Math.max(1, o.maxBatch ?? 256);
    this.#schedule = o.schedule ?? ((run) => void setImmediate(run));
  }

  /** Jobs waiting for the next commit. */
  get pending(): number {
    return this.#queue.length;
  }

  /**
   * Queues `work` (store calls) for the next shared transaction; `done` gets
   * its result once that transaction committed, or its error (then nothing
   * of it was written). `key`: the cluster whose row the work locks first;
   * jobs run in key order (see above), each key's in submission order.
   */
  submit<T>(work: () => Promise<T>, done: (outcome: CommitOutcome<T>) => void, key?: string): void {
    this.#queue.push({ work, done: done as (outcome: CommitOutcome<unknown>) => void, key, conflicts: 0, submittedAt: performance.now() });
    if (this.#queue.length > this.stats.largestQueue) this.stats.largestQueue = this.#queue.length;
    // Inside someone's open transaction a "commit" would only release a savepoint: wait for the next turn.
    if (this.#queue.length >= this.#maxBatch && !this.#sql.inTransaction) void this.flush();
    else this.#later();
  }

  #later(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    this.#schedule(() => {
      this.#scheduled = false;
      void this.flush();
    });
  }

  /** Runs everything queued now, in one transaction, then each job's `done`; resolves when they ran. */
  async flush(): Promise<void> {
    while (this.#running !== undefined) await this.#running;
    if (this.#queue.length === 0) return;
    if (this.#sql.inTransaction) {
      // Never answer from inside a transaction someone else will commit (or roll back) later.
      this.#later();
      return;
    }
    const jobs = this.#queue;
    this.#queue = [];
    const started = performance.now();
    for (const job of jobs) this.stats.waitedMs += started - job.submittedAt;
    this.stats.jobs += jobs.length;
    if (jobs.length > this.stats.largestGroup) this.stats.largestGroup = jobs.length;
    const run = this.#commit(jobs);
    this.#running = run;
    try {
      await run;
    } finally {
      this.#running = undefined;
      this.stats.busyMs += performance.now() - started;
    }
  }

  async #commit(jobs: readonly Job[]): Promise<void> {
    // In lock-key order (a stable sort keeps each key's submission order); outcomes are kept by submission position.
    const order = jobs.map((job, i) => ({ job, i })).sort((a, b) => byKey(a.job, b.job) || a.i - b.i);
    /** undefined: the job did not run here and goes to the next group with the rest of its key. */
    let outcomes: (CommitOutcome<unknown> | undefined)[] = jobs.map(() => undefined);
    const deferred = new Set<string | undefined>();
    try {
      await this.#sql.transaction(async () => {
        for (const { job, i } of order) {
          // A key whose job the database aborted: its later jobs wait too, so they still apply in submission order.
          if (deferred.has(job.key)) continue;
          try {
            // A savepoint: a job that throws is rolled back alone.
            outcomes[i] = { ok: true, value: await this.#sql.transaction(job.work) };
          } catch (error) {
            if (error instanceof DatabaseConflict && job.conflicts < MAX_CONFLICTS) {
              job.conflicts++;
              deferred.add(job.key);
              continue;
            }
            outcomes[i] = { ok: false, error };
          }
        }
      });
      this.commits++;
    } catch (error) {
      // BEGIN or COMMIT failed (disk full, I/O error, the database unreachable): nothing of this group is durable.
      this.#log.error({ err: error, jobs: jobs.length }, 'group commit failed');
      const e = error instanceof Error ? error : new HubDatabaseError(String(error));
      outcomes = jobs.map(() => ({ ok: false, error: e }));
    }
    const again = jobs.filter((_job, i) => outcomes[i] === undefined);
    if (again.length > 0) {
      this.#log.warn({ keys: [...deferred].slice(0, 10), jobs: again.length }, 'the database aborted a job of a group commit for a conflict with another transaction: it and the later jobs of its cluster run again in the next group');
      // Ahead of anything submitted meanwhile: a connection's later frames must not overtake them.
      this.#queue = [...again, ...this.#queue];
      this.#later();
    }
    jobs.forEach((job, i) => {
      const outcome = outcomes[i];
      if (outcome === undefined) return;
      try {
        job.done(outcome);
      } catch (err) {
        this.#log.error({ err }, 'answering after a group commit failed');
      }
    });
  }
}
