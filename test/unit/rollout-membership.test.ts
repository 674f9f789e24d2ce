// membership: Dynamic on a real hub database: the selector is evaluated again
// before every wave, so a cluster that registers or changes labels during a
// rollout joins it, and one that leaves before it was counted drops out
// instead of failing its group. Fixed (the default) keeps the clusters of
// creation.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { deregisterCluster } from '../../src/hub/cluster-operations.ts';
import { createRollout, rolloutStatus, tickRollouts } from '../../src/hub/rollout/rollout-operations.ts';
import { ids, RolloutHub } from '../support/rollout-hub.ts';
import { sampleReleaseRequest } from '../support/releases.ts';

const MIN = 60_000;

describe('rollout membership', () => {
  let h: RolloutHub;
  beforeEach(async () => {
    h = await RolloutHub.open();
  });
  afterEach(() => h.close());

  const spec = (membership: 'Fixed' | 'Dynamic') => ({
    name: `m-${membership.toLowerCase()}`,
    target: { kind: 'Release', release: sampleReleaseRequest('1.0.0') },
    selector: { matchLabels: { fleet: 'a' } },
    groups: [{ name: 'canary', mandatory: true, selector: { matchLabels: { ring: 'canary' } } }],
    strategy: { type: 'Progressive', maxConcurrency: 2, progressDeadline: '30m' },
    membership,
  });

  /** Everything sent so far reports success, then a tick. */
  async function step(): Promise<void> {
    h.clock.advance(MIN);
    await h.heartbeat();
    for (const id of h.delivered.keys()) if (await h.ctx.releases.latest(id)) await h.attempt(id, 'Succeeded');
    await tickRollouts(h.ctx);
  }

  it('Fixed (the default) keeps the clusters selected at creation', async () => {
    await h.enrol(ids('edge', 4), () => ({ fleet: 'a' }));
    const created = await createRollout(h.ctx, { ...spec('Fixed'), membership: undefined });
    assert.equal(created.membership, 'Fixed');
    await h.enrol(['late-1'], () => ({ fleet: 'a' }));
    for (let i = 0; i < 10; i++) await step();
    const s = await rolloutStatus(h.ctx, 'm-fixed', { clusters: 'all' });
    assert.equal(s.phase, 'Succeeded');
    assert.deepEqual(s.clusters?.map((c) => c.clusterId), ids('edge', 4));
  });

  it('Dynamic: a cluster that registers or gets the labels joins its group; one that leaves before it was sent drops out', async () => {
    await h.enrol(ids('edge', 6), () => ({ fleet: 'a' }));
    await h.enrol(['canary-1'], () => ({ fleet: 'a', ring: 'canary' }));
    const created = await createRollout(h.ctx, spec('Dynamic'));
    assert.deepEqual([created.membership, created.counts.total, created.counts.Progressing], ['Dynamic', 7, 1]);
    // Before the canary is done: a second canary registers, a prod cluster leaves, another joins by label.
    await h.enrol(['canary-2'], () => ({ fleet: 'a', ring: 'canary' }));
    await h.ctx.clusters.setLabels('edge-00005', { fleet: 'b' });
    await h.enrol(['late-1'], () => ({ fleet: 'b' }));
    await h.ctx.clusters.setLabels('late-1', { fleet: 'a' });
    await tickRollouts(h.ctx);
    const joined = await rolloutStatus(h.ctx, 'm-dynamic', { clusters: 'all' });
    assert.deepEqual(
      joined.groups.map((g) => [g.name, g.counts.total]),
      [
        ['canary', 2],
        ['rest', 6],
      ],
    );
    assert.equal(joined.counts.total, 8);
    assert.ok(!joined.clusters?.some((c) => c.clusterId === 'edge-00005'), 'left before it was sent');
    assert.equal(joined.clusters?.find((c) => c.clusterId === 'canary-2')?.status, 'Progressing', 'a new canary goes first, as canaries do');
    assert.equal(joined.groups[1]?.counts.Progressing, 0, 'the rest waits for both canaries');
    for (let i = 0; i < 20; i++) await step();
    const end = await rolloutStatus(h.ctx, 'm-dynamic', { clusters: 'all' });
    assert.equal(end.phase, 'Succeeded');
    assert.deepEqual(end.clusters?.map((c) => c.clusterId).sort(), ['canary-1', 'canary-2', 'edge-00000', 'edge-00001', 'edge-00002', 'edge-00003', 'edge-00004', 'late-1']);
    assert.equal(await h.ctx.releases.latest('edge-00005'), undefined, 'never sent');
  });

  it('Dynamic: a canary that leaves the selection or is deregistered before it was counted does not fail its mandatory group; Fixed times it out', async () => {
    for (const membership of ['Fixed', 'Dynamic'] as const) {
      const prefix = membership.toLowerCase();
      await h.enrol([`${prefix}-canary`], () => ({ fleet: prefix, ring: 'canary' }));
      await h.enrol([`${prefix}-gone`], () => ({ fleet: prefix, ring: 'canary' }));
      await h.enrol(ids(`${prefix}-prod`, 3), () => ({ fleet: prefix }));
      await createRollout(h.ctx, { ...spec(membership), name: prefix, selector: { matchLabels: { fleet: prefix } } });
    }
    await tickRollouts(h.ctx);
    // The canaries are sent; each rollout's first canary never answers and leaves the fleet, its second is deregistered.
    for (const prefix of ['fixed', 'dynamic']) {
      await h.ctx.clusters.setLabels(`${prefix}-canary`, { fleet: 'elsewhere', ring: 'canary' });
      await deregisterCluster(h.ctx, `${prefix}-gone`);
    }
    for (let i = 0; i < 40; i++) {
      h.clock.advance(MIN);
      await h.heartbeat();
      for (const id of ids('dynamic-prod', 3)) if (await h.ctx.releases.latest(id)) await h.attempt(id, 'Succeeded');
      await tickRollouts(h.ctx);
    }
    const fixed = await rolloutStatus(h.ctx, 'fixed');
    assert.deepEqual([fixed.phase, fixed.reason], ['Paused', 'MandatoryGroupFailed']);
    assert.deepEqual(fixed.failed.map((f) => [f.clusterId, f.status]), [['fixed-canary', 'TimedOut']]);
    const dynamic = await rolloutStatus(h.ctx, 'dynamic', { clusters: 'all' });
    assert.deepEqual([dynamic.phase, dynamic.counts.total, dynamic.counts.Failed + dynamic.counts.TimedOut], ['Succeeded', 3, 0]);
    assert.deepEqual(dynamic.groups.map((g) => [g.name, g.counts.total]), [
      ['canary', 0],
      ['rest', 3],
    ]);
  });
});
