// The events replicas send each other (replicas/replica-bus.ts), on
// PostgreSQL only: each is stored in hub_events and announced with NOTIFY in
// one statement, so inside a transaction both happen at its COMMIT and
// neither when it rolls back. The table is what a replica replays after its
// listening connection dropped; rows older than a few minutes are pruned.
import type { Sql } from './sql.ts';

export interface StoredEvent {
  id: number;
  /** The database's clock, epoch milliseconds. */
  at: number;
  /** The publishing replica. */
  origin: string;
  /** The event's JSON. */
  event: string;
}

/** The database's clock in epoch milliseconds, as `at` is stored. */
export const DATABASE_NOW_MS = 'SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT AS now';

export class ReplicaEventRepo {
  readonly #sql: Sql;

  constructor(sql: Sql) {
    this.#sql = sql;
  }

  /** Stores the event and notifies `channel` with "<id>:<payload>". */
  async publish(channel: string, origin: string, event: string, payload: string): Promise<void> {
    await this.#sql.run(
      'WITH e AS (INSERT INTO hub_events (origin, event) VALUES (?, ?) RETURNING id) SELECT pg_notify(?, e.id::TEXT || \':\' || ?::TEXT) FROM e',
      [origin, event, channel, payload],
    );
  }

  /** Notifies without storing (an event worth nothing once missed): "0:<payload>". */
  async notify(channel: string, payload: string): Promise<void> {
    await this.#sql.run('SELECT pg_notify(?, ?)', [channel, `0:${payload}`]);
  }

  /** Events stored at or after `fromMs` (the database's clock), oldest first. */
  async since(fromMs: number): Promise<StoredEvent[]> {
    return this.#sql.all<StoredEvent>('SELECT id, at, origin, event FROM hub_events WHERE at >= ? ORDER BY id', [fromMs]);
  }

  /** Deletes events older than keepMs; returns how many. */
  async prune(keepMs: number): Promise<number> {
    return this.#sql.run('DELETE FROM hub_events WHERE at < (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT - ?', [keepMs]);
  }
}
