// Rollouts on a real hub database: creation and selection, ticks that send
// releases as new per-cluster revisions, a canary that fails, rollback, a
// hub restart mid-rollout, and operator actions. Thousands of clusters,
// simulated agents reporting through the hub's ingest path, injected clock.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { renderRollout } from '../../src/cli/rollout-command.ts';
import { ApiError } from '../../src/hub/api-error.ts';
import { cancelRollout, createRollout, pauseRollout, resumeRollout, rollbackRollout, rolloutStatus, tickRollouts } from '../../src/hub/rollout/rollout-operations.ts';
import { verifyRelease } from '../../src/protocol/signing.ts';
import { ids, RolloutHub } from '../support/rollout-hub.ts';
import { sampleReleaseRequest } from '../support/releases.ts';

const MIN = 60_000;

async function apiError(fn: () => unknown): Promise<ApiError> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
  throw new Error('expected an ApiError');
}

describe('rollouts on the hub store', () => {
  let h: RolloutHub;
  beforeEach(async () => {
    h = await RolloutHub.open();
  });
  afterEach(() => h.close());

  /** Every cluster of `fleet` first runs 1.0.0, set the way an operator would (one revision each). */
  async function baseline(fleet: readonly string[]): Promise<void> {
    await createRollout(h.ctx, { name: 'baseline', target: { kind: 'Release', release: sampleReleaseRequest('1.0.0') }, selector: { clusterIds: [...fleet] }, strategy: { type: 'All' } });
    for (const id of fleet) await h.attempt(id, 'Succeeded');
    await tickRollouts(h.ctx);
    assert.equal((await rolloutStatus(h.ctx, 'baseline')).phase, 'Succeeded');
  }

  it('rolls 1,000 clusters out canaries first, at most maxConcurrency at a time, one new revision per cluster, with times in the status', async () => {
    const fleet = ids('edge', 1000);
    await h.enrol(fleet, (_id, i) => ({ ring: i < 20 ? 'canary' : 'prod', region: i % 2 === 0 ? 'eu' : 'us' }));
    await baseline(fleet);
    const before = await h.revisions(fleet);
    const created = await createRollout(h.ctx, {
      name: 'addons-1-1',
      target: { kind: 'Release', release: sampleReleaseRequest('1.1.0') },
      groups: [{ name: 'canary', mandatory: true, selector: { matchLabels: { ring: 'canary' } } }],
      strategy: { type: 'Progressive', maxConcurrency: 100, minSuccessTime: '5m', progressDeadline: '1h' },
    });
    assert.equal(created.counts.total, 1000);
    assert.equal(created.counts.Progressing, 20, 'the canaries only');
    assert.deepEqual(created.groups.map((g) => [g.name, g.mandatory, g.counts.total]), [
      ['canary', true, 20],
      ['rest', false, 980],
    ]);
    assert.equal(created.startedAt, h.clock.now().toISOString());
    assert.equal(created.expectedEndAt, new Date(h.clock.now().getTime() + 11 * 65 * MIN).toISOString(), 'worst case: (deadline + soak) per wave, canary + 10 waves');

    let maxProgressing = 0;
    assert.equal(created.clusters, undefined, 'clusters are listed only with ?clusters=all');
    let sent = fleet.slice(0, 20);
    const known = new Set(sent);
    for (let step = 0; step < 200; step++) {
      h.clock.advance(5 * MIN);
      await h.heartbeat();
      // The clusters sent 1.1.0 since the last step report success.
      for (const id of sent) await h.attempt(id, 'Succeeded');
      await tickRollouts(h.ctx);
      const s = await rolloutStatus(h.ctx, 'addons-1-1', { clusters: 'all' });
      sent = (s.clusters ?? []).filter((c) => c.sentAt !== null && !known.has(c.clusterId)).map((c) => c.clusterId);
      for (const id of sent) known.add(id);
      maxProgressing = Math.max(maxProgressing, s.counts.Progressing);
      if (s.phase !== 'Progressing') break;
    }
    const done = await rolloutStatus(h.ctx, 'addons-1-1');
    assert.equal(done.phase, 'Succeeded');
    assert.equal(done.counts.Succeeded, 1000);
    assert.ok(maxProgressing <= 100, `max in flight ${maxProgressing}`);
    assert.equal(done.endedAt, h.clock.now().toISOString());
    assert.equal(done.expectedEndAt, done.endedAt);
    assert.ok(done.groups.every((g) => g.state === 'Done' && g.startedAt !== null && g.endedAt !== null));
    assert.ok(Date.parse(done.groups[0]?.endedAt ?? '') <= Date.parse(done.groups[1]?.startedAt ?? ''), 'the rest started after the canaries ended');
    const after = await h.revisions(fleet);
    for (const id of fleet) assert.equal(after.get(id), (before.get(id) ?? 0) + 1, `${id} got exactly one new revision`);
  });

  it('a canary whose release rolls back pauses the rollout before any other cluster starts; rollback sends the previous release as a new revision', async () => {
    const fleet = ids('edge', 300);
    await h.enrol(fleet, (_id, i) => ({ ring: i < 3 ? 'canary' : 'prod' }));
    await baseline(fleet);
    const before = await h.revisions(fleet);
    await createRollout(h.ctx, {
      name: 'bad',
      target: { kind: 'Release', release: sampleReleaseRequest('2.0.0') },
      groups: [{ name: 'canary', mandatory: true, selector: { matchLabels: { ring: 'canary' } } }],
      strategy: { type: 'Progressive', maxConcurrency: '50%', maxFailures: '10%' },
    });
    h.clock.advance(MIN);
    await h.attempt('edge-00000', 'Succeeded');
    await h.attempt('edge-00001', 'RolledBack', 'HealthCheckFailed');
    await tickRollouts(h.ctx);
    const paused = await rolloutStatus(h.ctx, 'bad');
    assert.equal(paused.phase, 'Paused');
    assert.equal(paused.reason, 'MandatoryGroupFailed');
    assert.deepEqual(paused.failed.map((f) => [f.clusterId, f.status, f.reason]), [['edge-00001', 'Failed', 'HealthCheckFailed']]);
    const now = await h.revisions(fleet);
    for (const id of fleet.slice(3)) assert.equal(now.get(id), before.get(id), `${id} was not sent anything`);
    // An hour of ticks later, still nothing new.
    for (let m = 0; m < 60; m++) {
      h.clock.advance(MIN);
      await h.heartbeat();
      await tickRollouts(h.ctx);
    }
    assert.deepEqual(await h.revisions(fleet), now);

    // Urgent: all at once (by default a rollback copies the rolled-back rollout's strategy).
    const { rollback, excluded } = await rollbackRollout(h.ctx, 'bad', { strategy: { type: 'All' } });
    assert.equal(rollback.name, 'bad-rollback');
    assert.deepEqual(rollback.target, { kind: 'Rollback', rollbackOf: 'bad' });
    assert.deepEqual(excluded, []);
    assert.equal(rollback.counts.total, 3, 'only the clusters that received the bad release');
    const original = await rolloutStatus(h.ctx, 'bad');
    assert.equal(original.phase, 'Cancelled');
    assert.equal(original.reason, 'RolledBack');
    assert.equal(original.rolledBackBy, 'bad-rollback');
    for (const id of ['edge-00000', 'edge-00001', 'edge-00002']) {
      const d = await h.ctx.releases.latest(id);
      assert.equal(d?.version, '1.0.0');
      assert.equal(d?.revision, (now.get(id) ?? 0) + 1, 'a new revision, so the agent takes it');
      const r = verifyRelease(d?.envelope, h.key.publicKey, { now: h.clock.now, lastRevision: now.get(id) ?? 0 });
      assert.equal(r.allowDowngrade, true);
    }
  });

  it('a restarted hub continues where it was: nothing is re-sent, soaks keep their start, waves go on', async () => {
    const fleet = ids('edge', 1000);
    await h.enrol(fleet);
    await createRollout(h.ctx, {
      name: 'restartable',
      target: { kind: 'Release', release: sampleReleaseRequest('1.1.0') },
      strategy: { type: 'Progressive', maxConcurrency: 100, minSuccessTime: '10m' },
    });
    h.clock.advance(MIN);
    for (const id of fleet.slice(0, 100)) await h.attempt(id, 'Succeeded');
    await tickRollouts(h.ctx); // success first seen now: counts at +10 min
    const sent = await h.revisions(fleet);

    await h.restart();
    h.clock.advance(5 * MIN);
    await h.heartbeat();
    await tickRollouts(h.ctx);
    assert.deepEqual(await h.revisions(fleet), sent, 'nothing re-sent, nothing new: still soaking');
    const mid = await rolloutStatus(h.ctx, 'restartable');
    assert.equal(mid.counts.Progressing, 100);
    assert.equal(mid.nextWakeAt, new Date(h.clock.now().getTime() + 5 * MIN).toISOString());

    await h.restart();
    h.clock.advance(5 * MIN);
    await h.heartbeat();
    await tickRollouts(h.ctx);
    const next = await rolloutStatus(h.ctx, 'restartable');
    assert.equal(next.counts.Succeeded, 100);
    assert.equal(next.counts.Progressing, 100, 'the second wave started after the soak, across two restarts');
  });

  it('a rollout that has just finished does not block the next one, even before the next tick', async () => {
    const fleet = ids('seq', 3);
    await h.enrol(fleet, () => ({}));
    await createRollout(h.ctx, { name: 'first', target: { kind: 'Release', release: sampleReleaseRequest('1.0.0') }, selector: { clusterIds: [...fleet] }, strategy: { type: 'All' } });
    for (const id of fleet) await h.attempt(id, 'Succeeded');
    // No tick in between: the operator saw "Succeeded" and goes on at once.
    const next = await createRollout(h.ctx, { name: 'second', target: { kind: 'Release', release: sampleReleaseRequest('1.1.0') }, selector: { clusterIds: [...fleet] }, strategy: { type: 'All' } });
    assert.equal(next.counts.total, 3);
    assert.equal((await rolloutStatus(h.ctx, 'first')).phase, 'Succeeded');
  });

  it('a rollout\'s window travels signed in each release it sends, so agents keep to it too', async () => {
    const fleet = ids('win', 3);
    await h.enrol(fleet, () => ({}));
    await createRollout(h.ctx, {
      name: 'windowed',
      target: { kind: 'Release', release: sampleReleaseRequest('1.0.0') },
      selector: { clusterIds: [...fleet] },
      strategy: { type: 'All' },
      window: { cron: '0 0 * * *', duration: '24h', timeZone: 'UTC' },
    });
    const stored = await h.ctx.releases.latest('win-00000');
    assert.ok(stored, 'the release was sent');
    const r = verifyRelease(stored.envelope, h.key.publicKey, { now: () => h.clock.now(), lastRevision: 0 });
    assert.deepEqual(r.windows?.windows, [{ name: 'rollout-windowed', cron: '0 0 * * *', duration: '24h', timeZone: 'UTC' }]);
  });

  it('a rollout paused after every cluster was sent ends once they all finish: the pause had nothing left to hold back', async () => {
    const fleet = ids('late', 2);
    await h.enrol(fleet, () => ({}));
    await createRollout(h.ctx, { name: 'late-pause', target: { kind: 'Release', release: sampleReleaseRequest('1.0.0') }, selector: { clusterIds: [...fleet] }, strategy: { type: 'All' } });
    assert.equal((await pauseRollout(h.ctx, 'late-pause', {})).phase, 'Paused');
    await h.attempt('late-00000', 'Succeeded');
    await tickRollouts(h.ctx);
    assert.equal((await rolloutStatus(h.ctx, 'late-pause')).phase, 'Paused', 'one cluster still in flight');
    await h.attempt('late-00001', 'Succeeded');
    await tickRollouts(h.ctx);
    const done = await rolloutStatus(h.ctx, 'late-pause');
    assert.deepEqual([done.phase, done.reason], ['Succeeded', 'AllSucceeded']);
    assert.ok(done.endedAt, 'ended, and stored as ended');
  });

  it('ProgressivePerGroup: each group\'s own failure limit is in the view and on the status line', async () => {
    const fleet = ids('pg', 15);
    await h.enrol(fleet, (_id, i) => ({ ring: i < 5 ? 'early' : 'late' }));
    const v = await createRollout(h.ctx, {
      name: 'per-group',
      target: { kind: 'Release', release: sampleReleaseRequest('1.0.0') },
      selector: { clusterIds: [...fleet] },
      groups: [
        { name: 'early', selector: { matchLabels: { ring: 'early' } } },
        { name: 'late', selector: { matchLabels: { ring: 'late' } } },
      ],
      strategy: { type: 'ProgressivePerGroup', maxFailures: '20%' },
    });
    assert.deepEqual(v.groups.map((g) => [g.name, g.counts.total, g.maxFailures]), [['early', 5, 1], ['late', 10, 2]]);
    await h.attempt('pg-00000', 'Failed', 'HealthCheckFailed');
    await tickRollouts(h.ctx);
    const text = renderRollout(await rolloutStatus(h.ctx, 'per-group'), h.clock.now());
    assert.match(text, /failures 1, maxFailures 20% per group, rounded down \(early 1\/1, late 0\/2\)/);
  });

  it('a window that ends at a wall-clock time travels as until, not as a duration', async () => {
    const fleet = ids('wuntil', 2);
    await h.enrol(fleet, () => ({}));
    // The clock reads 2030-01-02T00:00Z: inside 22:00 until 04:00 Berlin (01:00 local).
    const created = await createRollout(h.ctx, {
      name: 'nightly',
      target: { kind: 'Release', release: sampleReleaseRequest('1.0.0') },
      selector: { clusterIds: [...fleet] },
      strategy: { type: 'All' },
      window: { cron: '0 22 * * *', until: '04:00', timeZone: 'Europe/Berlin' },
    });
    assert.equal(created.window?.open, true);
    assert.equal(created.window?.until, '04:00');
    assert.match(renderRollout(created, h.clock.now()), /^Window: {4}0 22 \* \* \* until 04:00 \(Europe\/Berlin\): open$/m);
    const stored = await h.ctx.releases.latest('wuntil-00000');
    assert.ok(stored, 'the release was sent while the window is open');
    const r = verifyRelease(stored.envelope, h.key.publicKey, { now: () => h.clock.now(), lastRevision: 0 });
    assert.deepEqual(r.windows?.windows, [{ name: 'rollout-nightly', cron: '0 22 * * *', until: '04:00', timeZone: 'Europe/Berlin' }]);
    const both = await apiError(() =>
      createRollout(h.ctx, {
        name: 'both-ends',
        target: { kind: 'Release', release: sampleReleaseRequest('1.0.0') },
        selector: { clusterIds: ['elsewhere'] },
        strategy: { type: 'All' },
        window: { cron: '0 22 * * *', duration: '6h', until: '04:00', timeZone: 'UTC' },
      }),
    );
    assert.equal(both.status, 400);
    assert.match(JSON.stringify(both.details), /give either duration \(elapsed time\) or until \(wall-clock end\), not both/);
  });

  it('selects by labels and by running version, refuses overlapping and invalid rollouts', async () => {
    const fleet = ids('edge', 40);
    await h.enrol(fleet, (_id, i) => ({ region: i < 20 ? 'eu' : 'us', tier: i % 4 === 0 ? 'gold' : 'std' }));
    await createRollout(h.ctx, { name: 'eu-only', target: { kind: 'Release', release: sampleReleaseRequest('1.0.0') }, selector: { matchLabels: { region: 'eu' } }, strategy: { type: 'All' } });
    for (const id of fleet.slice(0, 20)) await h.attempt(id, 'Succeeded');
    await tickRollouts(h.ctx);

    const onOld = await createRollout(h.ctx, {
      name: 'affected',
      target: { kind: 'Release', release: sampleReleaseRequest('1.0.1') },
      selector: { runningRelease: { name: 'edge-addons', versions: ['1.0.0'] }, matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['gold'] }] },
      strategy: { type: 'All' },
    });
    assert.equal(onOld.counts.total, 15, 'eu clusters on 1.0.0, without the 5 gold ones');

    const busy = await apiError(() =>
      createRollout(h.ctx, { name: 'overlap', target: { kind: 'Release', release: sampleReleaseRequest('1.0.2') }, selector: { matchLabels: { region: 'eu' } }, strategy: { type: 'All' } }),
    );
    assert.equal(busy.status, 409);
    assert.equal(busy.reason, 'ClusterInActiveRollout');

    const cases: [unknown, string][] = [
      [{ name: 'x', target: { kind: 'Release', release: sampleReleaseRequest() }, strategy: { type: 'Progressive', progressDeadline: '0s' } }, 'InvalidRollout'],
      [{ name: 'x', target: { kind: 'Release', release: sampleReleaseRequest() }, strategy: { type: 'All' }, unknownClusters: 'Wait' }, 'InvalidRollout'],
      [{ name: 'x', target: { kind: 'Release', release: { name: 'edge-addons', version: 'one' } }, strategy: { type: 'All' } }, 'InvalidRelease'],
      [{ name: 'x', target: { kind: 'Release', release: sampleReleaseRequest() }, selector: { matchLabels: { region: 'mars' } }, strategy: { type: 'All' } }, 'NoClusters'],
      [{ name: 'eu-only', target: { kind: 'Release', release: sampleReleaseRequest() }, strategy: { type: 'All' } }, 'AlreadyExists'],
    ];
    for (const [body, reason] of cases) assert.equal((await apiError(() => createRollout(h.ctx, body))).reason, reason, JSON.stringify(body));
  });

  it('pause stops new starts, resume continues, cancel ends; each refuses the wrong phase', async () => {
    const fleet = ids('edge', 30);
    await h.enrol(fleet);
    await createRollout(h.ctx, { name: 'ops', target: { kind: 'Release', release: sampleReleaseRequest('1.0.0') }, strategy: { type: 'Progressive', maxConcurrency: 10 } });
    const paused = await pauseRollout(h.ctx, 'ops', { reason: 'investigating a dashboard' });
    assert.equal(paused.phase, 'Paused');
    assert.equal(paused.reason, 'PausedByOperator');
    assert.equal(paused.message, 'investigating a dashboard');
    h.clock.advance(MIN);
    await h.heartbeat();
    for (const id of fleet.slice(0, 10)) await h.attempt(id, 'Succeeded');
    await tickRollouts(h.ctx);
    assert.equal((await rolloutStatus(h.ctx, 'ops')).counts.ToApply, 20, 'nothing starts while paused');
    assert.equal((await resumeRollout(h.ctx, 'ops')).counts.Progressing, 10);
    assert.equal((await apiError(() => resumeRollout(h.ctx, 'ops'))).reason, 'NotPaused');
    const cancelled = await cancelRollout(h.ctx, 'ops');
    assert.equal(cancelled.phase, 'Cancelled');
    assert.equal(cancelled.endedAt, h.clock.now().toISOString());
    assert.equal((await apiError(() => cancelRollout(h.ctx, 'ops'))).reason, 'NotActive');
    assert.equal((await apiError(() => pauseRollout(h.ctx, 'ops', {}))).reason, 'NotActive');
    h.clock.advance(MIN);
    await tickRollouts(h.ctx);
    assert.equal((await rolloutStatus(h.ctx, 'ops')).counts.ToApply, 10, 'a cancelled rollout starts nothing');
    assert.equal((await apiError(() => rolloutStatus(h.ctx, 'nope'))).status, 404);
  });

  it('an Unknown cluster is skipped when its turn comes and starts once it is back', async () => {
    const fleet = ids('edge', 10);
    await h.enrol(fleet);
    h.disconnected.add('edge-00000');
    h.clock.advance(60_000); // past the 50 s lease for the silent one
    await h.heartbeat();
    const s = await createRollout(h.ctx, { name: 'offline', target: { kind: 'Release', release: sampleReleaseRequest('1.0.0') }, strategy: { type: 'All' } });
    assert.equal(s.counts.Skipped, 1);
    assert.equal(s.counts.unknown, 1);
    assert.equal(await h.ctx.releases.latest('edge-00000'), undefined, 'nothing stored for it');
    for (const id of fleet.slice(1)) await h.attempt(id, 'Succeeded');
    await tickRollouts(h.ctx);
    const waiting = await rolloutStatus(h.ctx, 'offline');
    assert.equal(waiting.reason, 'WaitingForUnknownClusters');
    h.disconnected.delete('edge-00000');
    await h.heartbeat();
    await tickRollouts(h.ctx);
    assert.equal((await h.ctx.releases.latest('edge-00000'))?.version, '1.0.0');
    await h.attempt('edge-00000', 'Succeeded');
    await tickRollouts(h.ctx);
    assert.equal((await rolloutStatus(h.ctx, 'offline')).phase, 'Succeeded');
  });

  it('a refused release counts as the cluster failing, with the refusal reason', async () => {
    const fleet = ids('edge', 3);
    await h.enrol(fleet);
    await createRollout(h.ctx, { name: 'refused', target: { kind: 'Release', release: sampleReleaseRequest('1.0.0') }, strategy: { type: 'All', maxFailures: 1 } });
    const revision = (await h.ctx.releases.latest('edge-00002'))?.revision;
    await h.report('edge-00002', 'release-refused', { revision, reason: 'UnsupportedKubernetesVersion', message: 'needs 1.36', at: h.clock.now().toISOString() });
    await h.attempt('edge-00000', 'Succeeded');
    await h.attempt('edge-00001', 'Succeeded');
    await tickRollouts(h.ctx);
    const s = await rolloutStatus(h.ctx, 'refused');
    assert.equal(s.phase, 'Completed');
    assert.deepEqual(s.failed.map((f) => [f.clusterId, f.reason, f.message]), [['edge-00002', 'UnsupportedKubernetesVersion', 'needs 1.36']]);
  });
});
