// Who was cut off for abusing a connection's budget (connection-budget.ts),
// and how long they stay out. A budget bounds what one connection costs; a
// flooder that reconnects at once after each cut-off would still cost the
// hub a TCP accept, a WebSocket handshake, a session and a few refused
// frames per connection, hundreds of times a second. So a cut-off also
// bans its offender: new connections are refused at the HTTP upgrade,
// before the handshake and before anything is parsed, for a back-off that
// doubles with each offence (first 1 s, then 2, 4, … up to 15 min) and
// starts over once the offender has kept quiet for an hour.
//
// The offender is an address for a connection that never proved a cluster's
// key, and the cluster for one that did (agent-session.ts): an address
// can stand for many clusters behind one NAT, and an agent that misbehaves
// after proving its key is answerable by that key, so its neighbours keep
// their address (docs/security.md, "Bans").
//
// A banned address is told why (429 Banned, Retry-After) on its first few
// attempts; one that keeps knocking during its ban is then dropped as its
// TCP connection is accepted (BannedAddresses, a net.BlockList), before
// Node makes a socket or parses a byte: a flooder reconnecting in a loop
// costs the hub an accept and a close, and almost no memory.
//
// Memory is bounded: at most `maxEntries` offenders are remembered, the one
// that offended longest ago is forgotten first.

import { BlockList, type IPVersion, type SocketAddress } from 'node:net';

export interface AbuseBanOptions {
  /** The first ban. Default 1 s: an honest agent that tripped a budget once loses almost nothing. */
  firstBanMs: number;
  /** Bans double per offence up to this. Default 15 min. */
  maxBanMs: number;
  /** An offender quiet this long after its ban ended starts over at firstBanMs. Default 1 h. */
  forgetAfterMs: number;
  /** Offenders remembered at most. Default 10,000. */
  maxEntries: number;
  /** Attempts of a banned address answered 429 (with the reason) before the rest of its ban drops it at accept. Default 10. */
  informedRefusals: number;
}

export const defaultAbuseBanOptions: AbuseBanOptions = {
  firstBanMs: 1_000,
  maxBanMs: 15 * 60_000,
  forgetAfterMs: 60 * 60_000,
  maxEntries: 10_000,
  informedRefusals: 10,
};

interface Entry {
  offences: number;
  bannedUntil: number;
  /** Attempts refused with an answer during the current ban. */
  refusals: number;
}

/** What a ban is on: a source address (a connection that never authenticated) or a cluster (one that proved its key). */
export type Offender = { kind: 'address'; address: string } | { kind: 'cluster'; clusterId: string };

export class AbuseBans {
  readonly #now: () => Date;
  readonly #o: AbuseBanOptions;
  readonly #entries = new Map<string, Entry>();

  constructor(now: () => Date, o: Partial<AbuseBanOptions> = {}) {
    this.#now = now;
    this.#o = { ...defaultAbuseBanOptions, ...o };
  }

  /** Records an offence; returns how long the offender is now banned (ms). */
  ban(offender: Offender): number {
    const key = keyOf(offender);
    const now = this.#now().getTime();
    const previous = this.#live(key, now);
    const offences = (previous?.offences ?? 0) + 1;
    const ms = Math.min(this.#o.maxBanMs, this.#o.firstBanMs * 2 ** Math.min(offences - 1, 40));
    // Re-inserted, so the Map's order is the order of last offence (the oldest is evicted first).
    this.#entries.delete(key);
    if (this.#entries.size >= this.#o.maxEntries) {
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
    this.#entries.set(key, { offences, bannedUntil: now + ms, refusals: 0 });
    return ms;
  }

  /** An attempt of a banned offender was refused with an answer (429 Banned); counted towards dropping it at accept. */
  refused(offender: Offender): void {
    const e = this.#entries.get(keyOf(offender));
    if (e !== undefined) e.refusals++;
  }

  /** Whether a connection from the address is to be dropped as it is accepted: banned, and told why often enough already. */
  dropsAtAccept(address: string): boolean {
    const now = this.#now().getTime();
    const e = this.#live(keyOf({ kind: 'address', address }), now);
    if (e === undefined || e.bannedUntil <= now || e.refusals < this.#o.informedRefusals) return false;
    this.dropped++;
    return true;
  }

  /** Connections dropped at accept so far (for tests and the benchmark). */
  dropped = 0;

  /** Milliseconds until the offender may connect again; 0 when it may now (or is unknown). */
  retryAfterMs(offender: Offender | undefined): number {
    if (offender === undefined) return 0;
    const now = this.#now().getTime();
    const e = this.#live(keyOf(offender), now);
    return e === undefined ? 0 : Math.max(0, e.bannedUntil - now);
  }

  /** Offenders remembered now (for tests and the benchmark). */
  get size(): number {
    return this.#entries.size;
  }

  #live(key: string, now: number): Entry | undefined {
    const e = this.#entries.get(key);
    if (e !== undefined && now - e.bannedUntil >= this.#o.forgetAfterMs) {
      this.#entries.delete(key);
      return undefined;
    }
    return e;
  }
}

function keyOf(o: Offender): string {
  // Prefixed: a cluster id can never be mistaken for an address, nor the reverse.
  return o.kind === 'address' ? `a:${o.address}` : `c:${o.clusterId}`;
}

/**
 * The hub server's block list (net.Server's `blockList` option): Node asks
 * it about every accepted connection before it makes a socket, and closes
 * the ones it blocks. Its answers are the bans' (which expire), not rules
 * added for good as a plain BlockList holds them.
 */
export class BannedAddresses extends BlockList {
  readonly #bans: AbuseBans;

  constructor(bans: AbuseBans) {
    super();
    this.#bans = bans;
  }

  override check(address: string | SocketAddress, _family?: IPVersion): boolean {
    const text = typeof address === 'string' ? address : address.address;
    return this.#bans.dropsAtAccept(text);
  }
}
