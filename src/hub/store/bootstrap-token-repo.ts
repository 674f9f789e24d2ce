// Bootstrap tokens: what lets an agent ask to register (it never makes a
// cluster trusted; an operator's accept does). Stored by sha256 only; each
// may expire, be revoked, and carries a use limit counted per new
// registration request.
import { randomBytes, randomUUID } from 'node:crypto';
import type { Sql } from './sql.ts';
import { hashSecret } from '../credentials.ts';

/** 32 random bytes, base64url: the least a token may hold, configured or issued. */
export const MIN_BOOTSTRAP_TOKEN_CHARS = 43;

export interface BootstrapToken {
  id: string;
  source: 'config' | 'api';
  description: string | null;
  createdAt: string;
  expiresAt: string | null;
  maxUses: number | null;
  uses: number;
  revokedAt: string | null;
}

export type TokenCheck = { ok: true; id: string } | { ok: false; reason: 'Unknown' | 'Expired' | 'Revoked' | 'UsedUp' };

interface Row {
  id: string;
  source: 'config' | 'api';
  description: string | null;
  created_at: string;
  expires_at: string | null;
  max_uses: number | null;
  uses: number;
  revoked_at: string | null;
}

function toToken(r: Row): BootstrapToken {
  return { id: r.id, source: r.source, description: r.description, createdAt: r.created_at, expiresAt: r.expires_at, maxUses: r.max_uses, uses: r.uses, revokedAt: r.revoked_at };
}

export class BootstrapTokenRepo {
  readonly #sql: Sql;
  readonly #now: () => Date;

  constructor(sql: Sql, now: () => Date) {
    this.#sql = sql;
    this.#now = now;
  }

  /**
   * Makes the configured tokens (command line, file, environment) exactly
   * the valid 'config' tokens: new ones are added, ones no longer
   * configured are revoked. They do not expire and have no use limit.
   */
  async syncConfigured(tokens: readonly string[]): Promise<void> {
    const now = this.#now().toISOString();
    const hashes = new Set(tokens.map(hashSecret));
    await this.#sql.transaction(async () => {
      for (const h of hashes) {
        await this.#sql.run(
          "INSERT INTO bootstrap_tokens (id, token_hash, source, created_at) VALUES (?, ?, 'config', ?) ON CONFLICT (token_hash) DO UPDATE SET revoked_at = NULL WHERE bootstrap_tokens.source = 'config'",
          [`config-${h.slice(0, 12)}`, h, now],
        );
      }
      const configured = await this.#sql.all<{ token_hash: string }>("SELECT token_hash FROM bootstrap_tokens WHERE source = 'config' AND revoked_at IS NULL");
      for (const { token_hash } of configured) {
        if (!hashes.has(token_hash)) await this.#sql.run('UPDATE bootstrap_tokens SET revoked_at = ? WHERE token_hash = ?', [now, token_hash]);
      }
    });
  }

  /** A new random token; its text is returned once and never stored. */
  async issue(o: { ttlMs: number; maxUses: number; description?: string | undefined }): Promise<{ token: string; record: BootstrapToken }> {
    const token = randomBytes(32).toString('base64url');
    const id = randomUUID();
    const now = this.#now();
    await this.#sql.run("INSERT INTO bootstrap_tokens (id, token_hash, source, description, created_at, expires_at, max_uses) VALUES (?, ?, 'api', ?, ?, ?, ?)", [
      id,
      hashSecret(token),
      o.description ?? null,
      now.toISOString(),
      new Date(now.getTime() + o.ttlMs).toISOString(),
      o.maxUses,
    ]);
    return { token, record: (await this.get(id)) as BootstrapToken };
  }

  async get(id: string): Promise<BootstrapToken | undefined> {
    const row = await this.#sql.get<Row>('SELECT * FROM bootstrap_tokens WHERE id = ?', [id]);
    return row && toToken(row);
  }

  async list(): Promise<BootstrapToken[]> {
    return (await this.#sql.all<Row>(`SELECT * FROM bootstrap_tokens ORDER BY created_at, ${this.#sql.dialect.insertionOrder}`)).map(toToken);
  }

  async revoke(id: string): Promise<boolean> {
    return (await this.#sql.run('UPDATE bootstrap_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL', [this.#now().toISOString(), id])) === 1;
  }

  /** Whether the presented token may be used now; by its hash, so the lookup reveals nothing of the text. */
  async check(presented: string): Promise<TokenCheck> {
    const row = await this.#sql.get<Row>('SELECT * FROM bootstrap_tokens WHERE token_hash = ?', [hashSecret(presented)]);
    if (!row) return { ok: false, reason: 'Unknown' };
    if (row.revoked_at !== null) return { ok: false, reason: 'Revoked' };
    if (row.expires_at !== null && Date.parse(row.expires_at) <= this.#now().getTime()) return { ok: false, reason: 'Expired' };
    if (row.max_uses !== null && row.uses >= row.max_uses) return { ok: false, reason: 'UsedUp' };
    return { ok: true, id: row.id };
  }

  /** Counts one use (a new registration request); false when the limit was reached meanwhile. */
  async use(id: string): Promise<boolean> {
    return (await this.#sql.run('UPDATE bootstrap_tokens SET uses = uses + 1 WHERE id = ? AND (max_uses IS NULL OR uses < max_uses)', [id])) === 1;
  }
}
