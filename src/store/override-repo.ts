import type { Override } from '../protocol/override.ts';
import type { SignedEnvelope } from '../protocol/release.ts';
import { Repo } from './repo.ts';

/** An override the agent refused: known by name and revision once its signature verified, by its envelope before that. */
export interface RefusedOverride {
  name: string | null;
  revision: number | null;
  reason: string;
  message: string;
  envelope?: SignedEnvelope | undefined;
}

export interface OverrideRefusalRow {
  id: number;
  name: string | null;
  revision: number | null;
  reason: string;
  message: string;
  receivedAt: string;
}

/** The newest verified document per override name (a withdrawal is a document too), and the refused ones. */
export class OverrideRepo extends Repo {

  accept(o: Override, envelope: SignedEnvelope): void {
    this.db
      .prepare(
        `INSERT INTO overrides (name, revision, envelope_json, override_json, received_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET revision = excluded.revision, envelope_json = excluded.envelope_json,
           override_json = excluded.override_json, received_at = excluded.received_at
         WHERE excluded.revision > overrides.revision`,
      )
      .run(o.name, o.revision, JSON.stringify(envelope), JSON.stringify(o), this.now());
  }

  revisionOf(name: string): number {
    return (this.db.prepare('SELECT revision FROM overrides WHERE name = ?').get(name) as { revision: number } | undefined)?.revision ?? 0;
  }

  all(): Override[] {
    return (this.db.prepare('SELECT override_json FROM overrides ORDER BY name').all() as { override_json: string }[]).map((r) => JSON.parse(r.override_json) as Override);
  }

  refuse(r: RefusedOverride): void {
    this.db
      .prepare('INSERT INTO override_refusals (name, revision, reason, message, envelope_json, received_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(r.name, r.revision, r.reason, r.message, r.envelope ? JSON.stringify(r.envelope) : null, this.now());
  }

  /** Was this override document already refused for this reason? (The hub re-sends stored overrides after every hello.) */
  refusedBefore(r: RefusedOverride): boolean {
    if (r.revision !== null) {
      return this.db.prepare('SELECT 1 FROM override_refusals WHERE name IS ? AND revision = ? AND reason = ? LIMIT 1').get(r.name, r.revision, r.reason) !== undefined;
    }
    if (!r.envelope) return false;
    return this.db.prepare('SELECT 1 FROM override_refusals WHERE revision IS NULL AND reason = ? AND envelope_json = ? LIMIT 1').get(r.reason, JSON.stringify(r.envelope)) !== undefined;
  }

  refusals(limit = 20): OverrideRefusalRow[] {
    const rows = this.db.prepare('SELECT id, name, revision, reason, message, received_at FROM override_refusals ORDER BY id DESC LIMIT ?').all(limit) as (Omit<OverrideRefusalRow, 'receivedAt'> & { received_at: string })[];
    return rows.map(({ received_at, ...r }) => ({ ...r, receivedAt: received_at }));
  }
}
