// Work that many events ask for, done at most once per interval: the first
// request runs at once (an isolated change is seen without delay), requests
// during the interval or while the work runs make exactly one more run when
// the interval is over (nothing asked for is lost, a burst costs one run per
// interval, not one per request). Runs never overlap. The clock and timers
// are injected, so the rule is tested without waiting.

export interface Timers {
  now(): number;
  setTimeout(run: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Node's timers, unref'd: a pending run never holds the process open. */
export const realTimers: Timers = {
  now: () => performance.now(),
  setTimeout: (run, ms) => setTimeout(run, ms).unref(),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export class Throttle {
  readonly #task: () => Promise<void> | void;
  readonly #intervalMs: number;
  readonly #timers: Timers;
  readonly #onError: (err: unknown) => void;
  #lastStart = Number.NEGATIVE_INFINITY;
  #timer: unknown;
  #running: Promise<void> | undefined;
  #again = false;
  #closed = false;

  constructor(task: () => Promise<void> | void, intervalMs: number, o: { timers?: Timers; onError: (err: unknown) => void }) {
    this.#task = task;
    this.#intervalMs = intervalMs;
    this.#timers = o.timers ?? realTimers;
    this.#onError = o.onError;
  }

  /** Asks for a run: now if the last one started an interval ago or more, otherwise when the interval is over. */
  request(): void {
    if (this.#closed) return;
    if (this.#running !== undefined) {
      this.#again = true;
      return;
    }
    if (this.#timer !== undefined) return;
    const wait = Math.max(0, this.#lastStart + this.#intervalMs - this.#timers.now());
    this.#timer = this.#timers.setTimeout(() => this.#fire(), wait);
  }

  #fire(): void {
    this.#timer = undefined;
    if (this.#closed) return;
    this.#lastStart = this.#timers.now();
    this.#running = (async () => {
      try {
        await this.#task();
      } catch (err) {
        this.#onError(err);
      }
    })().finally(() => {
      this.#running = undefined;
      if (this.#again) {
        this.#again = false;
        this.request();
      }
    });
  }

  /** No run starts from now on; resolves when one in progress ended. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }
}
