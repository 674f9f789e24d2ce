// Rollouts as the hub keeps them: the spec, the phase an operator or the
// planner set, the fixed membership in rollout order, and per cluster what
// was sent when and when success was first seen. Everything a restarted hub
// needs to continue where it was; the rest is recomputed from the aggregate.
import type { OverrideRequest } from '../../protocol/override.ts';
import type { RolloutPhase, RolloutRequest } from '../../protocol/rollout.ts';
import type { HubDatabase } from './database.ts';

export type StoredTarget =
  | { kind: 'Release'; release: Record<string, unknown> & { name: string; version: string } }
  /** withdraw: the rollback of an override rollout sends a withdrawal of the same override. */
  | { kind: 'Override'; override: OverrideRequest; withdraw?: boolean }
  /** Each cluster gets back the release it had before `rollbackOf` sent it one. */
  | { kind: 'Rollback'; rollbackOf: string };

/**
 * The spec as the hub stores it: the operator's request after validation
 * (rollout-operations.ts), or what a rollback derived from the rollout it
 * undoes. Only this repository writes the column, so what it reads back is
 * a StoredSpec.
 */
export type StoredSpec = Omit<RolloutRequest, 'target'> & { target: StoredTarget };

export interface RolloutRecord {
  name: string;
  spec: StoredSpec;
  phase: RolloutPhase;
  reason: string | null;
  message: string | null;
  acknowledgedFailures: number;
  acknowledgedMandatoryFailures: number;
  rollbackOf: string | null;
  rolledBackBy: string | null;
  createdAt: string;
  startedAt: string | null;
  endedAt: string | null;
  updatedAt: string;
}

interface RolloutRow {
  name: string;
  spec: string;
  phase: RolloutPhase;
  reason: string | null;
  message: string | null;
  acknowledged_failures: number;
  acknowledged_mandatory_failures: number;
  rollback_of: string | null;
  rolled_back_by: string | null;
  created_at: string;
  started_at: string | null;
  ended_at: string | null;
  updated_at: string;
}

const toRecord = (r: RolloutRow): RolloutRecord => ({
  name: r.name,
  spec: JSON.parse(r.spec) as StoredSpec,
  phase: r.phase,
  reason: r.reason,
  message: r.message,
  acknowledgedFailures: r.acknowledged_failures,
  acknowledgedMandatoryFailures: r.acknowledged_mandatory_failures,
  rollbackOf: r.rollback_of,
  rolledBackBy: r.rolled_back_by,
  createdAt: r.created_at,
  startedAt: r.started_at,
  endedAt: r.ended_at,
  updatedAt: r.updated_at,
});

export interface RolloutGroupRecord {
  name: string;
  mandatory: boolean;
}

export interface NewMember {
  clusterId: string;
  group: number;
}

/** A member with what the hub observes of it, read in one query per tick. */
export interface MemberRow {
  clusterId: string;
  group: number;
  sentRevision: number | null;
  sentAt: string | null;
  previousRevision: number | null;
  succeededAt: string | null;
  skippedAt: string | null;
  /** JSON {reason, message, at} of the failure first seen. */
  failure: string | null;
  /** Null once the cluster was deregistered. */
  registration: string | null;
  lastSeen: string | null;
  /** cluster_upgrade: the latest attempt the agent reported. */
  upRevision: number | null;
  upStatus: string | null;
  upPhase: string | null;
  upReason: string | null;
  upMessage: string | null;
  upAt: string | null;
  lastRefusal: string | null;
  /** Newest desired release revision of the cluster (anyone's). */
  latestRevision: number | null;
  /** Override rollouts only: the cluster's inventory JSON and its newest document revision for the override. */
  inventory: string | null;
  latestOverrideRevision: number | null;
}

interface MemberDbRow {
  cluster_id: string;
  group_idx: number;
  sent_revision: number | null;
  sent_at: string | null;
  previous_revision: number | null;
  succeeded_at: string | null;
  skipped_at: string | null;
  failure: string | null;
  registration: string | null;
  last_seen: string | null;
  up_revision: number | null;
  up_status: string | null;
  up_phase: string | null;
  up_reason: string | null;
  up_message: string | null;
  up_at: string | null;
  last_refusal: string | null;
  latest_revision: number | null;
  inventory: string | null;
  latest_override_revision: number | null;
}

export const ACTIVE_PHASES: readonly RolloutPhase[] = ['Progressing', 'Paused'];

export class RolloutRepo {
  readonly #db: HubDatabase;
  readonly #lastSeen: (clusterId: string) => string | undefined;

  /** `lastSeen`: a lease renewal newer than the table's (ClusterRepo keeps them in memory between flushes). */
  constructor(db: HubDatabase, lastSeen: (clusterId: string) => string | undefined = () => undefined) {
    this.#db = db;
    this.#lastSeen = lastSeen;
  }

  /** Runs fn in one transaction (one fsync for a whole wave). */
  transaction<T>(fn: () => T): T {
    return this.#db.transaction(fn)();
  }

  create(r: { name: string; spec: StoredSpec; rollbackOf: string | null; createdAt: string }, groups: readonly RolloutGroupRecord[], members: readonly NewMember[]): void {
    this.transaction(() => {
      this.#db
        .prepare(`INSERT INTO rollouts (name, spec, phase, rollback_of, created_at, updated_at) VALUES (?, ?, 'Progressing', ?, ?, ?)`)
        .run(r.name, JSON.stringify(r.spec), r.rollbackOf, r.createdAt, r.createdAt);
      const g = this.#db.prepare('INSERT INTO rollout_groups (rollout, idx, name, mandatory) VALUES (?, ?, ?, ?)');
      groups.forEach((group, i) => g.run(r.name, i, group.name, group.mandatory ? 1 : 0));
      const m = this.#db.prepare('INSERT INTO rollout_clusters (rollout, cluster_id, group_idx, position) VALUES (?, ?, ?, ?)');
      members.forEach((member, i) => m.run(r.name, member.clusterId, member.group, i));
    });
  }

  exists(name: string): boolean {
    return this.#db.prepare('SELECT 1 FROM rollouts WHERE name = ?').get(name) !== undefined;
  }

  get(name: string): RolloutRecord | undefined {
    const row = this.#db.prepare('SELECT * FROM rollouts WHERE name = ?').get(name) as RolloutRow | undefined;
    return row && toRecord(row);
  }

  list(): RolloutRecord[] {
    return (this.#db.prepare('SELECT * FROM rollouts ORDER BY created_at, name').all() as RolloutRow[]).map(toRecord);
  }

  active(): RolloutRecord[] {
    return (this.#db.prepare(`SELECT * FROM rollouts WHERE phase IN ('Progressing', 'Paused') ORDER BY created_at, name`).all() as RolloutRow[]).map(toRecord);
  }

  groups(name: string): RolloutGroupRecord[] {
    return (this.#db.prepare('SELECT name, mandatory FROM rollout_groups WHERE rollout = ? ORDER BY idx').all(name) as { name: string; mandatory: number }[]).map((g) => ({
      name: g.name,
      mandatory: g.mandatory === 1,
    }));
  }

  /** Members in rollout order with their observed state; `overrideName` adds inventory and override revisions. */
  members(name: string, overrideName?: string): MemberRow[] {
    const forOverride = overrideName !== undefined;
    const rows = this.#db
      .prepare(
        `SELECT rc.cluster_id, rc.group_idx, rc.sent_revision, rc.sent_at, rc.previous_revision, rc.succeeded_at, rc.skipped_at, rc.failure,
                c.status AS registration, c.last_seen,
                u.revision AS up_revision, u.status AS up_status, u.phase AS up_phase, u.reason AS up_reason, u.message AS up_message,
                u.at AS up_at, u.last_refusal,
                ${forOverride ? 'NULL' : '(SELECT MAX(d.revision) FROM desired_releases d WHERE d.cluster_id = rc.cluster_id)'} AS latest_revision,
                ${forOverride ? 'c.inventory' : 'NULL'} AS inventory,
                ${forOverride ? '(SELECT MAX(o.revision) FROM override_documents o WHERE o.cluster_id = rc.cluster_id AND o.name = @override)' : 'NULL'} AS latest_override_revision
         FROM rollout_clusters rc
         LEFT JOIN clusters c ON c.id = rc.cluster_id
         LEFT JOIN cluster_upgrade u ON u.cluster_id = rc.cluster_id
         WHERE rc.rollout = @name ORDER BY rc.group_idx, rc.position`,
      )
      .all(forOverride ? { name, override: overrideName } : { name }) as MemberDbRow[];
    return rows.map((r) => ({
      clusterId: r.cluster_id,
      group: r.group_idx,
      sentRevision: r.sent_revision,
      sentAt: r.sent_at,
      previousRevision: r.previous_revision,
      succeededAt: r.succeeded_at,
      skippedAt: r.skipped_at,
      failure: r.failure,
      registration: r.registration,
      lastSeen: this.#lastSeen(r.cluster_id) ?? r.last_seen,
      upRevision: r.up_revision,
      upStatus: r.up_status,
      upPhase: r.up_phase,
      upReason: r.up_reason,
      upMessage: r.up_message,
      upAt: r.up_at,
      lastRefusal: r.last_refusal,
      latestRevision: r.latest_revision,
      inventory: r.inventory,
      latestOverrideRevision: r.latest_override_revision,
    }));
  }

  /** Members of active rollouts (other than `except`): cluster id → rollout name. */
  activeMemberships(except?: string): Map<string, string> {
    const rows = this.#db
      .prepare(
        `SELECT rc.cluster_id, r.name FROM rollout_clusters rc JOIN rollouts r ON r.name = rc.rollout
         WHERE r.phase IN ('Progressing', 'Paused') AND r.name IS NOT @except`,
      )
      .all({ except: except ?? null }) as { cluster_id: string; name: string }[];
    const out = new Map<string, string>();
    for (const r of rows) out.set(r.cluster_id, r.name);
    return out;
  }

  /** Active rollouts' names with their target kind, for conflict checks. */
  activeTargets(): { name: string; spec: StoredSpec }[] {
    return (this.#db.prepare(`SELECT name, spec FROM rollouts WHERE phase IN ('Progressing', 'Paused')`).all() as { name: string; spec: string }[]).map((r) => ({
      name: r.name,
      spec: JSON.parse(r.spec) as StoredSpec,
    }));
  }

  memberIds(name: string): string[] {
    return (this.#db.prepare('SELECT cluster_id FROM rollout_clusters WHERE rollout = ? ORDER BY group_idx, position').all(name) as { cluster_id: string }[]).map((r) => r.cluster_id);
  }

  /**
   * membership Dynamic: clusters that joined the selection, each at the end
   * of its group (members are read in (group, position) order); a group
   * index past the last one adds that group.
   */
  addMembers(name: string, newGroups: readonly RolloutGroupRecord[], members: readonly NewMember[]): void {
    const groupCount = (this.#db.prepare('SELECT COUNT(*) AS n FROM rollout_groups WHERE rollout = ?').get(name) as { n: number }).n;
    const g = this.#db.prepare('INSERT INTO rollout_groups (rollout, idx, name, mandatory) VALUES (?, ?, ?, ?)');
    newGroups.forEach((group, i) => g.run(name, groupCount + i, group.name, group.mandatory ? 1 : 0));
    const next = (this.#db.prepare('SELECT COALESCE(MAX(position), -1) + 1 AS p FROM rollout_clusters WHERE rollout = ?').get(name) as { p: number }).p;
    const m = this.#db.prepare('INSERT INTO rollout_clusters (rollout, cluster_id, group_idx, position) VALUES (?, ?, ?, ?)');
    members.forEach((member, i) => m.run(name, member.clusterId, member.group, next + i));
  }

  /** membership Dynamic: clusters that left the selection before they were counted. */
  removeMembers(name: string, clusterIds: readonly string[]): void {
    const d = this.#db.prepare('DELETE FROM rollout_clusters WHERE rollout = ? AND cluster_id = ?');
    for (const id of clusterIds) d.run(name, id);
  }

  /** What the cluster had before `rollout` sent it something (for a rollback). */
  previousRevisionIn(rollout: string, clusterId: string): number | null {
    const row = this.#db.prepare('SELECT previous_revision FROM rollout_clusters WHERE rollout = ? AND cluster_id = ?').get(rollout, clusterId) as { previous_revision: number | null } | undefined;
    return row?.previous_revision ?? null;
  }

  recordSent(name: string, clusterId: string, revision: number, at: string, previousRevision: number | null): void {
    this.#db
      .prepare('UPDATE rollout_clusters SET sent_revision = ?, sent_at = ?, previous_revision = ?, skipped_at = NULL WHERE rollout = ? AND cluster_id = ?')
      .run(revision, at, previousRevision, name, clusterId);
  }

  markSucceeded(name: string, clusterIds: readonly string[], at: string): void {
    const s = this.#db.prepare('UPDATE rollout_clusters SET succeeded_at = ? WHERE rollout = ? AND cluster_id = ? AND succeeded_at IS NULL');
    for (const id of clusterIds) s.run(at, name, id);
  }

  markFailed(name: string, failures: readonly { id: string; reason: string; message: string | null; at: number | null }[]): void {
    const s = this.#db.prepare('UPDATE rollout_clusters SET failure = ? WHERE rollout = ? AND cluster_id = ? AND failure IS NULL');
    for (const f of failures) s.run(JSON.stringify({ reason: f.reason, message: f.message, at: f.at }), name, f.id);
  }

  markSkipped(name: string, clusterIds: readonly string[], at: string): void {
    const s = this.#db.prepare('UPDATE rollout_clusters SET skipped_at = ? WHERE rollout = ? AND cluster_id = ? AND skipped_at IS NULL');
    for (const id of clusterIds) s.run(at, name, id);
  }

  setPhase(name: string, p: { phase: RolloutPhase; reason: string | null; message: string | null; endedAt?: string | null }, at: string): void {
    this.#db
      .prepare('UPDATE rollouts SET phase = ?, reason = ?, message = ?, ended_at = COALESCE(?, ended_at), updated_at = ? WHERE name = ?')
      .run(p.phase, p.reason, p.message, p.endedAt ?? null, at, name);
  }

  acknowledge(name: string, failures: number, mandatoryFailures: number, at: string): void {
    this.#db
      .prepare('UPDATE rollouts SET acknowledged_failures = ?, acknowledged_mandatory_failures = ?, updated_at = ? WHERE name = ?')
      .run(failures, mandatoryFailures, at, name);
  }

  markStarted(name: string, at: string): void {
    this.#db.prepare('UPDATE rollouts SET started_at = ? WHERE name = ? AND started_at IS NULL').run(at, name);
  }

  setRolledBackBy(name: string, by: string, at: string): void {
    this.#db.prepare('UPDATE rollouts SET rolled_back_by = ?, updated_at = ? WHERE name = ?').run(by, at, name);
  }

  /** The signed payload of a release the hub issued, for a rollback. */
  releasePayload(clusterId: string, revision: number): string | undefined {
    const row = this.#db.prepare('SELECT envelope FROM desired_releases WHERE cluster_id = ? AND revision = ?').get(clusterId, revision) as { envelope: string } | undefined;
    return row === undefined ? undefined : (JSON.parse(row.envelope) as { payload: string }).payload;
  }
}
