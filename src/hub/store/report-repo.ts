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
import { ReportApplier } from './aggregate-repo.ts';
import type { Sql } from './sql.ts';

/** Reports per INSERT (7 parameters each, well under either backend's limit). */
const INSERT_CHUNK = 100;
/** Reports read per query while applying the chain. */
const APPLY_PAGE = 500;

export interface IngestResult {
  ackedSeq: number;
  stored: number;
  duplicates: number;
  applied: number;
  /** Set when the batch was not stored because its afterSeq is a report the hub does not hold: send again after this seq. */
  expectedAfterSeq?: number;
}

/** The API's answer is the report as stored (src/protocol/hub-api.ts). */
export type { StoredReport };

export class ReportRepo {
  readonly #sql: Sql;
  readonly #now: () => Date;
  readonly #log: Logger;
  readonly #applier: ReportApplier;

  constructor(sql: Sql, now: () => Date, logger: Logger) {
    this.#sql = sql;
    this.#now = now;
    this.#log = logger;
    this.#applier = new ReportApplier(sql);
  }

  async ackedSeq(clusterId: string): Promise<number> {
    const row = await this.#sql.get<{ acked_seq: number }>('SELECT acked_seq FROM clusters WHERE id = ?', [clusterId]);
    return row?.acked_seq ?? 0;
  }

  async #held(clusterId: string, seq: number): Promise<boolean> {
    return (await this.#sql.get('SELECT 1 AS held FROM reports WHERE cluster_id = ? AND seq = ?', [clusterId, seq])) !== undefined;
  }

  /** Stores a batch and applies whatever now extends the chain; one transaction, so an ack always names committed work. */
  ingest(clusterId: string, afterSeq: number, reports: readonly ReportEntry[]): Promise<IngestResult> {
    const sql = this.#sql;
    return sql.transaction(async (): Promise<IngestResult> => {
      const receivedAt = this.#now().toISOString();
      const mark = await sql.get<{ acked_seq: number }>(`SELECT acked_seq FROM clusters WHERE id = ?${sql.dialect.forUpdate}`, [clusterId]);
      let acked = mark?.acked_seq ?? 0;
      if (afterSeq > acked && !(await this.#held(clusterId, afterSeq))) {
        return { ackedSeq: acked, stored: 0, duplicates: 0, applied: 0, expectedAfterSeq: acked };
      }
      // The reports past the mark, each with the link of its latest copy in this batch.
      let duplicates = 0;
      const links = new Map<number, { prev: number; entry: ReportEntry }>();
      let prev = afterSeq;
      for (const r of reports) {
        if (r.seq <= acked) duplicates++;
        else {
          if (links.has(r.seq)) duplicates++;
          links.set(r.seq, { prev, entry: links.get(r.seq)?.entry ?? r });
        }
        prev = r.seq;
      }
      let stored = 0;
      const fresh = [...links.entries()];
      // A few statements per batch, not per report: on PostgreSQL each statement is a round trip.
      for (let start = 0; start < fresh.length; start += INSERT_CHUNK) {
        const chunk = fresh.slice(start, start + INSERT_CHUNK);
        const held = await sql.all<{ seq: number }>(`SELECT seq FROM reports WHERE cluster_id = ? AND seq IN (${chunk.map(() => '?').join(', ')})`, [clusterId, ...chunk.map(([seq]) => seq)]);
        duplicates += held.length;
        stored += chunk.length - held.length;
        // Only rows past the mark are written, so the update never touches an applied report.
        await sql.run(
          `INSERT INTO reports (cluster_id, seq, prev_seq, kind, body, created_at, received_at) VALUES ${chunk.map(() => '(?, ?, ?, ?, ?, ?, ?)').join(', ')}
           ON CONFLICT (cluster_id, seq) DO UPDATE SET prev_seq = excluded.prev_seq WHERE reports.prev_seq <> excluded.prev_seq`,
          chunk.flatMap(([seq, { prev: p, entry }]) => [clusterId, seq, p, entry.kind, JSON.stringify(entry.body ?? null), entry.createdAt, receivedAt]),
        );
      }

      let applied = 0;
      for (let more = true; more; ) {
        // Reports past the mark, in order: each extends the chain while nothing lies between the mark and it.
        const rows = await sql.all<{ seq: number; prev_seq: number; kind: string; body: string }>(
          'SELECT seq, prev_seq, kind, body FROM reports WHERE cluster_id = ? AND seq > ? ORDER BY seq LIMIT ?',
          [clusterId, acked, APPLY_PAGE],
        );
        more = rows.length === APPLY_PAGE;
        for (const row of rows) {
          if (row.prev_seq > acked) {
            more = false;
            break;
          }
          const body = JSON.parse(row.body) as unknown;
          const problem = await this.#applier.apply(clusterId, row.seq, row.kind, body, receivedAt);
          // Once per quarantined report, to the operator: the agent keeps the report itself.
          if (row.kind === 'report-quarantined') this.#log.warn({ clusterId, seq: row.seq, quarantined: body }, 'an agent quarantined a report the hub could not take');
          if (problem !== null) {
            await sql.run('UPDATE reports SET problem = ? WHERE cluster_id = ? AND seq = ?', [problem, clusterId, row.seq]);
            this.#log.warn({ clusterId, seq: row.seq, kind: row.kind, problem }, 'report stored but not aggregated');
          }
          acked = row.seq;
          applied++;
        }
      }
      if (applied > 0) await sql.run('UPDATE clusters SET acked_seq = ? WHERE id = ?', [acked, clusterId]);
      return { ackedSeq: acked, stored, duplicates, applied };
    });
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
