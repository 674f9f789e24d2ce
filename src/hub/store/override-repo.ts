// Hotfix overrides: the definitions operators created, and the signed
// document each cluster was sent. A cluster has one override revision
// counter for all its overrides, apart from release revisions
// (src/protocol/override.ts says why).
import type { SignedEnvelope } from '../../protocol/release.ts';
import type { OverrideRequest } from '../../protocol/override.ts';
import type { HubDatabase } from './database.ts';

export interface OverrideDefinition {
  name: string;
  definition: OverrideRequest;
  withdrawn: boolean;
  createdAt: string;
  updatedAt: string;
}

export interface OverrideDocumentRecord {
  clusterId: string;
  revision: number;
  name: string;
  version: string;
  withdrawn: boolean;
  envelope: SignedEnvelope;
  issuedAt: string;
  expiresAt: string;
}

interface DocRow {
  cluster_id: string;
  revision: number;
  name: string;
  version: string;
  withdrawn: number;
  envelope: string;
  issued_at: string;
  expires_at: string;
}

const toDoc = (r: DocRow): OverrideDocumentRecord => ({
  clusterId: r.cluster_id,
  revision: r.revision,
  name: r.name,
  version: r.version,
  withdrawn: r.withdrawn === 1,
  envelope: JSON.parse(r.envelope) as SignedEnvelope,
  issuedAt: r.issued_at,
  expiresAt: r.expires_at,
});

export class OverrideRepo {
  readonly #db: HubDatabase;

  constructor(db: HubDatabase) {
    this.#db = db;
  }

  /** Creates or replaces a definition (a new version of a fix keeps its name). */
  define(definition: OverrideRequest, withdrawn: boolean, at: string): void {
    this.#db
      .prepare(
        `INSERT INTO overrides (name, definition, withdrawn, created_at, updated_at) VALUES (@name, @definition, @withdrawn, @at, @at)
         ON CONFLICT (name) DO UPDATE SET definition = @definition, withdrawn = @withdrawn, updated_at = @at`,
      )
      .run({ name: definition.name, definition: JSON.stringify(definition), withdrawn: withdrawn ? 1 : 0, at });
  }

  get(name: string): OverrideDefinition | undefined {
    const r = this.#db.prepare('SELECT * FROM overrides WHERE name = ?').get(name) as
      | { name: string; definition: string; withdrawn: number; created_at: string; updated_at: string }
      | undefined;
    return r && { name: r.name, definition: JSON.parse(r.definition) as OverrideRequest, withdrawn: r.withdrawn === 1, createdAt: r.created_at, updatedAt: r.updated_at };
  }

  list(): OverrideDefinition[] {
    return (this.#db.prepare('SELECT name FROM overrides ORDER BY name').all() as { name: string }[]).map((r) => this.get(r.name) as OverrideDefinition);
  }

  /** Assigns the cluster's next override revision and stores what `build` signs for it, in one transaction. */
  issue(clusterId: string, build: (revision: number) => Omit<OverrideDocumentRecord, 'clusterId' | 'revision'>): OverrideDocumentRecord {
    return this.#db.transaction(() => {
      const { next } = this.#db.prepare('SELECT COALESCE(MAX(revision), 0) + 1 AS next FROM override_documents WHERE cluster_id = ?').get(clusterId) as { next: number };
      const built = build(next);
      this.#db
        .prepare('INSERT INTO override_documents (cluster_id, revision, name, version, withdrawn, envelope, issued_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
        .run(clusterId, next, built.name, built.version, built.withdrawn ? 1 : 0, JSON.stringify(built.envelope), built.issuedAt, built.expiresAt);
      return { clusterId, revision: next, ...built };
    })();
  }

  /** The newest document per override name for a cluster, unexpired, oldest revision first: what a (re)connecting agent is sent. */
  current(clusterId: string, now: Date): OverrideDocumentRecord[] {
    const rows = this.#db
      .prepare(
        `SELECT d.* FROM override_documents d
         WHERE d.cluster_id = ? AND d.expires_at > ?
           AND d.revision = (SELECT MAX(x.revision) FROM override_documents x WHERE x.cluster_id = d.cluster_id AND x.name = d.name)
         ORDER BY d.revision`,
      )
      .all(clusterId, now.toISOString()) as DocRow[];
    return rows.map(toDoc);
  }
}
