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
//
// A deadlock or serialization failure the server resolved by aborting this
// transaction surfaces as DatabaseConflict (nothing was written; doing it
// again succeeds), never as a bare driver error the API would answer 500.
// A connection goes back to the pool only when it is idle outside any
// transaction; one in any other state is closed instead. A transaction whose
// BEGIN finds its pooled connection dead (ended while idle) starts again on
// another one: nothing of it ran, so the first writes after the database
// came back do not fail for connections that died meanwhile.
import { AsyncLocalStorage } from 'node:async_hooks';
import { hostname } from 'node:os';
import pg from 'pg';
import { DatabaseConflict, DatabaseUnavailable, type Dialect, type Sql, type SqlValue } from './sql.ts';

export const postgresDialect: Dialect = {
  name: 'postgres',
  greatest: (a, b) => `GREATEST(${a}, ${b})`,
  // The hub locks a cluster's row to take turns on it (ingest, revisions), never to change its key: NO KEY UPDATE
  // does not wait for the KEY SHARE locks that inserting a row referencing the cluster takes (a rollout's members,
  // a report), so those never join a lock cycle with it.
  forUpdate: ' FOR NO KEY UPDATE',
  idOrder: ' COLLATE "C"',
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

/** SQLSTATE class 57P: the server ended the session (terminated by an administrator, shutting down, restarting). */
const ENDED_BY_SERVER = /^57P0[123]$/;

/**
 * True when the connection was found dead rather than slow: the server ended
 * it, or its socket was closed or reset. Not a timeout: a partition looks
 * like one, and trying again would only wait again.
 */
function isDeadConnection(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && (ENDED_BY_SERVER.test(code) || code === 'ECONNRESET' || code === 'EPIPE')) return true;
  return /Connection terminated unexpectedly|not queryable/.test(err.message);
}

/** SQLSTATE of the failures the server resolves by aborting one transaction: serialization_failure, deadlock_detected. */
const CONFLICT_CODES = new Set(['40001', '40P01']);

/** True when the server aborted the transaction to resolve a conflict with another one; doing it again can succeed. */
export function isConflict(err: unknown): boolean {
  if (err instanceof DatabaseConflict) return true;
  const code = err instanceof Error ? (err as { code?: unknown }).code : undefined;
  return typeof code === 'string' && CONFLICT_CODES.has(code);
}

/** The hub's error for a driver failure that is transient (unreachable, conflict); anything else as it came. */
function classify(err: unknown): unknown {
  if (err instanceof DatabaseUnavailable || err instanceof DatabaseConflict) return err;
  if (isConnectionFailure(err)) return new DatabaseUnavailable(`the hub database cannot be reached: ${(err as Error).message}`);
  if (isConflict(err)) {
    const e = err as Error & { detail?: unknown };
    return new DatabaseConflict(`the database aborted this transaction to resolve a conflict with another (${e.message}${typeof e.detail === 'string' ? `: ${e.detail}` : ''}); nothing of it was written: retry`);
  }
  return err;
}

export class PostgresSql implements Sql {
  readonly dialect = postgresDialect;
  readonly pool: pg.Pool;
  readonly #texts = new Map<string, string>();
  readonly #context = new AsyncLocalStorage<Tx>();
  readonly #statementTimeoutMs: number;
  readonly #where: PostgresSqlOptions;
  /** Pooled connections at most: how many stale ones a transaction may meet before a live one. */
  readonly #max: number;
  /** ping's own connection. */
  #probe: pg.Client | undefined;
  /** Statements sent on pooled connections, BEGIN, COMMIT and savepoints included: each is a round trip (for the benchmark). */
  statements = 0;

  constructor(o: PostgresSqlOptions) {
    this.#statementTimeoutMs = o.statementTimeoutMs ?? 15_000;
    this.#where = o;
    this.#max = o.max ?? 10;
    this.pool = new pg.Pool({
      ...this.#clientConfig(o, this.#statementTimeoutMs, applicationName('pool')),
      max: this.#max,
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
    this.statements++;
    try {
      if (tx?.open) return await tx.client.query<T & pg.QueryResultRow>(text, params as SqlValue[]);
      return await this.pool.query<T & pg.QueryResultRow>(text, params as SqlValue[]);
    } catch (err) {
      throw classify(err);
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
      this.statements += 2;
      await outer.client.query(`SAVEPOINT ${name}`);
      try {
        const value = await fn();
        await outer.client.query(`RELEASE SAVEPOINT ${name}`);
        return value;
      } catch (err) {
        this.statements++;
        await outer.client.query(`ROLLBACK TO SAVEPOINT ${name}`);
        await outer.client.query(`RELEASE SAVEPOINT ${name}`);
        throw err;
      }
    }
    // A pooled connection can have died while it sat idle (the server ended it, restarted, or a partition healed), and
    // the pool learns it only when it is used. Its BEGIN then fails before anything of fn ran: the transaction starts
    // again on another connection, as many times as the pool can hold stale ones. A database that is really gone
    // fails the connect, or times out, and that ends it.
    for (let attempt = 0; ; attempt++) {
      let client: pg.PoolClient;
      try {
        client = await this.pool.connect();
      } catch (err) {
        throw new DatabaseUnavailable(`cannot reach the hub database: ${err instanceof Error ? err.message : String(err)}`);
      }
      let broken: Error | undefined;
      // A checked-out connection has no listener of the pool's: one that breaks (even during BEGIN) would crash the process.
      const onError = (err: Error): void => void (broken = err);
      client.on('error', onError);
      try {
        this.statements++;
        await client.query('BEGIN');
      } catch (err) {
        client.release(err instanceof Error ? err : new Error(String(err)));
        client.off('error', onError);
        if (isDeadConnection(err) && attempt < this.#max) continue;
        throw classify(err);
      }
      return this.#run(client, fn, onError, () => broken);
    }
  }

  /** fn in the transaction open on client (BEGIN done), then COMMIT; the client goes back to the pool only if it is clean. */
  async #run<T>(client: pg.PoolClient, fn: () => Promise<T>, onError: (err: Error) => void, failed: () => Error | undefined): Promise<T> {
    const tx: Tx = { client, open: true, savepoints: 0 };
    let broken: Error | undefined;
    try {
      const value = await this.#context.run(tx, fn);
      this.statements++;
      await client.query('COMMIT');
      return value;
    } catch (err) {
      if (isConnectionFailure(err)) {
        // The connection failed (or a statement timed out and may still run): it goes, not back to the pool; the server rolls back.
        broken = err as Error;
        throw classify(err);
      }
      try {
        await client.query('ROLLBACK');
      } catch (rollbackErr) {
        broken = rollbackErr as Error;
        throw classify(rollbackErr);
      }
      throw classify(err);
    } finally {
      tx.open = false;
      broken ??= failed();
      // Only an idle connection is reused: one still in a transaction (a failed one, or one whose end never came back) would hand its state to the next caller.
      const status = client.getTransactionStatus();
      if (broken === undefined && status !== 'I') broken = new Error(`a pooled connection was left in transaction state ${String(status)}: closed instead of reused`);
      // Released with our listener still on: the pool puts its own on first, so no error between the two goes unheard.
      client.release(broken);
      client.off('error', onError);
    }
  }

  /** A connection of its own, outside the pool (LISTEN, the rollout lock): the caller ends it. Its statements fail after timeoutMs (default: the pool's). */
  async dedicatedClient(purpose: 'probe' | 'listen' | 'driver', timeoutMs = this.#statementTimeoutMs): Promise<pg.Client> {
    const client = new pg.Client(this.#clientConfig(this.#where, timeoutMs, applicationName(purpose)));
    try {
      await client.connect();
    } catch (err) {
      client.end().catch(() => undefined);
      throw classify(err);
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
