// Operator tokens: a role each, stored by sha256, created and revoked through
// the API. The token configured at start (adminToken) is not stored here: it
// is checked against the configuration (auth/operator-auth.ts).
import { randomBytes, randomUUID } from 'node:crypto';
import { hashSecret } from '../credentials.ts';
import type { HubDatabase } from './database.ts';

export const operatorRoles = ['viewer', 'operator', 'admin'] as const;
export type OperatorRole = (typeof operatorRoles)[number];

export interface OperatorToken {
  id: string;
  name: string;
  role: OperatorRole;
  createdAt: string;
  createdBy: string;
  revokedAt: string | null;
}

interface Row {
  id: string;
  name: string;
  role: OperatorRole;
  created_at: string;
  created_by: string;
  revoked_at: string | null;
}

function toToken(r: Row): OperatorToken {
  return { id: r.id, name: r.name, role: r.role, createdAt: r.created_at, createdBy: r.created_by, revokedAt: r.revoked_at };
}

export class OperatorTokenRepo {
  readonly #db: HubDatabase;
  readonly #now: () => Date;

  constructor(db: HubDatabase, now: () => Date) {
    this.#db = db;
    this.#now = now;
  }

  /** A new token; its text is returned once and never stored. */
  create(o: { name: string; role: OperatorRole; createdBy: string }): { token: string; record: OperatorToken } {
    const token = randomBytes(32).toString('base64url');
    const id = randomUUID();
    this.#db
      .prepare('INSERT INTO operator_tokens (id, token_hash, name, role, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)')
      .run(id, hashSecret(token), o.name, o.role, this.#now().toISOString(), o.createdBy);
    return { token, record: this.get(id) as OperatorToken };
  }

  get(id: string): OperatorToken | undefined {
    const row = this.#db.prepare('SELECT id, name, role, created_at, created_by, revoked_at FROM operator_tokens WHERE id = ?').get(id) as Row | undefined;
    return row && toToken(row);
  }

  list(): OperatorToken[] {
    return (this.#db.prepare('SELECT id, name, role, created_at, created_by, revoked_at FROM operator_tokens ORDER BY created_at, rowid').all() as Row[]).map(toToken);
  }

  /** The live token with this text, by its hash. */
  find(presented: string): OperatorToken | undefined {
    const row = this.#db.prepare('SELECT id, name, role, created_at, created_by, revoked_at FROM operator_tokens WHERE token_hash = ? AND revoked_at IS NULL').get(hashSecret(presented)) as Row | undefined;
    return row && toToken(row);
  }

  revoke(id: string): boolean {
    return this.#db.prepare('UPDATE operator_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(this.#now().toISOString(), id).changes === 1;
  }
}
