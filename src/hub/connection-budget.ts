// What one agent connection may cost the hub before it is cut off: refused
// frames, frames per second, and frame size before it has authenticated.
// Past any of them the hub closes with 1008 (policy violation); a flooder
// costs one log line and one close, not a line and a reply per frame.
import { TokenBucket } from './token-bucket.ts';

export interface ConnectionBudgets {
  /** Frames refused (not JSON, invalid, unexpected) before the connection is closed. Default 10. */
  badFrames: number;
  /** Sustained frames per second. Default 500: an agent catching up after a partition pipelines report batches as fast as acks come back. */
  framesPerSecond: number;
  /** Frames allowed in a burst above the rate. Default 2,000. */
  frameBurst: number;
  /** Largest frame before the connection authenticated (register, hello). Default 256 KiB. */
  unauthenticatedFrameBytes: number;
  /** Milliseconds, monotonic: the rate's clock (injected by tests). */
  monotonicMs: () => number;
}

export const defaultBudgets: ConnectionBudgets = {
  badFrames: 10,
  framesPerSecond: 500,
  frameBurst: 2_000,
  unauthenticatedFrameBytes: 256 * 1024,
  monotonicMs: () => performance.now(),
};

export type BudgetVerdict = { ok: true } | { ok: false; budget: 'badFrames' | 'frameRate' | 'frameSize' | 'depth'; message: string };

export class ConnectionBudget {
  readonly #b: ConnectionBudgets;
  readonly #rate: TokenBucket;
  #badFrames = 0;

  constructor(budgets: ConnectionBudgets) {
    this.#b = budgets;
    this.#rate = new TokenBucket(budgets.framesPerSecond, budgets.frameBurst, budgets.monotonicMs);
  }

  get badFrames(): number {
    return this.#badFrames;
  }

  /** Every frame, before it is parsed. */
  frame(bytes: number, authenticated: boolean): BudgetVerdict {
    if (this.#rate.take() > 0) return { ok: false, budget: 'frameRate', message: `more than ${this.#b.framesPerSecond} frames per second (burst ${this.#b.frameBurst})` };
    if (!authenticated && bytes > this.#b.unauthenticatedFrameBytes) {
      return { ok: false, budget: 'frameSize', message: `a ${bytes}-byte frame before authenticating; the limit is ${this.#b.unauthenticatedFrameBytes}` };
    }
    return { ok: true };
  }

  /** A frame was refused; false once the budget is spent. */
  refused(): BudgetVerdict {
    if (++this.#badFrames > this.#b.badFrames) return { ok: false, budget: 'badFrames', message: `more than ${this.#b.badFrames} refused frames` };
    return { ok: true };
  }
}
