// The gate decides whether the next stage may start now: maintenance
// windows and pre-flight checks plug in here (src/agent/windows, checks).
// The engine asks it only before a stage starts, never while one runs, so a
// stage that is running when its window closes is finished, not cut off.
// The policy-driven gate is in gate-policy.ts (createPolicyGate).
import type { Release } from '../../protocol/release.ts';
import type { AttemptRecord } from '../../store/attempt-repo.ts';

export type GateDecision =
  /** message: something a person should see although the stage may start (e.g. an escalated deferral); data: what was checked. */
  | { go: true; message?: string; data?: unknown }
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
