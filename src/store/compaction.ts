// Keeps the journal bounded on small edge disks. History goes first, oldest
// first; what is never removed: the unfinished attempt, the newest
// `keepAttempts` finished ones (recent history and stage timings for window
// estimates), the release the agent works towards, and the outbox (unsent
// reports are the hub's only copy of what happened offline).
import type { Journal } from './journal.ts';

export interface CompactionPolicy {
  /** Finished attempts older than this may go. */
  maxAgeMs: number;
  /** Above this size, finished attempts go oldest first even if younger than maxAgeMs. */
  maxBytes: number;
  keepAttempts: number;
}

export const defaultCompaction: CompactionPolicy = { maxAgeMs: 30 * 86_400_000, maxBytes: 64 * 1024 * 1024, keepAttempts: 20 };

export interface CompactionResult {
  attemptsRemoved: number;
  releasesRemoved: number;
  bytesBefore: number;
  bytesAfter: number;
}

export function compact(journal: Journal, policy: CompactionPolicy): CompactionResult {
  const db = journal.db;
  const bytesBefore = journal.sizeBytes();
  const cutoff = new Date(journal.now().getTime() - policy.maxAgeMs).toISOString();

  const removable = (): string[] =>
    (
      db
        .prepare(
          `SELECT id FROM attempts WHERE finished_at IS NOT NULL
             AND id NOT IN (SELECT id FROM attempts WHERE finished_at IS NOT NULL ORDER BY finished_at DESC LIMIT ?)
           ORDER BY finished_at ASC`,
        )
        .all(policy.keepAttempts) as { id: string }[]
    ).map((r) => r.id);

  const del = db.prepare('DELETE FROM attempts WHERE id = ?');
  let attemptsRemoved = 0;
  db.transaction(() => {
    for (const id of removable()) {
      const a = db.prepare('SELECT finished_at FROM attempts WHERE id = ?').get(id) as { finished_at: string };
      if (a.finished_at >= cutoff) break;
      attemptsRemoved += del.run(id).changes;
    }
  })();

  const dropReleases = () =>
    db
      .prepare(
        `DELETE FROM releases WHERE id NOT IN (SELECT release_id FROM attempts)
           AND id <> COALESCE((SELECT id FROM releases WHERE status = 'accepted' ORDER BY revision DESC LIMIT 1), -1)
           AND received_at < ?`,
      )
      .run(cutoff).changes;
  let releasesRemoved = dropReleases();
  reclaim(journal);

  // Over the size budget: give up history, oldest first, one attempt at a time.
  for (const id of removable()) {
    if (journal.sizeBytes() <= policy.maxBytes) break;
    attemptsRemoved += del.run(id).changes;
    releasesRemoved += db
      .prepare(
        `DELETE FROM releases WHERE id NOT IN (SELECT release_id FROM attempts)
           AND id <> COALESCE((SELECT id FROM releases WHERE status = 'accepted' ORDER BY revision DESC LIMIT 1), -1)`,
      )
      .run().changes;
    reclaim(journal);
  }
  return { attemptsRemoved, releasesRemoved, bytesBefore, bytesAfter: journal.sizeBytes() };
}

function reclaim(journal: Journal): void {
  journal.db.pragma('incremental_vacuum');
  journal.db.pragma('wal_checkpoint(TRUNCATE)');
}
