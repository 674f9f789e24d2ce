// Live agent connections by cluster, so operator actions (accept, a new
// release, deregistration) reach a connected agent at once, and so a right
// that ends (deregister, revoke, a new key) ends every connection that held
// it: a connection is bound to its cluster from the moment it names one it
// may speak for (bearer credential at the upgrade, a proven registration,
// a proven hello), not from its welcome.
import type { HubMessage, Outgoing } from '../protocol/messages.ts';

export interface LiveSession {
  deliver(message: Outgoing<HubMessage>): void;
  close(code: number, reason: string): void;
}

export class SessionRegistry {
  /** The welcomed connection of each cluster: where releases and overrides go. */
  readonly #agents = new Map<string, LiveSession>();
  /** Every connection bound to each cluster, in any state. */
  readonly #bound = new Map<string, Set<LiveSession>>();
  /** Connections waiting for an operator to accept their registration. */
  readonly #registrants = new Map<string, Set<LiveSession>>();
  /** The clusters each connection is bound to (one, in practice), so detach does not scan the fleet. */
  readonly #clustersOf = new Map<LiveSession, Set<string>>();
  /**
   * The newest connection epoch (ClusterRepo.recordHello) heard of per
   * cluster, here or from another replica. Connections are ordered by it, not
   * by when their welcome or another replica's hello event arrives: a late or
   * replayed event of an older connection must not end a newer one.
   */
  readonly #newestEpoch = new Map<string, number>();
  readonly #epochOf = new Map<LiveSession, number>();

  /**
   * Makes the session the cluster's connection unless a newer one (a larger
   * epoch) is known; returns the connection that must close: the one it
   * replaces (an agent reconnecting before the hub noticed the old socket
   * died), or the session itself when it is the older one.
   */
  attachAgent(clusterId: string, session: LiveSession, epoch = 0): LiveSession | undefined {
    const newest = this.#newestEpoch.get(clusterId);
    if (newest !== undefined && epoch < newest) return session;
    this.bind(clusterId, session);
    this.#newestEpoch.set(clusterId, epoch);
    this.#epochOf.set(session, epoch);
    const previous = this.#agents.get(clusterId);
    this.#agents.set(clusterId, session);
    return previous === session ? undefined : previous;
  }

  /**
   * Another replica welcomed the cluster's connection of this epoch: a
   * connection here with an older one closes (returned), a newer one stays.
   * Without an epoch (an event from a replica that predates them) the one here closes.
   */
  supersede(clusterId: string, epoch: number | undefined): LiveSession | undefined {
    if (epoch !== undefined) {
      if (epoch > (this.#newestEpoch.get(clusterId) ?? -1)) this.#newestEpoch.set(clusterId, epoch);
    }
    const current = this.#agents.get(clusterId);
    if (current === undefined) return undefined;
    if (epoch !== undefined && (this.#epochOf.get(current) ?? 0) >= epoch) return undefined;
    return current;
  }

  bind(clusterId: string, session: LiveSession): void {
    add(this.#bound, clusterId, session);
    let ids = this.#clustersOf.get(session);
    if (!ids) this.#clustersOf.set(session, (ids = new Set()));
    ids.add(clusterId);
  }

  attachRegistrant(clusterId: string, session: LiveSession): void {
    this.bind(clusterId, session);
    add(this.#registrants, clusterId, session);
  }

  agent(clusterId: string): LiveSession | undefined {
    return this.#agents.get(clusterId);
  }

  registrants(clusterId: string): LiveSession[] {
    return [...(this.#registrants.get(clusterId) ?? [])];
  }

  isConnected(clusterId: string): boolean {
    return this.#agents.has(clusterId);
  }

  /** Every connection bound to the cluster, whatever its state. */
  bound(clusterId: string): LiveSession[] {
    return [...(this.#bound.get(clusterId) ?? [])];
  }

  /** Ends every connection bound to the cluster; `notify` tells each why first. */
  closeCluster(clusterId: string, code: number, reason: string, notify?: (s: LiveSession) => void): number {
    const sessions = this.bound(clusterId);
    for (const s of sessions) {
      notify?.(s);
      s.close(code, reason);
      this.#clustersOf.get(s)?.delete(clusterId);
    }
    // close() detaches; a session that does not (a test double) must not keep the right either.
    this.#bound.delete(clusterId);
    this.#registrants.delete(clusterId);
    this.#newestEpoch.delete(clusterId);
    if (sessions.length > 0 || this.#agents.has(clusterId)) this.#agents.delete(clusterId);
    return sessions.length;
  }

  detach(session: LiveSession): void {
    const ids = this.#clustersOf.get(session);
    this.#epochOf.delete(session);
    if (!ids) return;
    this.#clustersOf.delete(session);
    for (const id of ids) {
      if (this.#agents.get(id) === session) this.#agents.delete(id);
      for (const map of [this.#bound, this.#registrants]) {
        const set = map.get(id);
        set?.delete(session);
        if (set?.size === 0) map.delete(id);
      }
    }
  }
}

function add(map: Map<string, Set<LiveSession>>, id: string, s: LiveSession): void {
  let set = map.get(id);
  if (!set) map.set(id, (set = new Set()));
  set.add(s);
}
