import type { ObjectRef } from './attempt-repo.ts';
import { Repo } from './repo.ts';

export interface InstalledComponent {
  component: string;
  version: string;
  digest: string;
  objects: ObjectRef[];
  attemptId: string | null;
  updatedAt: string;
}

/** What fleetlet has installed: the level the planner compares a release against. */
export class InstalledRepo extends Repo {

  all(): InstalledComponent[] {
    return (
      this.db.prepare('SELECT * FROM installed ORDER BY component').all() as {
        component: string;
        version: string;
        digest: string;
        objects_json: string;
        attempt_id: string | null;
        updated_at: string;
      }[]
    ).map((r) => ({
      component: r.component,
      version: r.version,
      digest: r.digest,
      objects: JSON.parse(r.objects_json) as ObjectRef[],
      attemptId: r.attempt_id,
      updatedAt: r.updated_at,
    }));
  }

  get(component: string): InstalledComponent | undefined {
    return this.all().find((c) => c.component === component);
  }

  set(c: { component: string; version: string; digest: string; objects: ObjectRef[]; attemptId: string | null }): void {
    this.db
      .prepare(
        `INSERT INTO installed (component, version, digest, objects_json, attempt_id, updated_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (component) DO UPDATE SET version = excluded.version, digest = excluded.digest,
           objects_json = excluded.objects_json, attempt_id = excluded.attempt_id, updated_at = excluded.updated_at`,
      )
      .run(c.component, c.version, c.digest, JSON.stringify(c.objects), c.attemptId, this.now());
  }

  /** Replaces the whole inventory (taking over another agent's story). */
  replaceAll(cs: { component: string; version: string; digest: string; objects: ObjectRef[] }[]): void {
    this.db.prepare('DELETE FROM installed').run();
    for (const c of cs) this.set({ ...c, attemptId: null });
  }

  remove(component: string): void {
    this.db.prepare('DELETE FROM installed WHERE component = ?').run(component);
  }
}
