import type { Release, SignedEnvelope } from '../protocol/release.ts';
import { Repo } from './repo.ts';

export interface StoredRelease {
  id: number;
  revision: number;
  release: Release;
  envelope: SignedEnvelope;
  receivedAt: string;
}

export interface RefusedRelease {
  revision: number | null;
  reason: string;
  message: string;
  envelope?: SignedEnvelope | undefined;
}

interface Row {
  id: number;
  revision: number;
  envelope_json: string;
  release_json: string;
  received_at: string;
}

export class ReleaseRepo extends Repo {

  /** Records a verified release; the caller has already checked signature, expiry and revision. */
  accept(release: Release, envelope: SignedEnvelope): StoredRelease {
    const receivedAt = this.now();
    const info = this.db
      .prepare(
        `INSERT INTO releases (revision, name, version, status, envelope_json, release_json, received_at)
         VALUES (?, ?, ?, 'accepted', ?, ?, ?)`,
      )
      .run(release.revision, release.name, release.version, JSON.stringify(envelope), JSON.stringify(release), receivedAt);
    return { id: Number(info.lastInsertRowid), revision: release.revision, release, envelope, receivedAt };
  }

  /** Records a refusal so the story is complete; a refused release never becomes the desired one. */
  refuse(r: RefusedRelease): number {
    const info = this.db
      .prepare(`INSERT INTO releases (revision, status, reason, message, envelope_json, received_at) VALUES (?, 'refused', ?, ?, ?, ?)`)
      .run(r.revision, r.reason, r.message, r.envelope ? JSON.stringify(r.envelope) : null, this.now());
    return Number(info.lastInsertRowid);
  }

  /**
   * Was this release already refused for this reason? (The hub re-sends its
   * desired release on every reconnect.) A release is known by its revision
   * once its signature was verified, and by its exact envelope before that.
   */
  refusedBefore(r: { revision: number | null; reason: string; envelope?: SignedEnvelope | undefined }): boolean {
    if (r.revision !== null) {
      return this.db.prepare(`SELECT 1 FROM releases WHERE status = 'refused' AND revision = ? AND reason = ? LIMIT 1`).get(r.revision, r.reason) !== undefined;
    }
    if (!r.envelope) return false;
    return (
      this.db.prepare(`SELECT 1 FROM releases WHERE status = 'refused' AND revision IS NULL AND reason = ? AND envelope_json = ? LIMIT 1`).get(r.reason, JSON.stringify(r.envelope)) !==
      undefined
    );
  }

  /** The id of the accepted release with this revision, if we hold it. */
  acceptedId(revision: number): number | undefined {
    return (this.db.prepare(`SELECT id FROM releases WHERE status = 'accepted' AND revision = ?`).get(revision) as { id: number } | undefined)?.id;
  }

  /** The newest accepted release: the one the agent works towards, online or not. */
  latestAccepted(): StoredRelease | undefined {
    const row = this.db
      .prepare(`SELECT id, revision, envelope_json, release_json, received_at FROM releases WHERE status = 'accepted' ORDER BY revision DESC LIMIT 1`)
      .get() as Row | undefined;
    return row && toStored(row);
  }

  byId(id: number): StoredRelease | undefined {
    const row = this.db.prepare(`SELECT id, revision, envelope_json, release_json, received_at FROM releases WHERE id = ? AND status = 'accepted'`).get(id) as
      | Row
      | undefined;
    return row && toStored(row);
  }

  lastAcceptedRevision(): number {
    const row = this.db.prepare(`SELECT MAX(revision) AS r FROM releases WHERE status = 'accepted'`).get() as { r: number | null };
    return row.r ?? 0;
  }

  /**
   * Deletes releases no attempt refers to, except the newest accepted one (the
   * desired release); with `receivedBefore`, only those received before it.
   */
  removeUnreferenced(receivedBefore?: string): number {
    return this.db
      .prepare(
        `DELETE FROM releases WHERE id NOT IN (SELECT release_id FROM attempts)
           AND id <> COALESCE((SELECT id FROM releases WHERE status = 'accepted' ORDER BY revision DESC LIMIT 1), -1)
           AND (? IS NULL OR received_at < ?)`,
      )
      .run(receivedBefore ?? null, receivedBefore ?? null).changes;
  }

  refusals(limit = 20): { id: number; revision: number | null; reason: string; message: string; receivedAt: string }[] {
    return (
      this.db
        .prepare(`SELECT id, revision, reason, message, received_at FROM releases WHERE status = 'refused' ORDER BY id DESC LIMIT ?`)
        .all(limit) as { id: number; revision: number | null; reason: string; message: string; received_at: string }[]
    ).map((r) => ({ id: r.id, revision: r.revision, reason: r.reason, message: r.message, receivedAt: r.received_at }));
  }
}

function toStored(row: Row): StoredRelease {
  return {
    id: row.id,
    revision: row.revision,
    release: JSON.parse(row.release_json) as Release,
    envelope: JSON.parse(row.envelope_json) as SignedEnvelope,
    receivedAt: row.received_at,
  };
}
