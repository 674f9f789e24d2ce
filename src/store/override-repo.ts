import type { Override } from '../protocol/override.ts';
import type { SignedEnvelope } from '../protocol/release.ts';
import { Repo } from './repo.ts';

/** The newest verified document per override name (a withdrawal is a document too). */
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
}
