// The upgrade lifecycle in one table: every phase an attempt can be in, what
// can come out of looking at it (an outcome), and where each outcome leads.
// The engine does not choose a next phase itself: a decision names an
// outcome, and `next` looks the move up here (docs/architecture.md,
// invariant 5). A move that is not a row is a bug caught before anything is
// written, never a corrupt journal found later.
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
//   └──── next stage: PreflightChecking(i+1), then the gate ◀───────┘
//
// Each state is written to the journal before its action starts (invariant
// 1): after a crash, the phase in the journal is the action that may be half
// done, and every action is idempotent, so resuming means doing it again.
import type { AttemptPhase } from '../../protocol/attempt.ts';

/** What looking at an attempt in its phase can conclude. */
export const outcomes = [
  /** The plan changes nothing. */
  'NothingToDo',
  /** A newer release arrived before the attempt changed anything. */
  'Superseded',
  /** The gate waits for a maintenance window. */
  'WindowClosed',
  /** The gate waits for pre-flight checks to pass. */
  'ChecksBlocked',
  /** The gate lets the stage start. */
  'GateOpen',
  /** The stage's manifests are applied. */
  'Applied',
  /** The stage is healthy and soaks before it counts. */
  'RolledOut',
  /** The agent's own new version is ready: the attempt is handed to it, which soaks. */
  'CandidateReady',
  /** The stage passed and another follows. */
  'StagePassed',
  /** The last stage passed. */
  'AllPassed',
  /** Something is not healthy (a workload, a check, the candidate, the restored version). */
  'Unhealthy',
  /** The last known good is restored and healthy. */
  'Restored',
  /** The phase's action failed outright. */
  'Error',
  /** The process started too often inside this attempt. */
  'CrashLoop',
] as const;
export type Outcome = (typeof outcomes)[number];

type Row = Partial<Record<Outcome, AttemptPhase>>;

/** The gate runs in the three phases before a stage starts. */
const gateRow: Row = {
  NothingToDo: 'Succeeded',
  Superseded: 'Failed',
  WindowClosed: 'WaitingForWindow',
  ChecksBlocked: 'PreflightChecking',
  GateOpen: 'Upgrading',
  Error: 'Failed',
  CrashLoop: 'RollingBack',
};

/** A stage that has passed: the next one goes through the gate, or the attempt is done. */
const stageDone: Row = { StagePassed: 'PreflightChecking', AllPassed: 'Succeeded' };

export const lifecycle: Readonly<Record<AttemptPhase, Readonly<Row>>> = {
  Pending: gateRow,
  WaitingForWindow: gateRow,
  PreflightChecking: gateRow,
  Upgrading: { Applied: 'Verifying', Error: 'RollingBack', CrashLoop: 'RollingBack' },
  Verifying: { RolledOut: 'Soaking', CandidateReady: 'Soaking', ...stageDone, Unhealthy: 'RollingBack', Error: 'RollingBack', CrashLoop: 'RollingBack' },
  Soaking: { ...stageDone, Unhealthy: 'RollingBack', Error: 'RollingBack', CrashLoop: 'RollingBack' },
  RollingBack: { Restored: 'RolledBack', Unhealthy: 'Failed', Error: 'Failed', CrashLoop: 'Failed' },
  Succeeded: {},
  RolledBack: {},
  Failed: {},
};

/** Phases in which the cluster may differ from both the old and the new version. */
export const changingPhases: ReadonlySet<AttemptPhase> = new Set(['Upgrading', 'Verifying', 'Soaking', 'RollingBack']);

export class IllegalTransition extends Error {
  readonly reason = 'IllegalTransition';
  constructor(from: AttemptPhase, what: string) {
    super(`an attempt in ${from} has no move for ${what} (see src/agent/upgrade/lifecycle.ts)`);
    this.name = 'IllegalTransition';
  }
}

/** Where `outcome` leads from `from`; throws when the table has no such row. */
export function next(from: AttemptPhase, outcome: Outcome): AttemptPhase {
  const to = lifecycle[from][outcome];
  if (!to) throw new IllegalTransition(from, `the outcome ${outcome}`);
  return to;
}

/** Is some row a move from `from` to `to`? (For reading a journal's history back.) */
export function assertTransition(from: AttemptPhase, to: AttemptPhase): void {
  if (!Object.values(lifecycle[from]).includes(to)) throw new IllegalTransition(from, `a move to ${to}`);
}

export function isTerminal(phase: AttemptPhase): boolean {
  return Object.keys(lifecycle[phase]).length === 0;
}
