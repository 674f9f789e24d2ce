// The rollout rules users bring from Open Cluster Management, where fleetlet
// follows them and where it keeps its own on purpose (docs/hub-api.md
// "Compared with OCM").
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { limitsOf, type StoredSpec } from '../../src/hub/rollout/rollout-spec.ts';
import { rolloutRequest } from '../../src/protocol/rollout.ts';
import { baseParams, FleetSim } from '../support/rollout-sim.ts';
import { sampleReleaseRequest } from '../support/releases.ts';

const MIN = 60_000;

describe('rollouts as OCM users expect them', () => {
  it('All with failures beyond maxFailures ends Completed once every cluster was sent, never Paused with nothing left to resume', () => {
    const sim = new FleetSim({
      groups: [{ name: 'fleet', size: 20, behaviour: (i) => (i < 3 ? { failAfter: MIN } : { succeedAfter: 2 * MIN }) }],
      params: baseParams({ strategy: 'All', maxFailures: 1 }),
    });
    assert.equal(sim.tick().start.length, 20);
    sim.advance(MIN);
    const failing = sim.tick();
    assert.equal(failing.phase, 'Progressing', 'nothing is left to hold back, so a breach pauses nothing');
    const end = sim.run(MIN, 10 * MIN);
    assert.equal(end.phase, 'Completed');
    assert.equal(end.reason, 'CompletedWithFailures');
    assert.deepEqual([end.counts.Succeeded, end.counts.Failed], [17, 3]);
    assert.match(end.message ?? '', /17 succeeded, 3 failed, 0 timed out \(more than allowed \(3 failed or timed-out cluster\(s\) exceed maxFailures 1\), but every cluster had been sent: nothing was left to hold back\)/);
  });

  it('Progressive: a breach in the last wave, after every cluster was sent, ends Completed as well; earlier it pauses', () => {
    const early = new FleetSim({
      groups: [{ name: 'fleet', size: 10, behaviour: (i) => (i === 0 ? { failAfter: MIN } : { succeedAfter: MIN }) }],
      params: baseParams({ strategy: 'Progressive', maxConcurrency: 5, maxFailures: 0 }),
    });
    assert.equal(early.run(MIN, 30 * MIN).phase, 'Paused');
    const late = new FleetSim({
      groups: [{ name: 'fleet', size: 10, behaviour: (i) => (i === 9 ? { failAfter: MIN } : { succeedAfter: MIN }) }],
      params: baseParams({ strategy: 'Progressive', maxConcurrency: 5, maxFailures: 0 }),
    });
    const end = late.run(MIN, 30 * MIN);
    assert.deepEqual([end.phase, end.reason, end.counts.Failed, late.startedTotal], ['Completed', 'CompletedWithFailures', 1, 10]);
  });

  it('ProgressivePerGroup applies maxFailures to each group, a percentage of that group, rounded down', () => {
    // 10% of the whole rollout (110) would tolerate 11 failures; per group it is 1 of 10 and 10 of 100.
    const spec = rolloutRequest.parse({ name: 'pg', target: { kind: 'Release', release: sampleReleaseRequest() }, strategy: { type: 'ProgressivePerGroup', maxFailures: '10%' } }) as StoredSpec;
    const limits = limitsOf(spec, 110);
    assert.equal(limits.maxFailuresPerGroup, '10%');
    const run = (failInSmall: number) => {
      const sim = new FleetSim({
        groups: [
          { name: 'small', size: 10, behaviour: (i) => (i < failInSmall ? { failAfter: MIN } : { succeedAfter: MIN }) },
          { name: 'big', size: 100 },
        ],
        params: baseParams({ strategy: 'ProgressivePerGroup', ...limits }),
      });
      return { sim, end: sim.run(MIN, 30 * MIN) };
    };
    const tolerated = run(1);
    assert.equal(tolerated.end.phase, 'Completed', '1 of 10 is within 10%');
    assert.equal(tolerated.sim.startedTotal, 110);
    const { sim, end } = run(2);
    assert.equal(end.phase, 'Paused');
    assert.equal(end.reason, 'MaxFailuresExceeded');
    assert.match(end.message ?? '', /2 failed or timed-out cluster\(s\) in group "small" exceed maxFailures 10% of its 10 \(1\)/);
    assert.equal(end.groups[1]?.counts.ToApply, 100, 'the next group never started');
    // A resume accepts the group's failures; the next group is measured on its own.
    sim.resume();
    assert.equal(sim.run(MIN, 30 * MIN).phase, 'Completed');
    assert.equal(sim.startedTotal, 110);
    // 10% of a 5-cluster group tolerates none: one failure would be 20%.
    const five = new FleetSim({
      groups: [{ name: 'five', size: 5, behaviour: (i) => (i === 0 ? { failAfter: MIN } : { succeedAfter: MIN }) }, { name: 'next', size: 5 }],
      params: baseParams({ strategy: 'ProgressivePerGroup', maxFailures: 0, maxFailuresPerGroup: '10%' }),
    });
    assert.equal(five.run(MIN, 30 * MIN).phase, 'Paused');
  });

  it('Progressive without maxConcurrency means every cluster at once (OCM), with maxFailures still in force', () => {
    const spec = rolloutRequest.parse({ name: 'p', target: { kind: 'Release', release: sampleReleaseRequest() }, strategy: { type: 'Progressive', maxFailures: 2 } }) as StoredSpec;
    const limits = limitsOf(spec, 40);
    assert.equal(limits.maxConcurrency, 40);
    const sim = new FleetSim({ groups: [{ name: 'fleet', size: 40 }], params: baseParams({ strategy: 'Progressive', ...limits }) });
    assert.equal(sim.tick().start.length, 40);
  });

  it('progressDeadline 0s is refused with what to write instead', () => {
    const r = rolloutRequest.safeParse({ name: 'p', target: { kind: 'Release', release: sampleReleaseRequest() }, strategy: { type: 'All', progressDeadline: '0s' } });
    assert.equal(r.success, false);
    assert.deepEqual(
      r.error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`),
      ['strategy.progressDeadline: "0s" would count every cluster TimedOut the moment it is sent; write None for no deadline, or how long a cluster may take, e.g. 30m'],
    );
    assert.equal(rolloutRequest.safeParse({ name: 'p', target: { kind: 'Release', release: sampleReleaseRequest() }, strategy: { type: 'All', progressDeadline: 'soon' } }).error?.issues[0]?.message, 'must be a duration like 90m, 4h or 1h30m (or None for no deadline)');
  });
});
