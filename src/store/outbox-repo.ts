import type { ReportQuarantinedReport } from '../protocol/reports.ts';
import type { Outbox, OutboxRow, OutboxStats, QuarantineProblem } from './outbox.ts';
import { Repo } from './repo.ts';

/** Quarantined reports kept; older ones are dropped. */
const MAX_QUARANTINED = 100;

export interface QuarantinedReport extends OutboxRow {
  reason: string;
  message: string;
  quarantinedAt: string;
}

export class OutboxRepo extends Repo implements Outbox {
  private readonly listeners = new Set<() => void>();
  /** One notification for a burst of enqueues (a transition and its completion report). */
  private notifying = false;

  enqueue(kind: string, body: unknown): number {
    const info = this.db.prepare('INSERT INTO outbox (kind, body_json, created_at) VALUES (?, ?, ?)').run(kind, JSON.stringify(body), this.now());
    // Transactions are synchronous, so a microtask runs after this one commits (or rolls back).
    if (this.listeners.size > 0 && !this.notifying) {
      this.notifying = true;
      queueMicrotask(() => {
        this.notifying = false;
        for (const l of this.listeners) l();
      });
    }
    return Number(info.lastInsertRowid);
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  pending(afterSeq: number, limit: number): OutboxRow[] {
    const rows = this.db.prepare('SELECT seq, kind, body_json, created_at FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?').all(afterSeq, limit) as {
      seq: number;
      kind: string;
      body_json: string;
      created_at: string;
    }[];
    return rows.map((r) => ({ seq: r.seq, kind: r.kind, body: JSON.parse(r.body_json) as unknown, createdAt: r.created_at }));
  }

  ack(uptoSeq: number): number {
    return this.db.prepare('DELETE FROM outbox WHERE seq <= ?').run(uptoSeq).changes;
  }

  quarantine(seq: number, problem: QuarantineProblem): void {
    this.db.transaction(() => {
      const row = this.db.prepare('SELECT kind, body_json, created_at FROM outbox WHERE seq = ?').get(seq) as { kind: string; body_json: string; created_at: string } | undefined;
      if (!row) return;
      const at = this.now();
      this.db
        .prepare('INSERT OR REPLACE INTO quarantined_reports (seq, kind, body_json, created_at, reason, message, quarantined_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run(seq, row.kind, row.body_json, row.created_at, problem.reason, problem.message, at);
      // Bounded: a fault that makes every report poison must not fill the disk twice.
      this.db.prepare('DELETE FROM quarantined_reports WHERE seq NOT IN (SELECT seq FROM quarantined_reports ORDER BY seq DESC LIMIT ?)').run(MAX_QUARANTINED);
      this.db.prepare('DELETE FROM outbox WHERE seq = ?').run(seq);
      const notice: ReportQuarantinedReport = { seq, kind: row.kind.slice(0, 64), reason: problem.reason, message: problem.message.slice(0, 4096), bytes: problem.bytes, at };
      this.enqueue('report-quarantined', notice);
    })();
  }

  /** Quarantined reports, newest first. */
  quarantined(limit = 100): QuarantinedReport[] {
    const rows = this.db.prepare('SELECT seq, kind, body_json, created_at, reason, message, quarantined_at FROM quarantined_reports ORDER BY seq DESC LIMIT ?').all(limit) as {
      seq: number;
      kind: string;
      body_json: string;
      created_at: string;
      reason: string;
      message: string;
      quarantined_at: string;
    }[];
    return rows.map((r) => ({ seq: r.seq, kind: r.kind, body: JSON.parse(r.body_json) as unknown, createdAt: r.created_at, reason: r.reason, message: r.message, quarantinedAt: r.quarantined_at }));
  }

  /**
   * Takes in another agent's unsent reports with their numbers, and continues
   * numbering after its last one, so the hub never mistakes our reports for
   * duplicates of the previous leader's.
   */
  adopt(pending: readonly OutboxRow[], lastSeq: number): void {
    const insert = this.db.prepare('INSERT OR IGNORE INTO outbox (seq, kind, body_json, created_at) VALUES (?, ?, ?, ?)');
    for (const r of pending) insert.run(r.seq, r.kind, JSON.stringify(r.body), r.createdAt);
    const seq = Math.max(lastSeq, this.stats().lastSeq);
    this.db.prepare(`INSERT INTO sqlite_sequence (name, seq) SELECT 'outbox', 0 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'outbox')`).run();
    this.db.prepare(`UPDATE sqlite_sequence SET seq = ? WHERE name = 'outbox'`).run(seq);
  }

  stats(): OutboxStats {
    const row = this.db.prepare('SELECT COUNT(*) AS depth, MIN(seq) AS first FROM outbox').get() as { depth: number; first: number | null };
    const seqRow = this.db.prepare(`SELECT seq FROM sqlite_sequence WHERE name = 'outbox'`).get() as { seq: number } | undefined;
    return { depth: row.depth, firstSeq: row.first, lastSeq: seqRow?.seq ?? 0 };
  }
}
