// Gives the old generation's pages back once an upgrade attempt has ended.
// An attempt is the agent's one busy period: V8 grows the old generation to
// hold what the attempt allocates, and an agent at rest allocates too little
// for V8 to run the full collection that would give those pages back, so
// they stay committed: the soak (docs/footprint.md) saw V8's committed heap
// go 31 → 43 MiB over 200 attempts while the live heap shrank. One major
// collection shortly after an attempt ends (~10 ms on the agent's ~25 MiB
// heap) frees them. Coalesced: attempts ending together cost one collection.
import { setFlagsFromString } from 'node:v8';
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

export interface HeapReleaseOptions {
  gc: MajorGc;
  /** How long after the request: the attempt's last reports and status writes settle first. */
  delayMs?: number;
  setTimer?: (fn: () => void, ms: number) => { unref?(): unknown };
}

export class HeapRelease {
  readonly #gc: MajorGc;
  readonly #delayMs: number;
  readonly #setTimer: NonNullable<HeapReleaseOptions['setTimer']>;
  #pending = false;
  /** Collections run so far (for tests and metrics). */
  runs = 0;

  constructor(o: HeapReleaseOptions) {
    this.#gc = o.gc;
    this.#delayMs = o.delayMs ?? 2_000;
    this.#setTimer = o.setTimer ?? setTimeout;
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
    }, this.#delayMs).unref?.();
  }
}
