// The JSON an operator reads about a cluster and about the fleet, assembled
// from the store at request time (availability depends on the clock).
import { agentKeyFingerprint } from '../protocol/agent-identity.ts';
import type { Condition, UpgradeStatus } from '../protocol/attempt.ts';
import type { ClusterView, FleetSummary } from '../protocol/hub-api.ts';
import { availabilityOf, availableCondition } from './availability.ts';
import type { HubContext } from './hub-context.ts';
import type { ClusterRecord } from './store/cluster-repo.ts';

export type { ClusterView, FleetSummary };

const camel = /^[A-Za-z][A-Za-z0-9]*$/;

/**
 * Connected to this replica, or (several replicas) renewed its lease within
 * two heartbeats: the agent renews once per heartbeat and each replica
 * writes renewals once a second, so a live agent on another replica is never
 * older than that, and one that went away shows disconnected within it.
 */
export function isConnected(ctx: HubContext, c: ClusterRecord, now: Date): boolean {
  if (ctx.sessions.isConnected(c.id)) return true;
  return ctx.bus.distributed && c.lastSeen !== null && now.getTime() - Date.parse(c.lastSeen) <= 2 * ctx.heartbeatMs + 1000;
}

export async function clusterView(ctx: HubContext, c: ClusterRecord): Promise<ClusterView> {
  const now = ctx.now();
  const availability = availabilityOf(c.lastSeen, c.connectedAt, now, ctx.leaseMs);
  const [up, desired, keyConflicts] = await Promise.all([ctx.aggregate.upgrade(c.id), ctx.releases.latest(c.id), ctx.clusters.keyConflicts(c.id)]);
  const fallback = c.acceptedAt ?? c.requestedAt;
  const conditions: Condition[] = [availableCondition(availability, fallback)];

  let upgrade: ClusterView['upgrade'] = null;
  if (up?.status && up.phase) {
    upgrade = {
      status: up.status as UpgradeStatus,
      phase: up.phase,
      attemptId: up.attemptId,
      release: { name: up.releaseName, version: up.releaseVersion, revision: up.revision },
      stage: up.stage,
      reason: up.reason,
      message: up.message,
      at: up.at,
    };
    const status = up.status === 'Succeeded' ? 'True' : up.status === 'Failed' ? 'False' : 'Unknown';
    conditions.push({
      type: 'Upgraded',
      status,
      reason: up.reason !== null && camel.test(up.reason) ? up.reason : up.phase,
      message: up.message ?? `${up.releaseName ?? ''} ${up.releaseVersion ?? ''}: ${up.phase}`.trim(),
      lastTransitionTime: up.at ?? fallback,
    });
  }
  const refusal = up?.lastRefusal ?? null;
  if (refusal && desired && (refusal.revision === undefined || refusal.revision >= desired.revision)) {
    conditions.push({ type: 'ReleaseAccepted', status: 'False', reason: camel.test(refusal.reason) ? refusal.reason : 'Refused', message: refusal.message, lastTransitionTime: refusal.at ?? fallback });
  }

  return {
    id: c.id,
    registration: c.status,
    key: { fingerprint: c.publicKey === null ? null : agentKeyFingerprint(c.publicKey), legacyCredential: c.hasLegacyCredential, revokedAt: c.revokedAt },
    keyConflicts: keyConflicts.map(({ publicKey, ...rest }) => ({ fingerprint: agentKeyFingerprint(publicKey), ...rest })),
    labels: c.labels,
    requestedAt: c.requestedAt,
    acceptedAt: c.acceptedAt,
    agentVersion: c.agentVersion,
    kubernetesVersion: c.kubernetesVersion,
    targetInfrastructure: c.targetInfrastructure,
    components: c.inventory?.components ?? [],
    overrides: c.inventory?.overrides ?? [],
    lastSeen: c.lastSeen,
    connected: isConnected(ctx, c, now),
    availability,
    desiredRelease: desired ? { name: desired.name, version: desired.version, revision: desired.revision, issuedAt: desired.issuedAt, expiresAt: desired.expiresAt } : null,
    runningRelease: up?.runningName && up.runningVersion ? { name: up.runningName, version: up.runningVersion } : null,
    upgrade,
    lastRefusal: refusal,
    lastOverrideRefusal: up?.lastOverrideRefusal ?? null,
    reports: { ackedSeq: c.ackedSeq },
    conditions,
  };
}

export async function fleetSummary(ctx: HubContext): Promise<FleetSummary> {
  const views = await Promise.all((await ctx.clusters.list()).map((c) => clusterView(ctx, c)));
  const summary: FleetSummary = {
    clusters: { total: views.length, pending: 0, accepted: 0, revoked: 0 },
    byReleaseVersion: {},
    byUpgradeStatus: { InProgress: 0, Succeeded: 0, Failed: 0, None: 0 },
    byAvailability: { True: 0, Unknown: 0 },
    failed: [],
    overrides: [],
  };
  const overrides = new Map<string, FleetSummary['overrides'][number]>();
  for (const v of views) {
    if (v.registration === 'Pending' || v.registration === 'Revoked') {
      summary.clusters[v.registration === 'Pending' ? 'pending' : 'revoked']++;
      continue;
    }
    summary.clusters.accepted++;
    const running = v.runningRelease?.version ?? 'none';
    summary.byReleaseVersion[running] = (summary.byReleaseVersion[running] ?? 0) + 1;
    summary.byUpgradeStatus[v.upgrade?.status ?? 'None']++;
    summary.byAvailability[v.availability.status]++;
    if (v.upgrade?.status === 'Failed') {
      summary.failed.push({ clusterId: v.id, release: v.upgrade.release, phase: v.upgrade.phase, reason: v.upgrade.reason, message: v.upgrade.message, at: v.upgrade.at });
    }
    for (const o of v.overrides) {
      const key = JSON.stringify([o.name, o.component ?? null, o.version ?? null]);
      const entry = overrides.get(key) ?? { name: o.name, component: o.component ?? null, version: o.version ?? null, clusters: [] };
      entry.clusters.push(v.id);
      overrides.set(key, entry);
    }
  }
  summary.overrides = [...overrides.values()];
  return summary;
}
