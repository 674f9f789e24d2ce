// Requests to the operator API per source address: a token bucket each, so
// one client (a runaway script, a scraper, someone guessing tokens) cannot
// take the hub's time from everyone else. Past it the hub answers 429 with
// Retry-After, before looking at the token. Memory is bounded: addresses
// whose bucket is full again are forgotten, and past `maxAddresses` the
// oldest are.
import { TokenBucket } from './token-bucket.ts';

export interface ApiRateLimits {
  /** Sustained requests per second per address. Default 200. */
  perSecond: number;
  /** Requests allowed in a burst above the rate. Default 2,000: a dashboard opening, a CLI watching. */
  burst: number;
  /** Addresses tracked at most. Default 10,000. */
  maxAddresses: number;
  /** Milliseconds, monotonic (injected by tests). */
  monotonicMs: () => number;
}

export const defaultApiRateLimits: ApiRateLimits = {
  perSecond: 200,
  burst: 2_000,
  maxAddresses: 10_000,
  monotonicMs: () => performance.now(),
};

export class ApiRateLimit {
  readonly #o: ApiRateLimits;
  readonly #buckets = new Map<string, TokenBucket>();

  constructor(limits: Partial<ApiRateLimits> = {}) {
    this.#o = { ...defaultApiRateLimits, ...limits };
  }

  get limits(): Readonly<ApiRateLimits> {
    return this.#o;
  }

  /** 0 when the address may make this request; else the milliseconds until it may. */
  take(address: string | undefined): number {
    const key = address ?? 'unknown';
    let bucket = this.#buckets.get(key);
    if (!bucket) {
      if (this.#buckets.size >= this.#o.maxAddresses) this.#forget();
      bucket = new TokenBucket(this.#o.perSecond, this.#o.burst, this.#o.monotonicMs);
      this.#buckets.set(key, bucket);
    }
    return bucket.take();
  }

  /** Drops the buckets that are full again; if none is, the oldest. */
  #forget(): void {
    for (const [address, bucket] of this.#buckets) if (bucket.full()) this.#buckets.delete(address);
    if (this.#buckets.size >= this.#o.maxAddresses) {
      const oldest = this.#buckets.keys().next();
      if (!oldest.done) this.#buckets.delete(oldest.value);
    }
  }
}
