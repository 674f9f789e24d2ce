// Whether this hub replica can reach its database, decided by a probe every
// second rather than by whichever request fails first (docs/hub-ha.md, "When
// the database goes away"). Not ready, the replica stops taking work it could
// only act on with stale state: /readyz answers 503 (the Service stops
// sending it operators and agents), the API answers 503, new agent
// connections are refused with 503, live ones are closed with a
// retry-elsewhere code, and it stops driving rollouts. Ready again as soon as
// one probe succeeds, by itself.
//
// One failed probe is not enough: on a loaded machine a single probe can miss
// its deadline while the database is fine, and flapping would send every
// agent of the replica elsewhere for nothing.
import type { Logger } from 'pino';

export interface DatabaseHealthOptions {
  /** Resolves when the database answered within timeoutMs (Sql.ping). */
  probe: (timeoutMs: number) => Promise<void>;
  /** Default 1000 ms between probes. */
  intervalMs?: number;
  /** Default 2000 ms. */
  timeoutMs?: number;
  /** Consecutive failed probes before the replica is not ready. Default 2. */
  failuresToUnready?: number;
  now: () => Date;
  log: Logger;
}

export class DatabaseHealth {
  readonly #o: DatabaseHealthOptions;
  readonly #timeoutMs: number;
  readonly #failuresToUnready: number;
  #ready = true;
  #failures = 0;
  #lastError = '';
  #since: Date;
  #timer: NodeJS.Timeout | undefined;
  #checking: Promise<boolean> | undefined;
  readonly #listeners: ((ready: boolean) => void)[] = [];

  constructor(o: DatabaseHealthOptions) {
    this.#o = o;
    this.#timeoutMs = o.timeoutMs ?? 2000;
    this.#failuresToUnready = Math.max(1, o.failuresToUnready ?? 2);
    this.#since = o.now();
  }

  get ready(): boolean {
    return this.#ready;
  }

  /** Since when the current state holds. */
  get since(): Date {
    return this.#since;
  }

  /** Why the replica is not ready, for /readyz and 503 answers; undefined while ready. */
  get reason(): string | undefined {
    if (this.#ready) return undefined;
    return `this hub replica cannot reach its database since ${this.#since.toISOString()} (${this.#lastError}); another replica may answer`;
  }

  /** One probe now (joins one in progress); resolves to the state after it. */
  check(): Promise<boolean> {
    this.#checking ??= this.#probe().finally(() => (this.#checking = undefined));
    return this.#checking;
  }

  async #probe(): Promise<boolean> {
    try {
      await this.#o.probe(this.#timeoutMs);
      this.#failures = 0;
      if (!this.#ready) this.#set(true);
    } catch (err) {
      this.#failures++;
      this.#lastError = err instanceof Error ? err.message : String(err);
      if (this.#ready && this.#failures >= this.#failuresToUnready) this.#set(false);
    }
    return this.#ready;
  }

  #set(ready: boolean): void {
    this.#ready = ready;
    this.#since = this.#o.now();
    if (ready) this.#o.log.info('the database answers again: this replica is ready');
    else this.#o.log.error({ reason: this.reason }, 'the database does not answer: this replica is not ready, closes its agent connections and refuses work');
    for (const listener of this.#listeners) {
      try {
        listener(ready);
      } catch (err) {
        this.#o.log.error({ err }, 'reacting to a change of database health failed');
      }
    }
  }

  /** Calls `listener` on every change, after the state changed. */
  onChange(listener: (ready: boolean) => void): void {
    this.#listeners.push(listener);
  }

  start(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => void this.check(), this.#o.intervalMs ?? 1000);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#checking;
  }
}
