// When the dashboard's open pages must refetch, driven by changes rather
// than by polling the store.
//
// Whatever may change what the dashboard shows says so with a hint: a report
// batch, hello or registration committed (agent-session.ts), a lease written
// for a cluster that (re)connected, an operator's write through the API or
// the dashboard, a rollout tick that wrote something, and every event
// another replica publishes (it announces its own changes the same way:
// start-hub.ts). A hint is only a reason to look: the feed then reads the
// store's fingerprint (DashboardRepo.fingerprint: a change counter the
// store's triggers bump on every write the dashboard shows, and the range of
// offline clusters), and only a fingerprint that moved tells the pages. So a
// hint that changed nothing visible costs one small query, and a hint that
// was never sent (a write path no one thought of) is found by the sweep.
//
// Coalesced: the first hint after a quiet spell is looked at at once; hints
// during the next `coalesceMs` make one more look when it is over. A fleet
// committing a thousand report batches a second costs two fingerprint reads
// a second and tells each page at most twice a second.
//
// The sweep (every `sweepMs`) looks without a hint: a lease that runs out
// turns its cluster Unknown without any write, and a hint from another
// replica may be lost (its bus reconnects). It also asks the server to
// check every open stream's token again, as a revocation hint does at once.
import { realTimers, Throttle, type Timers } from '../throttle.ts';

export interface ChangeHint {
  /** Operator tokens changed (one was revoked): open streams' tokens are checked again. */
  tokens?: boolean;
}

export interface ChangeFeedOptions {
  /** The store's fingerprint: changes whenever anything the dashboard shows changed. */
  fingerprint: () => Promise<string>;
  /** Called when open streams' tokens must be checked again (a token hint, the sweep). */
  reauthorize: () => void;
  /** At most one look at the store per this many ms. Default 500. */
  coalesceMs?: number;
  /** A look without any hint this often. Default 5000. */
  sweepMs?: number;
  timers?: Timers;
  onError: (err: unknown) => void;
}

export const DEFAULT_COALESCE_MS = 500;
export const DEFAULT_SWEEP_MS = 5000;

export class ChangeFeed {
  readonly #fingerprint: () => Promise<string>;
  readonly #reauthorize: () => void;
  readonly #timers: Timers;
  readonly #sweepMs: number;
  readonly #look: Throttle;
  readonly #listeners = new Set<() => void>();
  /** The fingerprint the listeners were last told of; undefined while nobody listens. */
  #last: string | undefined;
  #tokens = false;
  #sweep: unknown;
  #closed = false;
  /** Looks at the store taken (tests and the bench count them). */
  looks = 0;

  constructor(o: ChangeFeedOptions) {
    this.#fingerprint = o.fingerprint;
    this.#reauthorize = o.reauthorize;
    this.#timers = o.timers ?? realTimers;
    this.#sweepMs = o.sweepMs ?? DEFAULT_SWEEP_MS;
    this.#look = new Throttle(() => this.#run(), o.coalesceMs ?? DEFAULT_COALESCE_MS, { timers: this.#timers, onError: o.onError });
    this.#armSweep();
  }

  /** Something the dashboard shows may have changed (committed already). */
  hint(h: ChangeHint = {}): void {
    if (this.#closed || this.#listeners.size === 0) return;
    if (h.tokens) this.#tokens = true;
    this.#look.request();
  }

  /**
   * `changed` is called whenever the fingerprint moves, from now on: the
   * baseline is read before this resolves, so a change committed after it
   * resolved is never missed. Returns the unsubscribe function.
   */
  async subscribe(changed: () => void): Promise<() => void> {
    if (this.#last === undefined) this.#last = await this.#fingerprint();
    this.#listeners.add(changed);
    return () => {
      this.#listeners.delete(changed);
      // Nobody looks while nobody listens; the next subscriber reads a new baseline.
      if (this.#listeners.size === 0) this.#last = undefined;
    };
  }

  get listeners(): number {
    return this.#listeners.size;
  }

  async #run(): Promise<void> {
    if (this.#tokens) {
      this.#tokens = false;
      this.#reauthorize();
    }
    if (this.#listeners.size === 0) return;
    this.looks++;
    const now = await this.#fingerprint();
    if (this.#last === undefined || now === this.#last) return;
    this.#last = now;
    for (const l of [...this.#listeners]) l();
  }

  #armSweep(): void {
    this.#sweep = this.#timers.setTimeout(() => {
      if (this.#closed) return;
      this.hint({ tokens: true });
      this.#armSweep();
    }, this.#sweepMs);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#timers.clearTimeout(this.#sweep);
    this.#listeners.clear();
    await this.#look.close();
  }
}
