// The PostgreSQL store when transactions of several replicas meet on the
// same rows, on a real PostgreSQL (a private instance for this file). Each
// "replica" is a store of its own (its own pool) on one database.
//
// - Group commits of two replicas over the same clusters never deadlock:
//   every replica runs its jobs in cluster-id order. Before, a group held
//   the rows of its jobs in arrival order, two groups met in opposite orders
//   and PostgreSQL aborted one of them, and an operator's write queued on
//   one of those rows could be the one it aborted: the API answered 500.
// - A deadlock that does happen (two transactions of the test, locking two
//   rows in opposite orders) surfaces as DatabaseConflict, which the API
//   answers 503 with Retry-After, never as a bare driver error (500).
// - Every pooled connection ended by the server (pg_terminate_backend): a
//   transaction starts again on a live connection and commits (before, each
//   dead pooled connection failed one call, so the first writes after the
//   database came back answered 503); a single statement answers or fails
//   as DatabaseUnavailable, never otherwise; the next write is served.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { pino, type Logger } from 'pino';
import { ClusterRepo } from '../../src/hub/store/cluster-repo.ts';
import { openPostgres } from '../../src/hub/store/database.ts';
import { GroupCommitter, type CommitOutcome } from '../../src/hub/store/group-commit.ts';
import { applicationName, type PostgresSql } from '../../src/hub/store/postgres-sql.ts';
import { ReportRepo, type IngestResult } from '../../src/hub/store/report-repo.ts';
import { DatabaseConflict, DatabaseUnavailable } from '../../src/hub/store/sql.ts';
import type { ReportEntry } from '../../src/protocol/messages.ts';
import { startPostgres, type PrivatePostgres } from '../../src/testbed/postgres.ts';

const T0 = Date.parse('2030-01-02T00:00:00.000Z');
const now = (): Date => new Date(T0);

function transition(clusterId: string, seq: number): ReportEntry {
  return {
    seq,
    kind: 'attempt-transition',
    createdAt: new Date(T0).toISOString(),
    body: { attemptId: `${clusterId}-a${seq}`, release: { name: 'edge-addons', version: '1.1.0', revision: 1 }, phase: 'Upgrading', stage: 0, reason: null, message: 'applying stage 0', at: new Date(T0).toISOString() },
  };
}

/** A logger that keeps what it was told at warn and above. */
function capturingLogger(): { log: Logger; lines: { msg: string }[] } {
  const lines: { msg: string }[] = [];
  return { log: pino({ level: 'warn' }, { write: (s: string) => void lines.push(JSON.parse(s) as { msg: string }) }), lines };
}

describe('the PostgreSQL store under conflicting replicas', () => {
  let postgres: PrivatePostgres;
  let n = 0;
  const opened: PostgresSql[] = [];

  before(async () => {
    postgres = await startPostgres();
  });
  after(async () => {
    for (const s of opened) await s.close().catch(() => undefined);
    await postgres?.stop();
  });

  async function replicas(count: number): Promise<{ url: string; stores: PostgresSql[] }> {
    const url = await postgres.createDatabase(`conflicts_${++n}`);
    const stores = await Promise.all(Array.from({ length: count }, () => openPostgres({ connectionString: url, max: 4 })));
    opened.push(...stores);
    return { url, stores };
  }

  async function accepted(sql: PostgresSql, ids: readonly string[]): Promise<void> {
    const clusters = new ClusterRepo(sql, now);
    for (const id of ids) {
      await clusters.requestRegistration({ id, labels: {}, agentVersion: '1.0.0', inventory: undefined, publicKey: `key-${id}` });
      await clusters.accept(id);
    }
  }

  it('group commits of two replicas over the same clusters, submitted in opposite orders, commit every batch without a deadlock', async () => {
    const { stores } = await replicas(2);
    const ids = Array.from({ length: 16 }, (_, i) => `edge-${String(i).padStart(2, '0')}`);
    await accepted(stores[0] as PostgresSql, ids);
    const captured = capturingLogger();
    const sides = stores.map((sql) => ({ reports: new ReportRepo(sql, now, captured.log), commits: new GroupCommitter(sql, captured.log, { schedule: () => {} }) }));
    const outcomes: CommitOutcome<IngestResult>[] = [];
    // Replica 0 heard the agents in one order, replica 1 in the reverse; each job holds its row a little, so the two groups overlap.
    for (const [side, order] of [[0, ids], [1, [...ids].reverse()]] as const) {
      const s = sides[side] as (typeof sides)[number];
      for (const id of order) {
        const batch = side === 0 ? [transition(id, 1)] : [transition(id, 1), transition(id, 2)];
        s.commits.submit(
          async () => {
            const r = await s.reports.ingest(id, 0, batch);
            await new Promise((resolve) => setTimeout(resolve, 20));
            return r;
          },
          (o) => void outcomes.push(o),
          id,
        );
      }
    }
    await Promise.all(sides.map((s) => s.commits.flush()));
    // A job the database aborted would run again in a later group: flush until every job answered.
    for (let i = 0; i < 5 && outcomes.length < ids.length * 2; i++) await Promise.all(sides.map((s) => s.commits.flush()));
    assert.equal(outcomes.length, ids.length * 2, 'every job answered');
    assert.deepEqual(outcomes.filter((o) => !o.ok).map((o) => String((o as { error: unknown }).error)), [], 'no job failed');
    assert.deepEqual(captured.lines.map((l) => l.msg).filter((m) => /aborted/.test(m)), [], 'nothing was aborted and run again: the groups never deadlocked');
    const sql = stores[0] as PostgresSql;
    for (const id of ids) {
      const stored = await sql.all<{ seq: number }>('SELECT seq FROM reports WHERE cluster_id = ? ORDER BY seq', [id]);
      assert.deepEqual(stored.map((r) => r.seq), [1, 2], `${id}: each report stored once`);
      assert.equal((await sql.get<{ acked_seq: number }>('SELECT acked_seq FROM clusters WHERE id = ?', [id]))?.acked_seq, 2);
    }
  });

  it('a deadlock the server breaks surfaces as DatabaseConflict, and the transaction it spared commits', async () => {
    const { stores } = await replicas(2);
    const [a, b] = stores as [PostgresSql, PostgresSql];
    await accepted(a, ['edge-x', 'edge-y']);
    // Two transactions lock two rows in opposite orders: each takes its first row, waits until the other took its own, then asks for the other's.
    let firstLocked = 0;
    const bothLocked = async (): Promise<void> => {
      firstLocked++;
      for (let i = 0; i < 200 && firstLocked < 2; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    };
    const lockInOrder = (sql: PostgresSql, first: string, second: string): Promise<string> =>
      sql.transaction(async () => {
        await sql.get(`SELECT id FROM clusters WHERE id = ?${sql.dialect.forUpdate}`, [first]);
        await bothLocked();
        await sql.get(`SELECT id FROM clusters WHERE id = ?${sql.dialect.forUpdate}`, [second]);
        await sql.run('UPDATE clusters SET labels = ? WHERE id = ?', [JSON.stringify({ by: first }), second]);
        return first;
      });
    const results = await Promise.allSettled([lockInOrder(a, 'edge-x', 'edge-y'), lockInOrder(b, 'edge-y', 'edge-x')]);
    const failed = results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason as Error);
    assert.equal(failed.length, 1, `one transaction aborted, one committed: ${results.map((r) => r.status).join(', ')}`);
    assert.ok(failed[0] instanceof DatabaseConflict, `the aborted one is a DatabaseConflict, got ${failed[0]?.name}: ${failed[0]?.message}`);
    assert.match(failed[0].message, /deadlock detected.*nothing of it was written: retry/s);
    // Both stores go on: their connections were returned clean (or replaced).
    assert.deepEqual(await Promise.all([a, b].map((s) => s.transaction(async () => s.get<{ one: number }>('SELECT 1 AS one')))), [{ one: 1 }, { one: 1 }]);
  });

  it('every pooled connection ended by the server: a transaction commits on a live connection, a statement answers or fails as DatabaseUnavailable, the next write is served', async () => {
    const { url, stores } = await replicas(1);
    const sql = stores[0] as PostgresSql;
    await accepted(sql, ['edge-t']);
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      for (let round = 0; round < 5; round++) {
        // A pool with idle connections, each one then ended by the server.
        await Promise.all(Array.from({ length: 4 }, () => sql.transaction(async () => sql.get('SELECT pg_sleep(0.02)'))));
        const ended = await admin.query<{ ok: boolean }>('SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1', [applicationName('pool')]);
        assert.ok(ended.rows.length > 0, 'the pool had connections to end');
        const calls = await Promise.allSettled([
          sql.transaction(async () => {
            await sql.get(`SELECT id FROM clusters WHERE id = ?${sql.dialect.forUpdate}`, ['edge-t']);
            return sql.run('UPDATE clusters SET labels = ? WHERE id = ?', [JSON.stringify({ round: String(round) }), 'edge-t']);
          }),
          sql.run('UPDATE clusters SET agent_version = ? WHERE id = ?', [`1.0.${round}`, 'edge-t']),
          sql.get('SELECT id FROM clusters WHERE id = ?', ['edge-t']),
        ]);
        // A transaction starts again on another connection when its BEGIN finds a dead one: nothing of it had run.
        assert.equal(calls[0].status, 'fulfilled', `round ${round}: the transaction: ${calls[0].status === 'rejected' ? String(calls[0].reason) : ''}`);
        // A single statement may have been sent on a dead connection: it fails as unavailable (the API answers 503), never otherwise.
        for (const c of calls) {
          if (c.status === 'rejected') assert.ok(c.reason instanceof DatabaseUnavailable, `round ${round}: failed as ${(c.reason as Error).name}: ${(c.reason as Error).message}`);
        }
        // The database is there: the next calls are served.
        assert.equal(await sql.transaction(async () => sql.run('UPDATE clusters SET agent_version = ? WHERE id = ?', ['2.0.0', 'edge-t'])), 1, `round ${round}: a write after it`);
      }
    } finally {
      await admin.end();
    }
  });
});
