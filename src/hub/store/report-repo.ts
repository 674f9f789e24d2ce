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
import type { ReportEntry } from '../../protocol/messages.ts';
import type { Logger } from 'pino';
import type { Statement } from 'better-sqlite3';
import { ReportApplier } from './aggregate-repo.ts';
import type { HubDatabase } from './database.ts';

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
  readonly #db: HubDatabase;
  readonly #now: () => Date;
  readonly #log: Logger;
  // Compiled once: ingest runs for every batch from every agent (see ReportApplier).
  readonly #applier: ReportApplier;
  readonly #ackedSeq: Statement;
  readonly #insert: Statement;
  readonly #next: Statement;
  readonly #held: Statement;
  readonly #markProblem: Statement;
  readonly #setAcked: Statement;

  constructor(db: HubDatabase, now: () => Date, logger: Logger) {
    this.#db = db;
    this.#now = now;
    this.#log = logger;
    this.#applier = new ReportApplier(db);
    this.#ackedSeq = db.prepare('SELECT acked_seq FROM clusters WHERE id = ?');
    // Only rows past the mark are written (ingest skips the rest), so the update never touches an applied report.
    this.#insert = db.prepare(
      `INSERT INTO reports (cluster_id, seq, prev_seq, kind, body, created_at, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (cluster_id, seq) DO UPDATE SET prev_seq = excluded.prev_seq WHERE prev_seq != excluded.prev_seq`,
    );
    this.#held = db.prepare('SELECT 1 FROM reports WHERE cluster_id = ? AND seq = ?');
    // The first report past the mark extends the chain when nothing lies between the mark and it.
    this.#next = db.prepare('SELECT seq, prev_seq, kind, body FROM reports WHERE cluster_id = ? AND seq > ? ORDER BY seq LIMIT 1');
    this.#markProblem = db.prepare('UPDATE reports SET problem = ? WHERE cluster_id = ? AND seq = ?');
    this.#setAcked = db.prepare('UPDATE clusters SET acked_seq = ? WHERE id = ?');
  }

  ackedSeq(clusterId: string): number {
    const row = this.#ackedSeq.get(clusterId) as { acked_seq: number } | undefined;
    return row?.acked_seq ?? 0;
  }

  /** Stores a batch and applies whatever now extends the chain; one transaction, so an ack always names committed work. */
  ingest(clusterId: string, afterSeq: number, reports: readonly ReportEntry[]): IngestResult {
    return this.#db.transaction((): IngestResult => {
      const receivedAt = this.#now().toISOString();
      let acked = this.ackedSeq(clusterId);
      if (afterSeq > acked && this.#held.get(clusterId, afterSeq) === undefined) {
        return { ackedSeq: acked, stored: 0, duplicates: 0, applied: 0, expectedAfterSeq: acked };
      }
      const insert = this.#insert;
      let stored = 0;
      let duplicates = 0;
      let prev = afterSeq;
      for (const r of reports) {
        if (r.seq <= acked) {
          duplicates++;
        } else {
          if (this.#held.get(clusterId, r.seq) === undefined) stored++;
          else duplicates++;
          insert.run(clusterId, r.seq, prev, r.kind, JSON.stringify(r.body ?? null), r.createdAt, receivedAt);
        }
        prev = r.seq;
      }

      const next = this.#next;
      const markProblem = this.#markProblem;
      let applied = 0;
      for (;;) {
        const row = next.get(clusterId, acked) as { seq: number; prev_seq: number; kind: string; body: string } | undefined;
        if (!row || row.prev_seq > acked) break;
        const problem = this.#applier.apply(clusterId, row.seq, row.kind, JSON.parse(row.body) as unknown, receivedAt);
        if (problem !== null) {
          markProblem.run(problem, clusterId, row.seq);
          this.#log.warn({ clusterId, seq: row.seq, kind: row.kind, problem }, 'report stored but not aggregated');
        }
        acked = row.seq;
        applied++;
      }
      if (applied > 0) this.#setAcked.run(acked, clusterId);
      return { ackedSeq: acked, stored, duplicates, applied };
    })();
  }

  list(clusterId: string, opts: { afterSeq: number; limit: number }): StoredReport[] {
    const acked = this.ackedSeq(clusterId);
    const rows = this.#db
      .prepare('SELECT seq, prev_seq, kind, body, created_at, received_at, problem FROM reports WHERE cluster_id = ? AND seq > ? ORDER BY seq LIMIT ?')
      .all(clusterId, opts.afterSeq, opts.limit) as { seq: number; prev_seq: number; kind: string; body: string; created_at: string; received_at: string; problem: string | null }[];
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
  overrideSince(clusterId: string, name: string, version: string): string | null {
    const rows = this.#db.prepare(`SELECT body, created_at FROM reports WHERE cluster_id = ? AND kind = 'inventory' ORDER BY seq DESC`).iterate(clusterId) as Iterable<{ body: string; created_at: string }>;
    let since: string | null = null;
    for (const r of rows) {
      const overrides = (JSON.parse(r.body) as { overrides?: { name?: unknown; version?: unknown }[] }).overrides ?? [];
      if (!overrides.some((o) => o.name === name && o.version === version)) break;
      since = r.created_at;
    }
    return since;
  }
}
