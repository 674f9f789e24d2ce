// When the hub evaluates rollouts: on a steady timer (soaks, deadlines and
// windows end without any report), and soon after anything they depend on
// changed. Changes are coalesced: a fleet reporting thousands of times a
// second costs one tick per debounce interval, not one per report. Ticks
// never overlap: one that comes due while another runs follows it. With
// several replicas only the rollout driver's ticker runs (`leading`).
import type { Logger } from 'pino';
import { tickRollouts } from './rollout-operations.ts';
import type { HubContext } from '../hub-context.ts';

export interface RolloutTickerOptions {
  /** Steady tick. Default 1000 ms. */
  intervalMs?: number;
  /** Delay from a change to its tick. Default 50 ms. */
  debounceMs?: number;
  /** Whether this replica drives rollouts now (replicas/rollout-leader.ts). Default always. */
  leading?: () => boolean;
}

export interface RolloutTicker {
  /** Something rollouts depend on changed: tick soon. */
  notify(): void;
  /** Stops ticking; resolves when a tick in progress ended. */
  stop(): Promise<void>;
}

export function startRolloutTicker(ctx: HubContext, log: Logger, o: RolloutTickerOptions = {}): RolloutTicker {
  let pending: NodeJS.Timeout | undefined;
  let stopped = false;
  let running: Promise<void> | undefined;
  let again = false;
  const leading = o.leading ?? (() => true);
  const run = (): void => {
    pending = undefined;
    if (stopped || !leading()) return;
    if (running !== undefined) {
      again = true;
      return;
    }
    running = tickRollouts(ctx)
      .then(
        (results) => {
          // Committed: the dashboard looks only when a step wrote something, not on every tick.
          if (results.some((r) => r.changed)) ctx.fleetChanged();
        },
        // The next tick retries from the store: nothing half-applied survives the failed transaction.
        (err: unknown) => log.error({ err }, 'rollout tick failed'),
      )
      .finally(() => {
        running = undefined;
        if (again) {
          again = false;
          run();
        }
      });
  };
  const interval = setInterval(run, o.intervalMs ?? 1000);
  interval.unref();
  // A restarted hub continues where it was without waiting for the first interval.
  const first = setImmediate(run);
  return {
    notify() {
      if (stopped || pending !== undefined) return;
      pending = setTimeout(run, o.debounceMs ?? 50);
      pending.unref();
    },
    async stop() {
      stopped = true;
      clearInterval(interval);
      clearImmediate(first);
      if (pending !== undefined) clearTimeout(pending);
      await running;
    },
  };
}
