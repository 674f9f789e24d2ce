// Desired releases per cluster, kept as history: the newest revision is the
// desired one, older ones say what an operator asked for before.
import type { SignedEnvelope } from '../../protocol/release.ts';
import type { HubDatabase } from './database.ts';

export interface DesiredReleaseRecord {
  clusterId: string;
  revision: number;
  name: string;
  version: string;
  envelope: SignedEnvelope;
  issuedAt: string;
  expiresAt: string;
}

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
  readonly #db: HubDatabase;

  constructor(db: HubDatabase) {
    this.#db = db;
  }

  latest(clusterId: string): DesiredReleaseRecord | undefined {
    const row = this.#db.prepare('SELECT * FROM desired_releases WHERE cluster_id = ? ORDER BY revision DESC LIMIT 1').get(clusterId) as Row | undefined;
    return row && toRecord(row);
  }

  /**
   * Assigns the next revision and stores what `build` signs for it, in one
   * transaction, so two operators racing never sign the same revision.
   * Counts past the agent's own revision too: a hub restored from an old
   * backup must still issue something the agent does not take for a replay.
   */
  issue(clusterId: string, build: (revision: number) => Omit<DesiredReleaseRecord, 'clusterId' | 'revision'>): DesiredReleaseRecord {
    return this.#db.transaction(() => {
      const { next } = this.#db
        .prepare(
          `SELECT MAX(COALESCE((SELECT MAX(revision) FROM desired_releases WHERE cluster_id = @id), 0),
                      COALESCE((SELECT agent_revision FROM clusters WHERE id = @id), 0)) + 1 AS next`,
        )
        .get({ id: clusterId }) as { next: number };
      const built = build(next);
      this.#db
        .prepare('INSERT INTO desired_releases (cluster_id, revision, name, version, envelope, issued_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run(clusterId, next, built.name, built.version, JSON.stringify(built.envelope), built.issuedAt, built.expiresAt);
      return { clusterId, revision: next, ...built };
    })();
  }
}
