// Folds reports into the per-cluster view an operator reads. Called only for
// reports that extend the acknowledged chain, in seq order, exactly once
// each, so the aggregate is the agent's history replayed in order.
import { parseReport } from '../../protocol/reports.ts';
import { upgradeStatusOf } from '../../protocol/attempt.ts';
import type { ReleaseRefusal, OverrideRefusal, TelemetryEvent } from '../../protocol/hub-api.ts';
import type { Sql } from './sql.ts';

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

/** Folds reports into the aggregate, inside the ingest's transaction. */
export class ReportApplier {
  readonly #sql: Sql;

  constructor(sql: Sql) {
    this.#sql = sql;
  }

  async #ensureRow(clusterId: string): Promise<void> {
    await this.#sql.run('INSERT INTO cluster_upgrade (cluster_id) VALUES (?) ON CONFLICT (cluster_id) DO NOTHING', [clusterId]);
  }

  /** Applies one report; returns why it was not applied, or null. */
  async apply(clusterId: string, seq: number, kind: string, body: unknown, receivedAt: string): Promise<string | null> {
    const parsed = parseReport(kind, body);
    if (!parsed.known) return `unknown report kind "${kind}" (from a newer agent?): stored, not aggregated`;
    if (!parsed.ok) return `invalid ${kind} report: ${parsed.issue}`;
    const sql = this.#sql;
    switch (parsed.kind) {
      case 'attempt-transition': {
        const t = parsed.body;
        await this.#ensureRow(clusterId);
        await sql.run(
          `UPDATE cluster_upgrade SET attempt_id = ?, release_name = ?, release_version = ?, revision = ?, phase = ?, status = ?,
             stage = ?, reason = ?, message = ?, at = ? WHERE cluster_id = ?`,
          [t.attemptId, t.release.name, t.release.version, t.release.revision, t.phase, upgradeStatusOf(t.phase), t.stage, t.reason, t.message, t.at, clusterId],
        );
        if (t.phase === 'Succeeded') await sql.run('UPDATE cluster_upgrade SET running_name = ?, running_version = ? WHERE cluster_id = ?', [t.release.name, t.release.version, clusterId]);
        return null;
      }
      case 'upgrade-completed': {
        // A credential writes only its own cluster's reports: an event naming
        // another cluster is kept for inspection and counted nowhere.
        if (parsed.body.cluster_id !== clusterId) return `upgrade-completed names cluster "${parsed.body.cluster_id}", not the sender "${clusterId}"`;
        await sql.run('INSERT INTO telemetry (cluster_id, seq, body, received_at) VALUES (?, ?, ?, ?)', [clusterId, seq, JSON.stringify(parsed.body), receivedAt]);
        return null;
      }
      case 'release-refused':
        await this.#ensureRow(clusterId);
        await sql.run('UPDATE cluster_upgrade SET last_refusal = ? WHERE cluster_id = ?', [JSON.stringify(parsed.body), clusterId]);
        return null;
      case 'report-quarantined':
        // Stored with the cluster's reports (GET /api/v1/clusters/:id/reports): the agent kept the report itself.
        return null;
      case 'override-refused':
        await this.#ensureRow(clusterId);
        await sql.run('UPDATE cluster_upgrade SET last_override_refusal = ? WHERE cluster_id = ?', [JSON.stringify(parsed.body), clusterId]);
        return null;
      case 'inventory': {
        const inv = parsed.body;
        await sql.run('UPDATE clusters SET inventory = ?, kubernetes_version = ?, target_infrastructure = ? WHERE id = ?', [JSON.stringify(inv), inv.kubernetesVersion, inv.targetInfrastructure, clusterId]);
        return null;
      }
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
