// Folds reports into the per-cluster view an operator reads. Called only for
// reports that extend the acknowledged chain, in seq order, exactly once
// each, so the aggregate is the agent's history replayed in order.
import { parseReport } from '../../protocol/reports.ts';
import { upgradeStatusOf } from '../../protocol/attempt.ts';
import type { Statement } from 'better-sqlite3';
import type { HubDatabase } from './database.ts';

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
  lastRefusal: { revision?: number; reason: string; message: string; at?: string } | null;
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
}

export interface TelemetryRecord {
  id: number;
  clusterId: string;
  seq: number;
  receivedAt: string;
  event: unknown;
}

/**
 * Folds reports into the aggregate. Statements are compiled once: every
 * report passes here, and better-sqlite3 compiles SQL on each prepare()
 * (about 0.1 ms apiece with this schema), which made compiling, not
 * writing, most of the cost of a report (bench/hub-replay.ts).
 */
export class ReportApplier {
  readonly #ensureRow: Statement;
  readonly #transition: Statement;
  readonly #running: Statement;
  readonly #telemetry: Statement;
  readonly #refusal: Statement;
  readonly #inventory: Statement;

  constructor(db: HubDatabase) {
    this.#ensureRow = db.prepare('INSERT OR IGNORE INTO cluster_upgrade (cluster_id) VALUES (?)');
    this.#transition = db.prepare(
      `UPDATE cluster_upgrade SET attempt_id = ?, release_name = ?, release_version = ?, revision = ?, phase = ?, status = ?,
         stage = ?, reason = ?, message = ?, at = ? WHERE cluster_id = ?`,
    );
    this.#running = db.prepare('UPDATE cluster_upgrade SET running_name = ?, running_version = ? WHERE cluster_id = ?');
    this.#telemetry = db.prepare('INSERT INTO telemetry (cluster_id, seq, body, received_at) VALUES (?, ?, ?, ?)');
    this.#refusal = db.prepare('UPDATE cluster_upgrade SET last_refusal = ? WHERE cluster_id = ?');
    this.#inventory = db.prepare('UPDATE clusters SET inventory = ?, kubernetes_version = ?, target_infrastructure = ? WHERE id = ?');
  }

  /** Applies one report; returns why it was not applied, or null. */
  apply(clusterId: string, seq: number, kind: string, body: unknown, receivedAt: string): string | null {
    const parsed = parseReport(kind, body);
    if (!parsed.known) return `unknown report kind "${kind}" (from a newer agent?): stored, not aggregated`;
    if (!parsed.ok) return `invalid ${kind} report: ${parsed.issue}`;
    switch (parsed.kind) {
      case 'attempt-transition': {
        const t = parsed.body;
        this.#ensureRow.run(clusterId);
        this.#transition.run(t.attemptId, t.release.name, t.release.version, t.release.revision, t.phase, upgradeStatusOf(t.phase), t.stage, t.reason, t.message, t.at, clusterId);
        if (t.phase === 'Succeeded') this.#running.run(t.release.name, t.release.version, clusterId);
        return null;
      }
      case 'upgrade-completed': {
        // A credential writes only its own cluster's reports: an event naming
        // another cluster is kept for inspection and counted nowhere.
        if (parsed.body.cluster_id !== clusterId) return `upgrade-completed names cluster "${parsed.body.cluster_id}", not the sender "${clusterId}"`;
        this.#telemetry.run(clusterId, seq, JSON.stringify(parsed.body), receivedAt);
        return null;
      }
      case 'release-refused':
        this.#ensureRow.run(clusterId);
        this.#refusal.run(JSON.stringify(parsed.body), clusterId);
        return null;
      case 'inventory': {
        const inv = parsed.body;
        this.#inventory.run(JSON.stringify(inv), inv.kubernetesVersion, inv.targetInfrastructure, clusterId);
        return null;
      }
    }
  }
}

export class AggregateRepo {
  readonly #db: HubDatabase;

  constructor(db: HubDatabase) {
    this.#db = db;
  }

  upgrade(clusterId: string): UpgradeRecord | undefined {
    const r = this.#db.prepare('SELECT * FROM cluster_upgrade WHERE cluster_id = ?').get(clusterId) as UpgradeRow | undefined;
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
    };
  }

  telemetry(opts: { clusterId?: string; afterId?: number; limit: number }): TelemetryRecord[] {
    const rows = this.#db
      .prepare(
        `SELECT id, cluster_id, seq, body, received_at FROM telemetry
         WHERE id > @after AND (@cluster IS NULL OR cluster_id = @cluster) ORDER BY id LIMIT @limit`,
      )
      .all({ after: opts.afterId ?? 0, cluster: opts.clusterId ?? null, limit: opts.limit }) as { id: number; cluster_id: string; seq: number; body: string; received_at: string }[];
    return rows.map((r) => ({ id: r.id, clusterId: r.cluster_id, seq: r.seq, receivedAt: r.received_at, event: JSON.parse(r.body) as unknown }));
  }
}
