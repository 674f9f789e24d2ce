// Gives the old generation's pages back once an upgrade attempt has ended.
// An attempt is the agent's one busy period: V8 grows the old generation to
// hold what the attempt allocates, and an agent at rest allocates too little
// for V8 to run the full collection that would give those pages back, so
// they stay committed: the soak (docs/footprint.md) saw V8's committed heap
// go 31 → 43 MiB over 200 attempts while the live heap shrank. One major
// collection shortly after an attempt ends (~10 ms on the agent's ~25 MiB
// heap) frees them. Coalesced: attempts ending together cost one collection.
//
// The same holds between attempts, more slowly: every heartbeat, report and
// lease renewal leaves garbage that survives a scavenge or two and ends up in
// the old generation, and V8 collects it only when the old generation reaches
// a limit it sets well above the live heap (its own memory reducer ignores
// heaps that grew by less than ~10 MB). So an agent at rest would sit on up to
// that much garbage indefinitely. The watch reads the used heap every
// `watchMs` (a counter read, no walk) and asks for a collection once it has
// grown `growthBytes` past what the last collection left: garbage at rest is
// bounded by `growthBytes`, at the price of one ~10 ms collection per
// `growthBytes` allocated, a handful an hour for a quiet agent.
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export type MajorGc = () => void;

/**
 * V8's own full collection, without starting node with --expose-gc: the
 * flag, set at run time, exposes `gc` to contexts created after it, and a
 * fresh context hands it over. The global context of the process is left
 * without `gc`.
 */
export function v8MajorGc(): MajorGc {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as (o?: { type: 'major'; execution: 'sync' }) => void;
  return () => gc({ type: 'major', execution: 'sync' });
}

/** The watch's decision: has the used heap grown enough past the last collection's to be worth one? */
export function heapGrewPastLimit(usedBytes: number, usedAfterLastCollection: number, growthBytes: number): boolean {
  return usedBytes - usedAfterLastCollection >= growthBytes;
}

export interface HeapReleaseOptions {
  gc: MajorGc;
  /** Bytes of the V8 heap in use (objects, live or not yet collected). */
  usedHeap?: () => number;
  /** The watch: a collection once the used heap has grown this much since the last one. */
  growthBytes?: number;
  /** How often the watch reads the used heap. */
  watchMs?: number;
  /** How long after the request: the attempt's last reports and status writes settle first. */
  delayMs?: number;
  setTimer?: (fn: () => void, ms: number) => { unref?(): unknown };
  setRepeat?: (fn: () => void, ms: number) => { unref?(): unknown };
  clearRepeat?: (handle: unknown) => void;
}

export class HeapRelease {
  readonly #gc: MajorGc;
  readonly #delayMs: number;
  readonly #setTimer: NonNullable<HeapReleaseOptions['setTimer']>;
  readonly #usedHeap: () => number;
  readonly #growthBytes: number;
  readonly #watchMs: number;
  readonly #setRepeat: NonNullable<HeapReleaseOptions['setRepeat']>;
  readonly #clearRepeat: NonNullable<HeapReleaseOptions['clearRepeat']>;
  /** Used heap right after the last collection (or at the watch's first reading). */
  #baseline: number | undefined;
  #pending = false;
  /** Collections run so far (for tests and metrics). */
  runs = 0;

  constructor(o: HeapReleaseOptions) {
    this.#gc = o.gc;
    this.#delayMs = o.delayMs ?? 2_000;
    this.#setTimer = o.setTimer ?? setTimeout;
    this.#usedHeap = o.usedHeap ?? (() => getHeapStatistics().used_heap_size);
    this.#growthBytes = o.growthBytes ?? 4 * 1048576;
    this.#watchMs = o.watchMs ?? 30_000;
    this.#setRepeat = o.setRepeat ?? setInterval;
    this.#clearRepeat = o.clearRepeat ?? ((h) => clearInterval(h as NodeJS.Timeout));
  }

  /** Reads the used heap every `watchMs` until `signal` aborts; a collection once it grew `growthBytes`. */
  watch(signal: AbortSignal): void {
    if (signal.aborted) return;
    const handle = this.#setRepeat(() => {
      const used = this.#usedHeap();
      this.#baseline ??= used;
      if (heapGrewPastLimit(used, this.#baseline, this.#growthBytes)) this.request();
    }, this.#watchMs);
    // Unref'd: the watch never keeps a stopping process alive.
    handle.unref?.();
    signal.addEventListener('abort', () => this.#clearRepeat(handle), { once: true });
  }

  /** Asks for one collection `delayMs` from now; a request while one is pending joins it. */
  request(): void {
    if (this.#pending) return;
    this.#pending = true;
    // Unref'd: a pending collection never keeps a stopping process alive.
    this.#setTimer(() => {
      this.#pending = false;
      this.runs++;
      this.#gc();
      this.#baseline = this.#usedHeap();
    }, this.#delayMs).unref?.();
  }
}
