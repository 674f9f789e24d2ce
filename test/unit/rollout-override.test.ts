// Hotfix overrides: the signed document and its verification, the `override`
// wire message, and an urgent fix promoted through integration, stage and a
// production canary to every affected cluster, with the clusters that run it
// (and those that do not yet) identifiable.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { clusterView } from '../../src/hub/cluster-view.ts';
import { deliverCurrentOverrides, overrideClusters } from '../../src/hub/rollout/override-delivery.ts';
import { createRollout, rollbackRollout, rolloutStatus, tickRollouts } from '../../src/hub/rollout/rollout-operations.ts';
import { encodeMessage, parseMessage } from '../../src/protocol/messages.ts';
import { OverrideRefused, signOverride, verifyOverride, type Override, type OverrideInput, type OverrideRequest } from '../../src/protocol/override.ts';
import { generateReleaseKey, ReleaseRefused, signRelease, verifyRelease } from '../../src/protocol/signing.ts';
import type { RolloutRequestInput } from '../../src/protocol/rollout.ts';
import { ids, RolloutHub } from '../support/rollout-hub.ts';
import { sampleRelease, sampleReleaseRequest } from '../support/releases.ts';

const MIN = 60_000;
const now = () => new Date('2030-01-02T00:00:00.000Z');

const doc = (over: Partial<OverrideInput> = {}): OverrideInput => ({
  apiVersion: 'fleetlet.io/v1',
  kind: 'Override',
  name: 'cve-2030-1',
  version: '0.9.1-hf1',
  revision: 3,
  issuedAt: '2030-01-01T00:00:00.000Z',
  expiresAt: '2030-01-08T00:00:00.000Z',
  appliesTo: { releaseName: 'edge-addons', versions: ['1.0.0'] },
  component: 'metrics',
  images: { metrics: 'registry.example/metrics:0.9.1-hf1' },
  ...over,
});

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof OverrideRefused || err instanceof ReleaseRefused) return err.reason;
    throw err;
  }
  return 'accepted';
}

describe('override documents', () => {
  const key = generateReleaseKey();
  const held = (n: number) => () => n;

  it('verifies a signed override and refuses tampering, other keys, replays, expiry and a release passed off as an override', async () => {
    const env = signOverride(doc(), key.privateKey);
    const o = verifyOverride(env, key.publicKey, { now, lastRevision: held(2) });
    assert.equal(o.name, 'cve-2030-1');
    assert.equal(o.withdrawn, false);
    assert.equal(refusal(() => verifyOverride({ ...env, payload: env.payload.replace('hf1', 'hf2') }, key.publicKey, { now, lastRevision: held(0) })), 'BadSignature');
    assert.equal(refusal(() => verifyOverride(env, generateReleaseKey().publicKey, { now, lastRevision: held(0) })), 'UnknownKey');
    assert.equal(refusal(() => verifyOverride(env, key.publicKey, { now, lastRevision: held(3) })), 'Replayed');
    assert.equal(refusal(() => verifyOverride(env, key.publicKey, { now: () => new Date('2030-01-09T00:00:00Z'), lastRevision: held(0) })), 'Expired');
    assert.equal(refusal(() => verifyOverride({ payload: env.payload, keyId: env.keyId }, key.publicKey, { now, lastRevision: held(0) })), 'Unsigned');
    // Kinds keep the two documents apart, both ways.
    assert.equal(refusal(() => verifyOverride(signRelease(sampleRelease(), key.privateKey), key.publicKey, { now, lastRevision: held(0) })), 'WrongKind');
    assert.equal(refusal(() => verifyRelease(env, key.publicKey, { now, lastRevision: 0 })), 'Malformed');
  });

  it('needs images unless it is a withdrawal, and an expiry after issue', async () => {
    assert.throws(() => signOverride(doc({ images: {} }), key.privateKey));
    assert.throws(() => signOverride(doc({ expiresAt: '2029-01-01T00:00:00.000Z' }), key.privateKey));
    const w = verifyOverride(signOverride(doc({ images: {}, withdrawn: true }), key.privateKey), key.publicKey, { now, lastRevision: held(0) });
    assert.equal(w.withdrawn, true);
  });

  it('travels as an `override` message from the hub only', async () => {
    const env = signOverride(doc(), key.privateKey);
    const parsed = parseMessage(encodeMessage({ type: 'override', envelope: env }), 'from-hub');
    assert.ok(parsed.ok && parsed.message.type === 'override');
    const wrongWay = parseMessage(encodeMessage({ type: 'override', envelope: env }), 'from-agent');
    assert.ok(!wrongWay.ok && wrongWay.error.reason === 'UnexpectedMessage');
  });
});

describe('an urgent fix promoted through integration, stage and a production canary', () => {
  let h: RolloutHub;
  beforeEach(async () => {
    h = await RolloutHub.open();
  });
  afterEach(() => h.close());

  const fix: OverrideRequest = {
    name: 'cve-2030-1',
    version: '0.9.1-hf1',
    appliesTo: { releaseName: 'edge-addons', versions: ['1.0.0'] },
    component: 'metrics',
    images: { metrics: 'registry.example/metrics:0.9.1-hf1' },
    description: 'metrics leaks tokens in its debug endpoint',
  };

  function overridesSent(id: string): Override[] {
    return (h.delivered.get(id) ?? [])
      .filter((m) => m.type === 'override')
      .map((m) => verifyOverride((m as { envelope: unknown }).envelope, h.key.publicKey, { now: h.clock.now, lastRevision: () => 0 }));
  }

  it('reaches every affected cluster within the rollout, stage by stage; the hub knows who runs it and who does not yet; rollback withdraws it', async () => {
    // 600 clusters: 500 on the affected 1.0.0, 100 already on 1.1.0.
    const fleet = ids('edge', 600);
    const env = (i: number) => (i < 5 ? 'integration' : i < 25 ? 'stage' : i % 50 === 0 ? 'canary' : 'production');
    await h.enrol(fleet, (_id, i) => ({ env: env(i) }));
    await createRollout(h.ctx, { name: 'v100', target: { kind: 'Release', release: sampleReleaseRequest('1.0.0') }, selector: { clusterIds: fleet.slice(0, 500) }, strategy: { type: 'All' } });
    await createRollout(h.ctx, { name: 'v110', target: { kind: 'Release', release: sampleReleaseRequest('1.1.0') }, selector: { clusterIds: fleet.slice(500) }, strategy: { type: 'All' } });
    for (const id of fleet) await h.attempt(id, 'Succeeded');
    await tickRollouts(h.ctx);
    const releaseRevisions = await h.revisions(fleet);

    const created = await createRollout(h.ctx, {
      name: 'hotfix-cve-2030-1',
      target: { kind: 'Override', override: fix },
      groups: [
        { name: 'integration', mandatory: true, selector: { matchLabels: { env: 'integration' } } },
        { name: 'stage', mandatory: true, selector: { matchLabels: { env: 'stage' } } },
        { name: 'prod-canary', mandatory: true, selector: { matchLabels: { env: 'canary' } } },
      ],
      strategy: { type: 'Progressive', maxConcurrency: '20%', minSuccessTime: '15m', progressDeadline: '1h' },
    } satisfies RolloutRequestInput);
    assert.equal(created.counts.total, 500, 'only clusters on an affected version');
    assert.deepEqual(created.target, { kind: 'Override', override: { name: 'cve-2030-1', version: '0.9.1-hf1', component: 'metrics', withdrawn: false } });
    assert.deepEqual(created.groups.map((g) => [g.name, g.counts.total]), [
      ['integration', 5],
      ['stage', 20],
      ['prod-canary', 9],
      ['rest', 466],
    ]);
    assert.equal((await overrideClusters(h.ctx, 'cve-2030-1', 'missing')).clusters.length, 500);

    const first = overridesSent('edge-00000');
    assert.equal(first.length, 1);
    assert.equal(first[0]?.revision, 1, 'override revisions count apart from release revisions');
    assert.deepEqual(first[0]?.images, fix.images);
    assert.equal(overridesSent('edge-00005').length, 0, 'stage waits for integration');

    // Agents apply what they get within a minute and report it in their inventory.
    const applied = new Set<string>();
    let minutes = 0;
    for (; minutes < 24 * 60; minutes += 5) {
      h.clock.advance(5 * MIN);
      await h.heartbeat();
      for (const id of fleet) {
        if (!applied.has(id) && overridesSent(id).length > 0) {
          await h.inventory(id, [{ name: fix.name, component: fix.component, version: fix.version }]);
          applied.add(id);
        }
      }
      await tickRollouts(h.ctx);
      if ((await rolloutStatus(h.ctx, 'hotfix-cve-2030-1')).phase !== 'Progressing') break;
    }
    const done = await rolloutStatus(h.ctx, 'hotfix-cve-2030-1');
    assert.equal(done.phase, 'Succeeded');
    assert.ok(minutes < 24 * 60, `every affected cluster within a day (took ${minutes} min)`);
    assert.deepEqual(await h.revisions(fleet), releaseRevisions, 'no new release revision: no new upgrade edge');
    for (const id of fleet.slice(500)) assert.equal(overridesSent(id).length, 0, `${id} is not on an affected version`);
    assert.equal((await overrideClusters(h.ctx, 'cve-2030-1', 'running')).clusters.length, 500);
    assert.deepEqual((await overrideClusters(h.ctx, 'cve-2030-1', 'missing')).clusters, []);
    const running = (await overrideClusters(h.ctx, 'cve-2030-1', 'running')).clusters[0];
    assert.deepEqual(running, { clusterId: 'edge-00000', runningRelease: { name: 'edge-addons', version: '1.0.0' }, reported: { component: 'metrics', version: '0.9.1-hf1' }, since: '2030-01-02T00:05:00.000Z' }, 'since: its first inventory report listing the fix, five minutes in');

    // A reconnecting agent is sent the overrides it should hold.
    h.delivered.clear();
    assert.equal(await deliverCurrentOverrides(h.ctx, 'edge-00007'), 1);
    assert.equal(overridesSent('edge-00007')[0]?.name, 'cve-2030-1');
    assert.equal(await deliverCurrentOverrides(h.ctx, 'edge-00550'), 0);

    // Rollback: a withdrawal, as a newer revision, to the clusters that got it.
    const { rollback } = await rollbackRollout(h.ctx, 'hotfix-cve-2030-1', { strategy: { type: 'All', progressDeadline: '1h' } });
    assert.deepEqual(rollback.target, { kind: 'Override', override: { name: 'cve-2030-1', version: '0.9.1-hf1', component: 'metrics', withdrawn: true } });
    const withdrawal = overridesSent('edge-00000');
    assert.equal(withdrawal.at(-1)?.withdrawn, true);
    assert.equal(withdrawal.at(-1)?.revision, 2);
    assert.equal((await h.ctx.overrides.get('cve-2030-1'))?.withdrawn, true);
    for (const id of fleet.slice(0, 500)) await h.inventory(id, []);
    await tickRollouts(h.ctx);
    const rb = await rolloutStatus(h.ctx, rollback.name);
    assert.equal(rb.phase, 'Succeeded', 'groups kept, without mandatory gating: the undo goes everywhere at once');
    assert.deepEqual((await overrideClusters(h.ctx, 'cve-2030-1', 'running')).clusters, []);
  });

  it('a cluster that never applies the override times out against progressDeadline and pauses the promotion', async () => {
    const fleet = ids('edge', 10);
    await h.enrol(fleet, (_id, i) => ({ env: i === 0 ? 'integration' : 'production' }));
    await createRollout(h.ctx, { name: 'v100', target: { kind: 'Release', release: sampleReleaseRequest('1.0.0') }, strategy: { type: 'All' } });
    for (const id of fleet) await h.attempt(id, 'Succeeded');
    await tickRollouts(h.ctx);
    await createRollout(h.ctx, {
      name: 'hotfix',
      target: { kind: 'Override', override: fix },
      groups: [{ name: 'integration', mandatory: true, selector: { matchLabels: { env: 'integration' } } }],
      strategy: { type: 'Progressive', maxConcurrency: 5, progressDeadline: '30m' },
    });
    h.clock.advance(30 * MIN);
    await h.heartbeat();
    await tickRollouts(h.ctx);
    const s = await rolloutStatus(h.ctx, 'hotfix');
    assert.equal(s.phase, 'Paused');
    assert.equal(s.reason, 'MandatoryGroupFailed');
    assert.deepEqual(s.failed.map((f) => [f.clusterId, f.status, f.reason]), [['edge-00000', 'TimedOut', 'ProgressDeadlineExceeded']]);
    assert.equal(overridesSent('edge-00001').length, 0);
  });

  it('an override rollout needs a progressDeadline, and one override is rolled out by one rollout at a time', async () => {
    await h.enrol(ids('edge', 2));
    await createRollout(h.ctx, { name: 'v100', target: { kind: 'Release', release: sampleReleaseRequest('1.0.0') }, strategy: { type: 'All' } });
    for (const id of ids('edge', 2)) await h.attempt(id, 'Succeeded');
    await tickRollouts(h.ctx);
    await assert.rejects(createRollout(h.ctx, { name: 'a', target: { kind: 'Override', override: fix }, strategy: { type: 'All' } }), /invalid/);
    await createRollout(h.ctx, { name: 'a', target: { kind: 'Override', override: fix }, strategy: { type: 'All', progressDeadline: '1h' } });
    await assert.rejects(createRollout(h.ctx, { name: 'b', target: { kind: 'Override', override: fix }, strategy: { type: 'All', progressDeadline: '1h' } }), /being rolled out by "a"/);
  });

  it('an override a cluster refused shows in the hub\'s cluster view, beside (not over) its last release refusal', async () => {
    await h.enrol(ids('edge', 1));
    const refused = { name: 'cve-2030-1', revision: 3, reason: 'Expired', message: 'override cve-2030-1 revision 3 expired at 2030-01-08T00:00:00.000Z', at: h.clock.now().toISOString() };
    await h.report('edge-00000', 'release-refused', { revision: 1, reason: 'UnknownKey', message: 'signed by k2', at: h.clock.now().toISOString() });
    await h.report('edge-00000', 'override-refused', refused);
    const c = await h.ctx.clusters.get('edge-00000');
    assert.ok(c);
    const v = await clusterView(h.ctx, c);
    assert.deepEqual(v.lastOverrideRefusal, refused);
    assert.equal(v.lastRefusal?.reason, 'UnknownKey', 'the release refusal stays as it was');
    assert.equal(await h.ctx.reports.ackedSeq('edge-00000'), 2, 'applied and acknowledged');
  });
});
