// Availability as OCM's lease reads it: a cluster is Available while its
// heartbeats arrive, and Unknown (not False: the hub cannot tell a dead
// cluster from a dead link) once the lease ran out.
import type { Condition } from '../protocol/attempt.ts';
import type { Availability } from '../protocol/hub-api.ts';

export type { Availability };

export function availabilityOf(lastSeen: string | null, connectedAt: string | null, now: Date, leaseMs: number): Availability {
  if (lastSeen === null) return { status: 'Unknown', reason: 'NeverConnected', message: 'the agent has not connected yet', lastSeen: null, since: null };
  const seen = Date.parse(lastSeen);
  const expiresAt = seen + leaseMs;
  if (now.getTime() < expiresAt) {
    return { status: 'True', reason: 'LeaseRenewed', message: `heartbeats arriving; last seen ${lastSeen}`, lastSeen, since: connectedAt ?? lastSeen };
  }
  const silentS = Math.round((now.getTime() - seen) / 1000);
  return {
    status: 'Unknown',
    reason: 'LeaseExpired',
    message: `no heartbeat for ${silentS}s (lease ${Math.round(leaseMs / 1000)}s); last seen ${lastSeen}. The agent keeps working offline and reports when the link returns`,
    lastSeen,
    since: new Date(expiresAt).toISOString(),
  };
}

export function availableCondition(a: Availability, fallbackTime: string): Condition {
  return { type: 'Available', status: a.status, reason: a.reason, message: a.message, lastTransitionTime: a.since ?? fallbackTime };
}
