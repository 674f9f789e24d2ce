// Keeps the journal bounded on small edge disks. History goes first, oldest
// first; what is never removed: the unfinished attempt, the newest
// `keepAttempts` finished ones (recent history and stage timings for window
// estimates), the release the agent works towards, and the outbox (unsent
// reports are the hub's only copy of what happened offline).
//
// The policy lives here; every statement lives in the repositories, so this
// file knows the journal only through the narrow view below (and the journal
// imports it, never the other way round).
import type { AttemptRepo } from './attempt-repo.ts';
import type { ReleaseRepo } from './release-repo.ts';

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

/** What compaction needs of the journal. */
export interface Compactable {
  readonly attempts: Pick<AttemptRepo, 'finishedBeyondNewest' | 'remove'>;
  readonly releases: Pick<ReleaseRepo, 'removeUnreferenced'>;
  now(): Date;
  transaction<T>(fn: () => T): T;
  sizeBytes(): number;
  /** Gives freed pages back to the filesystem. */
  reclaim(): void;
}

export function compact(journal: Compactable, policy: CompactionPolicy): CompactionResult {
  const bytesBefore = journal.sizeBytes();
  const cutoff = new Date(journal.now().getTime() - policy.maxAgeMs).toISOString();

  // Past their age: every finished attempt beyond the newest keepAttempts, oldest first.
  let attemptsRemoved = 0;
  let releasesRemoved = 0;
  journal.transaction(() => {
    for (const a of journal.attempts.finishedBeyondNewest(policy.keepAttempts)) {
      if (a.finishedAt >= cutoff) break;
      attemptsRemoved += journal.attempts.remove(a.id);
    }
    releasesRemoved += journal.releases.removeUnreferenced(cutoff);
  });
  journal.reclaim();

  // Over the size budget: give up history, oldest first, one attempt at a time.
  for (const a of journal.attempts.finishedBeyondNewest(policy.keepAttempts)) {
    if (journal.sizeBytes() <= policy.maxBytes) break;
    journal.transaction(() => {
      attemptsRemoved += journal.attempts.remove(a.id);
      releasesRemoved += journal.releases.removeUnreferenced();
    });
    journal.reclaim();
  }
  return { attemptsRemoved, releasesRemoved, bytesBefore, bytesAfter: journal.sizeBytes() };
}
