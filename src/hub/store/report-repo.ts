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
import type { ReportEntry } from '../../protocol/messages.ts';
import type { Logger } from 'pino';
import { ReportApplier } from './aggregate-repo.ts';
import type { Sql } from './sql.ts';

export interface IngestResult {
  ackedSeq: number;
  stored: number;
  duplicates: number;
  applied: number;
  /** Set when the batch was not stored because its afterSeq is a report the hub does not hold: send again after this seq. */
  expectedAfterSeq?: number;
}

export interface StoredReport {
  seq: number;
  prevSeq: number;
  kind: string;
  body: unknown;
  createdAt: string;
  receivedAt: string;
  acknowledged: boolean;
  problem: string | null;
}

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
      let stored = 0;
      let duplicates = 0;
      let prev = afterSeq;
      for (const r of reports) {
        if (r.seq <= acked) {
          duplicates++;
        } else {
          if (await this.#held(clusterId, r.seq)) duplicates++;
          else stored++;
          // Only rows past the mark are written, so the update never touches an applied report.
          await sql.run(
            `INSERT INTO reports (cluster_id, seq, prev_seq, kind, body, created_at, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (cluster_id, seq) DO UPDATE SET prev_seq = excluded.prev_seq WHERE reports.prev_seq <> excluded.prev_seq`,
            [clusterId, r.seq, prev, r.kind, JSON.stringify(r.body ?? null), r.createdAt, receivedAt],
          );
        }
        prev = r.seq;
      }

      let applied = 0;
      for (;;) {
        // The first report past the mark extends the chain when nothing lies between the mark and it.
        const row = await sql.get<{ seq: number; prev_seq: number; kind: string; body: string }>(
          'SELECT seq, prev_seq, kind, body FROM reports WHERE cluster_id = ? AND seq > ? ORDER BY seq LIMIT 1',
          [clusterId, acked],
        );
        if (!row || row.prev_seq > acked) break;
        const problem = await this.#applier.apply(clusterId, row.seq, row.kind, JSON.parse(row.body) as unknown, receivedAt);
        if (problem !== null) {
          await sql.run('UPDATE reports SET problem = ? WHERE cluster_id = ? AND seq = ?', [problem, clusterId, row.seq]);
          this.#log.warn({ clusterId, seq: row.seq, kind: row.kind, problem }, 'report stored but not aggregated');
        }
        acked = row.seq;
        applied++;
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
