// Turns what the hub's aggregate says of a member into the planner's input:
// availability, and the outcome of what this rollout sent it.
import type { Inventory } from '../../protocol/inventory.ts';
import type { MemberRow } from '../store/rollout-repo.ts';
import type { ClusterState, Outcome } from './plan-wave.ts';

const ms = (iso: string | null): number | null => (iso === null ? null : Date.parse(iso));

/** The lease rule of availability.ts, without building messages: this runs for every member on every tick. */
export function isAvailable(lastSeen: string | null, now: number, leaseMs: number): boolean {
  return lastSeen !== null && now < Date.parse(lastSeen) + leaseMs;
}

/** Outcome of a release (or rollback) this rollout sent, from the latest attempt and refusal the agent reported. */
export function releaseOutcome(m: MemberRow): Outcome {
  if (m.registration === null) return { kind: 'Gone' };
  const sent = m.sentRevision;
  if (sent === null) return { kind: 'NotReported' };
  if (m.latestRevision !== null && m.latestRevision > sent) return { kind: 'Superseded' };
  if (m.lastRefusal !== null) {
    const refusal = JSON.parse(m.lastRefusal) as { revision?: number; reason: string; message: string; at?: string };
    if (refusal.revision === sent) return { kind: 'Failed', reason: refusal.reason, message: refusal.message, at: ms(refusal.at ?? null) };
  }
  if (m.upRevision === null || m.upRevision < sent) return { kind: 'NotReported' };
  if (m.upRevision > sent) return { kind: 'Superseded' };
  if (m.upStatus === 'Succeeded') return { kind: 'Succeeded', at: ms(m.upAt) };
  if (m.upStatus === 'Failed') return { kind: 'Failed', reason: m.upReason !== null && /^[A-Za-z][A-Za-z0-9]*$/.test(m.upReason) ? m.upReason : (m.upPhase ?? 'Failed'), message: m.upMessage, at: ms(m.upAt) };
  return { kind: 'InProgress', phase: m.upPhase ?? 'Pending' };
}

/**
 * Outcome of an override document: the agent reports the overrides it runs
 * in its inventory (hello and inventory reports). Running the name at the
 * sent version is success; for a withdrawal, no longer listing it is. The
 * agent reports no failure of an override, so a cluster that never applies
 * it times out against progressDeadline (required for override rollouts).
 */
export function overrideOutcome(m: MemberRow, name: string, version: string, withdraw: boolean): Outcome {
  if (m.registration === null) return { kind: 'Gone' };
  const sent = m.sentRevision;
  if (sent === null) return { kind: 'NotReported' };
  if (m.latestOverrideRevision !== null && m.latestOverrideRevision > sent) return { kind: 'Superseded' };
  const overrides = m.inventory === null ? [] : ((JSON.parse(m.inventory) as Inventory).overrides ?? []);
  const running = overrides.some((o) => o.name === name && (o.version === undefined || o.version === version));
  if (withdraw ? !overrides.some((o) => o.name === name) : running) return { kind: 'Succeeded', at: null };
  return { kind: 'NotReported' };
}

export function clusterState(m: MemberRow, outcome: Outcome, now: number, leaseMs: number): ClusterState {
  return {
    id: m.clusterId,
    group: m.group,
    available: m.registration !== null && isAvailable(m.lastSeen, now, leaseMs),
    sentAt: ms(m.sentAt),
    succeededAt: ms(m.succeededAt),
    skippedAt: ms(m.skippedAt),
    failure: m.failure === null ? null : (JSON.parse(m.failure) as ClusterState['failure']),
    outcome: m.sentRevision === null && m.registration === null ? { kind: 'Gone' } : outcome,
  };
}
