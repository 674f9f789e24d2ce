// Received reports. Storage de-duplicates by (cluster, seq); the
// acknowledged mark advances only along the chain of prev_seq links, so it
// never passes a report the hub does not hold, whatever order batches
// arrived in or how often they were re-sent.
//
// The chain cannot wedge: a batch whose afterSeq names a report the hub
// neither acknowledged nor holds is not stored (the hub answers with the
// seq it expects, and the agent resumes from there), and a report not yet
// applied takes the link of its latest copy, so a re-send with the right
// afterSeq repairs one that came with a wrong one.
//
// Exactly once across replicas: ingest reads the acknowledged mark with
// SELECT … FOR UPDATE, so two replicas ingesting for one cluster (an agent
// that reconnected elsewhere while its old connection's batch was still in
// flight) take turns, and the second sees what the first applied. SQLite has
// one writer and needs no lock.
import type { StoredReport } from '../../protocol/hub-api.ts';
import type { ReportEntry } from '../../protocol/messages.ts';
import type { Logger } from 'pino';
import { AggregateFold } from './aggregate-repo.ts';
import { byRounds, chunked, placeholders } from './batches.ts';
import { HubDatabaseError, type Sql } from './sql.ts';

/** Rows per multi-row INSERT (7 parameters each, well under either backend's limit). */
const INSERT_CHUNK = 1000;
/** Clusters per statement that names each (an IN list, or a condition per cluster). */
const CLUSTER_CHUNK = 500;
/** Reports past a cluster's mark read per query while applying its chain. */
const APPLY_PAGE = 500;

export interface IngestResult {
  ackedSeq: number;
  stored: number;
  duplicates: number;
  applied: number;
  /** Set when the batch was not stored because its afterSeq is a report the hub does not hold: send again after this seq. */
  expectedAfterSeq?: number;
}

/** One agent's report batch, as it arrived. */
export interface IngestRequest {
  clusterId: string;
  afterSeq: number;
  reports: readonly ReportEntry[];
}

/** A batch for a cluster the database does not hold (deregistered while the batch waited for its commit): nothing of the call was written. */
export class UnknownCluster extends HubDatabaseError {
  override readonly name = 'UnknownCluster';
}

/** The API's answer is the report as stored (src/protocol/hub-api.ts). */
export type { StoredReport };

interface PastMark {
  seq: number;
  prev_seq: number;
  kind: string;
  body: string;
}

/** One batch of a round, with what the round learnt about it. */
interface Pending {
  req: IngestRequest;
  acked: number;
  /** The reports past the mark, each with the link of its latest copy in the batch. */
  links: Map<number, { prev: number; entry: ReportEntry }>;
  duplicates: number;
  result?: IngestResult;
}

export class ReportRepo {
  readonly #sql: Sql;
  readonly #now: () => Date;
  readonly #log: Logger;

  constructor(sql: Sql, now: () => Date, logger: Logger) {
    this.#sql = sql;
    this.#now = now;
    this.#log = logger;
  }

  async ackedSeq(clusterId: string): Promise<number> {
    const row = await this.#sql.get<{ acked_seq: number }>('SELECT acked_seq FROM clusters WHERE id = ?', [clusterId]);
    return row?.acked_seq ?? 0;
  }

  /** Stores a batch and applies whatever now extends the chain; one transaction, so an ack always names committed work. */
  async ingest(clusterId: string, afterSeq: number, reports: readonly ReportEntry[]): Promise<IngestResult> {
    const [result] = await this.ingestMany([{ clusterId, afterSeq, reports }]);
    return result as IngestResult;
  }

  /**
   * ingest() for many batches at once (a group commit's: group-commit.ts
   * submitBatch), with a few statements for all of them rather than a few for
   * each: on PostgreSQL every statement is a round trip, and a group of
   * hundreds of batches one after another took longer than the next group
   * took to fill. Results in the order of `requests`. A cluster's batches
   * apply in the order given: its first batch with the other clusters' first,
   * then its second, and so on. Joins the caller's transaction (a group
   * commit's) or runs in one of its own. Throws UnknownCluster, with nothing
   * written, when a batch names a cluster the database does not hold.
   */
  readonly ingestMany = async (requests: readonly IngestRequest[]): Promise<IngestResult[]> => {
    if (!this.#sql.inTransaction) return this.#sql.transaction(() => this.ingestMany(requests));
    return byRounds(requests, (r) => r.clusterId, (round) => this.#ingestRound(round));
  };

  /** Batches of distinct clusters, in the caller's transaction. */
  async #ingestRound(requests: readonly IngestRequest[]): Promise<IngestResult[]> {
    const sql = this.#sql;
    const receivedAt = this.#now().toISOString();
    // Lock every cluster's row (and read its mark) in one statement, in id order: another replica ingesting for the
    // same cluster waits here until this commits, then sees what it applied; and one order everywhere means no
    // lock cycle with another replica's group (group-commit.ts).
    const ids = requests.map((r) => r.clusterId);
    const marks = new Map<string, number>();
    for (const chunk of chunked(ids, CLUSTER_CHUNK)) {
      const rows = await sql.all<{ id: string; acked_seq: number }>(`SELECT id, acked_seq FROM clusters WHERE id IN (${placeholders(chunk)}) ORDER BY id${sql.dialect.idOrder}${sql.dialect.forUpdate}`, chunk);
      for (const r of rows) marks.set(r.id, r.acked_seq);
    }
    const missing = ids.filter((id) => !marks.has(id));
    if (missing.length > 0) throw new UnknownCluster(`cluster "${missing[0]}" is not in the hub database (deregistered meanwhile?): its reports were not stored`);

    const pending: Pending[] = requests.map((req) => {
      const acked = marks.get(req.clusterId) as number;
      let duplicates = 0;
      const links = new Map<number, { prev: number; entry: ReportEntry }>();
      let prev = req.afterSeq;
      for (const r of req.reports) {
        if (r.seq <= acked) duplicates++;
        else {
          if (links.has(r.seq)) duplicates++;
          links.set(r.seq, { prev, entry: links.get(r.seq)?.entry ?? r });
        }
        prev = r.seq;
      }
      return { req, acked, links, duplicates };
    });

    // Which of those reports the hub holds already, and whether it holds each batch's afterSeq: one read for all.
    const asked = pending.map((p) => ({ id: p.req.clusterId, seqs: [...p.links.keys(), ...(p.req.afterSeq > p.acked ? [p.req.afterSeq] : [])] })).filter((a) => a.seqs.length > 0);
    const held = new Set<string>();
    for (const chunk of chunked(asked, CLUSTER_CHUNK / 5)) {
      const rows = await sql.all<{ cluster_id: string; seq: number }>(
        `SELECT cluster_id, seq FROM reports WHERE ${chunk.map((a) => `(cluster_id = ? AND seq IN (${placeholders(a.seqs)}))`).join(' OR ')}`,
        chunk.flatMap((a) => [a.id, ...a.seqs]),
      );
      for (const r of rows) held.add(`${r.cluster_id}\n${r.seq}`);
    }
    const storing: Pending[] = [];
    for (const p of pending) {
      const id = p.req.clusterId;
      // A batch following a report the hub neither acknowledged nor holds is not stored: the agent resumes from the mark.
      if (p.req.afterSeq > p.acked && !held.has(`${id}\n${p.req.afterSeq}`)) {
        p.result = { ackedSeq: p.acked, stored: 0, duplicates: 0, applied: 0, expectedAfterSeq: p.acked };
        continue;
      }
      const again = [...p.links.keys()].filter((seq) => held.has(`${id}\n${seq}`)).length;
      p.result = { ackedSeq: p.acked, stored: p.links.size - again, duplicates: p.duplicates + again, applied: 0 };
      storing.push(p);
    }

    // Only rows past the mark are written, so the update never touches an applied report.
    const rows = storing.flatMap((p) => [...p.links].map(([seq, { prev, entry }]) => [p.req.clusterId, seq, prev, entry.kind, JSON.stringify(entry.body ?? null), entry.createdAt, receivedAt]));
    for (const chunk of chunked(rows, INSERT_CHUNK)) {
      await sql.run(
        `INSERT INTO reports (cluster_id, seq, prev_seq, kind, body, created_at, received_at) VALUES ${chunk.map(() => '(?, ?, ?, ?, ?, ?, ?)').join(', ')}
         ON CONFLICT (cluster_id, seq) DO UPDATE SET prev_seq = excluded.prev_seq WHERE reports.prev_seq <> excluded.prev_seq`,
        chunk.flat(),
      );
    }

    // Apply along each chain: the reports past the mark, in order, each while nothing lies between the mark and it.
    const fold = new AggregateFold();
    const marked = new Map<string, number>();
    const past = await this.#pastMarks(storing.map((p) => ({ id: p.req.clusterId, acked: p.acked })));
    for (const p of storing) {
      const id = p.req.clusterId;
      let acked = p.acked;
      let applied = 0;
      for (let page = past.get(id) ?? [], more = true; more; ) {
        more = page.length === APPLY_PAGE;
        for (const row of page) {
          if (row.prev_seq > acked) {
            more = false;
            break;
          }
          const body = JSON.parse(row.body) as unknown;
          const problem = fold.add(id, row.seq, row.kind, body, receivedAt);
          // Once per quarantined report, to the operator: the agent keeps the report itself.
          if (row.kind === 'report-quarantined') this.#log.warn({ clusterId: id, seq: row.seq, quarantined: body }, 'an agent quarantined a report the hub could not take');
          if (problem !== null) {
            await sql.run('UPDATE reports SET problem = ? WHERE cluster_id = ? AND seq = ?', [problem, id, row.seq]);
            this.#log.warn({ clusterId: id, seq: row.seq, kind: row.kind, problem }, 'report stored but not aggregated');
          }
          acked = row.seq;
          applied++;
        }
        // A long chain (a backlog repaired at once): the next page of this cluster alone.
        if (more) page = await sql.all<PastMark>('SELECT seq, prev_seq, kind, body FROM reports WHERE cluster_id = ? AND seq > ? ORDER BY seq LIMIT ?', [id, acked, APPLY_PAGE]);
      }
      const result = p.result as IngestResult;
      result.applied = applied;
      result.ackedSeq = acked;
      if (applied > 0) marked.set(id, acked);
    }
    await fold.write(sql);
    for (const chunk of chunked([...marked], CLUSTER_CHUNK)) {
      await sql.run(`UPDATE clusters SET acked_seq = CASE id ${chunk.map(() => 'WHEN ? THEN CAST(? AS BIGINT)').join(' ')} END WHERE id IN (${placeholders(chunk)})`, [
        ...chunk.flat(),
        ...chunk.map(([id]) => id),
      ]);
    }
    return pending.map((p) => p.result as IngestResult);
  }

  /** The first APPLY_PAGE reports past each cluster's mark, in seq order, by cluster: one read for all of them. */
  async #pastMarks(clusters: readonly { id: string; acked: number }[]): Promise<Map<string, PastMark[]>> {
    const past = new Map<string, PastMark[]>();
    for (const chunk of chunked(clusters, CLUSTER_CHUNK)) {
      const rows = await this.#sql.all<PastMark & { cluster_id: string }>(
        `SELECT cluster_id, seq, prev_seq, kind, body FROM (
           SELECT cluster_id, seq, prev_seq, kind, body, row_number() OVER (PARTITION BY cluster_id ORDER BY seq) AS n
           FROM reports WHERE ${chunk.map(() => '(cluster_id = ? AND seq > ?)').join(' OR ')}
         ) past WHERE n <= ? ORDER BY cluster_id, seq`,
        [...chunk.flatMap((c) => [c.id, c.acked]), APPLY_PAGE],
      );
      for (const r of rows) {
        let list = past.get(r.cluster_id);
        if (list === undefined) past.set(r.cluster_id, (list = []));
        list.push(r);
      }
    }
    return past;
  }

  async list(clusterId: string, opts: { afterSeq: number; limit: number }): Promise<StoredReport[]> {
    const acked = await this.ackedSeq(clusterId);
    const rows = await this.#sql.all<{ seq: number; prev_seq: number; kind: string; body: string; created_at: string; received_at: string; problem: string | null }>(
      'SELECT seq, prev_seq, kind, body, created_at, received_at, problem FROM reports WHERE cluster_id = ? AND seq > ? ORDER BY seq LIMIT ?',
      [clusterId, opts.afterSeq, opts.limit],
    );
    return rows.map((r) => ({
      seq: r.seq,
      prevSeq: r.prev_seq,
      kind: r.kind,
      body: JSON.parse(r.body) as unknown,
      createdAt: r.created_at,
      receivedAt: r.received_at,
      acknowledged: r.seq <= acked,
      problem: r.problem,
    }));
  }

  /**
   * Since when the cluster has run an override at a version without a break,
   * as its inventory reports tell: the createdAt of the first report of the
   * latest run of reports that list it. Null when none does (only a hello
   * listed it, or it is not running).
   */
  async overrideSince(clusterId: string, name: string, version: string): Promise<string | null> {
    const rows = await this.#sql.all<{ body: string; created_at: string }>(`SELECT body, created_at FROM reports WHERE cluster_id = ? AND kind = 'inventory' ORDER BY seq DESC`, [clusterId]);
    let since: string | null = null;
    for (const r of rows) {
      const overrides = (JSON.parse(r.body) as { overrides?: { name?: unknown; version?: unknown }[] }).overrides ?? [];
      if (!overrides.some((o) => o.name === name && o.version === version)) break;
      since = r.created_at;
    }
    return since;
  }
}

