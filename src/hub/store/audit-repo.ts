// The audit table: every mutating operator call, allowed or refused.
import type { HubDatabase } from './database.ts';

export interface AuditEntry {
  id: number;
  at: string;
  /** The token's name (or "anonymous" when none was valid). */
  actor: string;
  role: string | null;
  method: string;
  path: string;
  status: number;
  remoteAddress: string | null;
}

interface Row {
  id: number;
  at: string;
  actor: string;
  role: string | null;
  method: string;
  path: string;
  status: number;
  remote_address: string | null;
}

export class AuditRepo {
  readonly #db: HubDatabase;
  readonly #now: () => Date;

  constructor(db: HubDatabase, now: () => Date) {
    this.#db = db;
    this.#now = now;
  }

  record(e: Omit<AuditEntry, 'id' | 'at'>): void {
    this.#db
      .prepare('INSERT INTO audit_log (at, actor, role, method, path, status, remote_address) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(this.#now().toISOString(), e.actor, e.role, e.method, e.path, e.status, e.remoteAddress);
  }

  /** Oldest first, after `afterId`. */
  list(o: { afterId: number; limit: number }): AuditEntry[] {
    const rows = this.#db.prepare('SELECT * FROM audit_log WHERE id > ? ORDER BY id LIMIT ?').all(o.afterId, o.limit) as Row[];
    return rows.map((r) => ({ id: r.id, at: r.at, actor: r.actor, role: r.role, method: r.method, path: r.path, status: r.status, remoteAddress: r.remote_address }));
  }
}
