// The audit table: every mutating operator call, allowed or refused.
import type { Sql } from './sql.ts';

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
  readonly #sql: Sql;
  readonly #now: () => Date;

  constructor(sql: Sql, now: () => Date) {
    this.#sql = sql;
    this.#now = now;
  }

  async record(e: Omit<AuditEntry, 'id' | 'at'>): Promise<void> {
    await this.#sql.run('INSERT INTO audit_log (at, actor, role, method, path, status, remote_address) VALUES (?, ?, ?, ?, ?, ?, ?)', [
      this.#now().toISOString(),
      e.actor,
      e.role,
      e.method,
      e.path,
      e.status,
      e.remoteAddress,
    ]);
  }

  /** Oldest first, after `afterId`. */
  async list(o: { afterId: number; limit: number }): Promise<AuditEntry[]> {
    const rows = await this.#sql.all<Row>('SELECT * FROM audit_log WHERE id > ? ORDER BY id LIMIT ?', [o.afterId, o.limit]);
    return rows.map((r) => ({ id: r.id, at: r.at, actor: r.actor, role: r.role, method: r.method, path: r.path, status: r.status, remoteAddress: r.remote_address }));
  }
}
