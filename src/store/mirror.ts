// Export the journal's state as a hand-over record, and import one written
// by another agent: the in-cluster copy that lets a new leader (another
// node's journal) or a new version take over an unfinished attempt.
import type { HandoverRecord } from '../protocol/handover.ts';
import type { Release } from '../protocol/release.ts';
import type { Journal } from './journal.ts';

const GENERATION_KEY = 'mirror.generation';
/** A ConfigMap holds at most 1 MiB: only the oldest unsent reports travel (they are the ones the hub needs next). */
export const MIRRORED_OUTBOX_ROWS = 200;

export function mirrorGeneration(journal: Journal): number {
  return Number(journal.getMeta(GENERATION_KEY) ?? 0);
}

export function exportMirror(journal: Journal, who: { identity: string; agentVersion: string }): HandoverRecord {
  const generation = mirrorGeneration(journal) + 1;
  const latest = journal.releases.latestAccepted();
  const a = journal.attempts.current() ?? journal.attempts.latest();
  return {
    generation,
    writtenBy: who.identity,
    agentVersion: who.agentVersion,
    writtenAt: journal.now().toISOString(),
    release: latest?.envelope ?? null,
    outbox: { lastSeq: journal.outbox.stats().lastSeq, pending: journal.outbox.pending(0, MIRRORED_OUTBOX_ROWS) },
    installed: journal.installed.all().map((c) => ({ component: c.component, version: c.version, digest: c.digest, objects: c.objects })),
    attempt: a
      ? {
          id: a.id,
          revision: a.revision,
          releaseName: a.releaseName,
          releaseVersion: a.releaseVersion,
          plan: a.plan,
          phase: a.phase,
          stage: a.stage,
          // Agents before journal schema 3 require the field; it is always null.
          step: null,
          reason: a.reason,
          message: a.message,
          starts: a.starts,
          startedAt: a.startedAt,
          finishedAt: a.finishedAt,
          transitions: journal.attempts.transitions(a.id).map((t) => ({ phase: t.phase, stage: t.stage, step: null, reason: t.reason, message: t.message, at: t.at })),
          snapshots: journal.attempts.snapshots(a.id).map((s) => ({ component: s.component, stage: s.stage, version: s.version, digest: s.digest, objects: s.objects, created: s.created, owned: s.owned })),
        }
      : null,
  };
}

/** Records that the mirror now holds `generation` (after a successful write). */
export function markMirrored(journal: Journal, generation: number): void {
  journal.setMeta(GENERATION_KEY, String(generation));
}

/**
 * Replaces this journal's view of the installed components and the attempt
 * with the record's, when the record is newer. The release envelope must
 * already have been verified by the caller (nothing runs unless signed).
 */
export function importMirror(journal: Journal, record: HandoverRecord, verified: Release | null): boolean {
  if (record.generation <= mirrorGeneration(journal)) return false;
  journal.transaction(() => {
    let releaseId: number | undefined;
    if (record.release && verified) {
      releaseId = journal.releases.acceptedId(verified.revision) ?? journal.releases.accept(verified, record.release).id;
    }
    journal.installed.replaceAll(record.installed);
    if (record.attempt && releaseId !== undefined) journal.attempts.adopt(record.attempt, releaseId);
    journal.outbox.adopt(record.outbox.pending, record.outbox.lastSeq);
    markMirrored(journal, record.generation);
  });
  return true;
}
