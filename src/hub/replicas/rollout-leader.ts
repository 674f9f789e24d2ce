// Which replica drives rollouts on its own (the steady ticker: soaks,
// deadlines and windows that end without anyone acting). One at a time:
// PostgreSQL: the holder of a session-level advisory lock, taken on a
// connection of its own. When that replica dies (kill -9), its connection
// closes and the database frees the lock; another replica takes it on its
// next attempt, within one attempt period. Steps stay single even when an
// operator's call ticks on another replica meanwhile: every step takes
// RolloutRepo.lockSteps() first.
//
// SQLite: one process, always the driver.
import type { Logger } from 'pino';
import type pg from 'pg';
import type { PostgresSql } from '../store/postgres-sql.ts';

export interface RolloutLeader {
  /** Whether this replica drives rollouts now. */
  readonly leading: boolean;
  /** Steps down now (the database is unreachable): ends the lock's connection, so the database can free the lock for another replica. */
  release(): void;
  stop(): Promise<void>;
}

export const alwaysLeader: RolloutLeader = { leading: true, release: () => {}, stop: async () => {} };

const LEADER_LOCK = 0x666c65_03;

export function postgresLeader(sql: PostgresSql, log: Logger, o: { attemptMs: number; allowed?: () => boolean; onChange?: (leading: boolean) => void }): RolloutLeader {
  let client: pg.Client | undefined;
  let leading = false;
  let stopped = false;
  let busy = false;
  const set = (now: boolean): void => {
    if (now === leading) return;
    leading = now;
    log.info({ leading }, now ? 'this replica drives rollouts' : 'this replica no longer drives rollouts');
    o.onChange?.(now);
  };
  const release = (): void => {
    client?.end().catch(() => undefined);
    client = undefined;
    set(false);
  };
  const attempt = async (): Promise<void> => {
    if (stopped || busy) return;
    // Not while the replica cannot reach its database: the lock would outlive what it could do.
    if (o.allowed?.() === false) return release();
    busy = true;
    try {
      let c = client;
      if (c === undefined) {
        const opened = await sql.dedicatedClient('driver');
        opened.on('error', (err) => {
          log.warn({ err: err.message }, 'lost the rollout-driver connection');
          if (client === opened) client = undefined;
          opened.end().catch(() => undefined);
          set(false);
        });
        client = c = opened;
      }
      if (leading) {
        // Still ours while the connection lives; a cheap query notices a dead one.
        await c.query('SELECT 1');
        return;
      }
      const r = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [LEADER_LOCK]);
      // Released meanwhile (stop, or the database went away): that connection is ending, and the lock with it.
      set(r.rows[0]?.ok === true && client === c && !stopped);
    } catch (err) {
      log.warn({ err: err instanceof Error ? err.message : String(err) }, 'cannot reach the database to drive rollouts');
      release();
    } finally {
      busy = false;
    }
  };
  void attempt();
  const timer = setInterval(() => void attempt(), o.attemptMs);
  timer.unref();
  return {
    get leading() {
      return leading;
    },
    release,
    async stop() {
      stopped = true;
      clearInterval(timer);
      set(false);
      await client?.end().catch(() => undefined);
    },
  };
}
