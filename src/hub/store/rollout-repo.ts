// Rollouts as the hub keeps them: the spec, the phase an operator or the
// planner set, the fixed membership in rollout order, and per cluster what
// was sent when and when success was first seen. Everything a restarted hub
// needs to continue where it was; the rest is recomputed from the aggregate.
import type { OverrideRequest } from '../../protocol/override.ts';
import type { RolloutPhase, RolloutRequest } from '../../protocol/rollout.ts';
import type { Sql } from './sql.ts';

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

/** Any 64-bit number, the same in every replica: rollout steps take it for the length of their transaction. */
const ROLLOUT_STEP_LOCK = 0x666c65_02;

export class RolloutRepo {
  readonly #sql: Sql;
  readonly #lastSeen: (clusterId: string) => string | undefined;

  /** `lastSeen`: a lease renewal newer than the table's (ClusterRepo keeps them in memory between flushes). */
  constructor(sql: Sql, lastSeen: (clusterId: string) => string | undefined = () => undefined) {
    this.#sql = sql;
    this.#lastSeen = lastSeen;
  }

  /**
   * Inside a transaction: waits until no other replica is inside a rollout
   * step, and keeps them out until this transaction ends. Every step reads
   * the rollout's state after taking it, so a step one replica took is seen
   * by the next (READ COMMITTED: each statement sees what committed before
   * it) and never taken twice. SQLite has one writer: nothing to take.
   */
  async lockSteps(): Promise<void> {
    if (this.#sql.dialect.name === 'postgres') await this.#sql.run('SELECT pg_advisory_xact_lock(?)', [ROLLOUT_STEP_LOCK]);
  }

  async create(r: { name: string; spec: StoredSpec; rollbackOf: string | null; createdAt: string }, groups: readonly RolloutGroupRecord[], members: readonly NewMember[]): Promise<void> {
    await this.#sql.transaction(async () => {
      await this.#sql.run(`INSERT INTO rollouts (name, spec, phase, rollback_of, created_at, updated_at) VALUES (?, ?, 'Progressing', ?, ?, ?)`, [
        r.name,
        JSON.stringify(r.spec),
        r.rollbackOf,
        r.createdAt,
        r.createdAt,
      ]);
      await this.#insertGroups(r.name, 0, groups);
      await this.#insertMembers(r.name, 0, members);
    });
  }

  async #insertGroups(name: string, first: number, groups: readonly RolloutGroupRecord[]): Promise<void> {
    for (const [i, group] of groups.entries()) {
      await this.#sql.run('INSERT INTO rollout_groups (rollout, idx, name, mandatory) VALUES (?, ?, ?, ?)', [name, first + i, group.name, group.mandatory ? 1 : 0]);
    }
  }

  /** Many rows per statement: a rollout over 10,000 clusters is 20 round trips on PostgreSQL, not 10,000. */
  async #insertMembers(name: string, firstPosition: number, members: readonly NewMember[]): Promise<void> {
    const CHUNK = 500;
    for (let start = 0; start < members.length; start += CHUNK) {
      const chunk = members.slice(start, start + CHUNK);
      const params = chunk.flatMap((m, i) => [name, m.clusterId, m.group, firstPosition + start + i]);
      await this.#sql.run(`INSERT INTO rollout_clusters (rollout, cluster_id, group_idx, position) VALUES ${chunk.map(() => '(?, ?, ?, ?)').join(', ')}`, params);
    }
  }

  async exists(name: string): Promise<boolean> {
    return (await this.#sql.get('SELECT 1 AS found FROM rollouts WHERE name = ?', [name])) !== undefined;
  }

  async get(name: string): Promise<RolloutRecord | undefined> {
    const row = await this.#sql.get<RolloutRow>('SELECT * FROM rollouts WHERE name = ?', [name]);
    return row && toRecord(row);
  }

  async list(): Promise<RolloutRecord[]> {
    return (await this.#sql.all<RolloutRow>('SELECT * FROM rollouts ORDER BY created_at, name')).map(toRecord);
  }

  async active(): Promise<RolloutRecord[]> {
    return (await this.#sql.all<RolloutRow>(`SELECT * FROM rollouts WHERE phase IN ('Progressing', 'Paused') ORDER BY created_at, name`)).map(toRecord);
  }

  async groups(name: string): Promise<RolloutGroupRecord[]> {
    return (await this.#sql.all<{ name: string; mandatory: number }>('SELECT name, mandatory FROM rollout_groups WHERE rollout = ? ORDER BY idx', [name])).map((g) => ({
      name: g.name,
      mandatory: g.mandatory === 1,
    }));
  }

  /** Members in rollout order with their observed state; `overrideName` adds inventory and override revisions. */
  async members(name: string, overrideName?: string): Promise<MemberRow[]> {
    const forOverride = overrideName !== undefined;
    const rows = await this.#sql.all<MemberDbRow>(
      `SELECT rc.cluster_id, rc.group_idx, rc.sent_revision, rc.sent_at, rc.previous_revision, rc.succeeded_at, rc.skipped_at, rc.failure,
              c.status AS registration, c.last_seen,
              u.revision AS up_revision, u.status AS up_status, u.phase AS up_phase, u.reason AS up_reason, u.message AS up_message,
              u.at AS up_at, u.last_refusal,
              ${forOverride ? 'NULL' : '(SELECT MAX(d.revision) FROM desired_releases d WHERE d.cluster_id = rc.cluster_id)'} AS latest_revision,
              ${forOverride ? 'c.inventory' : 'NULL'} AS inventory,
              ${forOverride ? '(SELECT MAX(o.revision) FROM override_documents o WHERE o.cluster_id = rc.cluster_id AND o.name = ?)' : 'NULL'} AS latest_override_revision
       FROM rollout_clusters rc
       LEFT JOIN clusters c ON c.id = rc.cluster_id
       LEFT JOIN cluster_upgrade u ON u.cluster_id = rc.cluster_id
       WHERE rc.rollout = ? ORDER BY rc.group_idx, rc.position`,
      forOverride ? [overrideName, name] : [name],
    );
    return rows.map((r) => {
      const pending = this.#lastSeen(r.cluster_id);
      return {
        clusterId: r.cluster_id,
        group: r.group_idx,
        sentRevision: r.sent_revision,
        sentAt: r.sent_at,
        previousRevision: r.previous_revision,
        succeededAt: r.succeeded_at,
        skippedAt: r.skipped_at,
        failure: r.failure,
        registration: r.registration,
        lastSeen: pending !== undefined && (r.last_seen === null || pending > r.last_seen) ? pending : r.last_seen,
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
      };
    });
  }

  /** Members of active rollouts (other than `except`): cluster id → rollout name. */
  async activeMemberships(except?: string): Promise<Map<string, string>> {
    const rows = await this.#sql.all<{ cluster_id: string; name: string }>(
      `SELECT rc.cluster_id, r.name FROM rollout_clusters rc JOIN rollouts r ON r.name = rc.rollout
       WHERE r.phase IN ('Progressing', 'Paused')${except === undefined ? '' : ' AND r.name <> ?'}`,
      except === undefined ? [] : [except],
    );
    const out = new Map<string, string>();
    for (const r of rows) out.set(r.cluster_id, r.name);
    return out;
  }

  /** Active rollouts' names with their target kind, for conflict checks. */
  async activeTargets(): Promise<{ name: string; spec: StoredSpec }[]> {
    return (await this.#sql.all<{ name: string; spec: string }>(`SELECT name, spec FROM rollouts WHERE phase IN ('Progressing', 'Paused')`)).map((r) => ({
      name: r.name,
      spec: JSON.parse(r.spec) as StoredSpec,
    }));
  }

  async memberIds(name: string): Promise<string[]> {
    return (await this.#sql.all<{ cluster_id: string }>('SELECT cluster_id FROM rollout_clusters WHERE rollout = ? ORDER BY group_idx, position', [name])).map((r) => r.cluster_id);
  }

  /**
   * membership Dynamic: clusters that joined the selection, each at the end
   * of its group (members are read in (group, position) order); a group
   * index past the last one adds that group.
   */
  async addMembers(name: string, newGroups: readonly RolloutGroupRecord[], members: readonly NewMember[]): Promise<void> {
    const groupCount = (await this.#sql.get<{ n: number }>('SELECT COUNT(*) AS n FROM rollout_groups WHERE rollout = ?', [name]))?.n ?? 0;
    await this.#insertGroups(name, groupCount, newGroups);
    const next = (await this.#sql.get<{ p: number }>('SELECT COALESCE(MAX(position), -1) + 1 AS p FROM rollout_clusters WHERE rollout = ?', [name]))?.p ?? 0;
    await this.#insertMembers(name, next, members);
  }

  /** membership Dynamic: clusters that left the selection before they were counted. */
  async removeMembers(name: string, clusterIds: readonly string[]): Promise<void> {
    for (const id of clusterIds) await this.#sql.run('DELETE FROM rollout_clusters WHERE rollout = ? AND cluster_id = ?', [name, id]);
  }

  /** What the cluster had before `rollout` sent it something (for a rollback). */
  async previousRevisionIn(rollout: string, clusterId: string): Promise<number | null> {
    const row = await this.#sql.get<{ previous_revision: number | null }>('SELECT previous_revision FROM rollout_clusters WHERE rollout = ? AND cluster_id = ?', [rollout, clusterId]);
    return row?.previous_revision ?? null;
  }

  async recordSent(name: string, clusterId: string, revision: number, at: string, previousRevision: number | null): Promise<void> {
    await this.#sql.run('UPDATE rollout_clusters SET sent_revision = ?, sent_at = ?, previous_revision = ?, skipped_at = NULL WHERE rollout = ? AND cluster_id = ?', [
      revision,
      at,
      previousRevision,
      name,
      clusterId,
    ]);
  }

  async markSucceeded(name: string, clusterIds: readonly string[], at: string): Promise<void> {
    for (const id of clusterIds) await this.#sql.run('UPDATE rollout_clusters SET succeeded_at = ? WHERE rollout = ? AND cluster_id = ? AND succeeded_at IS NULL', [at, name, id]);
  }

  async markFailed(name: string, failures: readonly { id: string; reason: string; message: string | null; at: number | null }[]): Promise<void> {
    for (const f of failures) {
      await this.#sql.run('UPDATE rollout_clusters SET failure = ? WHERE rollout = ? AND cluster_id = ? AND failure IS NULL', [
        JSON.stringify({ reason: f.reason, message: f.message, at: f.at }),
        name,
        f.id,
      ]);
    }
  }

  async markSkipped(name: string, clusterIds: readonly string[], at: string): Promise<void> {
    for (const id of clusterIds) await this.#sql.run('UPDATE rollout_clusters SET skipped_at = ? WHERE rollout = ? AND cluster_id = ? AND skipped_at IS NULL', [at, name, id]);
  }

  async setPhase(name: string, p: { phase: RolloutPhase; reason: string | null; message: string | null; endedAt?: string | null }, at: string): Promise<void> {
    await this.#sql.run('UPDATE rollouts SET phase = ?, reason = ?, message = ?, ended_at = COALESCE(?, ended_at), updated_at = ? WHERE name = ?', [
      p.phase,
      p.reason,
      p.message,
      p.endedAt ?? null,
      at,
      name,
    ]);
  }

  async acknowledge(name: string, failures: number, mandatoryFailures: number, at: string): Promise<void> {
    await this.#sql.run('UPDATE rollouts SET acknowledged_failures = ?, acknowledged_mandatory_failures = ?, updated_at = ? WHERE name = ?', [failures, mandatoryFailures, at, name]);
  }

  async markStarted(name: string, at: string): Promise<void> {
    await this.#sql.run('UPDATE rollouts SET started_at = ? WHERE name = ? AND started_at IS NULL', [at, name]);
  }

  async setRolledBackBy(name: string, by: string, at: string): Promise<void> {
    await this.#sql.run('UPDATE rollouts SET rolled_back_by = ?, updated_at = ? WHERE name = ?', [by, at, name]);
  }

  /** The signed payload of a release the hub issued, for a rollback. */
  async releasePayload(clusterId: string, revision: number): Promise<string | undefined> {
    const row = await this.#sql.get<{ envelope: string }>('SELECT envelope FROM desired_releases WHERE cluster_id = ? AND revision = ?', [clusterId, revision]);
    return row === undefined ? undefined : (JSON.parse(row.envelope) as { payload: string }).payload;
  }
}
