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
// One code path on both backends (store/sql.ts): the label and override
// rows are kept by SQLite triggers (migrations.ts) and PL/pgSQL ones
// (postgres-migrations.ts) alike, and the few spellings that differ are
// chosen here from the dialect.
//
// Live updates (fingerprint) read a change counter the same triggers bump on
// every write the dashboard shows (not on lease renewals), plus the range of
// the lease index that holds offline clusters: one small query, whatever the
// fleet's size, read when something may have changed (dashboard/change-feed.ts)
// and by every overview request; it sees other replicas' writes too.
import type { MaintenanceWindow } from '../../protocol/messages.ts';
import type { Sql, SqlValue } from './sql.ts';

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
  /** The agent's next maintenance window as it last reported it (null: never reported; older agents). */
  maintenanceWindow: MaintenanceWindow | null;
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
  maintenance_window: string | null;
}

const STATE_SQL = `CASE
    WHEN c.status = 'Pending' THEN 'PendingRegistration'
    WHEN c.last_seen IS NULL OR c.last_seen < @cutoff THEN 'Unknown'
    WHEN u.phase = 'RolledBack' THEN 'RolledBack'
    WHEN u.status IS NULL THEN 'NoRelease'
    ELSE u.status END`;

const CLUSTER_COLUMNS = `c.id, ${STATE_SQL} AS state, c.status AS registration, c.labels, c.last_seen,
    u.running_name, u.running_version, u.phase, u.stage, u.reason, u.message, u.release_version, u.at, c.maintenance_window`;

const FROM = 'FROM clusters c LEFT JOIN cluster_upgrade u ON u.cluster_id = c.id';

function labelWhere(filter: LabelFilter, params: Record<string, SqlValue>): string {
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
  maintenanceWindow: r.maintenance_window === null ? null : (JSON.parse(r.maintenance_window) as MaintenanceWindow),
});

/** `@name` placeholders (each query's parameters by name) as the Sql interface's positional `?` and their values in order. */
function bind(sql: string, params: Record<string, SqlValue>): [string, SqlValue[]] {
  const values: SqlValue[] = [];
  const text = sql.replace(/@(\w+)/g, (_m, name: string) => {
    if (!(name in params)) throw new TypeError(`no value for @${name}`);
    values.push(params[name] ?? null);
    return '?';
  });
  return [text, values];
}

export class DashboardRepo {
  readonly #sql: Sql;
  /** Clusters whose id contains @search. */
  readonly #contains: string;
  /** Joins cluster_upgrade to clusters in that order: SQLite's CROSS JOIN keeps its planner from starting at the clusters (it cannot know how few match); PostgreSQL's planner needs no hint. */
  readonly #attemptsFirst: string;
  readonly #changes: string;

  constructor(sql: Sql) {
    this.#sql = sql;
    const sqlite = sql.dialect.name === 'sqlite';
    this.#contains = sqlite ? 'instr(c.id, @search) > 0' : 'strpos(c.id, @search) > 0';
    this.#attemptsFirst = `FROM cluster_upgrade u ${sqlite ? 'CROSS JOIN' : 'JOIN'} clusters c ON c.id = u.cluster_id`;
    // A PostgreSQL sequence is not transactional: read by any replica, bumped by every writer without a lock on a shared row.
    this.#changes = sqlite ? '(SELECT n FROM dashboard_changes)' : '(SELECT last_value + CASE WHEN is_called THEN 1 ELSE 0 END FROM dashboard_changes)';
  }

  #all<T>(sql: string, params: Record<string, SqlValue>): Promise<T[]> {
    return this.#sql.all<T>(...bind(sql, params));
  }

  #get<T>(sql: string, params: Record<string, SqlValue>): Promise<T | undefined> {
    return this.#sql.get<T>(...bind(sql, params));
  }

  /**
   * Changes whenever anything the dashboard shows changes, not on mere
   * heartbeats: the change counter, and how many clusters are offline and
   * the newest of them (a lease expires without any write).
   */
  async fingerprint(cutoff: string): Promise<string> {
    const r = await this.#get<{ n: number; offline: number; newest: string | null }>(
      `SELECT ${this.#changes} AS n, COUNT(*) AS offline, MAX(last_seen) AS newest
       FROM clusters WHERE status = 'Accepted' AND (last_seen IS NULL OR last_seen < @cutoff)`,
      { cutoff },
    );
    return `${r?.n ?? 0}:${r?.offline ?? 0}:${r?.newest ?? ''}`;
  }

  /** Clusters per display state (see the file comment). */
  async countByState(cutoff: string, filter: LabelFilter): Promise<Record<ClusterState, number>> {
    const params: Record<string, SqlValue> = { cutoff };
    const where = labelWhere(filter, params);
    const rows = await this.#all<{ state: ClusterState; n: number }>(`SELECT ${STATE_SQL} AS state, COUNT(*) AS n ${FROM} ${where ? `WHERE ${where}` : ''} GROUP BY 1`, params);
    const out = Object.fromEntries(clusterStates.map((s) => [s, 0])) as Record<ClusterState, number>;
    for (const r of rows) out[r.state] = r.n;
    return out;
  }

  /** Accepted clusters per release they run (their last Succeeded one); null name and version before the first. */
  countByRunningRelease(filter: LabelFilter): Promise<{ name: string | null; version: string | null; clusters: number }[]> {
    const params: Record<string, SqlValue> = {};
    const where = labelWhere(filter, params);
    return this.#all(
      `SELECT u.running_name AS name, u.running_version AS version, COUNT(*) AS clusters ${FROM}
       WHERE c.status = 'Accepted' ${where ? `AND ${where}` : ''} GROUP BY 1, 2 ORDER BY clusters DESC, name, version LIMIT 50`,
      params,
    );
  }

  /**
   * A page of clusters in id order. `states` narrows to those display states,
   * `phase` to an attempt phase, `search` to ids containing it; `order`
   * 'recent' lists clusters with an attempt, newest attempt first.
   * `total`: a count the caller already has (countByState's), which saves a scan.
   */
  async clusters(o: { cutoff: string; filter: LabelFilter; states?: readonly ClusterState[]; phase?: string; search?: string; order?: 'id' | 'recent' | 'lastSeen'; offset: number; limit: number; total?: number }): Promise<{ total: number; items: ClusterRow[] }> {
    const params: Record<string, SqlValue> = { cutoff: o.cutoff };
    const conds: string[] = [];
    const labels = labelWhere(o.filter, params);
    if (labels) conds.push(labels);
    if (o.states && o.states.length > 0) conds.push(statesWhere(o.states));
    if (o.phase !== undefined) {
      conds.push('u.phase = @phase');
      params.phase = o.phase;
    }
    if (o.search) {
      conds.push(this.#contains);
      params.search = o.search;
    }
    const where = conds.length > 0 ? `WHERE ${conds.join(' AND ')}` : '';
    // Newest attempts first: only clusters with an attempt, read from the attempts' index on (status or phase, time) newest first, stopping at the page's end.
    const from = o.order === 'recent' ? this.#attemptsFirst : FROM;
    const order = o.order === 'recent' ? 'u.at DESC, c.id' : o.order === 'lastSeen' ? 'c.last_seen DESC, c.id' : 'c.id';
    const total = o.total ?? (await this.#get<{ n: number }>(`SELECT COUNT(*) AS n ${from} ${where}`, params))?.n ?? 0;
    const rows = await this.#all<RawClusterRow>(`SELECT ${CLUSTER_COLUMNS} ${from} ${where} ORDER BY ${order} LIMIT @limit OFFSET @offset`, { ...params, limit: o.limit, offset: o.offset });
    return { total, items: rows.map(toRow) };
  }

  /** One cluster with its display state. */
  async cluster(id: string, cutoff: string): Promise<ClusterRow | undefined> {
    const r = await this.#get<RawClusterRow>(`SELECT ${CLUSTER_COLUMNS} ${FROM} WHERE c.id = @id`, { id, cutoff });
    return r && toRow(r);
  }

  /** The most common label pairs, for the label filter's suggestions. */
  labelPairs(limit: number): Promise<{ key: string; value: string; clusters: number }[]> {
    return this.#all(`SELECT key, value, COUNT(*) AS clusters FROM cluster_labels GROUP BY 1, 2 ORDER BY clusters DESC, key, value LIMIT @limit`, { limit });
  }

  /** The cluster's newest attempt-transition reports, newest first. */
  async transitions(clusterId: string, limit: number): Promise<TransitionRow[]> {
    const rows = await this.#all<{ seq: number; created_at: string; received_at: string; body: string }>(
      `SELECT seq, created_at, received_at, body FROM reports
       WHERE cluster_id = @clusterId AND kind = 'attempt-transition' AND problem IS NULL ORDER BY seq DESC LIMIT @limit`,
      { clusterId, limit },
    );
    return rows.map((r) => ({ seq: r.seq, createdAt: r.created_at, receivedAt: r.received_at, body: JSON.parse(r.body) as unknown }));
  }

  /** Rollouts the cluster belongs to, newest first. */
  async memberships(clusterId: string): Promise<{ name: string; phase: string; createdAt: string }[]> {
    const rows = await this.#all<{ name: string; phase: string; created_at: string }>(
      `SELECT r.name, r.phase, r.created_at FROM rollout_clusters rc JOIN rollouts r ON r.name = rc.rollout
       WHERE rc.cluster_id = @clusterId ORDER BY r.created_at DESC LIMIT 20`,
      { clusterId },
    );
    return rows.map((r) => ({ name: r.name, phase: r.phase, createdAt: r.created_at }));
  }

  /** Every override name (and version) clusters report running, with how many run it. */
  overrideUsage(): Promise<OverrideUsage[]> {
    return this.#all(`SELECT name, version, component, COUNT(*) AS clusters FROM cluster_overrides GROUP BY 1, 2, 3 ORDER BY name, version`, {});
  }

  /** A page of the clusters that report running the override, in id order. */
  async overrideClusters(name: string, offset: number, limit: number): Promise<{ total: number; items: { clusterId: string; version: string | null; runningVersion: string | null }[] }> {
    const from = `FROM cluster_overrides o LEFT JOIN cluster_upgrade u ON u.cluster_id = o.cluster_id WHERE o.name = @name`;
    const total = (await this.#get<{ n: number }>(`SELECT COUNT(*) AS n ${from}`, { name }))?.n ?? 0;
    // Quoted: PostgreSQL folds unquoted names to lower case.
    const items = await this.#all<{ clusterId: string; version: string | null; runningVersion: string | null }>(
      `SELECT o.cluster_id AS "clusterId", o.version AS version, u.running_version AS "runningVersion" ${from} ORDER BY o.cluster_id LIMIT @limit OFFSET @offset`,
      { name, limit, offset },
    );
    return { total, items };
  }
}
