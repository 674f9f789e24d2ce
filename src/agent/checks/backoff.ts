// How long a blocked attempt waits before re-running its checks. The fleet
// already has one full-jitter backoff (src/lib/backoff.ts, also the hub link's reconnect delay); the
// re-check uses the same one, fed with the policy's checks.recheck durations,
// so agents blocked by a shared dependency do not re-check in lockstep.
import { durationMs, type ChecksPolicy } from '../../protocol/policy.ts';
import { backoffDelay } from '../../lib/backoff.ts';

/**
 * Delay before re-check number `retry` (0 for the first):
 * random() × min(maxBackoff, initialBackoff × 2^retry).
 * `random` returns [0, 1); inject it to make tests exact.
 */
export function recheckDelayMs(retry: number, recheck: ChecksPolicy['recheck'], random: () => number = Math.random): number {
  return backoffDelay(retry, { baseMs: durationMs(recheck.initialBackoff), capMs: durationMs(recheck.maxBackoff) }, random);
}
