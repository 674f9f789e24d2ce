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
// submitBatch() queues an item for work that many jobs share (report
// ingest: ReportRepo.ingestMany): the group calls it once with all of its
// items, in one savepoint, so a group of hundreds of batches costs a few
// statements rather than a few per batch. On PostgreSQL every statement is
// a round trip: one after another, a group of 250 report batches took
// longer than the next group took to fill, and acks waited for tens of
// seconds while the replica idled (docs/scale.md). If the shared call fails,
// its savepoint is rolled back and each item runs alone in a savepoint of
// its own, so only the item that failed fails, as with submit().
//
// A group runs in phases: every key's first job, then every key's second,
// and so on, so one key's jobs (one agent's frames) still apply in
// submission order while the others' share the calls.
//
// Lock order. Several replicas commit groups on one PostgreSQL at once, and a
// group holds every row its jobs locked until it commits: two groups locking
// the same clusters in different orders deadlock, and the server aborts one of
// them (a write of an operator queued on one of those rows can be the one
// chosen). So a group first locks the rows of all its keys (the clusters
// whose rows its jobs lock) in one statement in id order (lockKeys:
// ClusterRepo.lockRows), before any job runs; lease flushes and rollout steps
// lock clusters in id order too, so no cycle can form. A job the server
// aborted anyway (a conflict: a job locking a second, shared row, such as a
// bootstrap token's) was rolled back alone; it runs again in the next group, a
// few times, before it fails; a group whose lock or COMMIT was aborted runs
// again whole.
// On PostgreSQL a commit is a round trip rather than an fsync of the hub's
// own, but the same grouping saves one per job there too.
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { DatabaseConflict, DatabaseUnavailable, HubDatabaseError, type Sql } from './sql.ts';

export type CommitOutcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

/** Work many jobs share: called with the items of several jobs (distinct keys, in key order), returns one value per item. */
export type BatchWork<I, O> = (items: readonly I[]) => Promise<O[]>;

export interface GroupCommitOptions {
  /** Jobs in one transaction at most; reaching it commits at once. Default 256. */
  maxBatch?: number;
  /** Runs the queued jobs later. Default setImmediate (the next event-loop turn); tests inject their own. */
  schedule?: (run: () => void) => void;
  /** Locks the rows of these keys (sorted) until the transaction ends, in one order, before any job of the group runs. */
  lockKeys?: (keys: readonly string[]) => Promise<void>;
}

interface Job {
  /** A job of its own (submit), or an item of shared work (submitBatch). */
  work: { own: () => Promise<unknown> } | { shared: BatchWork<unknown, unknown>; item: unknown };
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

interface Entry {
  job: Job;
  /** Submission position. */
  i: number;
}

/** A group's outcomes so far (by submission position) and the keys whose jobs wait for the next group. */
interface Run {
  outcomes: (CommitOutcome<unknown> | undefined)[];
  deferred: Set<string | undefined>;
}

const byKey = (a: Job, b: Job): number => (a.key === b.key ? 0 : a.key === undefined ? -1 : b.key === undefined ? 1 : a.key < b.key ? -1 : 1);

export class GroupCommitter {
  readonly #sql: Sql;
  readonly #log: Logger;
  readonly #maxBatch: number;
  readonly #schedule: (run: () => void) => void;
  readonly #lockKeys: ((keys: readonly string[]) => Promise<void>) | undefined;
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
    this.#lockKeys = o.lockKeys;
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
    this.#enqueue({ own: work }, done as (outcome: CommitOutcome<unknown>) => void, key);
  }

  /**
   * Queues `item` for `work`, which the group calls once for the items of
   * every job that names the same `work` (see above); `done` gets this
   * item's value once the transaction committed, or the error.
   */
  submitBatch<I, O>(work: BatchWork<I, O>, item: I, done: (outcome: CommitOutcome<O>) => void, key: string): void {
    this.#enqueue({ shared: work as BatchWork<unknown, unknown>, item }, done as (outcome: CommitOutcome<unknown>) => void, key);
  }

  #enqueue(work: Job['work'], done: Job['done'], key: string | undefined): void {
    this.#queue.push({ work, done, key, conflicts: 0, submittedAt: performance.now() });
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

  /**
   * Runs everything queued, in transactions of at most maxBatch jobs, each
   * followed by its jobs' `done`; resolves when the queue is empty.
   */
  async flush(): Promise<void> {
    for (;;) {
      while (this.#running !== undefined) await this.#running;
      if (this.#queue.length === 0) return;
      if (this.#sql.inTransaction) {
        // Never answer from inside a transaction someone else will commit (or roll back) later.
        this.#later();
        return;
      }
      // Never more than maxBatch: a group of thousands of jobs (the queue a slow group left behind) held thousands of
      // rows locked, and answered none of them, for as long as it took (tens of seconds at 30,000 agents).
      const jobs = this.#queue.splice(0, this.#maxBatch);
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
  }

  /** Runs one job's part (in its own savepoint) and records its outcome; a conflict defers its key to the next group. */
  async #attempt(entry: Entry, run: Run, part: () => Promise<unknown>): Promise<void> {
    try {
      run.outcomes[entry.i] = { ok: true, value: await part() };
    } catch (error) {
      if (error instanceof DatabaseConflict && entry.job.conflicts < MAX_CONFLICTS) {
        entry.job.conflicts++;
        run.deferred.add(entry.job.key);
        return;
      }
      run.outcomes[entry.i] = { ok: false, error };
    }
  }

  /** Shared work for the items of several jobs, in one savepoint; if it fails, each item alone, so only the one that fails fails. */
  async #runShared(work: BatchWork<unknown, unknown>, entries: readonly Entry[], run: Run): Promise<void> {
    const items = entries.map((e) => (e.job.work as { item: unknown }).item);
    try {
      const values = await this.#sql.transaction(() => work(items));
      entries.forEach((e, n) => (run.outcomes[e.i] = { ok: true, value: values[n] }));
      return;
    } catch (error) {
      // A conflict defers them all; an unreachable database would only fail (or time out) again for each one alone.
      if (error instanceof DatabaseConflict || error instanceof DatabaseUnavailable || entries.length === 1) {
        for (const e of entries) await this.#attempt(e, run, () => Promise.reject(error));
        return;
      }
      this.#log.warn({ err: error instanceof Error ? error.message : String(error), jobs: entries.length }, 'shared work of a group commit failed: running its jobs one by one');
    }
    for (const [n, e] of entries.entries()) {
      if (run.deferred.has(e.job.key)) continue;
      await this.#attempt(e, run, async () => (await this.#sql.transaction(() => work([items[n]])))[0]);
    }
  }

  async #commit(jobs: readonly Job[]): Promise<void> {
    // In lock-key order (a stable sort keeps each key's submission order); outcomes are kept by submission position.
    const order = jobs.map((job, i) => ({ job, i })).sort((a, b) => byKey(a.job, b.job) || a.i - b.i);
    // Phase n holds every key's n-th job.
    const phases: Entry[][] = [];
    const nth = new Map<string | undefined, number>();
    for (const entry of order) {
      const n = nth.get(entry.job.key) ?? 0;
      nth.set(entry.job.key, n + 1);
      (phases[n] ??= []).push(entry);
    }
    /** undefined: the job did not run here and goes to the next group with the rest of its key. */
    let outcomes: (CommitOutcome<unknown> | undefined)[] = jobs.map(() => undefined);
    const deferred = new Set<string | undefined>();
    const run: Run = { outcomes, deferred };
    try {
      await this.#sql.transaction(async () => {
        const keys = [...new Set(jobs.flatMap((j) => (j.key === undefined ? [] : [j.key])))].sort();
        if (keys.length > 0) await this.#lockKeys?.(keys);
        for (const phase of phases) {
          const shared = new Map<BatchWork<unknown, unknown>, Entry[]>();
          for (const entry of phase) {
            // A key whose job the database aborted: its later jobs wait too, so they still apply in submission order.
            if (deferred.has(entry.job.key)) continue;
            const w = entry.job.work;
            if ('shared' in w) {
              shared.set(w.shared, [...(shared.get(w.shared) ?? []), entry]);
              continue;
            }
            // A savepoint: a job that throws is rolled back alone.
            await this.#attempt(entry, run, () => this.#sql.transaction(w.own));
          }
          for (const [work, entries] of shared) await this.#runShared(work, entries, run);
        }
      });
      this.commits++;
    } catch (error) {
      if (error instanceof DatabaseConflict) {
        // The lock of the group's rows or its COMMIT was aborted: nothing of it was written, and all of it can run again.
        this.#log.warn({ err: error.message, jobs: jobs.length }, 'the database aborted a group commit for a conflict with another transaction');
        outcomes = jobs.map((job) => (job.conflicts++ < MAX_CONFLICTS ? undefined : { ok: false, error }));
        for (const job of jobs) deferred.add(job.key);
      } else {
        // BEGIN or COMMIT failed (disk full, I/O error, the database unreachable): nothing of this group is durable.
        this.#log.error({ err: error, jobs: jobs.length }, 'group commit failed');
        const e = error instanceof Error ? error : new HubDatabaseError(String(error));
        outcomes = jobs.map(() => ({ ok: false, error: e }));
      }
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
