// Bootstrap tokens: what lets an agent ask to register (it never makes a
// cluster trusted; an operator's accept does). Stored by sha256 only; each
// may expire, be revoked, and carries a use limit counted per new
// registration request.
import { randomBytes, randomUUID } from 'node:crypto';
import type { HubDatabase } from './database.ts';
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
  readonly #db: HubDatabase;
  readonly #now: () => Date;

  constructor(db: HubDatabase, now: () => Date) {
    this.#db = db;
    this.#now = now;
  }

  /**
   * Makes the configured tokens (command line, file, environment) exactly
   * the valid 'config' tokens: new ones are added, ones no longer
   * configured are revoked. They do not expire and have no use limit.
   */
  syncConfigured(tokens: readonly string[]): void {
    const now = this.#now().toISOString();
    const hashes = new Set(tokens.map(hashSecret));
    this.#db.transaction(() => {
      for (const h of hashes) {
        this.#db
          .prepare("INSERT INTO bootstrap_tokens (id, token_hash, source, created_at) VALUES (?, ?, 'config', ?) ON CONFLICT (token_hash) DO UPDATE SET revoked_at = NULL WHERE source = 'config'")
          .run(`config-${h.slice(0, 12)}`, h, now);
      }
      const configured = this.#db.prepare("SELECT token_hash FROM bootstrap_tokens WHERE source = 'config' AND revoked_at IS NULL").all() as { token_hash: string }[];
      for (const { token_hash } of configured) {
        if (!hashes.has(token_hash)) this.#db.prepare('UPDATE bootstrap_tokens SET revoked_at = ? WHERE token_hash = ?').run(now, token_hash);
      }
    })();
  }

  /** A new random token; its text is returned once and never stored. */
  issue(o: { ttlMs: number; maxUses: number; description?: string | undefined }): { token: string; record: BootstrapToken } {
    const token = randomBytes(32).toString('base64url');
    const id = randomUUID();
    const now = this.#now();
    this.#db
      .prepare("INSERT INTO bootstrap_tokens (id, token_hash, source, description, created_at, expires_at, max_uses) VALUES (?, ?, 'api', ?, ?, ?, ?)")
      .run(id, hashSecret(token), o.description ?? null, now.toISOString(), new Date(now.getTime() + o.ttlMs).toISOString(), o.maxUses);
    return { token, record: this.get(id) as BootstrapToken };
  }

  get(id: string): BootstrapToken | undefined {
    const row = this.#db.prepare('SELECT * FROM bootstrap_tokens WHERE id = ?').get(id) as Row | undefined;
    return row && toToken(row);
  }

  list(): BootstrapToken[] {
    return (this.#db.prepare('SELECT * FROM bootstrap_tokens ORDER BY created_at, rowid').all() as Row[]).map(toToken);
  }

  revoke(id: string): boolean {
    return this.#db.prepare('UPDATE bootstrap_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(this.#now().toISOString(), id).changes === 1;
  }

  /** Whether the presented token may be used now; by its hash, so the lookup reveals nothing of the text. */
  check(presented: string): TokenCheck {
    const row = this.#db.prepare('SELECT * FROM bootstrap_tokens WHERE token_hash = ?').get(hashSecret(presented)) as Row | undefined;
    if (!row) return { ok: false, reason: 'Unknown' };
    if (row.revoked_at !== null) return { ok: false, reason: 'Revoked' };
    if (row.expires_at !== null && Date.parse(row.expires_at) <= this.#now().getTime()) return { ok: false, reason: 'Expired' };
    if (row.max_uses !== null && row.uses >= row.max_uses) return { ok: false, reason: 'UsedUp' };
    return { ok: true, id: row.id };
  }

  /** Counts one use (a new registration request); false when the limit was reached meanwhile. */
  use(id: string): boolean {
    return this.#db.prepare('UPDATE bootstrap_tokens SET uses = uses + 1 WHERE id = ? AND (max_uses IS NULL OR uses < max_uses)').run(id).changes === 1;
  }
}
