// Read-only aggregates for the dashboard (src/hub/dashboard): counts and
// pages computed in SQL, so a fleet of 10,000 clusters is answered without
// loading every cluster into the hub's memory or the browser. Every query
// reads an index (the dashboard's migration in store/migrations.ts): labels and reported
// overrides are rows kept in step with the clusters' JSON by triggers, lists
// of newest attempts walk an index on their time and stop at their page,
// counts by state scan an index rather than the clusters' rows.
//
// A cluster's display state is one word, in this order of precedence:
// PendingRegistration (not accepted yet), Unknown (lease expired: the hub
// cannot tell what it does now), then its latest attempt: RolledBack,
// Failed, InProgress, Succeeded, or NoRelease before its first attempt.
// Availability is judged from the stored last_seen; a renewal still in
// memory (ClusterStore flushes them every second) shows up to a second late.
//
// SQLite only, for now: its queries (and the label and override tables its
// migration keeps by triggers) have no PostgreSQL form yet, so a hub on
// PostgreSQL serves no dashboard (docs/hub-ha.md). It reads the connection
// directly and synchronously: a read never waits, and never runs inside
// another caller's transaction, since nothing else runs meanwhile.
import type Database from 'better-sqlite3';
import type { Statement } from 'better-sqlite3';
import type { SqliteSql } from './sqlite-sql.ts';

export const clusterStates = ['Succeeded', 'InProgress', 'Failed', 'RolledBack', 'PendingRegistration', 'Unknown', 'NoRelease'] as const;
export type ClusterState = (typeof clusterStates)[number];

/** label key → value, all must match. */
export type LabelFilter = readonly (readonly [string, string])[];

export interface ClusterRow {
  id: string;
  state: ClusterState;
  registration: string;
  labels: Record<string, string>;
  lastSeen: string | null;
  runningName: string | null;
  runningVersion: string | null;
  phase: string | null;
  stage: number | null;
  reason: string | null;
  message: string | null;
  releaseVersion: string | null;
  at: string | null;
}

export interface TransitionRow {
  seq: number;
  createdAt: string;
  receivedAt: string;
  body: unknown;
}

export interface OverrideUsage {
  name: string;
  version: string | null;
  component: string | null;
  clusters: number;
}

interface RawClusterRow {
  id: string;
  state: ClusterState;
  registration: string;
  labels: string;
  last_seen: string | null;
  running_name: string | null;
  running_version: string | null;
  phase: string | null;
  stage: number | null;
  reason: string | null;
  message: string | null;
  release_version: string | null;
  at: string | null;
}

const STATE_SQL = `CASE
    WHEN c.status = 'Pending' THEN 'PendingRegistration'
    WHEN c.last_seen IS NULL OR c.last_seen < @cutoff THEN 'Unknown'
    WHEN u.phase = 'RolledBack' THEN 'RolledBack'
    WHEN u.status IS NULL THEN 'NoRelease'
    ELSE u.status END`;

const CLUSTER_COLUMNS = `c.id, ${STATE_SQL} AS state, c.status AS registration, c.labels, c.last_seen,
    u.running_name, u.running_version, u.phase, u.stage, u.reason, u.message, u.release_version, u.at`;

const FROM = 'FROM clusters c LEFT JOIN cluster_upgrade u ON u.cluster_id = c.id';

function labelWhere(filter: LabelFilter, params: Record<string, unknown>): string {
  return filter
    .map(([k, v], i) => {
      params[`lk${i}`] = k;
      params[`lv${i}`] = v;
      return `c.id IN (SELECT cluster_id FROM cluster_labels WHERE key = @lk${i} AND value = @lv${i})`;
    })
    .join(' AND ');
}

/** Accepted and heard from within the lease: its state is its latest attempt's. */
const FRESH = `c.status = 'Accepted' AND c.last_seen >= @cutoff`;

/** Each display state as a condition the indexes serve (the same rules as STATE_SQL). */
const STATE_WHERE: Record<ClusterState, string> = {
  PendingRegistration: `c.status = 'Pending'`,
  Unknown: `c.status = 'Accepted' AND (c.last_seen IS NULL OR c.last_seen < @cutoff)`,
  RolledBack: `${FRESH} AND u.phase = 'RolledBack'`,
  Failed: `${FRESH} AND u.status = 'Failed' AND u.phase <> 'RolledBack'`,
  InProgress: `${FRESH} AND u.status = 'InProgress'`,
  Succeeded: `${FRESH} AND u.status = 'Succeeded'`,
  NoRelease: `${FRESH} AND u.status IS NULL`,
};

/** Clusters in any of `states`; Failed with RolledBack is every failed attempt (one index range). */
function statesWhere(states: readonly ClusterState[]): string {
  const set = new Set(states);
  const parts: string[] = [];
  if (set.has('Failed') && set.has('RolledBack')) {
    parts.push(`${FRESH} AND u.status = 'Failed'`);
    set.delete('Failed');
    set.delete('RolledBack');
  }
  for (const s of set) parts.push(STATE_WHERE[s]);
  return `(${parts.map((p) => `(${p})`).join(' OR ')})`;
}

const toRow = (r: RawClusterRow): ClusterRow => ({
  id: r.id,
  state: r.state,
  registration: r.registration,
  labels: JSON.parse(r.labels) as Record<string, string>,
  lastSeen: r.last_seen,
  runningName: r.running_name,
  runningVersion: r.running_version,
  phase: r.phase,
  stage: r.stage,
  reason: r.reason,
  message: r.message,
  releaseVersion: r.release_version,
  at: r.at,
});

export class DashboardRepo {
  readonly #db: Database.Database;
  readonly #fingerprint: Statement;
  readonly #transitions: Statement;
  readonly #memberships: Statement;

  constructor(sql: SqliteSql) {
    const db = sql.db;
    this.#db = db;
    this.#fingerprint = db.prepare(
      `SELECT (SELECT COUNT(*) FROM clusters) AS clusters,
              (SELECT COUNT(*) FROM clusters WHERE status = 'Pending') AS pending,
              (SELECT COUNT(*) FROM clusters WHERE status = 'Accepted' AND (last_seen IS NULL OR last_seen < @cutoff)) AS unknown,
              (SELECT TOTAL(acked_seq) FROM clusters) AS reports,
              (SELECT COUNT(*) || ':' || IFNULL(MAX(updated_at), '') FROM rollouts) AS rollouts,
              (SELECT COUNT(sent_at) || ':' || COUNT(succeeded_at) || ':' || COUNT(skipped_at) || ':' || COUNT(failure) FROM rollout_clusters) AS members,
              (SELECT COUNT(*) || ':' || IFNULL(MAX(updated_at), '') FROM overrides) AS overrides,
              (SELECT IFNULL(MAX(rowid), 0) FROM desired_releases) AS releases,
              (SELECT IFNULL(MAX(rowid), 0) FROM override_documents) AS documents`,
    );
    this.#transitions = db.prepare(
      `SELECT seq, created_at, received_at, body FROM reports
       WHERE cluster_id = ? AND kind = 'attempt-transition' AND problem IS NULL ORDER BY seq DESC LIMIT ?`,
    );
    this.#memberships = db.prepare(
      `SELECT r.name, r.phase, r.created_at FROM rollout_clusters rc JOIN rollouts r ON r.name = rc.rollout
       WHERE rc.cluster_id = ? ORDER BY r.created_at DESC LIMIT 20`,
    );
  }

  /** Changes whenever anything the dashboard shows changes (not on mere heartbeats): clients refetch on a change. */
  fingerprint(cutoff: string): string {
    return JSON.stringify(this.#fingerprint.get({ cutoff }));
  }

  /** Clusters per display state (see the file comment). */
  countByState(cutoff: string, filter: LabelFilter): Record<ClusterState, number> {
    const params: Record<string, unknown> = { cutoff };
    const where = labelWhere(filter, params);
    const rows = this.#db.prepare(`SELECT ${STATE_SQL} AS state, COUNT(*) AS n ${FROM} ${where ? `WHERE ${where}` : ''} GROUP BY 1`).all(params) as { state: ClusterState; n: number }[];
    const out = Object.fromEntries(clusterStates.map((s) => [s, 0])) as Record<ClusterState, number>;
    for (const r of rows) out[r.state] = r.n;
    return out;
  }

  /** Accepted clusters per release they run (their last Succeeded one); null name and version before the first. */
  countByRunningRelease(filter: LabelFilter): { name: string | null; version: string | null; clusters: number }[] {
    const params: Record<string, unknown> = {};
    const where = labelWhere(filter, params);
    return this.#db
      .prepare(
        `SELECT u.running_name AS name, u.running_version AS version, COUNT(*) AS clusters ${FROM}
         WHERE c.status = 'Accepted' ${where ? `AND ${where}` : ''} GROUP BY 1, 2 ORDER BY clusters DESC, name, version LIMIT 50`,
      )
      .all(params) as { name: string | null; version: string | null; clusters: number }[];
  }

  /**
   * A page of clusters in id order. `states` narrows to those display states,
   * `phase` to an attempt phase, `search` to ids containing it; `order`
   * 'recent' lists clusters with an attempt, newest attempt first.
   * `total`: a count the caller already has (countByState's), which saves a scan.
   */
  clusters(o: { cutoff: string; filter: LabelFilter; states?: readonly ClusterState[]; phase?: string; search?: string; order?: 'id' | 'recent' | 'lastSeen'; offset: number; limit: number; total?: number }): { total: number; items: ClusterRow[] } {
    const params: Record<string, unknown> = { cutoff: o.cutoff };
    const conds: string[] = [];
    const labels = labelWhere(o.filter, params);
    if (labels) conds.push(labels);
    if (o.states && o.states.length > 0) conds.push(statesWhere(o.states));
    if (o.phase !== undefined) {
      conds.push('u.phase = @phase');
      params.phase = o.phase;
    }
    if (o.search) {
      conds.push(`instr(c.id, @search) > 0`);
      params.search = o.search;
    }
    const where = conds.length > 0 ? `WHERE ${conds.join(' AND ')}` : '';
    // Newest attempts first: only clusters with an attempt, read from the attempts' index on (status or phase, time) newest first,
    // stopping at the page's end; CROSS JOIN keeps SQLite from starting at the clusters instead (it cannot know how few match).
    const from = o.order === 'recent' ? 'FROM cluster_upgrade u CROSS JOIN clusters c ON c.id = u.cluster_id' : FROM;
    const order = o.order === 'recent' ? 'u.at DESC, c.id' : o.order === 'lastSeen' ? 'c.last_seen DESC, c.id' : 'c.id';
    const total = o.total ?? (this.#db.prepare(`SELECT COUNT(*) AS n ${from} ${where}`).get(params) as { n: number }).n;
    const items = (this.#db.prepare(`SELECT ${CLUSTER_COLUMNS} ${from} ${where} ORDER BY ${order} LIMIT @limit OFFSET @offset`).all({ ...params, limit: o.limit, offset: o.offset }) as RawClusterRow[]).map(toRow);
    return { total, items };
  }

  /** One cluster with its display state. */
  cluster(id: string, cutoff: string): ClusterRow | undefined {
    const r = this.#db.prepare(`SELECT ${CLUSTER_COLUMNS} ${FROM} WHERE c.id = @id`).get({ id, cutoff }) as RawClusterRow | undefined;
    return r && toRow(r);
  }

  /** The most common label pairs, for the label filter's suggestions. */
  labelPairs(limit: number): { key: string; value: string; clusters: number }[] {
    return this.#db
      .prepare(`SELECT key, value, COUNT(*) AS clusters FROM cluster_labels GROUP BY 1, 2 ORDER BY clusters DESC, key, value LIMIT ?`)
      .all(limit) as { key: string; value: string; clusters: number }[];
  }

  /** The cluster's newest attempt-transition reports, newest first. */
  transitions(clusterId: string, limit: number): TransitionRow[] {
    return (this.#transitions.all(clusterId, limit) as { seq: number; created_at: string; received_at: string; body: string }[]).map((r) => ({
      seq: r.seq,
      createdAt: r.created_at,
      receivedAt: r.received_at,
      body: JSON.parse(r.body) as unknown,
    }));
  }

  /** Rollouts the cluster belongs to, newest first. */
  memberships(clusterId: string): { name: string; phase: string; createdAt: string }[] {
    return (this.#memberships.all(clusterId) as { name: string; phase: string; created_at: string }[]).map((r) => ({ name: r.name, phase: r.phase, createdAt: r.created_at }));
  }

  /** Every override name (and version) clusters report running, with how many run it. */
  overrideUsage(): OverrideUsage[] {
    return this.#db
      .prepare(
        `SELECT name, version, component, COUNT(*) AS clusters FROM cluster_overrides GROUP BY 1, 2, 3 ORDER BY name, version`,
      )
      .all() as OverrideUsage[];
  }

  /** A page of the clusters that report running the override, in id order. */
  overrideClusters(name: string, offset: number, limit: number): { total: number; items: { clusterId: string; version: string | null; runningVersion: string | null }[] } {
    const from = `FROM cluster_overrides o LEFT JOIN cluster_upgrade u ON u.cluster_id = o.cluster_id WHERE o.name = @name`;
    const total = (this.#db.prepare(`SELECT COUNT(*) AS n ${from}`).get({ name }) as { n: number }).n;
    const items = this.#db
      .prepare(`SELECT o.cluster_id AS clusterId, o.version AS version, u.running_version AS runningVersion ${from} ORDER BY o.cluster_id LIMIT @limit OFFSET @offset`)
      .all({ name, limit, offset }) as { clusterId: string; version: string | null; runningVersion: string | null }[];
    return { total, items };
  }
}
