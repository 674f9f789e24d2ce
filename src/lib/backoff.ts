// Reconnect delays. Full jitter (a uniform pick between 0 and the capped
// exponential) spreads a fleet that lost the hub at the same moment, so the
// hub is not flattened by every agent reconnecting in lockstep when it returns.

export interface BackoffPolicy {
  baseMs: number;
  capMs: number;
}

export const defaultBackoff: BackoffPolicy = { baseMs: 500, capMs: 60_000 };

/** Delay before reconnect attempt `attempt` (0 for the first retry). `random` returns [0, 1). */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: () => number): number {
  // 2**attempt overflows to Infinity long after the cap is reached; Math.min absorbs it.
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** Math.max(0, attempt));
  return Math.floor(random() * ceiling);
}
