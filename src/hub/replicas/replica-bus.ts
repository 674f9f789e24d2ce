// How replicas sharing one database tell each other what an agent connected
// elsewhere must learn now (docs/hub-ha.md). An event names what changed,
// never carries it: the receiver reads the committed state from the
// database, so an event can be late or repeated without harm, and a
// release too large for a notification still arrives.
//
// One process (SQLite): there is no other replica and publish does nothing.
// PostgreSQL: NOTIFY on one channel, LISTEN on a connection of its own.
// Published inside a transaction, an event goes out when it commits, and
// not at all when it rolls back: nobody hears of a release that was never
// stored.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type pg from 'pg';
import type { PostgresSql } from '../store/postgres-sql.ts';
import type { Sql } from '../store/sql.ts';

export type ReplicaEvent =
  /** A new desired release for the cluster. */
  | { t: 'release'; c: string }
  /** An override document for the cluster, by its revision. */
  | { t: 'override'; c: string; r: number }
  /** An operator accepted the cluster: registrants waiting on it are told. */
  | { t: 'accepted'; c: string }
  /** The cluster's right ended (deregistered, revoked, key replaced): its connections close. */
  | { t: 'close'; c: string; code: number; reason: string; notice?: unknown }
  /** The cluster's agent said hello on replica `o`: an older connection elsewhere is superseded. */
  | { t: 'hello'; c: string }
  /** Reports were applied or an agent connected: the replica driving rollouts ticks soon. */
  | { t: 'input' };

export interface ReplicaBus {
  /** This process, as other replicas see it. */
  readonly replicaId: string;
  /** Whether other replicas may exist (PostgreSQL). */
  readonly distributed: boolean;
  publish(event: ReplicaEvent): Promise<void>;
  /** Handles events other replicas published. */
  subscribe(handler: (event: ReplicaEvent) => void): void;
  close(): Promise<void>;
}

export function singleReplica(): ReplicaBus {
  return {
    replicaId: randomUUID(),
    distributed: false,
    publish: async () => {},
    subscribe: () => {},
    close: async () => {},
  };
}

const CHANNEL = 'fleetlet_hub';

interface Envelope {
  o: string;
  e: ReplicaEvent;
}

/**
 * NOTIFY/LISTEN. The listening connection reconnects after it breaks (the
 * database restarted); events published meanwhile are lost to this replica,
 * which is why every agent also gets the current state on its hello.
 */
export async function postgresBus(sql: PostgresSql, log: Logger): Promise<ReplicaBus> {
  const replicaId = randomUUID();
  const handlers: ((event: ReplicaEvent) => void)[] = [];
  let client: pg.Client | undefined;
  let closed = false;
  let retry: NodeJS.Timeout | undefined;

  const listen = async (): Promise<void> => {
    const c = await sql.dedicatedClient();
    c.on('notification', (n) => {
      if (n.channel !== CHANNEL || n.payload === undefined) return;
      let env: Envelope;
      try {
        env = JSON.parse(n.payload) as Envelope;
      } catch {
        return;
      }
      if (env.o === replicaId) return;
      for (const h of handlers) {
        try {
          h(env.e);
        } catch (err) {
          log.error({ err, event: env.e.t }, 'handling an event from another replica failed');
        }
      }
    });
    c.on('error', (err) => {
      log.warn({ err: err.message }, 'lost the connection that listens to other replicas; reconnecting');
      client = undefined;
      c.end().catch(() => undefined);
      schedule();
    });
    await c.query(`LISTEN ${CHANNEL}`);
    client = c;
  };
  const schedule = (): void => {
    if (closed || retry !== undefined) return;
    retry = setTimeout(() => {
      retry = undefined;
      listen().catch((err: unknown) => {
        log.warn({ err: err instanceof Error ? err.message : String(err) }, 'cannot listen to other replicas yet');
        schedule();
      });
    }, 1000);
    retry.unref();
  };
  await listen();

  return {
    replicaId,
    distributed: true,
    async publish(event) {
      // Through the store's connection: inside a transaction it waits for the COMMIT.
      await (sql as Sql).run('SELECT pg_notify(?, ?)', [CHANNEL, JSON.stringify({ o: replicaId, e: event } satisfies Envelope)]);
    },
    subscribe(handler) {
      handlers.push(handler);
    },
    async close() {
      closed = true;
      if (retry !== undefined) clearTimeout(retry);
      await client?.end().catch(() => undefined);
    },
  };
}
