// A fleet written straight into a hub database: clusters registered (some
// left pending), labelled, with attempts reported through the hub's own
// report store, and lease renewals, so the dashboard's aggregates have
// something of every state to count. Used by the dashboard's unit tests and
// its 10,000-cluster benchmark.
import pino from 'pino';
import type { AttemptPhase } from '../../src/protocol/attempt.ts';
import { ClusterRepo } from '../../src/hub/store/cluster-repo.ts';
import { openSqlite } from '../../src/hub/store/database.ts';
import { ReportRepo } from '../../src/hub/store/report-repo.ts';

export type SeedState = 'Succeeded' | 'InProgress' | 'Failed' | 'RolledBack' | 'WaitingForWindow' | 'PendingRegistration' | 'Unknown' | 'NoRelease';

export interface SeedCluster {
  id: string;
  state: SeedState;
  labels: Record<string, string>;
  /** The release version it runs (its last Succeeded attempt). */
  running?: string;
  /** The version its latest attempt is about. */
  attempting?: string;
  overrides?: { name: string; version: string; component: string }[];
}

const phaseOf: Record<Exclude<SeedState, 'PendingRegistration' | 'Unknown' | 'NoRelease'>, AttemptPhase[]> = {
  Succeeded: ['Upgrading', 'Verifying', 'Succeeded'],
  InProgress: ['Upgrading', 'Verifying'],
  Failed: ['Upgrading', 'Verifying', 'RollingBack', 'Failed'],
  RolledBack: ['Upgrading', 'Verifying', 'RollingBack', 'RolledBack'],
  WaitingForWindow: ['WaitingForWindow'],
};

const failing = new Set<AttemptPhase>(['RollingBack', 'RolledBack', 'Failed']);

/**
 * Writes the clusters into the database at dbPath. `now` is the hub's clock:
 * every cluster but the Unknown ones was last seen at `now`; Unknown ones an
 * hour before.
 */
export async function seedFleet(dbPath: string, clusters: readonly SeedCluster[], now: () => Date): Promise<void> {
  const db = openSqlite(dbPath);
  try {
    const store = new ClusterRepo(db, now);
    const earlier = new ClusterRepo(db, () => new Date(now().getTime() - 3_600_000));
    const reports = new ReportRepo(db, now, pino({ level: 'silent' }));
    await db.transaction(async () => {
      for (const c of clusters) {
        await store.requestRegistration({
          id: c.id,
          labels: c.labels,
          agentVersion: '0.1.0',
          publicKey: `seeded-key-${c.id}`,
          inventory: { components: [], kubernetesVersion: 'v1.33.0', targetInfrastructure: 'bare-metal', overrides: c.overrides ?? [] },
        });
        if (c.state === 'PendingRegistration') continue;
        await store.accept(c.id);
        (c.state === 'Unknown' ? earlier : store).touch(c.id);
        const entries: { seq: number; kind: string; body: unknown; createdAt: string }[] = [];
        const at = (i: number) => new Date(now().getTime() - 600_000 + i * 1000).toISOString();
        // A waiting cluster's window opens on the hour, a day and two hours from now (2030-01-03T02:00 on the tests' clock).
        const opensAt = new Date(Math.floor((now().getTime() + 26 * 3_600_000) / 3_600_000) * 3_600_000).toISOString();
        const push = (attempt: string, version: string, revision: number, phases: AttemptPhase[]) => {
          for (const phase of phases) {
            const i = entries.length;
            entries.push({
              seq: i + 1,
              kind: 'attempt-transition',
              body: {
                attemptId: attempt,
                release: { name: 'edge-addons', version, revision },
                phase,
                stage: 0,
                // As the engine reports them: the rollback's reason stays on the attempt to its end.
                reason: failing.has(phase) ? 'StageDeadlineExceeded' : phase === 'WaitingForWindow' ? 'OutsideWindow' : null,
                message: failing.has(phase)
                  ? 'stage 0 not healthy by its deadline: metrics-api 0/1 ready'
                  : phase === 'WaitingForWindow'
                    ? `waiting for a maintenance window: closed; the next window opens at ${opensAt}`
                    : null,
                at: at(i),
              },
              createdAt: at(i),
            });
          }
        };
        if (c.running) push(`${c.id}-a1`, c.running, 1, phaseOf.Succeeded);
        const latest = c.state === 'Unknown' || c.state === 'NoRelease' ? undefined : c.state;
        if (latest && !(latest === 'Succeeded' && c.running && (c.attempting ?? c.running) === c.running)) push(`${c.id}-a2`, c.attempting ?? c.running ?? '1.0.0', 2, phaseOf[latest]);
        if (entries.length > 0) await reports.ingest(c.id, 0, entries);
        // As agents report it on heartbeat: a waiting cluster's window is closed until the time its gate names.
        if (c.state !== 'Unknown') await store.setMaintenanceWindow(c.id, c.state === 'WaitingForWindow' ? { open: false, opensAt, closesAt: null } : { open: true, opensAt: null, closesAt: null });
      }
    });
    await store.flushLeases();
    await earlier.flushLeases();
  } finally {
    await db.close();
  }
}

/** n clusters in a fixed mix of states, versions and labels (region-0..9, ring canary/prod). */
export function fleetOf(n: number): SeedCluster[] {
  const states: SeedState[] = ['Succeeded', 'Succeeded', 'Succeeded', 'Succeeded', 'Succeeded', 'Succeeded', 'InProgress', 'Failed', 'RolledBack', 'WaitingForWindow', 'Unknown', 'PendingRegistration', 'NoRelease'];
  return Array.from({ length: n }, (_v, i) => {
    const state = states[i % states.length] as SeedState;
    return {
      id: `edge-${String(i).padStart(5, '0')}`,
      state,
      labels: { region: `region-${i % 10}`, ring: i % 50 === 0 ? 'canary' : 'prod' },
      ...(state !== 'NoRelease' && state !== 'PendingRegistration' ? { running: i % 3 === 0 ? '1.1.0' : '1.2.0', attempting: '1.3.0' } : {}),
      ...(i % 7 === 0 ? { overrides: [{ name: 'cve-dns', version: '1.2.0-hf1', component: 'dns' }] } : {}),
    };
  });
}
