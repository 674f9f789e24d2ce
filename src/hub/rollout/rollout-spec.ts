// The limits a stored rollout spec (store/rollout-repo.ts) sets for a wave.
import { durationMs } from '../../protocol/policy.ts';
import { durationOrZeroMs } from '../../protocol/rollout.ts';
import type { StoredSpec } from '../store/rollout-repo.ts';
import { resolveLimit } from './plan-wave.ts';

export type { StoredSpec, StoredTarget } from '../store/rollout-repo.ts';

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
