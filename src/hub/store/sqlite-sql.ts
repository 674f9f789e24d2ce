// The SQLite backend of Sql (sql.ts) over better-sqlite3, which is
// synchronous: a statement runs to completion before the call returns. One
// connection serves the whole hub, so a transaction that awaits between its
// statements must keep everybody else's statements out of it until it ends:
// while one is open, statements from other async contexts wait their turn
// (the lock below), and the transaction's own (found by AsyncLocalStorage)
// run at once. With nothing open, a statement runs at once: reads cost no
// more than before the interface became async, apart from the promise.
import { AsyncLocalStorage } from 'node:async_hooks';
import type Database from 'better-sqlite3';
import type { Statement } from 'better-sqlite3';
import { DatabaseUnavailable, HubDatabaseError, type Dialect, type Sql, type SqlValue } from './sql.ts';

export const sqliteDialect: Dialect = {
  name: 'sqlite',
  // SQLite's MAX(a, b) is NULL when either is. '' sorts below any ISO
  // timestamp; `b` appears once, so a placeholder in it stays one.
  greatest: (a, b) => `MAX(COALESCE(${a}, ''), ${b})`,
  forUpdate: '',
  // SQLite's default collation, BINARY, is byte order already.
  idOrder: '',
  insertionOrder: 'rowid',
};

interface Tx {
  open: boolean;
  savepoints: number;
}

export class SqliteSql implements Sql {
  readonly dialect = sqliteDialect;
  readonly db: Database.Database;
  readonly #statements = new Map<string, Statement>();
  readonly #context = new AsyncLocalStorage<Tx>();
  /** Holders and waiters of the connection lock; statements run unlocked only when it is 0. */
  #lockers = 0;
  #tail: Promise<void> = Promise.resolve();

  constructor(db: Database.Database) {
    this.db = db;
  }

  get inTransaction(): boolean {
    return this.#context.getStore()?.open === true;
  }

  /** Compiled once per text: better-sqlite3 compiles on every prepare() (about 0.1 ms apiece here), and every report passes through the same few statements. */
  #statement(sql: string): Statement {
    let s = this.#statements.get(sql);
    if (s === undefined) {
      if (!this.db.open) throw new HubDatabaseError('the hub database is closed');
      s = this.db.prepare(sql);
      this.#statements.set(sql, s);
    }
    return s;
  }

  async #lock(): Promise<() => void> {
    this.#lockers++;
    const previous = this.#tail;
    let release!: () => void;
    this.#tail = new Promise<void>((resolve) => (release = resolve));
    await previous;
    return () => {
      this.#lockers--;
      release();
    };
  }

  async #exec<T>(work: () => T): Promise<T> {
    if (this.#lockers === 0 || this.inTransaction) return work();
    const unlock = await this.#lock();
    try {
      return work();
    } finally {
      unlock();
    }
  }

  all<T>(sql: string, params: readonly SqlValue[] = []): Promise<T[]> {
    return this.#exec(() => this.#statement(sql).all(...params) as T[]);
  }

  get<T>(sql: string, params: readonly SqlValue[] = []): Promise<T | undefined> {
    return this.#exec(() => this.#statement(sql).get(...params) as T | undefined);
  }

  run(sql: string, params: readonly SqlValue[] = []): Promise<number> {
    return this.#exec(() => this.#statement(sql).run(...params).changes);
  }

  async transaction<T>(fn: () => Promise<T>): Promise<T> {
    const outer = this.#context.getStore();
    if (outer?.open) {
      const name = `sp${++outer.savepoints}`;
      this.db.exec(`SAVEPOINT ${name}`);
      try {
        const value = await fn();
        this.db.exec(`RELEASE ${name}`);
        return value;
      } catch (err) {
        if (this.db.inTransaction) {
          this.db.exec(`ROLLBACK TO ${name}`);
          this.db.exec(`RELEASE ${name}`);
        }
        throw err;
      }
    }
    const unlock = await this.#lock();
    const tx: Tx = { open: true, savepoints: 0 };
    try {
      if (!this.db.open) throw new HubDatabaseError('the hub database is closed');
      this.db.exec('BEGIN IMMEDIATE');
      try {
        const value = await this.#context.run(tx, fn);
        this.db.exec('COMMIT');
        return value;
      } catch (err) {
        if (this.db.inTransaction) this.db.exec('ROLLBACK');
        throw err;
      }
    } finally {
      tx.open = false;
      unlock();
    }
  }

  async ping(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new DatabaseUnavailable(`the hub database did not answer within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([this.get('SELECT 1'), late]);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    const unlock = await this.#lock();
    try {
      if (this.db.open) this.db.close();
    } finally {
      unlock();
    }
  }
}
