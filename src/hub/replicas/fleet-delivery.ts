// Pushing something to a cluster's agent wherever it is connected: on this
// replica directly, otherwise through the replica bus (the replica holding
// the connection reads the committed state and pushes it). Callers push only
// after the change committed, or publish inside the transaction that makes
// it (the event then leaves with the COMMIT).
import { closeCodes } from '../../protocol/messages.ts';
import type { HubMessage, Outgoing } from '../../protocol/messages.ts';
import type { HubContext } from '../hub-context.ts';
import type { LiveSession } from '../session-registry.ts';
import type { ReplicaEvent } from './replica-bus.ts';

/** True when the agent is connected to this replica and was sent the release now. */
export async function pushRelease(ctx: HubContext, clusterId: string, envelope: unknown): Promise<boolean> {
  const agent = ctx.sessions.agent(clusterId);
  if (agent) {
    agent.deliver({ type: 'release', envelope });
    return true;
  }
  await ctx.bus.publish({ t: 'release', c: clusterId });
  return false;
}

export async function pushOverride(ctx: HubContext, clusterId: string, revision: number, envelope: unknown): Promise<boolean> {
  const agent = ctx.sessions.agent(clusterId);
  if (agent) {
    agent.deliver({ type: 'override', envelope });
    return true;
  }
  await ctx.bus.publish({ t: 'override', c: clusterId, r: revision });
  return false;
}

/** Registrants waiting on this replica were told; those on others are told through the bus. */
export async function pushAccepted(ctx: HubContext, clusterId: string): Promise<boolean> {
  const waiting = ctx.sessions.registrants(clusterId);
  for (const s of waiting) s.deliver({ type: 'registration', status: 'accepted' });
  await ctx.bus.publish({ t: 'accepted', c: clusterId });
  return waiting.length > 0;
}

/** Ends every connection of the cluster on every replica; `notice` is sent to each first. Returns how many were on this replica. */
export async function closeClusterEverywhere(ctx: HubContext, clusterId: string, code: number, reason: string, notice?: (s: LiveSession) => Outgoing<HubMessage>): Promise<number> {
  const closed = ctx.sessions.closeCluster(clusterId, code, reason, notice && ((s) => s.deliver(notice(s))));
  // Another replica's connection gets the notice an agent needs most: the one for an accepted cluster.
  const remote = notice?.({ deliver: () => {}, close: () => {} });
  await ctx.bus.publish({ t: 'close', c: clusterId, code, reason, ...(remote ? { notice: remote } : {}) });
  return closed;
}

/** What a replica does with an event another one published. */
export async function handleReplicaEvent(ctx: HubContext, event: ReplicaEvent, rolloutInput: () => void): Promise<void> {
  switch (event.t) {
    case 'release': {
      const agent = ctx.sessions.agent(event.c);
      if (!agent) return;
      const latest = await ctx.releases.latest(event.c);
      if (latest) agent.deliver({ type: 'release', envelope: latest.envelope });
      return;
    }
    case 'override': {
      const agent = ctx.sessions.agent(event.c);
      if (!agent) return;
      const doc = await ctx.overrides.document(event.c, event.r);
      if (doc) agent.deliver({ type: 'override', envelope: doc.envelope });
      return;
    }
    case 'accepted':
      for (const s of ctx.sessions.registrants(event.c)) s.deliver({ type: 'registration', status: 'accepted' });
      return;
    case 'close':
      ctx.sessions.closeCluster(event.c, event.code, event.reason, event.notice === undefined ? undefined : (s) => s.deliver(event.notice as Outgoing<HubMessage>));
      return;
    case 'hello':
      // The agent is welcome on another replica now: a connection here is an old one.
      // Only an older connection: the event may be late or replayed, and the connection here newer.
      ctx.sessions.supersede(event.c, event.e)?.close(closeCodes.superseded, 'superseded by a newer connection on another replica');
      return;
    case 'input':
      rolloutInput();
      return;
    case 'changed':
      // For the dashboard alone, which hears every event (start-hub.ts).
      return;
  }
}
