import type Database from 'better-sqlite3';
import type { Outbox, OutboxRow, OutboxStats } from './outbox.ts';

export class OutboxRepo implements Outbox {
  private readonly db: Database.Database;
  private readonly now: () => string;
  constructor(db: Database.Database, now: () => string) {
    this.db = db;
    this.now = now;
  }

  enqueue(kind: string, body: unknown): number {
    const info = this.db.prepare('INSERT INTO outbox (kind, body_json, created_at) VALUES (?, ?, ?)').run(kind, JSON.stringify(body), this.now());
    return Number(info.lastInsertRowid);
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

  stats(): OutboxStats {
    const row = this.db.prepare('SELECT COUNT(*) AS depth, MIN(seq) AS first FROM outbox').get() as { depth: number; first: number | null };
    const seqRow = this.db.prepare(`SELECT seq FROM sqlite_sequence WHERE name = 'outbox'`).get() as { seq: number } | undefined;
    return { depth: row.depth, firstSeq: row.first, lastSeq: seqRow?.seq ?? 0 };
  }
}
