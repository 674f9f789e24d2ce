// Desired releases per cluster, kept as history: the newest revision is the
// desired one, older ones say what an operator asked for before.
import type { DesiredRelease } from '../../protocol/hub-api.ts';
import type { SignedEnvelope } from '../../protocol/release.ts';
import type { Sql } from './sql.ts';

/** The API's answer is the record as stored (src/protocol/hub-api.ts). */
export type DesiredReleaseRecord = DesiredRelease;

interface Row {
  cluster_id: string;
  revision: number;
  name: string;
  version: string;
  envelope: string;
  issued_at: string;
  expires_at: string;
}

const toRecord = (r: Row): DesiredReleaseRecord => ({
  clusterId: r.cluster_id,
  revision: r.revision,
  name: r.name,
  version: r.version,
  envelope: JSON.parse(r.envelope) as SignedEnvelope,
  issuedAt: r.issued_at,
  expiresAt: r.expires_at,
});

export class ReleaseRepo {
  readonly #sql: Sql;

  constructor(sql: Sql) {
    this.#sql = sql;
  }

  async latest(clusterId: string): Promise<DesiredReleaseRecord | undefined> {
    const row = await this.#sql.get<Row>('SELECT * FROM desired_releases WHERE cluster_id = ? ORDER BY revision DESC LIMIT 1', [clusterId]);
    return row && toRecord(row);
  }

  /**
   * Assigns the next revision and stores what `build` signs for it, in one
   * transaction, so two operators racing never sign the same revision: the
   * cluster's row is locked first (FOR UPDATE on PostgreSQL; SQLite has one
   * writer), so a second issuer, on any replica, waits and counts past the
   * first. Counts past the agent's own revision too: a hub restored from an
   * old backup must still issue something the agent does not take for a replay.
   */
  issue(clusterId: string, build: (revision: number) => Omit<DesiredReleaseRecord, 'clusterId' | 'revision'>): Promise<DesiredReleaseRecord> {
    const sql = this.#sql;
    return sql.transaction(async () => {
      const cluster = await sql.get<{ agent_revision: number }>(`SELECT agent_revision FROM clusters WHERE id = ?${sql.dialect.forUpdate}`, [clusterId]);
      const newest = await sql.get<{ revision: number | null }>('SELECT MAX(revision) AS revision FROM desired_releases WHERE cluster_id = ?', [clusterId]);
      const next = Math.max(newest?.revision ?? 0, cluster?.agent_revision ?? 0) + 1;
      const built = build(next);
      await sql.run('INSERT INTO desired_releases (cluster_id, revision, name, version, envelope, issued_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)', [
        clusterId,
        next,
        built.name,
        built.version,
        JSON.stringify(built.envelope),
        built.issuedAt,
        built.expiresAt,
      ]);
      return { clusterId, revision: next, ...built };
    });
  }
}
