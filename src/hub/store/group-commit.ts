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
// runs inside its own savepoint, in submission order, so one job's failure
// rolls back only that job; `done` runs for every job, in submission order,
// only after COMMIT returned. A connection's frames are submitted in the order
// they arrived, so its writes apply, and its answers go out, in that order.
import type { Logger } from 'pino';
import type { HubDatabase } from './database.ts';
import { HubDatabaseError } from './database.ts';

export type CommitOutcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

export interface GroupCommitOptions {
  /** Jobs in one transaction at most; reaching it commits at once. Default 256. */
  maxBatch?: number;
  /** Runs the queued jobs later. Default setImmediate (the next event-loop turn); tests inject their own. */
  schedule?: (run: () => void) => void;
}

interface Job {
  work: () => unknown;
  done: (outcome: CommitOutcome<unknown>) => void;
}

export class GroupCommitter {
  readonly #db: HubDatabase;
  readonly #log: Logger;
  readonly #maxBatch: number;
  readonly #schedule: (run: () => void) => void;
  readonly #savepoint: (work: () => unknown) => unknown;
  readonly #transaction: (jobs: readonly Job[], outcomes: CommitOutcome<unknown>[]) => void;
  #queue: Job[] = [];
  #scheduled = false;
  /** Transactions committed (for the benchmark and tests). */
  commits = 0;

  constructor(db: HubDatabase, log: Logger, o: GroupCommitOptions = {}) {
    this.#db = db;
    this.#log = log;
    this.#maxBatch = Math.max(1, o.maxBatch ?? 256);
    this.#schedule = o.schedule ?? ((run) => void setImmediate(run));
    // Called inside #transaction, better-sqlite3 runs it as a SAVEPOINT, rolled back alone when it throws.
    this.#savepoint = db.transaction((work: () => unknown) => work());
    this.#transaction = db.transaction((jobs: readonly Job[], outcomes: CommitOutcome<unknown>[]) => {
      for (const job of jobs) {
        try {
          outcomes.push({ ok: true, value: this.#savepoint(job.work) });
        } catch (error) {
          outcomes.push({ ok: false, error });
        }
      }
    });
  }

  /** Jobs waiting for the next commit. */
  get pending(): number {
    return this.#queue.length;
  }

  /**
   * Queues `work` (synchronous store calls) for the next shared transaction;
   * `done` gets its result once that transaction committed, or its error
   * (then nothing of it was written).
   */
  submit<T>(work: () => T, done: (outcome: CommitOutcome<T>) => void): void {
    this.#queue.push({ work, done: done as (outcome: CommitOutcome<unknown>) => void });
    // Inside someone's open transaction a "commit" would only release a savepoint: wait for the next turn.
    if (this.#queue.length >= this.#maxBatch && !this.#db.inTransaction) this.flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      this.#schedule(() => {
        this.#scheduled = false;
        this.flush();
      });
    }
  }

  /** Runs everything queued now, in one transaction, then each job's `done`. */
  flush(): void {
    if (this.#queue.length === 0) return;
    const jobs = this.#queue;
    this.#queue = [];
    let outcomes: CommitOutcome<unknown>[] = [];
    if (!this.#db.open) {
      const error = new HubDatabaseError('the hub database is closed');
      outcomes = jobs.map(() => ({ ok: false, error }));
    } else if (this.#db.inTransaction) {
      // Never answer from inside a transaction someone else will commit (or roll back) later.
      this.#queue = [...jobs, ...this.#queue];
      this.#scheduled = true;
      this.#schedule(() => {
        this.#scheduled = false;
        this.flush();
      });
      return;
    } else {
      try {
        this.#transaction(jobs, outcomes);
        this.commits++;
      } catch (error) {
        // COMMIT itself failed (disk full, I/O error): nothing of this group is durable.
        this.#log.error({ err: error, jobs: jobs.length }, 'group commit failed');
        outcomes = jobs.map(() => ({ ok: false, error }));
      }
    }
    jobs.forEach((job, i) => {
      try {
        job.done(outcomes[i] as CommitOutcome<unknown>);
      } catch (err) {
        this.#log.error({ err }, 'answering after a group commit failed');
      }
    });
  }
}
