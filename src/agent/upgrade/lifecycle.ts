// The upgrade lifecycle in one place: every phase an attempt can be in and
// every move between them. The engine asks `assertTransition` before it
// persists a new state, so an impossible move is a bug caught at once, not a
// corrupt journal found later.
//
//   Pending ─┬─▶ WaitingForWindow ◀─▶ PreflightChecking
//            │         │                    │
//            └─────────┴────────┬───────────┘
//                               ▼
//   ┌──────────▶ Upgrading(stage i) ─▶ Verifying(i) ─▶ Soaking(i) ─┬─▶ Succeeded
//   │                  │                   │              │          │
//   │                  └───────────────────┴──────┬───────┘          │
//   │                                             ▼                  │
//   │                                        RollingBack ─┬─▶ RolledBack
//   │                                                     └─▶ Failed
//   └──── next stage (through WaitingForWindow/PreflightChecking when the gate says wait) ◀┘
//
// Each state is written to the journal before its action starts (Mender's
// rule): after a crash, the phase in the journal is the action that may be
// half done, and every action is idempotent, so resuming means doing it again.
import type { AttemptPhase } from '../../protocol/attempt.ts';

export const allowedTransitions: Readonly<Record<AttemptPhase, readonly AttemptPhase[]>> = {
  Pending: ['WaitingForWindow', 'PreflightChecking', 'Upgrading', 'Succeeded', 'Failed'],
  WaitingForWindow: ['WaitingForWindow', 'PreflightChecking', 'Upgrading', 'RollingBack', 'Failed'],
  PreflightChecking: ['PreflightChecking', 'WaitingForWindow', 'Upgrading', 'RollingBack', 'Failed'],
  Upgrading: ['Verifying', 'RollingBack'],
  Verifying: ['Soaking', 'Upgrading', 'WaitingForWindow', 'PreflightChecking', 'Succeeded', 'RollingBack'],
  Soaking: ['Upgrading', 'WaitingForWindow', 'PreflightChecking', 'Succeeded', 'RollingBack'],
  RollingBack: ['RolledBack', 'Failed'],
  Succeeded: [],
  RolledBack: [],
  Failed: [],
};

/** Phases in which the cluster may differ from both the old and the new version. */
export const changingPhases: ReadonlySet<AttemptPhase> = new Set(['Upgrading', 'Verifying', 'Soaking', 'RollingBack']);

export class IllegalTransition extends Error {
  readonly reason = 'IllegalTransition';
  constructor(from: AttemptPhase, to: AttemptPhase) {
    super(`an attempt cannot move from ${from} to ${to} (see src/agent/upgrade/lifecycle.ts)`);
    this.name = 'IllegalTransition';
  }
}

export function assertTransition(from: AttemptPhase, to: AttemptPhase): void {
  if (!allowedTransitions[from].includes(to)) throw new IllegalTransition(from, to);
}

export function isTerminal(phase: AttemptPhase): boolean {
  return allowedTransitions[phase].length === 0;
}
