// ReportRepo.ingestMany stores and applies many agents' batches with a few
// statements for all of them (report-repo.ts). It must leave exactly what
// ingesting them one at a time in the same order did, by the rules the
// ingest has always had (store past the mark, refuse a batch after a report
// the hub does not hold, a re-send takes the link of its latest copy, apply
// along the chain, fold each report into the aggregate once). A reference
// model of those rules, written out plainly here, is compared with the store
// after thousands of generated batches (good, repeated, reordered, with a
// wrong afterSeq, hostile bodies) ingested in groups of random sizes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { upgradeStatusOf } from '../../src/protocol/attempt.ts';
import type { ReportEntry } from '../../src/protocol/messages.ts';
import { parseReport } from '../../src/protocol/reports.ts';
import { AggregateRepo } from '../../src/hub/store/aggregate-repo.ts';
import { ClusterRepo } from '../../src/hub/store/cluster-repo.ts';
import { openSqlite } from '../../src/hub/store/database.ts';
import { ReportRepo, UnknownCluster, type IngestRequest, type IngestResult } from '../../src/hub/store/report-repo.ts';
import { mulberry32 } from '../support/prng.ts';
import { testLogger } from '../support/hub-fixture.ts';
import { completed, transition } from '../support/sample-reports.ts';

const NOW = new Date('2030-01-01T00:00:00.000Z');
const CLUSTERS = ['edge-a', 'edge-b', 'edge-c', 'edge-d'];

/** One cluster as the ingest rules leave it. */
interface ModelCluster {
  acked: number;
  reports: Map<number, { prev: number; kind: string; body: string; problem: string | null }>;
  upgrade: Record<string, unknown> | undefined;
  inventory: string | null;
  telemetry: number[];
}

/** The ingest rules, one batch at a time, in memory. */
class Model {
  readonly clusters = new Map<string, ModelCluster>(CLUSTERS.map((id) => [id, { acked: 0, reports: new Map(), upgrade: undefined, inventory: null, telemetry: [] }]));

  ingest(id: string, afterSeq: number, reports: readonly ReportEntry[]): IngestResult {
    const c = this.clusters.get(id) as ModelCluster;
    if (afterSeq > c.acked && !c.reports.has(afterSeq)) return { ackedSeq: c.acked, stored: 0, duplicates: 0, applied: 0, expectedAfterSeq: c.acked };
    let duplicates = 0;
    const links = new Map<number, { prev: number; entry: ReportEntry }>();
    let prev = afterSeq;
    for (const r of reports) {
      if (r.seq <= c.acked) duplicates++;
      else {
        if (links.has(r.seq)) duplicates++;
        links.set(r.seq, { prev, entry: links.get(r.seq)?.entry ?? r });
      }
      prev = r.seq;
    }
    let stored = 0;
    for (const [seq, l] of links) {
      const held = c.reports.get(seq);
      if (held) {
        duplicates++;
        held.prev = l.prev;
      } else {
        stored++;
        c.reports.set(seq, { prev: l.prev, kind: l.entry.kind, body: JSON.stringify(l.entry.body ?? null), problem: null });
      }
    }
    let applied = 0;
    for (const seq of [...c.reports.keys()].filter((s) => s > c.acked).sort((a, b) => a - b)) {
      const row = c.reports.get(seq) as ModelCluster['reports'] extends Map<number, infer R> ? R : never;
      if (row.prev > c.acked) break;
      row.problem = this.#apply(id, c, seq, row.kind, JSON.parse(row.body) as unknown);
      c.acked = seq;
      applied++;
    }
    return { ackedSeq: c.acked, stored, duplicates, applied };
  }

  #apply(id: string, c: ModelCluster, seq: number, kind: string, body: unknown): string | null {
    const p = parseReport(kind, body);
    if (!p.known) return `unknown report kind "${kind}" (from a newer agent?): stored, not aggregated`;
    if (!p.ok) return `invalid ${kind} report: ${p.issue}`;
    const up = (c.upgrade ??= {});
    switch (p.kind) {
      case 'attempt-transition': {
        const t = p.body;
        Object.assign(up, { attemptId: t.attemptId, releaseName: t.release.name, releaseVersion: t.release.version, revision: t.release.revision, phase: t.phase, status: upgradeStatusOf(t.phase), stage: t.stage, reason: t.reason, message: t.message, at: t.at });
        if (t.phase === 'Succeeded') Object.assign(up, { runningName: t.release.name, runningVersion: t.release.version });
        return null;
      }
      case 'upgrade-completed':
        if (p.body.cluster_id !== id) return `upgrade-completed names cluster "${p.body.cluster_id}", not the sender "${id}"`;
        c.telemetry.push(seq);
        return null;
      case 'release-refused':
        up.lastRefusal = p.body;
        return null;
      case 'override-refused':
        up.lastOverrideRefusal = p.body;
        return null;
      case 'report-quarantined':
        return null;
      case 'inventory':
        c.inventory = p.body.kubernetesVersion;
        return null;
    }
  }
}

const EMPTY_UPGRADE = { attemptId: null, releaseName: null, releaseVersion: null, revision: null, phase: null, status: null, stage: null, reason: null, message: null, at: null, runningName: null, runningVersion: null, lastRefusal: null, lastOverrideRefusal: null };

/** A report of some kind, sometimes one the hub cannot aggregate. */
function entry(random: () => number, id: string, seq: number): ReportEntry {
  const at = new Date(NOW.getTime() + seq * 1000).toISOString();
  const kinds: [string, unknown][] = [
    ['attempt-transition', transition(seq, random() < 0.3 ? 'Succeeded' : 'Upgrading')],
    ['attempt-transition', transition(seq, 'Verifying', { stage: null })],
    ['upgrade-completed', completed(random() < 0.9 ? id : 'edge-someone-else', seq)],
    ['release-refused', { revision: seq, reason: 'UnknownKey', message: `refused ${seq}`, at }],
    ['override-refused', { name: 'fix', revision: seq, reason: 'Expired', message: `expired ${seq}`, at }],
    ['inventory', { components: [{ name: 'dns', version: '1.0.0' }], kubernetesVersion: `v1.${seq}.0`, targetInfrastructure: 'aws', overrides: [] }],
    ['attempt-transition', { attemptId: 7 }],
    ['from-the-future', { whatever: seq }],
  ];
  const [kind, body] = kinds[Math.floor(random() * kinds.length)] as [string, unknown];
  return { seq, kind, createdAt: at, body };
}

/** A batch as agents send them, and as broken or repeated ones arrive. */
function batch(random: () => number, next: Map<string, number>, mark: (id: string) => number): IngestRequest {
  const id = CLUSTERS[Math.floor(random() * CLUSTERS.length)] as string;
  const last = next.get(id) ?? 0;
  const r = random();
  let afterSeq: number;
  let seqs: number[];
  if (r < 0.15) {
    // A re-send from the hub's mark, in order (what an agent does after a reconnect, or when told expectedAfterSeq): it repairs a broken chain.
    afterSeq = Math.min(mark(id), last);
    seqs = Array.from({ length: Math.min(4, last - afterSeq) }, (_, i) => afterSeq + i + 1);
  } else if (r < 0.65) {
    // The next reports, in order.
    const n = 1 + Math.floor(random() * 4);
    afterSeq = last;
    seqs = Array.from({ length: n }, (_, i) => last + i + 1);
    next.set(id, last + n);
  } else if (r < 0.75) {
    // A re-send of earlier ones (a reconnect mid-replay).
    afterSeq = Math.max(0, last - 1 - Math.floor(random() * 5));
    seqs = Array.from({ length: Math.min(3, last - afterSeq) }, (_, i) => afterSeq + i + 1);
  } else if (r < 0.85) {
    // After a report the hub never got.
    afterSeq = last + 2;
    seqs = [last + 3];
  } else {
    // Out of order, repeated within the batch.
    afterSeq = last;
    seqs = [last + 2, last + 1, last + 2];
    next.set(id, last + 2);
  }
  return { clusterId: id, afterSeq, reports: seqs.map((s) => entry(random, id, s)) };
}

describe('ingest of many batches at once (ReportRepo.ingestMany)', () => {
  for (const seed of [1, 2, 3]) {
    it(`leaves what the ingest rules applied one batch at a time leave: 1,500 generated batches in groups of 1 to 40, seed ${seed}`, async () => {
      const random = mulberry32(seed);
      const db = openSqlite(':memory:');
      try {
        const clusters = new ClusterRepo(db, () => NOW);
        for (const id of CLUSTERS) {
          await clusters.requestRegistration({ id, labels: {}, agentVersion: '1.0.0', inventory: undefined, publicKey: `key-${id}` });
          await clusters.accept(id);
        }
        const reports = new ReportRepo(db, () => NOW, testLogger());
        const model = new Model();
        const next = new Map<string, number>();
        for (let done = 0; done < 1500; ) {
          const group = Array.from({ length: 1 + Math.floor(random() * 40) }, () => batch(random, next, (id) => model.clusters.get(id)?.acked ?? 0));
          done += group.length;
          const expected = group.map((b) => model.ingest(b.clusterId, b.afterSeq, b.reports));
          const got = await db.transaction(() => reports.ingestMany(group));
          assert.deepEqual(got, expected, 'each batch answered as if ingested alone, in order');
        }
        const aggregate = new AggregateRepo(db);
        for (const [id, c] of model.clusters) {
          assert.equal(await reports.ackedSeq(id), c.acked, `${id}: mark`);
          const rows = await db.all<{ seq: number; prev_seq: number; kind: string; body: string; problem: string | null }>('SELECT seq, prev_seq, kind, body, problem FROM reports WHERE cluster_id = ? ORDER BY seq', [id]);
          assert.deepEqual(
            rows.map((r) => [r.seq, r.prev_seq, r.kind, r.body, r.problem]),
            [...c.reports].sort(([a], [b]) => a - b).map(([seq, r]) => [seq, r.prev, r.kind, r.body, r.problem]),
            `${id}: stored reports, links and problems`,
          );
          assert.deepEqual(await aggregate.upgrade(id), c.upgrade === undefined ? undefined : { ...EMPTY_UPGRADE, ...c.upgrade }, `${id}: aggregate`);
          assert.deepEqual((await aggregate.telemetry({ clusterId: id, limit: 100_000 })).map((t) => t.seq), c.telemetry, `${id}: telemetry, once each, in order`);
          assert.equal((await clusters.get(id))?.kubernetesVersion ?? null, c.inventory, `${id}: inventory`);
        }
        assert.ok([...model.clusters.values()].every((c) => c.acked > 50), 'every chain advanced (broken ones were repaired)');
      } finally {
        await db.close();
      }
    });
  }

  it('a batch for a cluster the database does not hold fails the call, with nothing of it written', async () => {
    const db = openSqlite(':memory:');
    try {
      const clusters = new ClusterRepo(db, () => NOW);
      await clusters.requestRegistration({ id: 'edge-a', labels: {}, agentVersion: '1.0.0', inventory: undefined, publicKey: 'k' });
      await clusters.accept('edge-a');
      const reports = new ReportRepo(db, () => NOW, testLogger());
      await assert.rejects(
        reports.ingestMany([
          { clusterId: 'edge-a', afterSeq: 0, reports: [entry(mulberry32(1), 'edge-a', 1)] },
          { clusterId: 'edge-gone', afterSeq: 0, reports: [entry(mulberry32(1), 'edge-gone', 1)] },
        ]),
        (err: unknown) => err instanceof UnknownCluster && /edge-gone/.test(err.message),
      );
      assert.equal((await db.get<{ n: number }>('SELECT count(*) AS n FROM reports'))?.n, 0);
      assert.equal(await reports.ackedSeq('edge-a'), 0);
    } finally {
      await db.close();
    }
  });
});
