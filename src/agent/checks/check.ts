// The check contract shared by pre-flight and post-flight checks. A check
// answers one question about the cluster and says why in a sentence; the
// framework owns timing, timeouts and journaling shape.
import type { CheckReport } from '../../protocol/policy.ts';

export type CheckResultKind = 'pass' | 'fail' | 'error';

export interface CheckOutcome {
  /** pass: go ahead; fail: the cluster is not ready (blocks); error: could not tell (also blocks). */
  result: CheckResultKind;
  message: string;
}

export interface Check {
  name: string;
  timeoutMs: number;
  /** Must stop work when the signal aborts (timeout or shutdown). */
  run(signal: AbortSignal): Promise<CheckOutcome>;
}

export type { CheckReport };
