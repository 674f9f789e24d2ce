// The PostgreSQL backend of Sql (sql.ts) over node-postgres. Statements
// outside a transaction take any pooled connection; a transaction holds one
// connection from BEGIN to COMMIT, and every statement of its async context
// (AsyncLocalStorage) runs on it. The repositories' `?` placeholders become
// $1, $2, … once per statement text.
//
// A database that cannot be reached must fail statements, not hang them
// (docs/hub-ha.md, "When the database goes away"): a connection failure of
// any kind surfaces as DatabaseUnavailable; every statement has a client-side
// time limit (a partition drops packets, and nothing else would end the
// wait); and the server ends a transaction left idle by a replica it lost
// (idle_in_transaction_session_timeout) and probes idle connections itself
// (tcp_keepalives_*), so a cut-off replica's row locks and its rollout-driver
// lock are freed within seconds rather than after the kernel's two hours.
import { AsyncLocalStorage } from 'node:async_hooks';
import { hostname } from 'node:os';
import pg from 'pg';
import { DatabaseUnavailable, type Dialect, type Sql, type SqlValue } from './sql.ts';

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
  /** A statement without an answer for this long fails (DatabaseUnavailable). Default 15 s. */
  statementTimeoutMs?: number;
}

/** What the server is asked to enforce on every connection of the hub. */
const SERVER_SETTINGS = [
  // A transaction whose replica vanished mid-way releases its row locks after 30 s.
  'idle_in_transaction_session_timeout=30000',
  // The server notices a dead peer of an idle connection (the rollout-driver lock's) within about 25 s.
  'tcp_keepalives_idle=10',
  'tcp_keepalives_interval=5',
  'tcp_keepalives_count=3',
].map((s) => `-c ${s}`).join(' ');

/** How each connection names itself in pg_stat_activity: what it is for, then which process (in a pod, the hostname is the pod's name). */
export function applicationName(purpose: 'pool' | 'probe' | 'listen' | 'driver'): string {
  return `fleetlet-hub ${purpose} ${process.pid}@${hostname()}`;
}

const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', '57P01', '57P02', '57P03']);
const UNREACHABLE_MESSAGES = /Connection terminated|Query read timeout|timeout exceeded when trying to connect|not queryable|connection timeout/i;

/** True for failures of the connection itself (refused, reset, timed out, server shutting down), as opposed to a statement the database refused. */
export function isConnectionFailure(err: unknown): boolean {
  if (err instanceof DatabaseUnavailable) return true;
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  // SQLSTATE class 08: connection exception.
  if (typeof code === 'string' && (UNREACHABLE_CODES.has(code) || code.startsWith('08'))) return true;
  return UNREACHABLE_MESSAGES.test(err.message);
}

function unavailable(err: unknown): unknown {
  if (err instanceof DatabaseUnavailable || !isConnectionFailure(err)) return err;
  return new DatabaseUnavailable(`the hub database cannot be reached: ${(err as Error).message}`);
}

export class PostgresSql implements Sql {
  readonly dialect = postgresDialect;
  readonly pool: pg.Pool;
  readonly #texts = new Map<string, string>();
  readonly #context = new AsyncLocalStorage<Tx>();
  readonly #statementTimeoutMs: number;
  readonly #where: PostgresSqlOptions;
  /** ping's own connection. */
  #probe: pg.Client | undefined;

  constructor(o: PostgresSqlOptions) {
    this.#statementTimeoutMs = o.statementTimeoutMs ?? 15_000;
    this.#where = o;
    this.pool = new pg.Pool({
      ...this.#clientConfig(o, this.#statementTimeoutMs, applicationName('pool')),
      max: o.max ?? 10,
      // An idle connection a partition killed silently is not kept for long.
      idleTimeoutMillis: 10_000,
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

  #clientConfig(o: PostgresSqlOptions, timeoutMs: number, name: string): pg.ClientConfig {
    return {
      application_name: name,
      connectionString: o.connectionString,
      ...(o.password !== undefined ? { password: o.password } : {}),
      types,
      connectionTimeoutMillis: Math.min(timeoutMs, 10_000),
      query_timeout: timeoutMs,
      options: SERVER_SETTINGS,
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
    };
  }

  async #query<T>(sql: string, params: readonly SqlValue[]): Promise<pg.QueryResult<T & pg.QueryResultRow>> {
    const tx = this.#context.getStore();
    const text = this.#text(sql);
    try {
      if (tx?.open) return await tx.client.query<T & pg.QueryResultRow>(text, params as SqlValue[]);
      return await this.pool.query<T & pg.QueryResultRow>(text, params as SqlValue[]);
    } catch (err) {
      throw unavailable(err);
    }
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
      throw new DatabaseUnavailable(`cannot reach the hub database: ${err instanceof Error ? err.message : String(err)}`);
    }
    const tx: Tx = { client, open: true, savepoints: 0 };
    let broken: Error | undefined;
    // A checked-out connection has no listener of the pool's: one that breaks between statements would crash the process.
    const onError = (err: Error): void => void (broken = err);
    client.on('error', onError);
    try {
      await client.query('BEGIN');
      const value = await this.#context.run(tx, fn);
      await client.query('COMMIT');
      return value;
    } catch (err) {
      if (isConnectionFailure(err)) {
        // The connection failed (or a statement timed out and may still run): it goes, not back to the pool; the server rolls back.
        broken = err as Error;
        throw unavailable(err);
      }
      try {
        await client.query('ROLLBACK');
      } catch (rollbackErr) {
        broken = rollbackErr as Error;
        throw unavailable(rollbackErr);
      }
      throw err;
    } finally {
      tx.open = false;
      client.off('error', onError);
      client.release(broken);
    }
  }

  /** A connection of its own, outside the pool (LISTEN, the rollout lock): the caller ends it. Its statements fail after timeoutMs (default: the pool's). */
  async dedicatedClient(purpose: 'probe' | 'listen' | 'driver', timeoutMs = this.#statementTimeoutMs): Promise<pg.Client> {
    const client = new pg.Client(this.#clientConfig(this.#where, timeoutMs, applicationName(purpose)));
    try {
      await client.connect();
    } catch (err) {
      client.end().catch(() => undefined);
      throw unavailable(err);
    }
    return client;
  }

  async ping(timeoutMs: number): Promise<void> {
    try {
      if (this.#probe === undefined) {
        const c = await this.dedicatedClient('probe', timeoutMs);
        c.on('error', () => {
          if (this.#probe === c) this.#probe = undefined;
          c.end().catch(() => undefined);
        });
        this.#probe = c;
      }
      await this.#probe.query('SELECT 1');
    } catch (err) {
      // The next ping opens a fresh connection: this one may be dead for good (a partition that dropped its bytes).
      this.#probe?.end().catch(() => undefined);
      this.#probe = undefined;
      throw err instanceof DatabaseUnavailable ? err : new DatabaseUnavailable(`the hub database did not answer: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  async close(): Promise<void> {
    await this.#probe?.end().catch(() => undefined);
    this.#probe = undefined;
    await this.pool.end();
  }
}
