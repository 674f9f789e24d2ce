import type { AttemptPhase } from '../protocol/attempt.ts';
import type { Plan } from '../protocol/plan.ts';
import type { KubeObject } from '../protocol/release.ts';
import { JournalError } from './errors.ts';
import { Repo } from './repo.ts';

export interface AttemptRecord {
  id: string;
  releaseId: number;
  revision: number;
  releaseName: string;
  releaseVersion: string;
  phase: AttemptPhase;
  stage: number | null;
  reason: string | null;
  message: string | null;
  plan: Plan;
  starts: number;
  startedAt: string;
  finishedAt: string | null;
  updatedAt: string;
}

export interface TransitionInput {
  phase: AttemptPhase;
  stage?: number | null;
  reason?: string | null;
  message?: string | null;
  data?: unknown;
  /** Marks the attempt finished (terminal phases). */
  finished?: boolean;
}

export interface TransitionRecord {
  id: number;
  attemptId: string;
  phase: AttemptPhase;
  stage: number | null;
  reason: string | null;
  message: string | null;
  data: unknown;
  at: string;
}

/** An attempt as another agent hands it over (src/protocol/handover.ts). */
export interface AdoptedAttempt extends Pick<AttemptRecord, 'id' | 'revision' | 'releaseName' | 'releaseVersion' | 'plan' | 'phase' | 'stage' | 'reason' | 'message' | 'starts' | 'startedAt' | 'finishedAt'> {
  transitions: Pick<TransitionRecord, 'phase' | 'stage' | 'reason' | 'message' | 'at'>[];
  snapshots: Omit<Snapshot, 'attemptId' | 'takenAt'>[];
}

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string | undefined;
}

export interface Snapshot {
  attemptId: string;
  component: string;
  stage: number;
  /** Version before the attempt, null when the component was not installed. */
  version: string | null;
  /** Manifest digest installed before the attempt, restored with the version. */
  digest: string | null;
  /** Live objects before the attempt changed them (last known good). */
  objects: KubeObject[];
  /** Objects the new version creates that did not exist: pruned on rollback. */
  created: ObjectRef[];
  /** What fleetlet owned for this component before (its inventory), restored on rollback. */
  owned: ObjectRef[];
  takenAt: string;
}

export interface CheckResultRecord {
  kind: 'preflight' | 'postflight';
  stage: number | null;
  name: string;
  result: 'pass' | 'fail' | 'error';
  message: string;
  startedAt: string;
  finishedAt: string;
}

interface AttemptRow {
  id: string;
  release_id: number;
  revision: number;
  release_name: string;
  release_version: string;
  phase: AttemptPhase;
  stage: number | null;
  reason: string | null;
  message: string | null;
  plan_json: string;
  starts: number;
  started_at: string;
  finished_at: string | null;
  updated_at: string;
}

const toAttempt = (r: AttemptRow): AttemptRecord => ({
  id: r.id,
  releaseId: r.release_id,
  revision: r.revision,
  releaseName: r.release_name,
  releaseVersion: r.release_version,
  phase: r.phase,
  stage: r.stage,
  reason: r.reason,
  message: r.message,
  plan: JSON.parse(r.plan_json) as Plan,
  starts: r.starts,
  startedAt: r.started_at,
  finishedAt: r.finished_at,
  updatedAt: r.updated_at,
});

export class AttemptRepo extends Repo {

  create(a: { id: string; releaseId: number; revision: number; releaseName: string; releaseVersion: string; plan: Plan }): AttemptRecord {
    const at = this.now();
    this.db
      .prepare(
        `INSERT INTO attempts (id, release_id, revision, release_name, release_version, phase, plan_json, starts, started_at, updated_at)
         VALUES (?, ?, ?, ?, ?, 'Pending', ?, 1, ?, ?)`,
      )
      .run(a.id, a.releaseId, a.revision, a.releaseName, a.releaseVersion, JSON.stringify(a.plan), at, at);
    this.db.prepare(`INSERT INTO transitions (attempt_id, phase, at) VALUES (?, 'Pending', ?)`).run(a.id, at);
    return this.get(a.id)!;
  }

  get(id: string): AttemptRecord | undefined {
    const row = this.db.prepare('SELECT * FROM attempts WHERE id = ?').get(id) as AttemptRow | undefined;
    return row && toAttempt(row);
  }

  /** The attempt that has not finished, if any (there is at most one). */
  current(): AttemptRecord | undefined {
    const row = this.db.prepare('SELECT * FROM attempts WHERE finished_at IS NULL ORDER BY started_at DESC LIMIT 1').get() as AttemptRow | undefined;
    return row && toAttempt(row);
  }

  latest(): AttemptRecord | undefined {
    const row = this.db.prepare('SELECT * FROM attempts ORDER BY rowid DESC LIMIT 1').get() as AttemptRow | undefined;
    return row && toAttempt(row);
  }

  list(limit = 20): AttemptRecord[] {
    return (this.db.prepare('SELECT * FROM attempts ORDER BY rowid DESC LIMIT ?').all(limit) as AttemptRow[]).map(toAttempt);
  }

  /** Appends a transition and moves the attempt to it, atomically. */
  transition(attemptId: string, t: TransitionInput): TransitionRecord {
    const at = this.now();
    return this.db.transaction(() => {
      const cur = this.db.prepare('SELECT finished_at FROM attempts WHERE id = ?').get(attemptId) as { finished_at: string | null } | undefined;
      if (!cur) throw new JournalError('UnknownAttempt', `attempt ${attemptId} is not in the journal`);
      if (cur.finished_at) throw new JournalError('AttemptFinished', `attempt ${attemptId} finished at ${cur.finished_at}; it cannot change phase`);
      const info = this.db
        .prepare(`INSERT INTO transitions (attempt_id, phase, stage, reason, message, data_json, at) VALUES (?, ?, ?, ?, ?, ?, ?)`)
        .run(attemptId, t.phase, t.stage ?? null, t.reason ?? null, t.message ?? null, t.data === undefined ? null : JSON.stringify(t.data), at);
      this.db
        .prepare(`UPDATE attempts SET phase = ?, stage = ?, reason = ?, message = ?, updated_at = ?, finished_at = ? WHERE id = ?`)
        .run(t.phase, t.stage ?? null, t.reason ?? null, t.message ?? null, at, t.finished ? at : null, attemptId);
      return {
        id: Number(info.lastInsertRowid),
        attemptId,
        phase: t.phase,
        stage: t.stage ?? null,
        reason: t.reason ?? null,
        message: t.message ?? null,
        data: t.data ?? null,
        at,
      };
    })();
  }

  transitions(attemptId: string): TransitionRecord[] {
    const rows = this.db.prepare('SELECT * FROM transitions WHERE attempt_id = ? ORDER BY id').all(attemptId) as {
      id: number;
      attempt_id: string;
      phase: AttemptPhase;
      stage: number | null;
      reason: string | null;
      message: string | null;
      data_json: string | null;
      at: string;
    }[];
    return rows.map((r) => ({
      id: r.id,
      attemptId: r.attempt_id,
      phase: r.phase,
      stage: r.stage,
      reason: r.reason,
      message: r.message,
      data: r.data_json === null ? null : (JSON.parse(r.data_json) as unknown),
      at: r.at,
    }));
  }

  /**
   * Takes in an attempt another agent of this cluster drove (the hand-over
   * record), with its history and snapshots, replacing our copy of it; any
   * other unfinished attempt of ours is older than that story and ends.
   */
  adopt(a: AdoptedAttempt, releaseId: number): void {
    const at = this.now();
    this.db.prepare('DELETE FROM attempts WHERE id = ?').run(a.id);
    this.db
      .prepare(
        `INSERT INTO attempts (id, release_id, revision, release_name, release_version, phase, stage, reason, message, plan_json, starts, started_at, finished_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(a.id, releaseId, a.revision, a.releaseName, a.releaseVersion, a.phase, a.stage, a.reason, a.message, JSON.stringify(a.plan), a.starts, a.startedAt, a.finishedAt, at);
    const insert = this.db.prepare(`INSERT INTO transitions (attempt_id, phase, stage, reason, message, at) VALUES (?, ?, ?, ?, ?, ?)`);
    for (const t of a.transitions) insert.run(a.id, t.phase, t.stage, t.reason, t.message, t.at);
    for (const snap of a.snapshots) this.saveSnapshotOnce({ attemptId: a.id, ...snap });
    this.db.prepare(`UPDATE attempts SET finished_at = ?, phase = 'Failed', reason = 'SupersededByLeader' WHERE finished_at IS NULL AND id <> ?`).run(at, a.id);
  }

  /** Finished attempts other than the newest `keep` finished ones, oldest first (what compaction may drop). */
  finishedBeyondNewest(keep: number): { id: string; finishedAt: string }[] {
    return (
      this.db
        .prepare(
          `SELECT id, finished_at FROM attempts WHERE finished_at IS NOT NULL
             AND id NOT IN (SELECT id FROM attempts WHERE finished_at IS NOT NULL ORDER BY finished_at DESC LIMIT ?)
           ORDER BY finished_at ASC`,
        )
        .all(keep) as { id: string; finished_at: string }[]
    ).map((r) => ({ id: r.id, finishedAt: r.finished_at }));
  }

  /** Deletes an attempt with its transitions, snapshots, timings and checks (ON DELETE CASCADE); returns rows removed. */
  remove(id: string): number {
    return this.db.prepare('DELETE FROM attempts WHERE id = ?').run(id).changes;
  }

  /** Counts a process start inside this attempt (crash-loop detection). */
  recordStart(attemptId: string): number {
    this.db.prepare('UPDATE attempts SET starts = starts + 1 WHERE id = ?').run(attemptId);
    return (this.db.prepare('SELECT starts FROM attempts WHERE id = ?').get(attemptId) as { starts: number }).starts;
  }

  /** Saves the last known good of a component once: a resumed attempt must never overwrite it with half-applied state. */
  saveSnapshotOnce(s: Omit<Snapshot, 'takenAt'>): Snapshot {
    this.db
      .prepare(
        `INSERT INTO snapshots (attempt_id, component, stage, version, digest, objects_json, created_json, owned_json, taken_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (attempt_id, component) DO NOTHING`,
      )
      .run(s.attemptId, s.component, s.stage, s.version, s.digest, JSON.stringify(s.objects), JSON.stringify(s.created), JSON.stringify(s.owned), this.now());
    return this.snapshots(s.attemptId).find((x) => x.component === s.component)!;
  }

  snapshots(attemptId: string): Snapshot[] {
    const rows = this.db.prepare('SELECT * FROM snapshots WHERE attempt_id = ? ORDER BY stage, component').all(attemptId) as {
      attempt_id: string;
      component: string;
      stage: number;
      version: string | null;
      digest: string | null;
      objects_json: string;
      created_json: string;
      owned_json: string;
      taken_at: string;
    }[];
    return rows.map((r) => ({
      attemptId: r.attempt_id,
      component: r.component,
      stage: r.stage,
      version: r.version,
      digest: r.digest,
      objects: JSON.parse(r.objects_json) as KubeObject[],
      created: JSON.parse(r.created_json) as ObjectRef[],
      owned: JSON.parse(r.owned_json) as ObjectRef[],
      takenAt: r.taken_at,
    }));
  }

  stageStarted(attemptId: string, component: string, stage: number): void {
    this.db
      .prepare(`INSERT INTO stage_timings (attempt_id, component, stage, started_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`)
      .run(attemptId, component, stage, this.now());
  }

  stageFinished(attemptId: string, component: string, result: string): void {
    const at = this.now();
    this.db
      .prepare(
        `UPDATE stage_timings SET finished_at = ?, result = ?,
           duration_ms = CAST(ROUND((julianday(?) - julianday(started_at)) * 86400000) AS INTEGER)
         WHERE attempt_id = ? AND component = ? AND finished_at IS NULL`,
      )
      .run(at, result, at, attemptId, component);
  }

  stageTimings(attemptId: string): { component: string; stage: number; startedAt: string; finishedAt: string | null; result: string | null }[] {
    return (
      this.db.prepare('SELECT component, stage, started_at, finished_at, result FROM stage_timings WHERE attempt_id = ?').all(attemptId) as {
        component: string;
        stage: number;
        started_at: string;
        finished_at: string | null;
        result: string | null;
      }[]
    ).map((r) => ({ component: r.component, stage: r.stage, startedAt: r.started_at, finishedAt: r.finished_at, result: r.result }));
  }

  /** How long successful upgrades of this component took before, newest first (for window-fit estimates). */
  pastDurationsMs(component: string, limit = 20): number[] {
    return (
      this.db
        .prepare(`SELECT duration_ms FROM stage_timings WHERE component = ? AND result = 'Succeeded' AND duration_ms IS NOT NULL ORDER BY finished_at DESC LIMIT ?`)
        .all(component, limit) as { duration_ms: number }[]
    ).map((r) => r.duration_ms);
  }

  recordCheck(attemptId: string, c: CheckResultRecord): void {
    this.db
      .prepare(`INSERT INTO check_results (attempt_id, kind, stage, name, result, message, started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(attemptId, c.kind, c.stage, c.name, c.result, c.message, c.startedAt, c.finishedAt);
  }

  checks(attemptId: string): CheckResultRecord[] {
    return (
      this.db.prepare('SELECT kind, stage, name, result, message, started_at, finished_at FROM check_results WHERE attempt_id = ? ORDER BY id').all(attemptId) as {
        kind: 'preflight' | 'postflight';
        stage: number | null;
        name: string;
        result: 'pass' | 'fail' | 'error';
        message: string;
        started_at: string;
        finished_at: string;
      }[]
    ).map((r) => ({ kind: r.kind, stage: r.stage, name: r.name, result: r.result, message: r.message, startedAt: r.started_at, finishedAt: r.finished_at }));
  }
}
