// The pure rollout planner over thousands of simulated clusters with an
// injected clock: every strategy and parameter, and the two failures OCM
// users reported (ProgressivePerGroup not advancing after minSuccessTime,
// maxFailures not stopping a rollout).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { planWave, resolveLimit } from '../../src/hub/rollout/plan-wave.ts';
import { baseParams, FleetSim } from '../support/rollout-sim.ts';

const MIN = 60_000;

describe('rollout planner: strategies', () => {
  it('All starts every cluster at once and ends Succeeded when all succeeded', () => {
    const sim = new FleetSim({ groups: [{ name: 'fleet', size: 3000 }], params: baseParams() });
    const first = sim.tick();
    assert.equal(first.start.length, 3000);
    assert.equal(first.counts.Progressing, 3000);
    sim.advance(MIN);
    const done = sim.tick();
    assert.equal(done.phase, 'Succeeded');
    assert.equal(done.reason, 'AllSucceeded');
    assert.equal(done.counts.Succeeded, 3000);
    assert.equal(done.groups[0]?.state, 'Done');
    assert.equal(done.groups[0]?.endedAt, sim.now);
  });

  it('Progressive keeps at most maxConcurrency in flight over 10,000 clusters and starts them in rollout order', () => {
    const sim = new FleetSim({ groups: [{ name: 'fleet', size: 10_000 }], params: baseParams({ strategy: 'Progressive', maxConcurrency: 500 }) });
    const end = sim.run(MIN, 60 * MIN);
    assert.equal(end.phase, 'Succeeded');
    assert.equal(end.counts.Succeeded, 10_000);
    assert.equal(sim.maxInFlight, 500);
    // Twenty waves of 500, one a minute.
    assert.equal(sim.now - Date.parse('2030-01-02T00:00:00.000Z'), 20 * MIN);
    sim.clusters.forEach((c, i) => assert.equal(c.startedSeq, i, 'started in rollout order'));
  });

  it('Progressive resolves a percentage of the rollout (rounded up) as maxConcurrency', () => {
    assert.equal(resolveLimit('5%', 2000, 'up'), 100);
    assert.equal(resolveLimit('10%', 5, 'up'), 1);
    assert.equal(resolveLimit('10%', 5, 'down'), 0, 'failures round down: tolerate less, never more');
    assert.equal(resolveLimit(7, 5, 'down'), 7);
    const sim = new FleetSim({ groups: [{ name: 'fleet', size: 2000 }], params: baseParams({ strategy: 'Progressive', maxConcurrency: resolveLimit('5%', 2000, 'up') }) });
    assert.equal(sim.tick().start.length, 100);
  });

  it('minSuccessTime: a success frees its slot only after the soak, and the next cluster starts at that instant without any new report', () => {
    const sim = new FleetSim({
      groups: [{ name: 'fleet', size: 4 }],
      params: baseParams({ strategy: 'Progressive', maxConcurrency: 1, minSuccessMs: 5 * MIN }),
    });
    assert.deepEqual(sim.tick().start, ['fleet-00000']);
    sim.advance(MIN); // succeeds now
    const soaking = sim.tick();
    assert.deepEqual(soaking.start, []);
    assert.equal(sim.statusOf('fleet-00000'), 'Progressing');
    assert.equal(soaking.clusters[0]?.reason, 'Soaking');
    assert.equal(soaking.nextWakeAt, sim.now + 5 * MIN);
    sim.now += 5 * MIN - 1;
    assert.deepEqual(sim.tick().start, [], 'one millisecond before the soak ends');
    sim.now += 1;
    const next = sim.tick();
    assert.deepEqual(next.start, ['fleet-00001']);
    assert.equal(sim.statusOf('fleet-00000'), 'Succeeded');
  });

  it('a Failed cluster frees its slot at once', () => {
    // The agent has rolled back by the time it reports Failed: nothing of the release is left running, so the slot is free without waiting for minSuccessTime or progressDeadline.
    const sim = new FleetSim({
      groups: [{ name: 'fleet', size: 3, behaviour: (i) => (i === 0 ? { failAfter: MIN } : { succeedAfter: 10 * MIN }) }],
      params: baseParams({ strategy: 'Progressive', maxConcurrency: 1, maxFailures: 1, minSuccessMs: 30 * MIN, progressDeadlineMs: 60 * MIN }),
    });
    assert.deepEqual(sim.tick().start, ['fleet-00000']);
    sim.advance(MIN); // fails now
    const next = sim.tick();
    assert.equal(sim.statusOf('fleet-00000'), 'Failed');
    assert.deepEqual(next.start, ['fleet-00001'], 'the next cluster starts in the same tick');
    assert.equal(next.counts.Progressing, 1, 'the failed cluster holds no slot');
    assert.equal(next.phase, 'Progressing', 'one failure is within maxFailures');
  });

  it('ProgressivePerGroup advances to the next group exactly when minSuccessTime has passed, with no report in between (OCM: ProgressivePerGroup does not advance after minSuccessTime)', () => {
    const sim = new FleetSim({
      groups: [
        { name: 'g1', size: 1000 },
        { name: 'g2', size: 1000 },
        { name: 'g3', size: 1000 },
      ],
      params: baseParams({ strategy: 'ProgressivePerGroup', minSuccessMs: 10 * MIN }),
    });
    const first = sim.tick();
    assert.equal(first.start.length, 1000);
    assert.ok(first.start.every((id) => id.startsWith('g1-')));
    sim.advance(MIN); // every g1 cluster reports Succeeded
    const soaking = sim.tick();
    assert.equal(soaking.start.length, 0);
    assert.equal(soaking.groups[0]?.counts.Progressing, 1000, 'soaking clusters do not count yet');
    assert.equal(soaking.nextWakeAt, sim.now + 10 * MIN, 'the planner says when to look again');
    // No reports arrive from now on: only the clock moves.
    sim.now += 10 * MIN - 1;
    assert.equal(sim.tick().start.length, 0);
    sim.now += 1;
    const advanced = sim.tick();
    assert.equal(advanced.start.length, 1000);
    assert.ok(advanced.start.every((id) => id.startsWith('g2-')));
    assert.equal(advanced.groups[0]?.state, 'Done');
    assert.equal(advanced.groups[0]?.counts.Succeeded, 1000);
    assert.equal(advanced.groups[1]?.state, 'Active');
    assert.equal(advanced.groups[2]?.state, 'Pending');
    const end = sim.run(MIN, 120 * MIN);
    assert.equal(end.phase, 'Succeeded');
  });

  it('ProgressivePerGroup does not start a group while the previous one still has clusters in flight', () => {
    const sim = new FleetSim({
      groups: [
        { name: 'g1', size: 10, behaviour: (i) => ({ succeedAfter: i === 9 ? 30 * MIN : MIN }) },
        { name: 'g2', size: 10 },
      ],
      params: baseParams({ strategy: 'ProgressivePerGroup' }),
    });
    sim.tick();
    sim.advance(MIN);
    assert.equal(sim.tick().start.length, 0);
    sim.advance(29 * MIN);
    assert.equal(sim.tick().start.length, 10);
  });

  it('restGroupSize-style groups: mandatory groups go first, one at a time, before the rest', () => {
    const sim = new FleetSim({
      groups: [
        { name: 'integration', mandatory: true, size: 5 },
        { name: 'stage', mandatory: true, size: 20 },
        { name: 'prod-canary', mandatory: true, size: 50 },
        { name: 'rest', size: 2000 },
      ],
      params: baseParams({ strategy: 'Progressive', maxConcurrency: 100, minSuccessMs: 2 * MIN }),
    });
    const order: string[] = [];
    const seen = (ids: string[]) => ids.forEach((id) => !order.includes(id.split('-0')[0] as string) && order.push(id.split('-0')[0] as string));
    let d = sim.tick();
    assert.equal(d.start.length, 5, 'only integration, though 100 slots are free');
    seen(d.start);
    while (d.phase === 'Progressing') {
      sim.advance(MIN);
      d = sim.tick();
      seen(d.start);
      const groupsActive = d.groups.filter((g) => g.state === 'Active').length;
      assert.ok(groupsActive <= 1 || d.groups.slice(0, 3).every((g) => g.state === 'Done'), 'mandatory groups never overlap');
    }
    assert.deepEqual(order, ['integration', 'stage', 'prod-canary', 'rest']);
    assert.equal(d.phase, 'Succeeded');
  });
});

describe('rollout planner: failure thresholds', () => {
  it('maxFailures breached: Paused with the reason, and no new cluster ever starts, even as slots free up (OCM: maxFailures does not stop a rollout)', () => {
    const failing = new Set([3, 5, 7]);
    const sim = new FleetSim({
      groups: [{ name: 'fleet', size: 1000, behaviour: (i) => (failing.has(i) ? { failAfter: MIN } : { succeedAfter: 2 * MIN }) }],
      params: baseParams({ strategy: 'Progressive', maxConcurrency: 10, maxFailures: 2 }),
    });
    assert.equal(sim.tick().start.length, 10);
    sim.advance(MIN);
    const paused = sim.tick();
    assert.equal(paused.phase, 'Paused');
    assert.equal(paused.reason, 'MaxFailuresExceeded');
    assert.match(paused.message ?? '', /3 failed .* exceed maxFailures 2/);
    assert.equal(paused.start.length, 0);
    assert.equal(paused.failures, 3);
    assert.equal(paused.counts.Failed, 3);
    // The other seven succeed and free their slots; hours pass: nothing new starts.
    for (let h = 0; h < 120; h++) {
      sim.advance(MIN);
      const d = sim.tick();
      assert.equal(d.start.length, 0);
      assert.equal(d.phase, 'Paused');
    }
    assert.equal(sim.startedTotal, 10);
    assert.equal(sim.last?.counts.Succeeded, 7);
    assert.equal(sim.last?.counts.ToApply, 990);
  });

  it('failures up to maxFailures are tolerated; the rollout ends Completed with them', () => {
    const sim = new FleetSim({
      groups: [{ name: 'fleet', size: 200, behaviour: (i) => (i === 10 || i === 150 ? { failAfter: MIN } : { succeedAfter: MIN }) }],
      params: baseParams({ strategy: 'Progressive', maxConcurrency: 20, maxFailures: resolveLimit('1%', 200, 'down') }),
    });
    const end = sim.run(MIN, 60 * MIN);
    assert.equal(end.phase, 'Completed');
    assert.equal(end.reason, 'CompletedWithFailures');
    assert.equal(end.counts.Failed, 2);
    assert.equal(end.counts.Succeeded, 198);
  });

  it('ProgressivePerGroup: a group over maxFailures keeps the next group from starting', () => {
    const sim = new FleetSim({
      groups: [
        { name: 'g1', size: 100, behaviour: (i) => (i < 3 ? { failAfter: MIN } : { succeedAfter: MIN }) },
        { name: 'g2', size: 100 },
      ],
      params: baseParams({ strategy: 'ProgressivePerGroup', maxFailures: 2 }),
    });
    const end = sim.run(MIN, 60 * MIN);
    assert.equal(end.phase, 'Paused');
    assert.equal(end.groups[1]?.counts.ToApply, 100);
    assert.equal(sim.startedTotal, 100);
  });

  it('progressDeadline: a cluster not Succeeded in time is TimedOut and counts as a failure', () => {
    const sim = new FleetSim({
      groups: [{ name: 'fleet', size: 50, behaviour: (i) => (i === 0 ? { progressAfter: MIN } : { succeedAfter: MIN }) }],
      params: baseParams({ strategy: 'Progressive', maxConcurrency: 5, progressDeadlineMs: 30 * MIN }),
    });
    const t0 = sim.now;
    sim.tick();
    assert.equal(sim.last?.nextWakeAt, t0 + 30 * MIN);
    sim.now = t0 + 30 * MIN - 1;
    sim.advance(0);
    sim.tick();
    assert.equal(sim.statusOf('fleet-00000'), 'Progressing');
    assert.equal(sim.last?.phase, 'Progressing');
    sim.now = t0 + 30 * MIN;
    const d = sim.tick();
    assert.equal(sim.statusOf('fleet-00000'), 'TimedOut');
    assert.equal(d.clusters[0]?.reason, 'ProgressDeadlineExceeded');
    assert.match(d.clusters[0]?.message ?? '', /last phase Upgrading/);
    assert.equal(d.phase, 'Paused');
    assert.equal(d.reason, 'MaxFailuresExceeded');
  });

  it('a failing canary (mandatory group) pauses the rollout before any other cluster starts, whatever maxFailures allows; resume goes on', () => {
    const sim = new FleetSim({
      groups: [
        { name: 'canary', mandatory: true, size: 3, behaviour: (i) => (i === 1 ? { failAfter: MIN } : { succeedAfter: MIN }) },
        { name: 'rest', size: 5000 },
      ],
      params: baseParams({ strategy: 'Progressive', maxConcurrency: 500, maxFailures: 100 }),
    });
    assert.equal(sim.tick().start.length, 3);
    const end = sim.run(MIN, 60 * MIN);
    assert.equal(end.phase, 'Paused');
    assert.equal(end.reason, 'MandatoryGroupFailed');
    assert.equal(sim.startedTotal, 3);
    assert.equal(end.groups[1]?.counts.ToApply, 5000);
    sim.resume();
    const resumed = sim.tick();
    assert.equal(resumed.start.length, 500);
    assert.equal(resumed.phase, 'Progressing');
    assert.equal(sim.run(MIN, 60 * MIN).phase, 'Completed');
  });

  it('after a resume only new failures count against maxFailures', () => {
    const sim = new FleetSim({
      groups: [{ name: 'fleet', size: 40, behaviour: (i) => (i === 0 || i === 25 || i === 26 ? { failAfter: MIN } : { succeedAfter: MIN }) }],
      params: baseParams({ strategy: 'Progressive', maxConcurrency: 10, maxFailures: 1 }),
    });
    sim.tick();
    sim.advance(MIN);
    sim.tick();
    assert.equal(sim.phase, 'Progressing', 'one failure is within maxFailures 1');
    const end = sim.run(MIN, 60 * MIN);
    assert.equal(end.phase, 'Paused', 'three failures exceed 1');
    assert.equal(end.failures, 3);
    sim.resume();
    assert.equal(sim.run(MIN, 60 * MIN).phase, 'Completed');
  });
});

describe('rollout planner: offline clusters, windows, operator phases', () => {
  it('unknownClusters Skip: an Unknown cluster is skipped when its turn comes, takes no slot, and starts when it is back', () => {
    const sim = new FleetSim({ groups: [{ name: 'fleet', size: 6 }], params: baseParams({ strategy: 'Progressive', maxConcurrency: 2 }) });
    sim.byId('fleet-00000').state.available = false;
    const d = sim.tick();
    assert.deepEqual(d.start, ['fleet-00001', 'fleet-00002']);
    assert.deepEqual(d.skippedNow, ['fleet-00000']);
    assert.equal(d.counts.Skipped, 1);
    assert.equal(d.counts.unknown, 1);
    assert.equal(d.clusters[0]?.reason, 'ClusterUnknown');
    const rest = sim.run(MIN, 30 * MIN);
    assert.equal(rest.phase, 'Progressing', 'the skipped cluster keeps the rollout open');
    assert.equal(rest.reason, 'WaitingForUnknownClusters');
    assert.equal(rest.counts.Succeeded, 5);
    sim.byId('fleet-00000').state.available = true;
    const back = sim.tick();
    assert.deepEqual(back.start, ['fleet-00000']);
    sim.advance(MIN);
    assert.equal(sim.tick().phase, 'Succeeded');
  });

  it('unknownClusters Skip does not hold back a ProgressivePerGroup wave', () => {
    const sim = new FleetSim({
      groups: [
        { name: 'g1', size: 10 },
        { name: 'g2', size: 10 },
      ],
      params: baseParams({ strategy: 'ProgressivePerGroup' }),
    });
    sim.byId('g1-00004').state.available = false;
    assert.equal(sim.tick().start.length, 9);
    sim.advance(MIN);
    const d = sim.tick();
    assert.equal(d.start.length, 10, 'g2 starts although g1-00004 never got its release');
    assert.equal(d.groups[0]?.state, 'Done');
  });

  it('unknownClusters Wait: an Unknown cluster is sent the release anyway, holds its slot and times out against progressDeadline', () => {
    const sim = new FleetSim({ groups: [{ name: 'fleet', size: 4 }], params: baseParams({ strategy: 'Progressive', maxConcurrency: 1, unknownClusters: 'Wait', progressDeadlineMs: 10 * MIN, maxFailures: 1 }) });
    const c = sim.byId('fleet-00000');
    c.state.available = false;
    c.behaviour = {};
    const d = sim.tick();
    assert.deepEqual(d.start, ['fleet-00000']);
    assert.match(d.clusters[0]?.message ?? '', /delivered when it reconnects/);
    sim.advance(5 * MIN);
    assert.equal(sim.tick().start.length, 0, 'its slot is held');
    sim.advance(5 * MIN);
    const timedOut = sim.tick();
    assert.equal(sim.statusOf('fleet-00000'), 'TimedOut');
    assert.match(timedOut.clusters[0]?.message ?? '', /the cluster is Unknown/);
    assert.deepEqual(timedOut.start, ['fleet-00001']);
  });

  it('a mandatory cluster that is Unknown is never skipped (a canary must run the release)', () => {
    const sim = new FleetSim({ groups: [{ name: 'canary', mandatory: true, size: 2 }, { name: 'rest', size: 5 }], params: baseParams({ progressDeadlineMs: 30 * MIN }) });
    sim.byId('canary-00001').state.available = false;
    const d = sim.tick();
    assert.deepEqual(d.start, ['canary-00000', 'canary-00001']);
  });

  it('a closed hub window starts nothing and says when it opens; clusters in flight carry on', () => {
    const sim = new FleetSim({ groups: [{ name: 'fleet', size: 10 }], params: baseParams({ strategy: 'Progressive', maxConcurrency: 5 }) });
    sim.tick();
    const opensAt = sim.now + 3 * 3600_000;
    sim.window = { open: false, nextOpeningAt: opensAt };
    sim.advance(MIN);
    const closed = sim.tick();
    assert.equal(closed.start.length, 0);
    assert.equal(closed.counts.Succeeded, 5);
    assert.equal(closed.reason, 'WaitingForWindow');
    assert.match(closed.message ?? '', /opens at 2030-01-02T03:00:00.000Z/);
    assert.equal(closed.nextWakeAt, opensAt);
    sim.now = opensAt;
    sim.window = { open: true, nextOpeningAt: null };
    assert.equal(sim.tick().start.length, 5);
  });

  it('Paused and Cancelled rollouts start nothing but still count', () => {
    for (const phase of ['Paused', 'Cancelled'] as const) {
      const sim = new FleetSim({ groups: [{ name: 'fleet', size: 10 }], params: baseParams() });
      sim.phase = phase;
      const d = sim.tick();
      assert.equal(d.start.length, 0);
      assert.equal(d.phase, phase);
      assert.equal(d.counts.ToApply, 10);
    }
  });

  it('a Paused rollout whose clusters all became final ends Completed (or Succeeded), not Paused with nothing left to resume', () => {
    const sim = new FleetSim({ groups: [{ name: 'fleet', size: 4, behaviour: (i) => (i === 0 ? { failAfter: MIN } : { succeedAfter: 2 * MIN }) }], params: baseParams({ maxFailures: 1 }) });
    assert.equal(sim.tick().start.length, 4);
    sim.phase = 'Paused';
    sim.reason = 'PausedByOperator';
    sim.advance(MIN);
    assert.equal(sim.tick().phase, 'Paused', 'clusters still in flight: the pause stands');
    sim.advance(MIN);
    const done = sim.tick();
    assert.deepEqual([done.phase, done.reason, done.phaseChanged], ['Completed', 'CompletedWithFailures', true]);
    assert.match(done.message ?? '', /^3 succeeded, 1 failed, 0 timed out \(within maxFailures\); it was paused \(PausedByOperator\) once every cluster had been sent/);

    const clean = new FleetSim({ groups: [{ name: 'fleet', size: 2 }], params: baseParams() });
    clean.tick();
    clean.phase = 'Paused';
    clean.advance(MIN);
    assert.equal(clean.tick().phase, 'Succeeded');

    // One cluster never sent: the pause holds it back, so it stands.
    const held = new FleetSim({ groups: [{ name: 'fleet', size: 3 }], params: baseParams({ strategy: 'Progressive', maxConcurrency: 2 }) });
    held.tick();
    held.phase = 'Paused';
    held.advance(MIN);
    const stands = held.tick();
    assert.deepEqual([stands.phase, stands.counts.ToApply, stands.start.length], ['Paused', 1, 0]);
  });

  it('a cluster sent something newer elsewhere, or deregistered, is Skipped for good and does not keep the rollout open', () => {
    const sim = new FleetSim({ groups: [{ name: 'fleet', size: 3 }], params: baseParams() });
    sim.tick();
    sim.byId('fleet-00000').state.outcome = { kind: 'Superseded' };
    sim.byId('fleet-00001').state.outcome = { kind: 'Gone' };
    sim.advance(MIN);
    const d = sim.tick();
    assert.equal(d.counts.Skipped, 2);
    assert.deepEqual(d.clusters.slice(0, 2).map((c) => c.reason), ['Superseded', 'Deregistered']);
    assert.equal(d.phase, 'Succeeded');
  });

  it('a result once seen stays after a later release supersedes the cluster (a rollback does not erase the failures it answers)', () => {
    const sim = new FleetSim({ groups: [{ name: 'fleet', size: 3, behaviour: (i) => (i === 1 ? { failAfter: MIN } : { succeedAfter: MIN }) }], params: baseParams({ maxFailures: 1 }) });
    sim.tick();
    sim.advance(MIN);
    const seen = sim.tick();
    assert.deepEqual(seen.failedNow.map((f) => [f.id, f.reason]), [['fleet-00001', 'HealthCheckFailed']]);
    for (const c of sim.clusters) c.state.outcome = { kind: 'Superseded' };
    const later = planWave(sim.input(), sim.now + MIN);
    assert.deepEqual(later.clusters.map((c) => c.status), ['Succeeded', 'Failed', 'Succeeded']);
    assert.equal(later.clusters[1]?.reason, 'HealthCheckFailed');
  });

  it('mayStart false (status reads) changes no bookkeeping', () => {
    const sim = new FleetSim({ groups: [{ name: 'fleet', size: 3 }], params: baseParams() });
    sim.byId('fleet-00000').state.available = false;
    const d = planWave({ ...sim.input(), mayStart: false }, sim.now);
    assert.deepEqual(d.start, []);
    assert.deepEqual(d.skippedNow, []);
    assert.equal(d.counts.ToApply, 3);
  });

  it('estimates the end from the mean time per cluster and the waves left', () => {
    const sim = new FleetSim({ groups: [{ name: 'fleet', size: 1000 }], params: baseParams({ strategy: 'Progressive', maxConcurrency: 100 }) });
    sim.tick();
    sim.advance(MIN);
    const d = sim.tick();
    // 100 in flight (end ~ now + 1 min), 800 to apply: 8 more waves of 1 minute.
    assert.equal(d.expectedEndAt, sim.now + MIN + 8 * MIN);
  });
});

describe('rollout planner: speed', () => {
  it('plans a wave over 10,000 clusters in milliseconds', (t) => {
    const sim = new FleetSim({ groups: [{ name: 'canary', mandatory: true, size: 50 }, { name: 'fleet', size: 9950 }], params: baseParams({ strategy: 'Progressive', maxConcurrency: 500, progressDeadlineMs: 3600_000, minSuccessMs: MIN }) });
    sim.run(MIN, 10 * MIN); // mid-rollout: every status present
    const input = sim.input();
    const runs: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      planWave(input, sim.now);
      runs.push(performance.now() - t0);
    }
    runs.sort((a, b) => a - b);
    const median = runs[10] as number;
    t.diagnostic(`planWave over 10,000 clusters: median ${median.toFixed(2)} ms`);
    assert.ok(median < 50, `median ${median} ms`);
  });
});
