// Operator tokens: a role each, stored by sha256, created and revoked through
// the API. The token configured at start (adminToken) is not stored here: it
// is checked against the configuration (auth/operator-auth.ts).
import { randomBytes, randomUUID } from 'node:crypto';
import { operatorRoles, type OperatorRole } from '../../protocol/hub-api.ts';
import { hashSecret } from '../credentials.ts';
import type { Sql } from './sql.ts';

export { operatorRoles, type OperatorRole };

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

const COLUMNS = 'id, name, role, created_at, created_by, revoked_at';

export class OperatorTokenRepo {
  readonly #sql: Sql;
  readonly #now: () => Date;

  constructor(sql: Sql, now: () => Date) {
    this.#sql = sql;
    this.#now = now;
  }

  /** A new token; its text is returned once and never stored. */
  async create(o: { name: string; role: OperatorRole; createdBy: string }): Promise<{ token: string; record: OperatorToken }> {
    const token = randomBytes(32).toString('base64url');
    const id = randomUUID();
    await this.#sql.run('INSERT INTO operator_tokens (id, token_hash, name, role, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)', [
      id,
      hashSecret(token),
      o.name,
      o.role,
      this.#now().toISOString(),
      o.createdBy,
    ]);
    return { token, record: (await this.get(id)) as OperatorToken };
  }

  async get(id: string): Promise<OperatorToken | undefined> {
    const row = await this.#sql.get<Row>(`SELECT ${COLUMNS} FROM operator_tokens WHERE id = ?`, [id]);
    return row && toToken(row);
  }

  async list(): Promise<OperatorToken[]> {
    return (await this.#sql.all<Row>(`SELECT ${COLUMNS} FROM operator_tokens ORDER BY created_at, ${this.#sql.dialect.insertionOrder}`)).map(toToken);
  }

  /** The live token with this text, by its hash. */
  async find(presented: string): Promise<OperatorToken | undefined> {
    const row = await this.#sql.get<Row>(`SELECT ${COLUMNS} FROM operator_tokens WHERE token_hash = ? AND revoked_at IS NULL`, [hashSecret(presented)]);
    return row && toToken(row);
  }

  async revoke(id: string): Promise<boolean> {
    return (await this.#sql.run('UPDATE operator_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL', [this.#now().toISOString(), id])) === 1;
  }
}
