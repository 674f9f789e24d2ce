// The gate decides whether the next stage may start now: maintenance
// windows and pre-flight checks plug in here (src/agent/windows, checks).
import type { Release } from '../protocol/release.ts';
import type { AttemptRecord } from '../store/attempt-repo.ts';

export type GateDecision =
  | { go: true }
  | { go: false; phase: 'WaitingForWindow' | 'PreflightChecking'; reason: string; message: string; retryAt: Date; data?: unknown };

export interface GateContext {
  attempt: AttemptRecord;
  release: Release;
  stage: number;
  now: Date;
  signal: AbortSignal;
}

export interface Gate {
  evaluate(ctx: GateContext): Promise<GateDecision>;
}

export const openGate: Gate = { evaluate: async () => ({ go: true }) };

/** Post-flight checks after a stage is healthy; a failure rolls the attempt back. */
export interface PostflightChecks {
  run(ctx: GateContext): Promise<{ ok: true } | { ok: false; reason: string; message: string }>;
}
