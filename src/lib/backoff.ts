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

/**
 * The longest a hub's "retry after" is obeyed. A hub bans for at most 15 min;
 * a larger value is a bug or a hostile hub, and must not park an agent (and
 * the reports it holds) for a day.
 */
export const MAX_RETRY_AFTER_MS = 60 * 60_000;

/**
 * Delay before the next reconnect when the hub said how long it will refuse
 * this agent: no sooner than that (an earlier attempt is only refused again,
 * and against a ban it counts as another offence on some hubs), plus up to a
 * fifth more, so agents banned in the same second do not all return in it.
 * Never shorter than the backoff would have been anyway.
 */
export function delayAfterRefusal(backoffMs: number, retryAfterMs: number | undefined, random: () => number): number {
  if (retryAfterMs === undefined || !Number.isFinite(retryAfterMs) || retryAfterMs <= 0) return backoffMs;
  const wait = Math.min(retryAfterMs, MAX_RETRY_AFTER_MS);
  return Math.max(backoffMs, wait + Math.floor(random() * wait * 0.2));
}

/**
 * An HTTP Retry-After value (RFC 9110 §10.2.3): delay-seconds or an
 * HTTP-date; undefined when absent or neither.
 */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) || !/[a-z]/i.test(text) ? undefined : Math.max(0, at - nowMs);
}
