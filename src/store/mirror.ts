// Export the journal's state as a hand-over record, and import one written
// by another agent: the in-cluster copy that lets a new leader (another
// node's journal) or a new version take over an unfinished attempt.
import type { HandoverRecord } from '../protocol/handover.ts';
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
          step: a.step,
          reason: a.reason,
          message: a.message,
          starts: a.starts,
          startedAt: a.startedAt,
          finishedAt: a.finishedAt,
          transitions: journal.attempts.transitions(a.id).map((t) => ({ phase: t.phase, stage: t.stage, step: t.step, reason: t.reason, message: t.message, at: t.at })),
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
export function importMirror(journal: Journal, record: HandoverRecord, verified: { revision: number; release: unknown } | null): boolean {
  if (record.generation <= mirrorGeneration(journal)) return false;
  const db = journal.db;
  journal.transaction(() => {
    let releaseId: number | undefined;
    if (record.release && verified) {
      const existing = db.prepare(`SELECT id FROM releases WHERE status = 'accepted' AND revision = ?`).get(verified.revision) as { id: number } | undefined;
      releaseId = existing?.id ?? journal.releases.accept(verified.release as Parameters<Journal['releases']['accept']>[0], record.release).id;
    }
    db.prepare('DELETE FROM installed').run();
    for (const c of record.installed) journal.installed.set({ ...c, attemptId: null });
    const a = record.attempt;
    if (a && releaseId !== undefined) {
      db.prepare('DELETE FROM attempts WHERE id = ?').run(a.id);
      db.prepare(
        `INSERT INTO attempts (id, release_id, revision, release_name, release_version, phase, stage, step, reason, message, plan_json, starts, started_at, finished_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(a.id, releaseId, a.revision, a.releaseName, a.releaseVersion, a.phase, a.stage, a.step, a.reason, a.message, JSON.stringify(a.plan), a.starts, a.startedAt, a.finishedAt, journal.now().toISOString());
      const insertT = db.prepare(`INSERT INTO transitions (attempt_id, phase, stage, step, reason, message, at) VALUES (?, ?, ?, ?, ?, ?, ?)`);
      for (const t of a.transitions) insertT.run(a.id, t.phase, t.stage, t.step, t.reason, t.message, t.at);
      for (const s of a.snapshots) journal.attempts.saveSnapshotOnce({ attemptId: a.id, ...s });
      // Any other unfinished attempt of ours is older than the leader's story.
      db.prepare(`UPDATE attempts SET finished_at = ?, phase = 'Failed', reason = 'SupersededByLeader' WHERE finished_at IS NULL AND id <> ?`).run(journal.now().toISOString(), a.id);
    }
    const insertO = db.prepare('INSERT OR IGNORE INTO outbox (seq, kind, body_json, created_at) VALUES (?, ?, ?, ?)');
    for (const r of record.outbox.pending) insertO.run(r.seq, r.kind, JSON.stringify(r.body), r.createdAt);
    // Numbering continues after the previous leader's, so the hub never mistakes our reports for duplicates.
    const seq = Math.max(record.outbox.lastSeq, journal.outbox.stats().lastSeq);
    db.prepare(`INSERT INTO sqlite_sequence (name, seq) SELECT 'outbox', 0 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'outbox')`).run();
    db.prepare(`UPDATE sqlite_sequence SET seq = ? WHERE name = 'outbox'`).run(seq);
    markMirrored(journal, record.generation);
  });
  return true;
}
