// Folds reports into the per-cluster view an operator reads. Called only for
// reports that extend the acknowledged chain, in seq order, exactly once
// each, so the aggregate is the agent's history replayed in order.
import { parseReport } from '../../protocol/reports.ts';
import { upgradeStatusOf } from '../../protocol/attempt.ts';
import type { ReleaseRefusal, OverrideRefusal, TelemetryEvent } from '../../protocol/hub-api.ts';
import type { Sql, SqlValue } from './sql.ts';

export interface UpgradeRecord {
  attemptId: string | null;
  releaseName: string | null;
  releaseVersion: string | null;
  revision: number | null;
  phase: string | null;
  status: string | null;
  stage: number | null;
  reason: string | null;
  message: string | null;
  at: string | null;
  runningName: string | null;
  runningVersion: string | null;
  lastRefusal: ReleaseRefusal | null;
  lastOverrideRefusal: OverrideRefusal | null;
}

interface UpgradeRow {
  attempt_id: string | null;
  release_name: string | null;
  release_version: string | null;
  revision: number | null;
  phase: string | null;
  status: string | null;
  stage: number | null;
  reason: string | null;
  message: string | null;
  at: string | null;
  running_name: string | null;
  running_version: string | null;
  last_refusal: string | null;
  last_override_refusal: string | null;
}

/** The API's answer is the event as stored (src/protocol/hub-api.ts). */
export type TelemetryRecord = TelemetryEvent;

/** What one cluster's applied reports leave in the aggregate: the last value of each group of columns, and the telemetry rows. */
interface ClusterFold {
  /** attempt_id, release_name, release_version, revision, phase, status, stage, reason, message, at */
  attempt?: SqlValue[];
  running?: [name: string, version: string];
  lastRefusal?: string;
  lastOverrideRefusal?: string;
  inventory?: { json: string; kubernetesVersion: string | null; targetInfrastructure: string | null };
  telemetry: { seq: number; body: string; receivedAt: string }[];
}

const ATTEMPT_COLUMNS = ['attempt_id', 'release_name', 'release_version', 'revision', 'phase', 'status', 'stage', 'reason', 'message', 'at'] as const;

/** Rows per multi-row statement: at most 11 parameters each, well under either backend's limit. */
const WRITE_CHUNK = 500;

/**
 * Folds reports into the aggregate, inside the ingest's transaction, for
 * many clusters at once: add() each applied report in seq order, then
 * write() once. Each report kind sets its own group of columns (the
 * attempt's, the running release, the last refusals, the inventory), so
 * the last report of a group decides its values: writing each group's last
 * value once leaves exactly the rows that applying the reports one by one
 * did, with a few statements for all the clusters instead of a few for
 * each report (on PostgreSQL each statement is a round trip).
 */
export class AggregateFold {
  readonly #byCluster = new Map<string, ClusterFold>();

  #of(clusterId: string): ClusterFold {
    let f = this.#byCluster.get(clusterId);
    if (f === undefined) {
      f = { telemetry: [] };
      this.#byCluster.set(clusterId, f);
    }
    return f;
  }

  /** Folds one report in; returns why it was not applied, or null. */
  add(clusterId: string, seq: number, kind: string, body: unknown, receivedAt: string): string | null {
    const parsed = parseReport(kind, body);
    if (!parsed.known) return `unknown report kind "${kind}" (from a newer agent?): stored, not aggregated`;
    if (!parsed.ok) return `invalid ${kind} report: ${parsed.issue}`;
    switch (parsed.kind) {
      case 'attempt-transition': {
        const t = parsed.body;
        const f = this.#of(clusterId);
        f.attempt = [t.attemptId, t.release.name, t.release.version, t.release.revision, t.phase, upgradeStatusOf(t.phase), t.stage, t.reason, t.message, t.at];
        if (t.phase === 'Succeeded') f.running = [t.release.name, t.release.version];
        return null;
      }
      case 'upgrade-completed':
        // A credential writes only its own cluster's reports: an event naming
        // another cluster is kept for inspection and counted nowhere.
        if (parsed.body.cluster_id !== clusterId) return `upgrade-completed names cluster "${parsed.body.cluster_id}", not the sender "${clusterId}"`;
        this.#of(clusterId).telemetry.push({ seq, body: JSON.stringify(parsed.body), receivedAt });
        return null;
      case 'release-refused':
        this.#of(clusterId).lastRefusal = JSON.stringify(parsed.body);
        return null;
      case 'report-quarantined':
        // Stored with the cluster's reports (GET /api/v1/clusters/:id/reports): the agent kept the report itself.
        return null;
      case 'override-refused':
        this.#of(clusterId).lastOverrideRefusal = JSON.stringify(parsed.body);
        return null;
      case 'inventory': {
        const inv = parsed.body;
        this.#of(clusterId).inventory = { json: JSON.stringify(inv), kubernetesVersion: inv.kubernetesVersion, targetInfrastructure: inv.targetInfrastructure };
        return null;
      }
    }
  }

  /** Writes what add() folded: one statement per group of columns for all clusters (per cluster for inventories, which are rare). */
  async write(sql: Sql): Promise<void> {
    const folds = [...this.#byCluster];
    const upsert = async (columns: readonly string[], rows: SqlValue[][]): Promise<void> => {
      for (let i = 0; i < rows.length; i += WRITE_CHUNK) {
        const chunk = rows.slice(i, i + WRITE_CHUNK);
        const one = `(${['cluster_id', ...columns].map(() => '?').join(', ')})`;
        await sql.run(
          `INSERT INTO cluster_upgrade (cluster_id, ${columns.join(', ')}) VALUES ${chunk.map(() => one).join(', ')}
           ON CONFLICT (cluster_id) DO UPDATE SET ${columns.map((c) => `${c} = excluded.${c}`).join(', ')}`,
          chunk.flat(),
        );
      }
    };
    await upsert(ATTEMPT_COLUMNS, folds.flatMap(([id, f]) => (f.attempt ? [[id, ...f.attempt]] : [])));
    await upsert(['running_name', 'running_version'], folds.flatMap(([id, f]) => (f.running ? [[id, ...f.running]] : [])));
    await upsert(['last_refusal'], folds.flatMap(([id, f]) => (f.lastRefusal !== undefined ? [[id, f.lastRefusal]] : [])));
    await upsert(['last_override_refusal'], folds.flatMap(([id, f]) => (f.lastOverrideRefusal !== undefined ? [[id, f.lastOverrideRefusal]] : [])));
    for (const [id, f] of folds) {
      if (f.inventory) await sql.run('UPDATE clusters SET inventory = ?, kubernetes_version = ?, target_infrastructure = ? WHERE id = ?', [f.inventory.json, f.inventory.kubernetesVersion, f.inventory.targetInfrastructure, id]);
    }
    // In (cluster, seq) order, as applying them one by one inserted them.
    const telemetry = folds.flatMap(([id, f]) => f.telemetry.map((t) => [id, t.seq, t.body, t.receivedAt]));
    for (let i = 0; i < telemetry.length; i += WRITE_CHUNK) {
      const chunk = telemetry.slice(i, i + WRITE_CHUNK);
      await sql.run(`INSERT INTO telemetry (cluster_id, seq, body, received_at) VALUES ${chunk.map(() => '(?, ?, ?, ?)').join(', ')}`, chunk.flat());
    }
  }
}

export class AggregateRepo {
  readonly #sql: Sql;

  constructor(sql: Sql) {
    this.#sql = sql;
  }

  async upgrade(clusterId: string): Promise<UpgradeRecord | undefined> {
    const r = await this.#sql.get<UpgradeRow>('SELECT * FROM cluster_upgrade WHERE cluster_id = ?', [clusterId]);
    if (!r) return undefined;
    return {
      attemptId: r.attempt_id,
      releaseName: r.release_name,
      releaseVersion: r.release_version,
      revision: r.revision,
      phase: r.phase,
      status: r.status,
      stage: r.stage,
      reason: r.reason,
      message: r.message,
      at: r.at,
      runningName: r.running_name,
      runningVersion: r.running_version,
      lastRefusal: r.last_refusal === null ? null : (JSON.parse(r.last_refusal) as UpgradeRecord['lastRefusal']),
      lastOverrideRefusal: r.last_override_refusal === null ? null : (JSON.parse(r.last_override_refusal) as UpgradeRecord['lastOverrideRefusal']),
    };
  }

  async telemetry(opts: { clusterId?: string | undefined; afterId?: number; limit: number }): Promise<TelemetryRecord[]> {
    const cluster = opts.clusterId === undefined ? '' : ' AND cluster_id = ?';
    const rows = await this.#sql.all<{ id: number; cluster_id: string; seq: number; body: string; received_at: string }>(
      `SELECT id, cluster_id, seq, body, received_at FROM telemetry WHERE id > ?${cluster} ORDER BY id LIMIT ?`,
      opts.clusterId === undefined ? [opts.afterId ?? 0, opts.limit] : [opts.afterId ?? 0, opts.clusterId, opts.limit],
    );
    return rows.map((r) => ({ id: r.id, clusterId: r.cluster_id, seq: r.seq, receivedAt: r.received_at, event: JSON.parse(r.body) as unknown }));
  }
}
