// Live agent connections by cluster, so operator actions (accept, a new
// release, deregistration) reach a connected agent at once.
import type { HubMessage, Outgoing } from '../protocol/messages.ts';

export interface LiveSession {
  deliver(message: Outgoing<HubMessage>): void;
  close(code: number, reason: string): void;
}

export class SessionRegistry {
  readonly #agents = new Map<string, LiveSession>();
  readonly #registrants = new Map<string, LiveSession>();

  /** Returns the connection this one replaces: an agent reconnecting before the hub noticed the old socket died. */
  attachAgent(clusterId: string, session: LiveSession): LiveSession | undefined {
    const previous = this.#agents.get(clusterId);
    this.#agents.set(clusterId, session);
    return previous === session ? undefined : previous;
  }

  attachRegistrant(clusterId: string, session: LiveSession): void {
    this.#registrants.set(clusterId, session);
  }

  agent(clusterId: string): LiveSession | undefined {
    return this.#agents.get(clusterId);
  }

  registrant(clusterId: string): LiveSession | undefined {
    return this.#registrants.get(clusterId);
  }

  isConnected(clusterId: string): boolean {
    return this.#agents.has(clusterId);
  }

  detach(session: LiveSession): void {
    for (const map of [this.#agents, this.#registrants]) {
      for (const [id, s] of map) if (s === session) map.delete(id);
    }
  }
}
