// Hotfix overrides: the definitions operators created, and the signed
// document each cluster was sent. A cluster has one override revision
// counter for all its overrides, apart from release revisions
// (src/protocol/override.ts says why).
import type { SignedEnvelope } from '../../protocol/release.ts';
import type { OverrideDefinition } from '../../protocol/hub-api.ts';
import type { OverrideRequest } from '../../protocol/override.ts';
import type { Sql } from './sql.ts';

/** The API's answer is the definition as stored (src/protocol/hub-api.ts). */
export type { OverrideDefinition };

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

interface DefinitionRow {
  name: string;
  definition: string;
  withdrawn: number;
  created_at: string;
  updated_at: string;
}

const toDefinition = (r: DefinitionRow): OverrideDefinition => ({
  name: r.name,
  definition: JSON.parse(r.definition) as OverrideRequest,
  withdrawn: r.withdrawn === 1,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export class OverrideRepo {
  readonly #sql: Sql;

  constructor(sql: Sql) {
    this.#sql = sql;
  }

  /** Creates or replaces a definition (a new version of a fix keeps its name). */
  async define(definition: OverrideRequest, withdrawn: boolean, at: string): Promise<void> {
    await this.#sql.run(
      `INSERT INTO overrides (name, definition, withdrawn, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, withdrawn = excluded.withdrawn, updated_at = excluded.updated_at`,
      [definition.name, JSON.stringify(definition), withdrawn ? 1 : 0, at, at],
    );
  }

  async get(name: string): Promise<OverrideDefinition | undefined> {
    const r = await this.#sql.get<DefinitionRow>('SELECT * FROM overrides WHERE name = ?', [name]);
    return r && toDefinition(r);
  }

  async list(): Promise<OverrideDefinition[]> {
    return (await this.#sql.all<DefinitionRow>('SELECT * FROM overrides ORDER BY name')).map(toDefinition);
  }

  /** Assigns the cluster's next override revision and stores what `build` signs for it, in one transaction (the cluster's row locked, as ReleaseRepo.issue). */
  issue(clusterId: string, build: (revision: number) => Omit<OverrideDocumentRecord, 'clusterId' | 'revision'>): Promise<OverrideDocumentRecord> {
    const sql = this.#sql;
    return sql.transaction(async () => {
      await sql.get(`SELECT id FROM clusters WHERE id = ?${sql.dialect.forUpdate}`, [clusterId]);
      const newest = await sql.get<{ revision: number | null }>('SELECT MAX(revision) AS revision FROM override_documents WHERE cluster_id = ?', [clusterId]);
      const next = (newest?.revision ?? 0) + 1;
      const built = build(next);
      await sql.run('INSERT INTO override_documents (cluster_id, revision, name, version, withdrawn, envelope, issued_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)', [
        clusterId,
        next,
        built.name,
        built.version,
        built.withdrawn ? 1 : 0,
        JSON.stringify(built.envelope),
        built.issuedAt,
        built.expiresAt,
      ]);
      return { clusterId, revision: next, ...built };
    });
  }

  /** One document the cluster was sent (for a delivery another replica committed). */
  async document(clusterId: string, revision: number): Promise<OverrideDocumentRecord | undefined> {
    const row = await this.#sql.get<DocRow>('SELECT * FROM override_documents WHERE cluster_id = ? AND revision = ?', [clusterId, revision]);
    return row && toDoc(row);
  }

  /** The newest document per override name for a cluster, unexpired, oldest revision first: what a (re)connecting agent is sent. */
  async current(clusterId: string, now: Date): Promise<OverrideDocumentRecord[]> {
    const rows = await this.#sql.all<DocRow>(
      `SELECT d.* FROM override_documents d
       WHERE d.cluster_id = ? AND d.expires_at > ?
         AND d.revision = (SELECT MAX(x.revision) FROM override_documents x WHERE x.cluster_id = d.cluster_id AND x.name = d.name)
       ORDER BY d.revision`,
      [clusterId, now.toISOString()],
    );
    return rows.map(toDoc);
  }
}
