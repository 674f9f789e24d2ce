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
//
// Missed events are replayed. Each event is also stored (hub_events,
// store/replica-event-repo.ts) for a few minutes. The listening connection
// is checked every few seconds with a query that returns the database's
// clock, the last time it was known to work. When it breaks (the database
// restarted, someone ended it, a partition left it silently dead), the
// replica listens again and then replays every stored event since that
// time less a margin (a transaction may commit an event stored a little
// earlier), skipping those it handled already. Handling is idempotent (the
// receiver reads the committed state), so an event seen twice does no harm.
// A replica that lost track for longer than events are kept cannot replay:
// it sends its agents away (onMissed), and each gets the current state on
// its next hello.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type pg from 'pg';
import type { PostgresSql } from '../store/postgres-sql.ts';
import { DATABASE_NOW_MS, ReplicaEventRepo } from '../store/replica-event-repo.ts';

export type ReplicaEvent =
  /** A new desired release for the cluster. */
  | { t: 'release'; c: string }
  /** An override document for the cluster, by its revision. */
  | { t: 'override'; c: string; r: number }
  /** An operator accepted the cluster: registrants waiting on it are told. */
  | { t: 'accepted'; c: string }
  /** The cluster's right ended (deregistered, revoked, key replaced): its connections close. */
  | { t: 'close'; c: string; code: number; reason: string; notice?: unknown }
  /** The cluster's agent said hello (connection epoch `e`): a connection elsewhere with an older epoch is superseded. */
  | { t: 'hello'; c: string; e?: number }
  /** Reports were applied or an agent connected: the replica driving rollouts ticks soon. */
  | { t: 'input' }
  /**
   * Something the dashboard shows changed here (committed): dashboards on
   * other replicas look at the store (dashboard/change-feed.ts). `tokens`:
   * an operator token was revoked, open pages' tokens are checked again.
   */
  | { t: 'changed'; tokens?: boolean };

export interface ReplicaBus {
  /** This process, as other replicas see it. */
  readonly replicaId: string;
  /** Whether other replicas may exist (PostgreSQL). */
  readonly distributed: boolean;
  publish(event: ReplicaEvent): Promise<void>;
  /** Handles events other replicas published, live or replayed. */
  subscribe(handler: (event: ReplicaEvent) => void): void;
  /** Called when events were missed and cannot be replayed: whatever depends on them must be fetched afresh. */
  onMissed(handler: () => void): void;
  close(): Promise<void>;
}

export function singleReplica(): ReplicaBus {
  return {
    replicaId: randomUUID(),
    distributed: false,
    publish: async () => {},
    subscribe: () => {},
    onMissed: () => {},
    close: async () => {},
  };
}

const CHANNEL = 'fleetlet_hub';

interface Envelope {
  o: string;
  e: ReplicaEvent;
}

export interface PostgresBusOptions {
  /** How often the listening connection is checked (and may be found dead). Default 5 s. */
  checkMs?: number;
  /** Stored events are kept this long. Default 10 minutes. */
  keepMs?: number;
}

/** A replayed event may have been stored this long before the last check that saw the connection work, and committed after it. */
const REPLAY_MARGIN_MS = 60_000;

export async function postgresBus(sql: PostgresSql, log: Logger, o: PostgresBusOptions = {}): Promise<ReplicaBus> {
  const replicaId = randomUUID();
  const events = new ReplicaEventRepo(sql);
  const checkMs = o.checkMs ?? 5_000;
  const keepMs = o.keepMs ?? 600_000;
  const handlers: ((event: ReplicaEvent) => void)[] = [];
  const missedHandlers: (() => void)[] = [];
  /** Stored events handled, by id, with when (local clock): what a replay skips. */
  const handled = new Map<number, number>();
  let client: pg.Client | undefined;
  let closed = false;
  let retry: NodeJS.Timeout | undefined;
  /** The database's clock when the listening connection last proved it worked. */
  let confirmedAt: number | undefined;
  /** The database's clock when this replica first listened: nothing before it is replayed. */
  let startedAt: number | undefined;

  const dispatch = (event: ReplicaEvent): void => {
    for (const h of handlers) {
      try {
        h(event);
      } catch (err) {
        log.error({ err, event: event.t }, 'handling an event from another replica failed');
      }
    }
  };
  const receive = (id: number, raw: string): void => {
    let env: Envelope;
    try {
      env = JSON.parse(raw) as Envelope;
    } catch {
      return;
    }
    if (id > 0) {
      if (handled.has(id)) return;
      handled.set(id, Date.now());
    }
    if (env.o === replicaId) return;
    dispatch(env.e);
  };
  const missed = (why: string): void => {
    log.warn({ why }, 'events from other replicas were missed and cannot be replayed: sending this replica\'s agents away to fetch the current state');
    for (const h of missedHandlers) {
      try {
        h();
      } catch (err) {
        log.error({ err }, 'reacting to missed events failed');
      }
    }
  };

  const replay = async (fromMs: number, nowMs: number): Promise<void> => {
    if (fromMs < nowMs - keepMs + REPLAY_MARGIN_MS) return missed(`not listening since ${new Date(fromMs).toISOString()}, longer than events are kept (${keepMs} ms)`);
    const rows = await events.since(fromMs);
    let n = 0;
    for (const row of rows) {
      if (handled.has(row.id)) continue;
      handled.set(row.id, Date.now());
      if (row.origin === replicaId) continue;
      let event: ReplicaEvent;
      try {
        event = JSON.parse(row.event) as ReplicaEvent;
      } catch {
        continue;
      }
      n++;
      dispatch(event);
    }
    // Rollout inputs and dashboard changes are announced, not stored: the driver (and every dashboard, which hears any event) looks once more in case it missed one.
    dispatch({ t: 'input' });
    log.info({ replayed: n, since: new Date(fromMs).toISOString() }, 'listening to other replicas again; replayed the events missed meanwhile');
  };

  const lost = (c: pg.Client, err: unknown): void => {
    if (client !== c) return;
    log.warn({ err: err instanceof Error ? err.message : String(err) }, 'lost the connection that listens to other replicas; listening again, then replaying what was missed');
    client = undefined;
    c.end().catch(() => undefined);
    schedule();
  };

  const listen = async (): Promise<void> => {
    const c = await sql.dedicatedClient('listen', checkMs);
    c.on('notification', (n) => {
      if (n.channel !== CHANNEL || n.payload === undefined) return;
      const colon = n.payload.indexOf(':');
      receive(Number(n.payload.slice(0, colon)), n.payload.slice(colon + 1));
    });
    c.on('error', (err) => lost(c, err));
    try {
      await c.query(`LISTEN ${CHANNEL}`);
      const now = (await c.query<{ now: number }>(DATABASE_NOW_MS)).rows[0]?.now ?? 0;
      const resumeFrom = confirmedAt;
      startedAt ??= now;
      confirmedAt = now;
      client = c;
      if (resumeFrom !== undefined) await replay(Math.max(startedAt, resumeFrom - REPLAY_MARGIN_MS), now);
    } catch (err) {
      if (client === c) client = undefined;
      c.end().catch(() => undefined);
      throw err;
    }
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

  // The check: a dead connection (its statement times out) is replaced; a live one moves confirmedAt. Old handled ids and stored events go.
  let checking = false;
  let prunedAt = 0;
  const check = async (): Promise<void> => {
    const c = client;
    if (c === undefined || checking) return;
    checking = true;
    try {
      confirmedAt = (await c.query<{ now: number }>(DATABASE_NOW_MS)).rows[0]?.now ?? confirmedAt;
    } catch (err) {
      lost(c, err);
    } finally {
      checking = false;
    }
    const local = Date.now();
    for (const [id, at] of handled) if (at < local - keepMs) handled.delete(id);
    if (local - prunedAt > 60_000) {
      prunedAt = local;
      await events.prune(keepMs).catch((err: unknown) => log.warn({ err: err instanceof Error ? err.message : String(err) }, 'pruning old replica events failed'));
    }
  };
  const checker = setInterval(() => void check(), checkMs);
  checker.unref();

  await listen();

  return {
    replicaId,
    distributed: true,
    async publish(event) {
      const payload = JSON.stringify({ o: replicaId, e: event } satisfies Envelope);
      // Through the store's connection: inside a transaction it waits for the COMMIT.
      // Announcements are not stored: a replica that missed some looks again after it listens again (the replayed 'input' below), and dashboards sweep.
      if (event.t === 'input' || event.t === 'changed') await events.notify(CHANNEL, payload);
      else await events.publish(CHANNEL, replicaId, JSON.stringify(event), payload);
    },
    subscribe(handler) {
      handlers.push(handler);
    },
    onMissed(handler) {
      missedHandlers.push(handler);
    },
    async close() {
      closed = true;
      clearInterval(checker);
      if (retry !== undefined) clearTimeout(retry);
      await client?.end().catch(() => undefined);
    },
  };
}
