// Failed authentication attempts per source address (a wrong bootstrap
// token, a bad proof, an unknown credential). Past the budget the address is
// refused without the attempt being examined, until the window has passed.
// Memory is bounded: the oldest addresses are forgotten first.

export interface FailureThrottleOptions {
  /** Failures allowed per window. Default 10. */
  maxFailures?: number;
  /** Default 60 s. */
  windowMs?: number;
  /** Addresses tracked at most. Default 10,000. */
  maxAddresses?: number;
}

interface Entry {
  failures: number;
  windowStart: number;
}

export class FailureThrottle {
  readonly #now: () => Date;
  readonly #max: number;
  readonly #windowMs: number;
  readonly #maxAddresses: number;
  readonly #entries = new Map<string, Entry>();

  constructor(now: () => Date, o: FailureThrottleOptions = {}) {
    this.#now = now;
    this.#max = o.maxFailures ?? 10;
    this.#windowMs = o.windowMs ?? 60_000;
    this.#maxAddresses = o.maxAddresses ?? 10_000;
  }

  #entry(address: string): Entry | undefined {
    const e = this.#entries.get(address);
    if (e && this.#now().getTime() - e.windowStart >= this.#windowMs) {
      this.#entries.delete(address);
      return undefined;
    }
    return e;
  }

  /** Milliseconds until the address may try again; 0 when it may now. */
  retryAfterMs(address: string | undefined): number {
    if (address === undefined) return 0;
    const e = this.#entry(address);
    if (!e || e.failures < this.#max) return 0;
    return Math.max(1, e.windowStart + this.#windowMs - this.#now().getTime());
  }

  fail(address: string | undefined): void {
    if (address === undefined) return;
    const e = this.#entry(address);
    if (e) {
      e.failures++;
      return;
    }
    if (this.#entries.size >= this.#maxAddresses) {
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
    this.#entries.set(address, { failures: 1, windowStart: this.#now().getTime() });
  }
}
