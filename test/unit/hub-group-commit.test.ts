// Group commit of report batches (src/hub/store/group-commit.ts): several
// agents' batches share one transaction, each ack goes out only after that
// transaction committed, and de-duplication, the contiguous ack and the order
// per agent are exactly what one commit per batch gave.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { GroupCommitter, type CommitOutcome } from '../../src/hub/store/group-commit.ts';
import { openSqlite } from '../../src/hub/store/database.ts';
import type { SqliteSql } from '../../src/hub/store/sqlite-sql.ts';
import { DatabaseConflict, DatabaseUnavailable } from '../../src/hub/store/sql.ts';
import type { HubMessage, ReportEntry } from '../../src/protocol/messages.ts';
import { mulberry32 } from '../support/prng.ts';
import { testLogger } from '../support/hub-fixture.ts';
import { entries, SessionBench, type FakeAgent } from '../support/session-bench.ts';

const committedReports = (b: SessionBench, clusterId: string): number[] => {
  const r = b.reader();
  try {
    return (r.prepare('SELECT seq FROM reports WHERE cluster_id = ? ORDER BY seq').all(clusterId) as { seq: number }[]).map((x) => x.seq);
  } finally {
    r.close();
  }
};

const committedAckedSeq = (b: SessionBench, clusterId: string): number => {
  const r = b.reader();
  try {
    return (r.prepare('SELECT acked_seq FROM clusters WHERE id = ?').get(clusterId) as { acked_seq: number }).acked_seq;
  } finally {
    r.close();
  }
};

describe('hub group commit of report batches', () => {
  let b: SessionBench;
  beforeEach(async () => {
    b = await SessionBench.open();
  });
  afterEach(() => b.close());

  async function welcomed(...ids: string[]): Promise<FakeAgent[]> {
    await b.enrol(...ids);
    const agents = ids.map((id) => b.connect(id));
    for (const a of agents) a.hello();
    await b.settle();
    assert.equal(agents.filter((a) => a.sent.length > 0).length, 0, 'no welcome before the hellos are committed');
    await b.tick();
    for (const a of agents) assert.equal(a.sent[0]?.type, 'welcome', `${a.id} welcomed after the commit`);
    return agents;
  }

  it('commits the batches of several agents in one transaction and acks each only after it', async () => {
    const agents = await welcomed('edge-a', 'edge-b', 'edge-c');
    // At the moment an ack is sent, another connection must already see what it names.
    const checked: string[] = [];
    for (const a of agents) {
      a.onSend = (m: HubMessage) => {
        if (m.type !== 'ack') return;
        const held = committedReports(b, a.id);
        const mark = committedAckedSeq(b, a.id);
        checked.push(`${a.id} ack ${m.uptoSeq}: committed mark ${mark}, reports ${held.join(',')}`);
      };
    }
    const commitsBefore = b.ctx.commits.commits;
    for (const a of agents) a.reports(0, entries(1, 2, a.id));
    for (const a of agents) a.reports(2, entries(3, 3, a.id));
    await b.settle();
    assert.deepEqual(agents.map((a) => a.acks()), [[], [], []], 'no ack before the commit');
    assert.deepEqual(committedReports(b, 'edge-a'), [], 'nothing committed yet');
    assert.equal(b.ctx.commits.pending, 6);

    await b.tick();
    assert.equal(b.ctx.commits.commits - commitsBefore, 1, 'six batches of three agents, one commit');
    assert.deepEqual(agents.map((a) => a.acks()), [[2, 3], [2, 3], [2, 3]], 'each agent its acks, in the order of its batches');
    // Answers in submission order; one commit holds all six batches, so even the first ack finds the later batch committed.
    assert.deepEqual(checked, [2, 3].flatMap((n) => ['edge-a', 'edge-b', 'edge-c'].map((id) => `${id} ack ${n}: committed mark 3, reports 1,2,3`)));
    assert.equal((await b.ctx.aggregate.upgrade('edge-b'))?.attemptId, 'edge-b-a3', 'aggregated in order');
  });

  it('never puts more than maxBatch jobs in one transaction, however long the queue grew meanwhile', async () => {
    await b.close();
    b = await SessionBench.open({ maxBatch: 4 });
    const agents = await welcomed('edge-a', 'edge-b', 'edge-c');
    const before = b.ctx.commits.commits;
    // Queued while a transaction is open (as while the previous group commits): nothing commits until it ends.
    await b.ctx.db.transaction(async () => {
      for (let n = 1; n <= 3; n++) for (const a of agents) a.reports(n - 1, entries(n, n, a.id));
      await b.settle();
    });
    assert.equal(b.ctx.commits.pending, 9);
    await b.ctx.commits.flush();
    assert.equal(b.ctx.commits.commits - before, 3, 'nine jobs, at most four a group');
    assert.equal(b.ctx.commits.stats.largestGroup, 4);
    assert.deepEqual(agents.map((a) => a.acks()), [[1, 2, 3], [1, 2, 3], [1, 2, 3]]);
  });

  it('commits at once when the queue reaches maxBatch, without waiting for the next turn', async () => {
    await b.close();
    b = await SessionBench.open({ maxBatch: 4 });
    const agents = await welcomed('edge-a', 'edge-b');
    agents[0]?.reports(0, entries(1, 1));
    agents[1]?.reports(0, entries(1, 1));
    agents[0]?.reports(1, entries(2, 2));
    await b.settle();
    assert.deepEqual(agents.map((a) => a.acks()), [[], []]);
    agents[1]?.reports(1, entries(2, 2));
    await b.settle();
    assert.deepEqual(agents.map((a) => a.acks()), [[1, 2], [1, 2]], 'the fourth job committed the queue');
    assert.equal(b.ctx.commits.pending, 0);
  });

  it('a batch that fails rolls back alone: the others in its transaction are committed and acknowledged', async () => {
    const [ok, gone] = (await welcomed('edge-ok', 'edge-gone')) as [FakeAgent, FakeAgent];
    // The cluster vanishes under a connection: its batch hits the foreign key.
    await b.ctx.clusters.delete('edge-gone');
    ok.reports(0, entries(1, 2));
    gone.reports(0, entries(1, 2));
    ok.reports(2, entries(3, 4));
    await b.tick();
    assert.deepEqual(ok.acks(), [2, 4]);
    assert.deepEqual(committedReports(b, 'edge-ok'), [1, 2, 3, 4]);
    assert.deepEqual(gone.acks(), [], 'nothing acknowledged');
    assert.deepEqual(committedReports(b, 'edge-gone'), []);
    assert.equal(gone.sent.at(-1)?.type, 'error');
    assert.equal(gone.closed?.code, 1011, 'closed: the agent re-sends after reconnecting');
    assert.equal(ok.closed, null);
  });

  it('answers queued work with an error, and throws nothing, when the database closed before the turn came', async () => {
    const [a] = (await welcomed('edge-a')) as [FakeAgent];
    a.reports(0, entries(1, 1));
    await b.settle();
    await b.db.close();
    await assert.doesNotReject(b.tick());
    assert.deepEqual(a.acks(), []);
    assert.equal(a.closed?.code, 1011);
    // afterEach closes again: closing twice is allowed.
  });

  it('acks exactly what one commit per batch acked: re-sent, out-of-order and overlapping batches from several agents (seeded)', async () => {
    const ids = ['edge-a', 'edge-b', 'edge-c', 'edge-d'];
    for (const seed of [1, 2, 3, 0xfeed]) {
      const random = mulberry32(seed);
      // Each agent's outbox cut into batches chained by afterSeq, then sent with
      // re-sends, swaps (a later batch first) and restarts from an old mark.
      const frames: { id: string; afterSeq: number; reports: ReportEntry[] }[] = [];
      const perAgent = new Map<string, { afterSeq: number; reports: ReportEntry[] }[]>();
      for (const id of ids) {
        const batches: { afterSeq: number; reports: ReportEntry[] }[] = [];
        let seq = 0;
        while (seq < 30) {
          const n = 1 + Math.floor(random() * 4);
          batches.push({ afterSeq: seq, reports: entries(seq + 1, seq + n, id) });
          seq += n;
        }
        const order: number[] = [];
        for (let i = 0; i < batches.length; i++) {
          const r = random();
          if (r < 0.15 && i + 1 < batches.length) {
            order.push(i + 1, i);
            i++;
          } else if (r < 0.3 && i > 0) {
            order.push(i - 1, i);
          } else order.push(i);
        }
        perAgent.set(id, order.map((i) => batches[i] as { afterSeq: number; reports: ReportEntry[] }));
      }
      // Interleave the agents at random, keeping each agent's own order.
      const cursors = new Map(ids.map((id) => [id, 0]));
      for (;;) {
        const open = ids.filter((id) => (cursors.get(id) ?? 0) < (perAgent.get(id)?.length ?? 0));
        if (open.length === 0) break;
        const id = open[Math.floor(random() * open.length)] as string;
        const i = cursors.get(id) ?? 0;
        frames.push({ id, ...(perAgent.get(id)?.[i] as { afterSeq: number; reports: ReportEntry[] }) });
        cursors.set(id, i + 1);
      }

      // Reference: one transaction per batch, as the hub did before group commit.
      const ref = await SessionBench.open();
      await ref.enrol(...ids);
      const expected = new Map<string, number[]>(ids.map((id) => [id, []]));
      for (const f of frames) expected.get(f.id)?.push((await ref.ctx.reports.ingest(f.id, f.afterSeq, f.reports)).ackedSeq);

      const run = await SessionBench.open();
      await run.enrol(...ids);
      const agents = new Map(ids.map((id) => [id, run.connect(id)]));
      for (const a of agents.values()) a.hello();
      await run.tick();
      const commitsBefore = run.ctx.commits.commits;
      for (const f of frames) {
        agents.get(f.id)?.reports(f.afterSeq, f.reports);
        if (random() < 0.2) await run.tick();
      }
      await run.tick();
      try {
        for (const id of ids) {
          assert.deepEqual(agents.get(id)?.acks(), expected.get(id), `seed ${seed} ${id}: same acks, in the same order`);
          assert.deepEqual(await run.ctx.aggregate.upgrade(id), await ref.ctx.aggregate.upgrade(id), `seed ${seed} ${id}: same aggregate`);
          assert.deepEqual(
            (await run.ctx.reports.list(id, { afterSeq: 0, limit: 1000 })).map((r) => [r.seq, r.prevSeq, r.acknowledged]),
            (await ref.ctx.reports.list(id, { afterSeq: 0, limit: 1000 })).map((r) => [r.seq, r.prevSeq, r.acknowledged]),
          );
        }
        assert.ok(run.ctx.commits.commits - commitsBefore < frames.length / 2, `seed ${seed}: ${frames.length} batches shared ${run.ctx.commits.commits - commitsBefore} commits`);
      } finally {
        await ref.close();
        await run.close();
      }
    }
  });

  describe('order of the jobs in a group (one lock order on every replica)', () => {
    /** A committer on a real SQLite whose "next turn" the test runs; work records when it ran. */
    function committer(): { db: SqliteSql; commits: GroupCommitter; ran: string[]; answered: string[]; turn: () => Promise<void>; close: () => Promise<void> } {
      const db = openSqlite(':memory:');
      const queued: (() => void)[] = [];
      const ran: string[] = [];
      const commits = new GroupCommitter(db, testLogger(), { schedule: (run) => void queued.push(run), lockKeys: async (keys) => void ran.push(`lock ${keys.join(',')}`) });
      return {
        db,
        commits,
        ran,
        answered: [],
        // One group: what is queued now (the scheduled runs are dropped; the test decides when a group commits).
        async turn() {
          queued.length = 0;
          await commits.flush();
        },
        close: () => db.close(),
      };
    }

    it('runs jobs in key order, each key in submission order, and answers in submission order', async () => {
      const c = committer();
      try {
        const job = (name: string, key: string) =>
          c.commits.submit(
            async () => void c.ran.push(name),
            (o: CommitOutcome<void>) => void c.answered.push(`${name}:${o.ok}`),
            key,
          );
        job('c1', 'edge-c');
        job('a1', 'edge-a');
        job('c2', 'edge-c');
        job('b1', 'edge-b');
        job('a2', 'edge-a');
        await c.turn();
        assert.deepEqual(
          c.ran,
          ['lock edge-a,edge-b,edge-c', 'a1', 'b1', 'c1', 'a2', 'c2'],
          'every key locked first, in id order (one lock order on every replica); then each key\'s first job, then its second, in key order',
        );
        assert.deepEqual(c.answered, ['c1:true', 'a1:true', 'c2:true', 'b1:true', 'a2:true'], 'answers keep the submission order');
        assert.equal(c.commits.commits, 1);
      } finally {
        await c.close();
      }
    });

    it('shares one call of batched work among the jobs of a group, each key\'s items in submission order', async () => {
      const c = committer();
      try {
        const calls: string[][] = [];
        const work = async (items: readonly string[]): Promise<string[]> => {
          calls.push([...items]);
          return items.map((i) => i.toUpperCase());
        };
        const job = (name: string, key: string) => c.commits.submitBatch(work, name, (o: CommitOutcome<string>) => void c.answered.push(o.ok ? o.value : `${name}:failed`), key);
        job('c1', 'edge-c');
        job('a1', 'edge-a');
        c.commits.submit(async () => void c.ran.push('b-own'), () => void c.answered.push('b-own'), 'edge-b');
        job('a2', 'edge-a');
        job('b1', 'edge-b');
        await c.turn();
        assert.deepEqual(calls, [['a1', 'c1'], ['a2', 'b1']], 'one call per phase: each key\'s first items, then its second (b1 after b-own)');
        assert.deepEqual(c.ran, ['lock edge-a,edge-b,edge-c', 'b-own']);
        assert.deepEqual(c.answered, ['C1', 'A1', 'b-own', 'A2', 'B1'], 'answers keep the submission order');
        assert.equal(c.commits.commits, 1);
      } finally {
        await c.close();
      }
    });

    it('when the shared call fails, each item runs alone: only the one that fails fails, and nothing of the failed call stays', async () => {
      const c = committer();
      try {
        const db = c.db;
        await db.run('CREATE TABLE t (v TEXT NOT NULL)');
        const calls: string[][] = [];
        // Writes in the group's transaction: the savepoint around a failed call is what takes its writes back.
        const work = async (items: readonly string[]): Promise<string[]> => {
          calls.push([...items]);
          for (const i of items) {
            await db.run('INSERT INTO t (v) VALUES (?)', [i]);
            if (i === 'bad') throw new Error('refused (test)');
          }
          return [...items];
        };
        for (const [name, key] of [['ok1', 'edge-a'], ['bad', 'edge-b'], ['ok2', 'edge-c']] as const) {
          c.commits.submitBatch(work, name, (o: CommitOutcome<string>) => void c.answered.push(`${name}:${o.ok}`), key);
        }
        await c.turn();
        assert.deepEqual(calls, [['ok1', 'bad', 'ok2'], ['ok1'], ['bad'], ['ok2']], 'the shared call, then each alone');
        assert.deepEqual(c.answered, ['ok1:true', 'bad:false', 'ok2:true']);
        assert.deepEqual((await db.all<{ v: string }>('SELECT v FROM t ORDER BY v')).map((r) => r.v), ['ok1', 'ok2'], 'what the failed calls wrote was rolled back');
        assert.equal(c.commits.commits, 1);
      } finally {
        await c.close();
      }
    });

    it('when the shared call finds the database unreachable, its items fail at once rather than each trying alone', async () => {
      const c = committer();
      try {
        let calls = 0;
        const work = async (): Promise<string[]> => {
          calls++;
          throw new DatabaseUnavailable('the hub database cannot be reached (test)');
        };
        for (const key of ['edge-a', 'edge-b', 'edge-c']) {
          c.commits.submitBatch(work, key, (o: CommitOutcome<string>) => void c.answered.push(`${key}:${o.ok ? 'ok' : (o.error as Error).name}`), key);
        }
        await c.turn();
        assert.equal(calls, 1);
        assert.deepEqual(c.answered, ['edge-a:DatabaseUnavailable', 'edge-b:DatabaseUnavailable', 'edge-c:DatabaseUnavailable']);
      } finally {
        await c.close();
      }
    });

    it('a job the database aborted for a conflict runs again in the next group, and its key\'s later jobs wait for it', async () => {
      const c = committer();
      try {
        let conflicts = 1;
        c.commits.submit(
          async () => {
            c.ran.push('a1');
            if (conflicts-- > 0) throw new DatabaseConflict('deadlock detected (test)');
          },
          (o: CommitOutcome<void>) => void c.answered.push(`a1:${o.ok}`),
          'edge-a',
        );
        c.commits.submit(async () => void c.ran.push('a2'), (o: CommitOutcome<void>) => void c.answered.push(`a2:${o.ok}`), 'edge-a');
        c.commits.submit(
          async () => {
            c.ran.push('b1');
            // A frame of the same agent arriving meanwhile goes after them.
            c.commits.submit(async () => void c.ran.push('a3'), (o: CommitOutcome<void>) => void c.answered.push(`a3:${o.ok}`), 'edge-a');
          },
          (o: CommitOutcome<void>) => void c.answered.push(`b1:${o.ok}`),
          'edge-b',
        );
        await c.turn();
        assert.deepEqual(c.ran, ['lock edge-a,edge-b', 'a1', 'b1', 'lock edge-a', 'a1', 'a2', 'a3'], 'a2 did not overtake the aborted a1; a1 ran again in the next group, ahead of a3');
        assert.equal(c.commits.commits, 2);
        assert.deepEqual(c.answered, ['b1:true', 'a1:true', 'a2:true', 'a3:true']);
      } finally {
        await c.close();
      }
    });

    it('a job the database keeps aborting fails after a few runs, with the conflict', async () => {
      const c = committer();
      try {
        let runs = 0;
        let outcome: CommitOutcome<void> | undefined;
        c.commits.submit(
          async () => {
            runs++;
            throw new DatabaseConflict('deadlock detected (test)');
          },
          (o: CommitOutcome<void>) => void (outcome = o),
          'edge-a',
        );
        for (let i = 0; i < 10 && outcome === undefined; i++) await c.turn();
        assert.equal(runs, 4, 'the first run and three more');
        assert.ok(outcome && !outcome.ok && outcome.error instanceof DatabaseConflict);
      } finally {
        await c.close();
      }
    });
  });
});
