// The PostgreSQL backend of Sql (sql.ts) over node-postgres. Statements
// outside a transaction take any pooled connection; a transaction holds one
// connection from BEGIN to COMMIT, and every statement of its async context
// (AsyncLocalStorage) runs on it. The repositories' `?` placeholders become
// $1, $2, … once per statement text.
import { AsyncLocalStorage } from 'node:async_hooks';
import pg from 'pg';
import { HubDatabaseError, type Dialect, type Sql, type SqlValue } from './sql.ts';

export const postgresDialect: Dialect = {
  name: 'postgres',
  greatest: (a, b) => `GREATEST(${a}, ${b})`,
  forUpdate: ' FOR UPDATE',
  insertionOrder: 'ord',
};

// 64-bit integers (count(*), bigint columns) and numerics (sum over bigint)
// come back as strings by default; every such value the hub stores fits in a
// double (sequence numbers, revisions, counts).
const INT8 = 20;
const NUMERIC = 1700;
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8 || oid === NUMERIC ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

interface Tx {
  client: pg.PoolClient;
  open: boolean;
  savepoints: number;
}

export interface PostgresSqlOptions {
  /** postgres://user@host:port/db; the password may come from PGPASSWORD or a file (docs/hub-ha.md), never only from argv. */
  connectionString: string;
  password?: string | undefined;
  /** Pooled connections. Default 10. */
  max?: number;
  /** Reported on the hub's log: a pooled connection failed while idle (the database restarted). */
  onError?: (err: Error) => void;
}

export class PostgresSql implements Sql {
  readonly dialect = postgresDialect;
  readonly pool: pg.Pool;
  readonly #texts = new Map<string, string>();
  readonly #context = new AsyncLocalStorage<Tx>();

  constructor(o: PostgresSqlOptions) {
    this.pool = new pg.Pool({
      connectionString: o.connectionString,
      ...(o.password !== undefined ? { password: o.password } : {}),
      max: o.max ?? 10,
      types,
      connectionTimeoutMillis: 10_000,
      keepAlive: true,
    });
    // An idle pooled connection that breaks must not crash the hub: the pool drops it and the next query opens another.
    this.pool.on('error', (err) => o.onError?.(err));
  }

  get inTransaction(): boolean {
    return this.#context.getStore()?.open === true;
  }

  #text(sql: string): string {
    let t = this.#texts.get(sql);
    if (t === undefined) {
      let n = 0;
      t = sql.replace(/\?/g, () => `$${++n}`);
      this.#texts.set(sql, t);
    }
    return t;
  }

  async #query<T>(sql: string, params: readonly SqlValue[]): Promise<pg.QueryResult<T & pg.QueryResultRow>> {
    const tx = this.#context.getStore();
    const text = this.#text(sql);
    if (tx?.open) return tx.client.query<T & pg.QueryResultRow>(text, params as SqlValue[]);
    return this.pool.query<T & pg.QueryResultRow>(text, params as SqlValue[]);
  }

  async all<T>(sql: string, params: readonly SqlValue[] = []): Promise<T[]> {
    return (await this.#query<T>(sql, params)).rows;
  }

  async get<T>(sql: string, params: readonly SqlValue[] = []): Promise<T | undefined> {
    return (await this.#query<T>(sql, params)).rows[0];
  }

  async run(sql: string, params: readonly SqlValue[] = []): Promise<number> {
    return (await this.#query(sql, params)).rowCount ?? 0;
  }

  async transaction<T>(fn: () => Promise<T>): Promise<T> {
    const outer = this.#context.getStore();
    if (outer?.open) {
      const name = `sp${++outer.savepoints}`;
      await outer.client.query(`SAVEPOINT ${name}`);
      try {
        const value = await fn();
        await outer.client.query(`RELEASE SAVEPOINT ${name}`);
        return value;
      } catch (err) {
        await outer.client.query(`ROLLBACK TO SAVEPOINT ${name}`);
        await outer.client.query(`RELEASE SAVEPOINT ${name}`);
        throw err;
      }
    }
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw new HubDatabaseError(`cannot reach the hub database: ${err instanceof Error ? err.message : String(err)}`);
    }
    const tx: Tx = { client, open: true, savepoints: 0 };
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const value = await this.#context.run(tx, fn);
      await client.query('COMMIT');
      return value;
    } catch (err) {
      try {
        await client.query('ROLLBACK');
      } catch (rollbackErr) {
        // The connection itself failed: it goes, not back to the pool.
        broken = rollbackErr as Error;
      }
      throw err;
    } finally {
      tx.open = false;
      client.release(broken);
    }
  }

  /** A connection of its own, outside the pool (LISTEN, the rollout lock): the caller ends it. */
  async dedicatedClient(): Promise<pg.Client> {
    const o = this.pool.options;
    const client = new pg.Client({ connectionString: o.connectionString, ...(o.password !== undefined ? { password: o.password } : {}), types, keepAlive: true });
    await client.connect();
    return client;
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
