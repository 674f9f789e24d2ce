// A token bucket: `perSecond` tokens refill continuously up to `burst`; each
// event takes one. Used for a connection's frame rate (connection-budget.ts)
// and an address's operator API requests (api-rate-limit.ts).
export class TokenBucket {
  readonly #perSecond: number;
  readonly #burst: number;
  readonly #monotonicMs: () => number;
  #tokens: number;
  #refilledAt: number;

  constructor(perSecond: number, burst: number, monotonicMs: () => number) {
    this.#perSecond = perSecond;
    this.#burst = burst;
    this.#monotonicMs = monotonicMs;
    this.#tokens = burst;
    this.#refilledAt = monotonicMs();
  }

  /** Takes a token: 0 when one was there, else the milliseconds until one will be. */
  take(): number {
    const now = this.#monotonicMs();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#refilledAt) / 1000) * this.#perSecond);
    this.#refilledAt = now;
    if (this.#tokens < 1) return Math.ceil(((1 - this.#tokens) / this.#perSecond) * 1000);
    this.#tokens -= 1;
    return 0;
  }

  /** Full again: nothing taken since long enough ago (its state can be forgotten). */
  full(): boolean {
    return this.#tokens + ((this.#monotonicMs() - this.#refilledAt) / 1000) * this.#perSecond >= this.#burst;
  }
}
