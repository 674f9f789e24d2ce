// What the hub's repositories need from a database: run a statement, read
// rows, and group statements into a transaction. Two backends implement it:
// SQLite (sqlite-sql.ts, the embedded default for one machine) and
// PostgreSQL (postgres-sql.ts, for several replicas). The repositories hold
// all SQL, written once in the subset both understand, with `?` placeholders;
// the few differences are the Dialect's (docs/hub-ha.md).
//
// A transaction is found through AsyncLocalStorage: a repository call made
// while `transaction(fn)` runs fn, from fn's async context, joins that
// transaction; a call from anywhere else does not. So `ctx.store.transaction`
// wraps hub code that was written against the repositories, and a nested
// transaction (a group commit's job) becomes a savepoint.

export type SqlValue = string | number | null;

export interface Dialect {
  readonly name: 'sqlite' | 'postgres';
  /** The larger of two values of one type; `a` may be NULL only if it is text, `b` is NULL only when a is. */
  greatest(a: string, b: string): string;
  /** Appended to a SELECT that must lock the rows it read until the transaction ends (PostgreSQL); SQLite has one writer and needs none. */
  readonly forUpdate: string;
  /**
   * Appended to `ORDER BY id` where rows are locked in id order: sorts as
   * JavaScript compares ids (code unit order, which for DNS names is byte
   * order) whatever collation the database was created with. The group
   * committer sorts its jobs in JavaScript and locks rows in SQL; under a
   * locale collation (en_US ignores "-" and "." at first) the two orders
   * differ, and replicas' groups could lock in opposite orders and deadlock.
   */
  readonly idOrder: string;
  /** An expression ordering rows as they were inserted, for listings without a better key. */
  readonly insertionOrder: string;
}

export interface Sql {
  readonly dialect: Dialect;
  all<T>(sql: string, params?: readonly SqlValue[]): Promise<T[]>;
  get<T>(sql: string, params?: readonly SqlValue[]): Promise<T | undefined>;
  /** Returns the number of rows changed. */
  run(sql: string, params?: readonly SqlValue[]): Promise<number>;
  /**
   * Runs fn in one transaction: committed when fn resolves, rolled back when
   * it throws. Inside another transaction (same async context) it is a
   * savepoint: its failure rolls back only its own work.
   */
  transaction<T>(fn: () => Promise<T>): Promise<T>;
  /** True while the caller runs inside one of this database's transactions. */
  readonly inTransaction: boolean;
  /**
   * Resolves when the database answers a trivial query within timeoutMs,
   * rejects (DatabaseUnavailable) otherwise: what readiness is decided on
   * (database-health.ts). PostgreSQL asks on a connection of its own, so a
   * pool busy with stuck statements does not hide a database that is back.
   */
  ping(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

export class HubDatabaseError extends Error {
  override readonly name: string = 'HubDatabaseError';
  readonly reason: string;
  constructor(reason: string) {
    super(reason);
    this.reason = reason;
  }
}

/**
 * The database cannot be reached (refused, reset, timed out, shutting down):
 * nothing of the statement's transaction was committed. The hub answers 503
 * and agents reconnect elsewhere, rather than 500 (docs/hub-ha.md).
 */
export class DatabaseUnavailable extends HubDatabaseError {
  override readonly name = 'DatabaseUnavailable';
}

/**
 * The database aborted the transaction to resolve a conflict with another
 * one (a deadlock, or a serialization failure): nothing of it was written,
 * and the same work done again succeeds. Transient, like
 * DatabaseUnavailable, but the database is there: the hub retries where it
 * can (a group commit's job goes to the next group) and otherwise answers
 * 503 with Retry-After rather than 500 (docs/hub-ha.md).
 */
export class DatabaseConflict extends HubDatabaseError {
  override readonly name = 'DatabaseConflict';
}
