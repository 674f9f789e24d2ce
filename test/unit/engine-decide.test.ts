// The engine's decisions, pure, in milliseconds: every row of the lifecycle
// table is produced by a decision and lands where the table says, and every
// move any decision can request is a row (none missing, none dead).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { AttemptPhase } from '../../src/protocol/attempt.ts';
import type { Plan } from '../../src/protocol/plan.ts';
import type { GateDecision } from '../../src/agent/gate/gate.ts';
import type { WorkloadHealth } from '../../src/agent/kube/workload-health.ts';
import {
  BLOCKED_MS,
  containerFailure,
  CRASH_LOOP_RESTARTS,
  decideApplied,
  decideError,
  decideGate,
  decideResume,
  decideRollback,
  decideSoak,
  decideVerify,
  MAX_GATE_WAIT_MS,
  pastDeadline,
  progressDeadlineMs,
  soakMs,
  stepOf,
  TAKEOVER_POLL_MS,
  type AttemptView,
  type Decision,
  type GateObservation,
  type Move,
  type ObservedContainer,
  type SoakObservation,
  type VerifyObservation,
} from '../../src/agent/upgrade/decide.ts';
import type { HealthSummary } from '../../src/agent/upgrade/health-watch.ts';
import { assertTransition, IllegalTransition, isTerminal, lifecycle, next, outcomes, type Outcome } from '../../src/agent/upgrade/lifecycle.ts';

const T0 = Date.parse('2030-01-01T00:00:00Z');
const timing = { pollMs: 200, maxStarts: 5 };
const plan: Plan = {
  revision: 7,
  stages: [
    { index: 0, components: [{ name: 'dns', version: '1.1.0', fromVersion: '1.0.0', self: false, digest: 'd0' }] },
    { index: 1, components: [{ name: 'metrics', version: '1.1.0', fromVersion: null, self: false, digest: 'd1' }] },
  ],
  unchanged: [],
  removed: [],
};

function attempt(phase: AttemptPhase, stage: number | null = 0, more: Partial<AttemptView> = {}): AttemptView {
  return { phase, stage, reason: 'Before', message: 'what happened before', plan, releaseName: 'edge-addons', releaseVersion: '1.1.0', ...more };
}

const workload = (state: WorkloadHealth['state'], reason: string): WorkloadHealth => ({
  ref: { kind: 'Deployment', name: 'dns', namespace: 'addons' },
  state,
  reason,
  message: `Deployment addons/dns: ${reason}`,
});
const healthy: HealthSummary = { healthy: true, failed: undefined, notReady: [], all: [workload('Healthy', 'RolledOut')] };
const progressing: HealthSummary = { healthy: false, failed: undefined, notReady: [workload('Progressing', 'Rolling')], all: [workload('Progressing', 'Rolling')] };
const failed: HealthSummary = { healthy: false, failed: workload('Failed', 'ProgressDeadlineExceeded'), notReady: [workload('Failed', 'ProgressDeadlineExceeded')], all: [] };

const go: GateDecision = { go: true, data: { checks: [] } };
const waitFor = (phase: 'WaitingForWindow' | 'PreflightChecking', reason: string, inMs: number): GateDecision => ({ go: false, phase, reason, message: `${reason} for now`, retryAt: new Date(T0 + inMs) });

function verifying(more: Partial<VerifyObservation> = {}): VerifyObservation {
  return { stage: 0, sinceMs: T0, deadlineMs: 30_000, soakMs: 0, health: healthy, ...more };
}
function soaking(more: Partial<SoakObservation> = {}): SoakObservation {
  return { stage: 0, untilMs: T0 + 10_000, health: healthy, ...more };
}

function moveOf(d: Decision | undefined): Move {
  assert.ok(d && 'move' in d, `a move, got ${JSON.stringify(d)}`);
  return d.move;
}
const text = (m: Move): string => (typeof m.message === 'string' ? m.message : m.message.text('<pods say why>'));

/** A decision that produces (phase × outcome), the way the engine reaches it. */
function produce(phase: AttemptPhase, outcome: Outcome): Decision | undefined {
  const a = attempt(phase, phase === 'Pending' ? null : 0);
  if (outcome === 'CrashLoop') return decideResume(a, phase === 'RollingBack' ? 11 : 6, timing);
  if (outcome === 'Error') return decideError(a, { transient: false, message: 'boom' }, timing);
  switch (stepOf(phase)) {
    case 'gate': {
      const o: Record<string, GateObservation> = {
        NothingToDo: { kind: 'nothingToDo' },
        Superseded: { kind: 'superseded', newest: 8 },
        WindowClosed: { kind: 'gate', stage: 0, decision: waitFor('WaitingForWindow', 'OutsideWindow', 5_000) },
        ChecksBlocked: { kind: 'gate', stage: 0, decision: waitFor('PreflightChecking', 'ChecksFailed', 5_000) },
        GateOpen: { kind: 'gate', stage: 0, decision: go },
      };
      return o[outcome] && decideGate({ ...a, reason: 'Other' }, o[outcome], T0);
    }
    case 'apply':
      return outcome === 'Applied' ? decideApplied(a) : undefined;
    case 'verify': {
      const o: Record<string, [AttemptView, VerifyObservation]> = {
        RolledOut: [a, verifying({ soakMs: 5_000 })],
        CandidateReady: [a, verifying({ candidate: { version: '0.2.0', ready: true, message: 'journal open' } })],
        StagePassed: [a, verifying()],
        AllPassed: [attempt(phase, 1), verifying({ stage: 1 })],
        Unhealthy: [a, verifying({ health: failed })],
      };
      return o[outcome] && decideVerify(o[outcome][0], o[outcome][1], T0 + 1_000, timing);
    }
    case 'soak': {
      const o: Record<string, [AttemptView, SoakObservation]> = {
        StagePassed: [a, soaking()],
        AllPassed: [attempt(phase, 1), soaking({ stage: 1 })],
        Unhealthy: [a, soaking({ health: progressing })],
      };
      return o[outcome] && decideSoak(o[outcome][0], o[outcome][1], T0 + 10_000, timing);
    }
    case 'rollback': {
      const o: Record<string, HealthSummary> = { Restored: healthy, Unhealthy: progressing };
      return o[outcome] && decideRollback(a, { sinceMs: T0, deadlineMs: 30_000, health: o[outcome] }, T0 + 31_000, timing);
    }
    case undefined:
      return undefined;
  }
}

/** The reason each row writes to the journal (the reason a person and the hub read). */
const expectedReason: Record<Outcome, string | ((phase: AttemptPhase) => string)> = {
  NothingToDo: 'NothingToDo',
  Superseded: 'Superseded',
  WindowClosed: 'OutsideWindow',
  ChecksBlocked: 'ChecksFailed',
  GateOpen: 'StageStarted',
  Applied: 'Applied',
  RolledOut: 'RolledOut',
  CandidateReady: 'CandidateReady',
  StagePassed: 'NextStage',
  AllPassed: 'AllComponentsHealthy',
  Unhealthy: (phase) => ({ Verifying: 'ProgressDeadlineExceeded', Soaking: 'HealthDegradedDuringSoak', RollingBack: 'RollbackUnhealthy' })[phase as 'Verifying'],
  Restored: 'Before',
  Error: (phase) => (phase === 'RollingBack' ? 'RollbackError' : stepOf(phase) === 'gate' ? 'GateError' : 'ApplyFailed'),
  CrashLoop: 'CrashLoop',
};

describe('every row of the lifecycle table', () => {
  for (const [phase, row] of Object.entries(lifecycle) as [AttemptPhase, Partial<Record<Outcome, AttemptPhase>>][]) {
    for (const [outcome, to] of Object.entries(row) as [Outcome, AttemptPhase][]) {
      test(`${phase} × ${outcome} → ${to}`, () => {
        const m = moveOf(produce(phase, outcome));
        assert.equal(m.outcome, outcome);
        assert.equal(m.to, to);
        const reason = expectedReason[outcome];
        assert.equal(m.reason, typeof reason === 'string' ? reason : reason(phase));
        assert.ok(text(m).length > 0, 'a message a person can read');
      });
    }
  }
});

describe('the table and the decisions agree', () => {
  /** Every decision the engine can ask for, in every phase: a wide net of observations per step. */
  function everyDecision(phase: AttemptPhase): Decision[] {
    const out: Decision[] = [];
    const stages = [null, 0, 1];
    for (const stage of stages) {
      for (const prev of [{}, { phase, reason: 'OutsideWindow', stage: 0 }]) {
        const a = attempt(phase, stage, prev);
        for (const starts of [1, 5, 6, 10, 11]) {
          const d = decideResume(a, starts, timing);
          if (d) out.push(d);
        }
        for (const transient of [true, false]) out.push(decideError(a, { transient, message: 'boom' }, timing));
        const healths = [healthy, progressing, failed];
        const times = [T0, T0 + 29_999, T0 + 30_001, T0 + 120_000];
        switch (stepOf(phase)) {
          case 'gate':
            for (const o of [
              { kind: 'nothingToDo' },
              { kind: 'superseded', newest: 9 },
              ...[go, { go: true, message: 'escalated' } as GateDecision, waitFor('WaitingForWindow', 'OutsideWindow', 5_000), waitFor('PreflightChecking', 'ChecksFailed', 120_000)].map((decision) => ({ kind: 'gate', stage: stage ?? 0, decision })),
            ] as GateObservation[]) {
              out.push(decideGate(a, o, T0));
            }
            break;
          case 'apply':
            out.push(decideApplied(a));
            break;
          case 'verify':
            for (const health of healths) {
              for (const now of times) {
                for (const extra of [{}, { soakMs: 5_000 }, { candidate: { version: '0.2.0', ready: true, message: '' } }, { candidate: { version: '0.2.0', ready: false, message: '' } }, { postflight: { ok: false as const, reason: 'CheckFailed', message: 'db down' } }, { postflight: { ok: true as const } }]) {
                  out.push(decideVerify(a, verifying({ stage: stage ?? 0, health, ...extra }), now, timing));
                }
              }
            }
            break;
          case 'soak':
            for (const health of [...healths, undefined]) {
              for (const now of times) {
                for (const self of [
                  undefined,
                  { running: 'old', version: '0.2.0', candidate: { ready: true, message: '' } },
                  { running: 'old', version: '0.2.0', candidate: { ready: false, message: 'gone' } },
                  { running: 'new', version: '0.2.0' },
                  { running: 'new', version: '0.2.0', takeover: { reachedHub: false, sinceMs: T0, timeoutMs: 2_500 } },
                  { running: 'new', version: '0.2.0', takeover: { reachedHub: true, sinceMs: T0, timeoutMs: 2_500 } },
                ] as SoakObservation['self'][]) {
                  out.push(decideSoak(a, { stage: stage ?? 0, untilMs: T0 + 10_000, ...(self ? { self } : {}), ...(health ? { health } : {}) }, now, timing));
                }
              }
            }
            break;
          case 'rollback':
            for (const health of healths) for (const now of times) out.push(decideRollback(a, { sinceMs: T0, deadlineMs: 30_000, health }, now, timing));
            break;
          case undefined:
            break;
        }
      }
    }
    return out;
  }

  for (const phase of Object.keys(lifecycle) as AttemptPhase[]) {
    test(`${phase}: the moves its decisions request are exactly its rows`, () => {
      if (isTerminal(phase)) {
        assert.equal(stepOf(phase), undefined, 'nothing is decided in a terminal phase');
        return;
      }
      // A move that is not a row throws IllegalTransition inside the decision, so getting here proves every request is in the table.
      const requested = new Set(everyDecision(phase).flatMap((d) => ('move' in d ? [`${d.move.outcome}→${d.move.to}`] : [])));
      const rows = new Set(Object.entries(lifecycle[phase]).map(([o, to]) => `${o}→${to}`));
      assert.deepEqual([...requested].sort(), [...rows].sort());
    });
  }

  test('an outcome without a row is refused before anything is written', () => {
    assert.throws(() => next('Upgrading', 'GateOpen'), IllegalTransition);
    assert.throws(() => next('Succeeded', 'Error'), IllegalTransition);
    assert.throws(() => assertTransition('Verifying', 'Upgrading'), IllegalTransition);
    assert.equal(outcomes.length, new Set(outcomes).size);
  });
});

describe('decisions in detail', () => {
  test('a crash loop before the first gate decision rolls back (it used to throw IllegalTransition on every start)', () => {
    const m = moveOf(decideResume(attempt('Pending', null), 6, timing));
    assert.equal(m.to, 'RollingBack');
    assert.match(text(m), /started 6 times during this attempt \(limit 5\)/);
    assert.equal(decideResume(attempt('Pending', null), 5, timing), undefined, 'five starts are allowed');
    assert.equal(decideResume(attempt('RollingBack'), 10, timing), undefined, 'a rollback gets twice the starts');
    assert.equal(moveOf(decideResume(attempt('RollingBack'), 11, timing)).to, 'Failed');
  });

  test('a transient API failure waits two polls and redoes the step; any other error moves', () => {
    assert.deepEqual(decideError(attempt('Verifying'), { transient: true, message: 'down' }, timing), { waitMs: 400 });
    assert.equal(moveOf(decideError(attempt('Pending', null), { transient: false, message: 'bad' }, timing)).stage, null);
    assert.equal(text(moveOf(decideError(attempt('RollingBack'), { transient: false, message: 'bad' }, timing))), 'rollback could not complete: bad');
  });

  test('the gate: the same wait again is not news, a wait never exceeds a minute, a go names the stage', () => {
    const blocked = waitFor('PreflightChecking', 'ChecksFailed', 5 * 60_000);
    const first = decideGate(attempt('Pending', null), { kind: 'gate', stage: 0, decision: blocked }, T0);
    assert.equal(moveOf(first).to, 'PreflightChecking');
    assert.equal('waitMs' in first && first.waitMs, MAX_GATE_WAIT_MS);
    const again = decideGate(attempt('PreflightChecking', 0, { reason: 'ChecksFailed' }), { kind: 'gate', stage: 0, decision: waitFor('PreflightChecking', 'ChecksFailed', 1_500) }, T0);
    assert.deepEqual(again, { waitMs: 1_500 });
    const past = decideGate(attempt('PreflightChecking', 0, { reason: 'ChecksFailed' }), { kind: 'gate', stage: 0, decision: waitFor('PreflightChecking', 'ChecksFailed', -5) }, T0);
    assert.deepEqual(past, { waitMs: 0 });
    const open = moveOf(decideGate(attempt('PreflightChecking', 1), { kind: 'gate', stage: 1, decision: { go: true, message: 'escalated' } }, T0));
    assert.equal(text(open), 'stage 1: metrics (new) → 1.1.0; escalated');
    assert.equal(open.stage, 1);
  });

  test('verifying: the progress deadline is strict, the candidate hands over, a failed workload rolls back with what its pods say', () => {
    const at = (ms: number) => decideVerify(attempt('Verifying'), verifying({ health: progressing }), T0 + ms, timing);
    assert.deepEqual(at(30_000), { waitMs: 200 }, 'at the deadline: still waiting');
    const late = moveOf(at(30_001));
    assert.equal(late.reason, 'StageDeadlineExceeded');
    assert.equal(text(late), 'stage 0 not healthy by its deadline: <pods say why>');
    const handed = decideVerify(attempt('Verifying'), verifying({ candidate: { version: '0.2.0', ready: true, message: 'agent-b: ok' } }), T0, timing);
    assert.equal('handOver' in handed && handed.handOver, '0.2.0');
    assert.equal(moveOf(handed).to, 'Soaking');
    assert.deepEqual(decideVerify(attempt('Verifying'), verifying({ candidate: { version: '0.2.0', ready: false, message: 'not yet' } }), T0 + 30_000, timing), { waitMs: 200 });
    assert.equal(moveOf(decideVerify(attempt('Verifying'), verifying({ candidate: { version: '0.2.0', ready: false, message: 'not yet' } }), T0 + 30_001, timing)).reason, 'CandidateNotReady');
    assert.equal(moveOf(decideVerify(attempt('Verifying'), verifying({ postflight: { ok: false, reason: 'CheckFailed', message: 'db down' } }), T0, timing)).reason, 'CheckFailed');
    const passed = moveOf(decideVerify(attempt('Verifying'), verifying(), T0, timing));
    assert.deepEqual([passed.to, passed.stage, passed.record], ['PreflightChecking', 1, { kind: 'stageInstalled', stage: 0 }]);
  });

  test('soaking: waits no longer than a poll or the soak left; the old agent hands over or rolls back; the new one proves it reaches the hub', () => {
    assert.deepEqual(decideSoak(attempt('Soaking'), soaking(), T0 + 9_900, timing), { waitMs: 100 });
    assert.deepEqual(decideSoak(attempt('Soaking'), soaking(), T0, timing), { waitMs: 200 });
    assert.deepEqual(decideSoak(attempt('Soaking'), soaking({ self: { running: 'old', version: '0.2.0', candidate: { ready: true, message: '' } } }), T0, timing), { handOver: '0.2.0' });
    assert.equal(moveOf(decideSoak(attempt('Soaking'), soaking({ self: { running: 'old', version: '0.2.0', candidate: { ready: false, message: 'gone' } } }), T0, timing)).reason, 'CandidateLost');
    const proving = (now: number, reachedHub: boolean) => decideSoak(attempt('Soaking'), soaking({ self: { running: 'new', version: '0.2.0', takeover: { reachedHub, sinceMs: T0, timeoutMs: 2_500 } } }), now, timing);
    assert.deepEqual(proving(T0 + 2_500, false), { waitMs: TAKEOVER_POLL_MS });
    const gaveUp = moveOf(proving(T0 + 2_501, false));
    assert.equal(gaveUp.reason, 'CandidateCannotReachHub');
    assert.match(text(gaveUp), /within 3s after taking over/);
    assert.deepEqual(proving(T0 + 5_000, true), { waitMs: 200 }, 'once it reached the hub, the soak counts');
  });

  test('rolling back: healthy restores the installed versions; unhealthy past the deadline fails, naming why it rolled back', () => {
    const a = attempt('RollingBack', 0, { reason: 'StageDeadlineExceeded', message: 'dns stuck' });
    const back = moveOf(decideRollback(a, { sinceMs: T0, deadlineMs: 30_000, health: healthy }, T0, timing));
    assert.deepEqual([back.to, back.reason, text(back), back.record], ['RolledBack', 'StageDeadlineExceeded', 'back on the previous version after: dns stuck', { kind: 'snapshotsRestored' }]);
    assert.deepEqual(decideRollback(a, { sinceMs: T0, deadlineMs: 30_000, health: failed }, T0 + 30_000, timing), { waitMs: 200 });
    const stuck = moveOf(decideRollback(a, { sinceMs: T0, deadlineMs: 30_000, health: failed }, T0 + 30_001, timing));
    assert.equal(text(stuck), 'rolled back after StageDeadlineExceeded but the previous version is not healthy: <pods say why>; a person must look at the cluster');
  });

  const down = (more: Partial<ObservedContainer> = {}): ObservedContainer => ({
    pod: 'addons/dns-7d9c-x2',
    container: 'dns',
    init: false,
    restartCount: 0,
    workload: { kind: 'Deployment', name: 'dns', namespace: 'addons' },
    downSinceMs: T0,
    ...more,
  });
  const crashing = (restartCount: number) => down({ restartCount, waiting: { reason: 'CrashLoopBackOff', message: 'back-off 20s restarting failed container' }, exit: { code: 70, reason: 'Error' } });

  test('a new pod that crash-loops ends the stage at once, long before its deadline, naming pod, container, reason and exit code', () => {
    const verdict = (containers: ObservedContainer[], now = T0 + 1_000) => decideVerify(attempt('Verifying'), verifying({ health: progressing, deadlineMs: 600_000, containers }), now, timing);
    // One or two failed starts are transient: the stage waits (and its deadline still holds).
    assert.deepEqual(verdict([crashing(CRASH_LOOP_RESTARTS - 1)]), { waitMs: 200 });
    assert.deepEqual(verdict([down({ restartCount: 1, exit: { code: 1, reason: 'Error' } })]), { waitMs: 200 }, 'one restart, just exited: not yet a crash loop');
    const m = moveOf(verdict([crashing(CRASH_LOOP_RESTARTS)]));
    assert.deepEqual([m.to, m.stage, m.reason], ['RollingBack', 0, 'CrashLoopBackOff']);
    assert.equal(text(m), 'stage 0: pod addons/dns-7d9c-x2 container dns: CrashLoopBackOff, exit code 70 (Error), 3 restarts: back-off 20s restarting failed container');
    // Down right now after enough restarts counts even between two back-offs (terminated, not yet waiting); exit 0 loops too.
    assert.match(text(moveOf(verdict([down({ restartCount: 4, exit: { code: 0, reason: 'Completed' } })]))), /container dns: Terminated, exit code 0 \(Completed\), 4 restarts$/);
    assert.match(text(moveOf(verdict([down({ init: true, container: 'migrate', restartCount: 3, waiting: { reason: 'CrashLoopBackOff' }, exit: { code: 2 } })]))), /init container migrate: CrashLoopBackOff, exit code 2, 3 restarts/);
    // A failed workload still speaks first; a healthy stage never looks at containers.
    assert.equal(moveOf(decideVerify(attempt('Verifying'), verifying({ health: failed, containers: [crashing(5)] }), T0, timing)).reason, 'ProgressDeadlineExceeded');
    assert.equal(moveOf(decideVerify(attempt('Verifying'), verifying({ containers: [crashing(5)] }), T0, timing)).to, 'PreflightChecking');
  });

  test('a container held by an image pull or a refused spec fails the stage once that has lasted BLOCKED_MS; a blip passes', () => {
    const verdict = (c: ObservedContainer, now: number) => decideVerify(attempt('Verifying'), verifying({ health: progressing, deadlineMs: 600_000, containers: [c] }), now, timing);
    for (const reason of ['ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'CreateContainerConfigError', 'CreateContainerError']) {
      const c = down({ waiting: { reason, message: 'why' } });
      assert.deepEqual(verdict(c, T0 + BLOCKED_MS - 1), { waitMs: 200 }, `${reason} for less than ${BLOCKED_MS} ms`);
      const m = moveOf(verdict(c, T0 + BLOCKED_MS));
      assert.equal(m.reason, 'ContainerCannotStart');
      assert.equal(text(m), `stage 0: pod addons/dns-7d9c-x2 container dns: ${reason} for 30s: why`);
    }
    assert.deepEqual(verdict(down({ waiting: { reason: 'ContainerCreating' } }), T0 + 10 * BLOCKED_MS), { waitMs: 200 }, 'creating is progress, the deadline governs it');
    assert.equal(containerFailure([], T0), undefined);
  });

  test("the agent's own new version that cannot start is CandidateNotReady at once, not at the deadline", () => {
    const m = moveOf(decideVerify(attempt('Verifying'), verifying({ health: progressing, selfVersion: '0.3.0', containers: [down({ pod: 'fleetlet-system/fleetlet-5c-abc', container: 'agent', restartCount: 3, waiting: { reason: 'CrashLoopBackOff' }, exit: { code: 70, reason: 'Error' } })] }), T0 + 1_000, timing));
    assert.deepEqual([m.to, m.reason], ['RollingBack', 'CandidateNotReady']);
    assert.equal(text(m), 'the new agent 0.3.0 cannot start: pod fleetlet-system/fleetlet-5c-abc container agent: CrashLoopBackOff, exit code 70 (Error), 3 restarts');
  });

  test('the new agent that took its stage over in Verifying (the rolling update replaced the old pod first) proves it reaches the hub before the stage counts', () => {
    const proving = (now: number, reachedHub: boolean, soak = 0) =>
      decideVerify(attempt('Verifying'), verifying({ soakMs: soak, takeover: { version: '0.4.0', reachedHub, sinceMs: T0, timeoutMs: 20_000 } }), now, timing);
    assert.deepEqual(proving(T0 + 20_000, false), { waitMs: TAKEOVER_POLL_MS }, 'healthy, but no hub yet: not passed');
    const gaveUp = moveOf(proving(T0 + 20_001, false));
    assert.deepEqual([gaveUp.to, gaveUp.reason], ['RollingBack', 'CandidateCannotReachHub']);
    assert.equal(text(gaveUp), 'new agent 0.4.0 could not reach the hub within 20s after taking over; reverting to the previous agent');
    assert.equal(moveOf(proving(T0 + 1_000, true)).to, 'PreflightChecking', 'once it reached the hub, the stage passes');
    assert.equal(moveOf(proving(T0 + 1_000, true, 5_000)).to, 'Soaking');
  });

  test('the removal stage is the last one when the release drops components', () => {
    const withRemoval: Plan = { ...plan, removed: [{ name: 'legacy', version: '0.1.0' }] };
    const stage1 = moveOf(decideVerify(attempt('Verifying', 1, { plan: withRemoval }), verifying({ stage: 1 }), T0, timing));
    assert.deepEqual([stage1.to, stage1.stage], ['PreflightChecking', 2]);
    const removal = moveOf(decideVerify(attempt('Verifying', 2, { plan: withRemoval }), verifying({ stage: 2 }), T0, timing));
    assert.equal(removal.to, 'Succeeded');
  });

  test('one deadline rule: the longest progress deadline (at least a second), the longest soak', () => {
    const c = (progressDeadlineSeconds: number, soakSeconds: number) => ({ health: { progressDeadlineSeconds, soakSeconds } });
    assert.equal(progressDeadlineMs([c(30, 0), c(600, 5)]), 600_000);
    assert.equal(progressDeadlineMs([]), 1_000);
    assert.equal(soakMs([c(30, 0), c(600, 5)]), 5_000);
    assert.equal(soakMs([]), 0);
    assert.equal(pastDeadline(T0, 1_000, T0 + 1_000), false);
    assert.equal(pastDeadline(T0, 1_000, T0 + 1_001), true);
  });
});
