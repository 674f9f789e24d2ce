// The hub's Prometheus metrics (GET /metrics), computed from the store at
// scrape time so they can never drift from what the API shows. One registry
// per hub (never prom-client's global one), so two hubs in one process (the
// tests) do not share series. The alert rules in manifests/hub/ read these.
import { Gauge, Registry } from 'prom-client';
import { availabilityOf } from './availability.ts';
import type { HubContext } from './hub-context.ts';
import { overrideClusters } from './rollout/override-delivery.ts';
import { rolloutStatus } from './rollout/rollout-operations.ts';
import { clusterRolloutStatuses } from '../protocol/rollout.ts';

/** Ended rollouts stay visible this long, so a dashboard sees how they ended. */
const ENDED_VISIBLE_MS = 24 * 3600_000;

export interface HubMetrics {
  contentType: string;
  render(): Promise<string>;
}

export function createHubMetrics(ctx: HubContext): HubMetrics {
  const registry = new Registry();
  const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[]) => new Gauge<L>({ name, help, labelNames, registers: [registry] });

  const rolloutClusters = gauge('fleetlet_hub_rollout_clusters', 'Clusters of a rollout per rollout status (ToApply, Progressing, Succeeded, Failed, TimedOut, Skipped)', ['rollout', 'status']);
  const rolloutUnknown = gauge('fleetlet_hub_rollout_unknown_clusters', 'Clusters of a rollout whose availability is Unknown', ['rollout']);
  const rolloutProgress = gauge('fleetlet_hub_rollout_progress_ratio', 'Succeeded clusters / all clusters of a rollout', ['rollout']);
  const rolloutPhase = gauge('fleetlet_hub_rollout_phase', '1 for the phase the rollout is in', ['rollout', 'phase', 'reason']);
  const rolloutFailures = gauge('fleetlet_hub_rollout_failures', 'Failed + TimedOut clusters of a rollout', ['rollout']);
  const rolloutMaxFailures = gauge('fleetlet_hub_rollout_max_failures', 'maxFailures of a rollout, as a count', ['rollout']);
  const rolloutExpectedEnd = gauge('fleetlet_hub_rollout_expected_end_timestamp_seconds', 'When the rollout is expected to end (unix seconds)', ['rollout']);
  const clusters = gauge('fleetlet_hub_clusters', 'Accepted clusters per availability', ['availability']);
  const unknownFor = gauge('fleetlet_hub_cluster_unknown_seconds', 'How long an Unknown cluster has been silent (only Unknown clusters)', ['cluster']);
  const upgradeFailed = gauge('fleetlet_hub_cluster_upgrade_failed', '1 for a cluster whose latest upgrade attempt failed or rolled back', ['cluster', 'release', 'version', 'reason']);
  const waitingForWindow = gauge('fleetlet_hub_cluster_waiting_for_window_seconds', 'How long a cluster has been waiting for its local maintenance window (only such clusters)', ['cluster', 'release', 'version']);
  const overrides = gauge('fleetlet_hub_override_clusters', 'Clusters running a hotfix override, and affected clusters missing it', ['override', 'state']);

  async function collect(): Promise<void> {
    const now = ctx.now().getTime();
    const views = [];
    for (const r of await ctx.rollouts.list()) {
      if (r.endedAt !== null && now - Date.parse(r.endedAt) > ENDED_VISIBLE_MS) continue;
      views.push(await rolloutStatus(ctx, r.name));
    }
    // Reset only once everything was read: a scrape never sees half the series.
    registry.resetMetrics();
    for (const v of views) {
      const r = { name: v.name };
      for (const s of clusterRolloutStatuses) rolloutClusters.set({ rollout: r.name, status: s }, v.counts[s]);
      rolloutUnknown.set({ rollout: r.name }, v.counts.unknown);
      rolloutProgress.set({ rollout: r.name }, v.counts.total === 0 ? 0 : v.counts.Succeeded / v.counts.total);
      rolloutPhase.set({ rollout: r.name, phase: v.phase, reason: v.reason ?? '' }, 1);
      rolloutFailures.set({ rollout: r.name }, v.limits.failures);
      rolloutMaxFailures.set({ rollout: r.name }, v.limits.maxFailures);
      if (v.expectedEndAt !== null) rolloutExpectedEnd.set({ rollout: r.name }, Date.parse(v.expectedEndAt) / 1000);
    }
    const byAvailability = { True: 0, Unknown: 0 };
    for (const c of await ctx.clusters.list()) {
      if (c.status !== 'Accepted') continue;
      const a = availabilityOf(c.lastSeen, c.connectedAt, new Date(now), ctx.leaseMs);
      byAvailability[a.status]++;
      if (a.status === 'Unknown') {
        const since = c.lastSeen ?? c.acceptedAt;
        if (since !== null) unknownFor.set({ cluster: c.id }, Math.max(0, (now - Date.parse(since)) / 1000));
      }
      const up = await ctx.aggregate.upgrade(c.id);
      if (up?.status === 'Failed') upgradeFailed.set({ cluster: c.id, release: up.releaseName ?? '', version: up.releaseVersion ?? '', reason: up.reason ?? up.phase ?? '' }, 1);
      if (up?.phase === 'WaitingForWindow' && up.at !== null) {
        waitingForWindow.set({ cluster: c.id, release: up.releaseName ?? '', version: up.releaseVersion ?? '' }, Math.max(0, (now - Date.parse(up.at)) / 1000));
      }
    }
    clusters.set({ availability: 'True' }, byAvailability.True);
    clusters.set({ availability: 'Unknown' }, byAvailability.Unknown);
    for (const o of await ctx.overrides.list()) {
      if (o.withdrawn) continue;
      for (const state of ['running', 'missing'] as const) overrides.set({ override: o.name, state }, (await overrideClusters(ctx, o.name, state)).clusters.length);
    }
  }

  return {
    contentType: registry.contentType,
    async render() {
      await collect();
      return registry.metrics();
    },
  };
}
