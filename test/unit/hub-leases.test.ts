// Lease renewals (lastSeen) live in memory and are written in one transaction
// per flush (every leaseFlushMs, and on close); availability reads the
// in-memory value.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import Database from 'better-sqlite3';
import { availabilityOf } from '../../src/hub/availability.ts';
import { clusterView } from '../../src/hub/cluster-view.ts';
import { createHubMetrics } from '../../src/hub/metrics.ts';
import { createRollout } from '../../src/hub/rollout/rollout-operations.ts';
import { isAvailable } from '../../src/hub/rollout/observe.ts';
import { startHubFixture, storedPublicKey, type HubFixture } from '../support/hub-fixture.ts';
import { sampleReleaseRequest } from '../support/releases.ts';
import { LEASE_MS, SessionBench } from '../support/session-bench.ts';
import { enrolAgent, type TestAgent } from '../support/test-agent.ts';

const storedLastSeen = (dbPath: string, id: string): string | null => {
  const r = new Database(dbPath, { readonly: true });
  try {
    return (r.prepare('SELECT last_seen FROM clusters WHERE id = ?').get(id) as { last_seen: string | null }).last_seen;
  } finally {
    r.close();
  }
};

/** Frames in the WAL file: every commit appends at least one. */
const walFrames = (b: SessionBench): number => (b.db.db.pragma('wal_checkpoint(PASSIVE)') as { log: number }[])[0]?.log ?? 0;

describe('hub lease renewals', () => {
  let b: SessionBench;
  beforeEach(async () => {
    b = await SessionBench.open();
  });
  afterEach(() => b.close());

  it('heartbeats renew the lease in memory only, and availability reads the in-memory value', async () => {
    await b.enrol('edge-1');
    const a = b.connect('edge-1');
    a.hello();
    await b.tick();
    const t0 = b.clock.now().toISOString();
    assert.equal(storedLastSeen(b.dbPath, 'edge-1'), null, 'the hello renewed the lease in memory');
    assert.equal(await b.ctx.clusters.flushLeases(), 1);
    assert.equal(storedLastSeen(b.dbPath, 'edge-1'), t0);

    b.clock.advance(40_000);
    a.heartbeat();
    const t40 = b.clock.now().toISOString();
    assert.equal(b.ctx.commits.pending, 0, 'a heartbeat queues no write');
    assert.equal(storedLastSeen(b.dbPath, 'edge-1'), t0, 'nothing written');
    assert.equal((await b.ctx.clusters.get('edge-1'))?.lastSeen, t40);

    // Past the lease counted from the stored value, within it counted from the renewal.
    b.clock.advance(LEASE_MS - 30_000);
    const now = b.clock.now();
    assert.equal(availabilityOf(t0, null, now, LEASE_MS).status, 'Unknown', 'the stored value alone would say Unknown');
    const c = await b.ctx.clusters.get('edge-1');
    assert.ok(c);
    assert.equal((await clusterView(b.ctx, c)).availability.status, 'True');
    assert.equal((await b.ctx.clusters.list())[0]?.lastSeen, t40);
    assert.match(await createHubMetrics(b.ctx).render(), /fleetlet_hub_clusters\{availability="True"\} 1/);
    await createRollout(b.ctx, { name: 'r1', target: { kind: 'Release', release: sampleReleaseRequest('1.1.0') }, strategy: { type: 'All' } });
    const [member] = await b.ctx.rollouts.members('r1');
    assert.equal(member?.lastSeen, t40, 'rollouts see the renewal too');
    assert.equal(isAvailable(member?.lastSeen ?? null, now.getTime(), LEASE_MS), true);

    // And Unknown once the in-memory lease ran out.
    b.clock.advance(30_000);
    assert.equal((await clusterView(b.ctx, await b.ctx.clusters.get('edge-1') ?? assert.fail())).availability.status, 'Unknown');
    assert.equal(await b.ctx.clusters.flushLeases(), 1);
    assert.equal(storedLastSeen(b.dbPath, 'edge-1'), t40);
  });

  it('one flush writes every renewal in one transaction, and then has nothing left to write', async () => {
    const ids = Array.from({ length: 200 }, (_, i) => `edge-${String(i).padStart(3, '0')}`);
    await b.enrol(...ids);
    b.db.db.pragma('wal_checkpoint(TRUNCATE)');
    for (const id of ids) b.ctx.clusters.touch(id);
    assert.equal(walFrames(b), 0, 'touch writes nothing');
    assert.equal(b.ctx.clusters.dirtyLeases, 200);
    assert.equal(await b.ctx.clusters.flushLeases(), 200);
    const oneTransaction = walFrames(b);
    const at = b.clock.now().toISOString();
    assert.ok(ids.every((id) => storedLastSeen(b.dbPath, id) === at));
    assert.equal(await b.ctx.clusters.flushLeases(), 0, 'nothing dirty after a flush');
    assert.equal(walFrames(b), oneTransaction, 'an empty flush commits nothing');

    // For scale: the same renewals flushed one by one (what a commit per heartbeat costs).
    b.db.db.pragma('wal_checkpoint(TRUNCATE)');
    b.clock.advance(1000);
    for (const id of ids) {
      b.ctx.clusters.touch(id);
      await b.ctx.clusters.flushLeases();
    }
    const perRenewal = walFrames(b);
    assert.ok(perRenewal >= 200, `one commit per renewal appends a frame each (${perRenewal})`);
    assert.ok(oneTransaction * 10 < perRenewal, `one transaction: ${oneTransaction} WAL frames for 200 renewals (one commit each: ${perRenewal})`);
  });

  it('a deregistered cluster forgets its renewal: registering the id again starts never-connected', async () => {
    await b.enrol('edge-1');
    b.ctx.clusters.touch('edge-1');
    await b.ctx.clusters.delete('edge-1');
    await b.ctx.clusters.requestRegistration({ id: 'edge-1', labels: {}, agentVersion: '0.1.0', inventory: undefined, publicKey: storedPublicKey('edge-1') });
    assert.equal((await b.ctx.clusters.get('edge-1'))?.lastSeen, null);
    assert.equal(await b.ctx.clusters.flushLeases(), 0);
  });
});

describe('hub lease flushing', () => {
  let f: HubFixture | undefined;
  let agents: TestAgent[] = [];
  afterEach(async () => {
    mock.timers.reset();
    await Promise.all(agents.map((a) => a.link.stop()));
    agents = [];
    await f?.close();
    f = undefined;
  });

  it('writes renewals every leaseFlushMs (the interval timer is mocked)', async () => {
    mock.timers.enable({ apis: ['setInterval'] });
    f = await startHubFixture({ leaseFlushMs: 1000 });
    agents.push(await enrolAgent(f, 'edge-1'));
    const seen = (await f.api('GET', '/api/v1/clusters/edge-1')).body.lastSeen as string;
    assert.ok(seen);
    assert.equal(storedLastSeen(f.dbPath, 'edge-1'), null, 'in memory so far');
    mock.timers.tick(999);
    assert.equal(storedLastSeen(f.dbPath, 'edge-1'), null);
    mock.timers.tick(1);
    // The flush it started is asynchronous: one event-loop turn sees it committed.
    await new Promise<void>((resolve) => setImmediate(resolve));
    assert.equal(storedLastSeen(f.dbPath, 'edge-1'), seen, 'written by the periodic flush');
  });

  it('writes renewals on close', async () => {
    f = await startHubFixture({ leaseFlushMs: 3_600_000 });
    const a = await enrolAgent(f, 'edge-1');
    const seen = (await f.api('GET', '/api/v1/clusters/edge-1')).body.lastSeen as string;
    assert.ok(seen);
    assert.equal(storedLastSeen(f.dbPath, 'edge-1'), null, 'in memory so far');
    await a.link.stop();
    await f.hub.close();
    assert.equal(storedLastSeen(f.dbPath, 'edge-1'), seen, 'written when the hub closed');
  });
});
