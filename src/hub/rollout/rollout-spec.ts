// The rollout spec as the hub stores it: the operator's validated request,
// or what a rollback derived from the rollout it undoes.
import type { OverrideRequest } from '../../protocol/override.ts';
import { durationMs } from '../../protocol/policy.ts';
import { durationOrZeroMs, type RolloutRequest } from '../../protocol/rollout.ts';
import { resolveLimit } from './plan-wave.ts';

export type StoredTarget =
  | { kind: 'Release'; release: Record<string, unknown> & { name: string; version: string } }
  /** withdraw: the rollback of an override rollout sends a withdrawal of the same override. */
  | { kind: 'Override'; override: OverrideRequest; withdraw?: boolean }
  /** Each cluster gets back the release it had before `rollbackOf` sent it one. */
  | { kind: 'Rollback'; rollbackOf: string };

export type StoredSpec = Omit<RolloutRequest, 'target'> & { target: StoredTarget };

export interface Limits {
  maxConcurrency: number;
  maxFailures: number;
  /** ProgressivePerGroup: maxFailures as written, applied per group (plan-wave.ts). */
  maxFailuresPerGroup?: number | string;
  minSuccessMs: number;
  progressDeadlineMs: number | null;
}

export function limitsOf(spec: StoredSpec, total: number): Limits {
  const s = spec.strategy;
  return {
    maxConcurrency: s.type === 'Progressive' && s.maxConcurrency !== undefined ? Math.max(1, resolveLimit(s.maxConcurrency, total, 'up')) : total,
    maxFailures: resolveLimit(s.maxFailures, total, 'down'),
    ...(s.type === 'ProgressivePerGroup' ? { maxFailuresPerGroup: s.maxFailures } : {}),
    minSuccessMs: durationOrZeroMs(s.minSuccessTime),
    progressDeadlineMs: s.progressDeadline === 'None' ? null : durationMs(s.progressDeadline),
  };
}
