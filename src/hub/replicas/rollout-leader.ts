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
  stop(): Promise<void>;
}

export const alwaysLeader: RolloutLeader = { leading: true, stop: async () => {} };

const LEADER_LOCK = 0x666c65_03;

export function postgresLeader(sql: PostgresSql, log: Logger, o: { attemptMs: number; onChange?: (leading: boolean) => void }): RolloutLeader {
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
  const attempt = async (): Promise<void> => {
    if (stopped || busy) return;
    busy = true;
    try {
      if (client === undefined) {
        const c = await sql.dedicatedClient();
        c.on('error', (err) => {
          log.warn({ err: err.message }, 'lost the rollout-driver connection');
          if (client === c) client = undefined;
          c.end().catch(() => undefined);
          set(false);
        });
        client = c;
      }
      if (leading) {
        // Still ours while the connection lives; a cheap query notices a dead one.
        await client.query('SELECT 1');
        return;
      }
      const r = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [LEADER_LOCK]);
      set(r.rows[0]?.ok === true);
    } catch (err) {
      log.warn({ err: err instanceof Error ? err.message : String(err) }, 'cannot reach the database to drive rollouts');
      client?.end().catch(() => undefined);
      client = undefined;
      set(false);
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
    async stop() {
      stopped = true;
      clearInterval(timer);
      set(false);
      await client?.end().catch(() => undefined);
    },
  };
}
