// Aggregation, availability and bad input, through the hub's real sockets.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { encodeMessage, MAX_FRAME_BYTES, PROTOCOL_VERSION } from '../../src/protocol/messages.ts';
import { nextEvent } from '../support/events.ts';
import { startHubFixture, type HubFixture } from '../support/hub-fixture.ts';
import { connectRaw } from '../support/raw-agent.ts';
import { completed, transition } from '../support/sample-reports.ts';
import { createTestAgent, drained, enrolAgent, type TestAgent } from '../support/test-agent.ts';

describe('hub aggregation and availability', () => {
  let f: HubFixture;
  let agents: TestAgent[];
  beforeEach(async () => {
    f = await startHubFixture({ heartbeatMs: 10_000, graceMultiplier: 5 });
    agents = [];
  });
  afterEach(async () => {
    await Promise.all(agents.map((a) => a.link.stop()));
    await f.close();
  });

  it('is Available while heartbeats arrive, Unknown with last seen after 5 heartbeats of silence, and fills in history on return', async () => {
    const a = await enrolAgent(f, 'edge-av');
    agents.push(a);
    const live = (await f.api('GET', '/api/v1/clusters/edge-av')).body;
    assert.equal(live.availability.status, 'True');
    assert.equal(live.conditions[0].type, 'Available');
    assert.equal(live.conditions[0].status, 'True');

    const gone = nextEvent(a.link, 'disconnected');
    await a.link.stop();
    await gone;
    f.clock.advance(49_000);
    assert.equal((await f.api('GET', '/api/v1/clusters/edge-av')).body.availability.status, 'True', 'still within 5 × 10 s');
    f.clock.advance(2_000);
    const lost = (await f.api('GET', '/api/v1/clusters/edge-av')).body;
    assert.equal(lost.availability.status, 'Unknown');
    assert.equal(lost.availability.reason, 'LeaseExpired');
    assert.equal(lost.availability.lastSeen, live.lastSeen);
    assert.equal((await f.api('GET', '/api/v1/fleet/summary')).body.byAvailability.Unknown, 1);

    // Offline, the agent kept working; when it returns the hub learns it all.
    for (let n = 1; n <= 5; n++) a.outbox.enqueue('attempt-transition', transition(n, n === 5 ? 'Succeeded' : 'Upgrading'));
    const back = createTestAgent({ url: f.hub.url, clusterId: 'edge-av', releaseKey: f.key.publicKey, now: f.clock.now, key: a.state.key, registered: true, outbox: a.outbox });
    agents.push(back);
    back.link.start();
    await drained(back);
    const returned = (await f.api('GET', '/api/v1/clusters/edge-av')).body;
    assert.equal(returned.availability.status, 'True');
    assert.equal(returned.upgrade.status, 'Succeeded');
    assert.deepEqual(returned.runningRelease, { name: 'edge-addons', version: '1.4.2' });
  });

  it('summarises the fleet: counts per running version and upgrade status, failed clusters with reasons, overrides, telemetry', async () => {
    const ok = await enrolAgent(f, 'edge-ok', { inventory: { components: [], kubernetesVersion: 'v1.35.4', targetInfrastructure: 'aws', overrides: [{ name: 'cve-2030-1', component: 'metrics', version: '0.9.1-hf1' }] } });
    const bad = await enrolAgent(f, 'edge-bad');
    const busy = await enrolAgent(f, 'edge-busy');
    agents.push(ok, bad, busy);
    ok.outbox.enqueue('attempt-transition', transition(1, 'Succeeded'));
    ok.outbox.enqueue('upgrade-completed', completed('edge-ok', 1));
    bad.outbox.enqueue('attempt-transition', transition(1, 'Upgrading'));
    bad.outbox.enqueue('attempt-transition', transition(2, 'RolledBack', { reason: 'HealthCheckFailed', message: 'metrics never became ready' }));
    bad.outbox.enqueue('upgrade-completed', completed('edge-bad', 2, 'RolledBack'));
    busy.outbox.enqueue('attempt-transition', transition(1, 'Soaking'));
    for (const a of [ok, bad, busy]) a.link.flush();
    await Promise.all([ok, bad, busy].map((a) => drained(a)));

    const s = (await f.api('GET', '/api/v1/fleet/summary')).body;
    assert.deepEqual(s.clusters, { total: 3, pending: 0, accepted: 3, revoked: 0 });
    assert.deepEqual(s.byReleaseVersion, { '1.4.2': 1, none: 2 });
    assert.deepEqual(s.byUpgradeStatus, { InProgress: 1, Succeeded: 1, Failed: 1, None: 0 });
    assert.equal(s.failed.length, 1);
    assert.equal(s.failed[0].clusterId, 'edge-bad');
    assert.equal(s.failed[0].reason, 'HealthCheckFailed');
    assert.equal(s.failed[0].phase, 'RolledBack');
    assert.deepEqual(s.overrides, [{ name: 'cve-2030-1', component: 'metrics', version: '0.9.1-hf1', clusters: ['edge-ok'] }]);

    const badView = (await f.api('GET', '/api/v1/clusters/edge-bad')).body;
    const upgraded = badView.conditions.find((c: { type: string }) => c.type === 'Upgraded');
    assert.deepEqual([upgraded.status, upgraded.reason], ['False', 'HealthCheckFailed']);

    const events = (await f.api('GET', '/api/v1/telemetry')).body.events;
    assert.equal(events.length, 2);
    const e = events.find((x: { clusterId: string }) => x.clusterId === 'edge-bad').event;
    assert.deepEqual(
      { cluster_id: e.cluster_id, target_infrastructure: e.target_infrastructure, release: e.release, result: e.result, durationMs: e.durationMs },
      { cluster_id: 'edge-bad', target_infrastructure: 'aws', release: { name: 'edge-addons', version: '1.4.2' }, result: 'RolledBack', durationMs: 1002 },
    );
    const list = (await f.api('GET', '/api/v1/clusters')).body.clusters;
    assert.deepEqual(list.map((c: { id: string }) => c.id), ['edge-bad', 'edge-busy', 'edge-ok']);
  });

  it('stores a report it cannot aggregate, acknowledges it, and does not let it block the ones behind', async () => {
    const a = await enrolAgent(f, 'edge-odd');
    agents.push(a);
    a.outbox.enqueue('attempt-transition', { attemptId: 'x', phase: 'Exploded' });
    a.outbox.enqueue('from-a-newer-agent', { anything: true });
    a.outbox.enqueue('upgrade-completed', completed('someone-else', 1));
    a.outbox.enqueue('attempt-transition', transition(4, 'Succeeded'));
    a.link.flush();
    await drained(a);
    const reports = (await f.api('GET', '/api/v1/clusters/edge-odd/reports')).body.reports;
    assert.deepEqual(reports.map((r: { problem: string | null }) => r.problem !== null), [true, true, true, false]);
    assert.equal((await f.api('GET', '/api/v1/telemetry')).body.events.length, 0, 'a report naming another cluster is not counted');
    assert.equal((await f.api('GET', '/api/v1/clusters/edge-odd')).body.upgrade.status, 'Succeeded');
  });
});

describe('hub frame handling over a real socket', () => {
  let f: HubFixture;
  beforeEach(async () => {
    f = await startHubFixture();
  });
  afterEach(async () => {
    await f.close();
  });

  it('answers malformed frames, unknown types and wrong-side types with an error and changes nothing', async () => {
    const a = await enrolAgent(f, 'edge-x');
    await a.link.stop();
    const before = (await f.api('GET', '/api/v1/clusters/edge-x')).body;
    const conn = await connectRaw(f.hub.url, { key: a.state.key, clusterId: 'edge-x' });
    assert.ok(conn.ok);
    const cases: [string | Buffer, string][] = [
      ['not json', 'NotJson'],
      [Buffer.from([0xc3, 0x28]), 'NotJson'],
      [JSON.stringify({ type: 'self-destruct', protocolVersion: PROTOCOL_VERSION }), 'UnknownType'],
      [encodeMessage({ type: 'ack', uptoSeq: 99 }), 'UnexpectedMessage'],
      [JSON.stringify({ type: 'reports', protocolVersion: PROTOCOL_VERSION, afterSeq: 0, reports: [{ seq: 'one' }] }), 'InvalidMessage'],
      [encodeMessage({ type: 'reports', afterSeq: 0, reports: [{ seq: 1, kind: 'inventory', body: {}, createdAt: 'now' }] }), 'UnexpectedMessage'],
    ];
    for (const [frame, code] of cases) {
      conn.ws.send(frame);
      const reply = await conn.next();
      assert.equal(reply.type, 'error');
      assert.equal(reply.type === 'error' && reply.code, code, `frame ${String(frame).slice(0, 40)}`);
    }
    conn.ws.send(JSON.stringify({ type: 'hello', protocolVersion: PROTOCOL_VERSION + 5 }));
    const versionReply = await conn.next();
    assert.equal(versionReply.type === 'error' && versionReply.code, 'UnsupportedVersion');
    assert.equal((await conn.closed).code, 1002);

    const after = (await f.api('GET', '/api/v1/clusters/edge-x')).body;
    assert.deepEqual(after, before);
    assert.equal((await f.api('GET', '/api/v1/clusters/edge-x/reports')).body.reports.length, 0);
  });

  it('closes the connection on an oversized frame (1009) without reading it', async () => {
    const a = await enrolAgent(f, 'edge-big');
    await a.link.stop();
    const conn = await connectRaw(f.hub.url, { key: a.state.key, clusterId: 'edge-big' });
    assert.ok(conn.ok);
    conn.ws.send(Buffer.alloc(MAX_FRAME_BYTES + 1, 0x20));
    assert.equal((await conn.closed).code, 1009);
    assert.equal((await f.api('GET', '/api/v1/clusters/edge-big/reports')).body.reports.length, 0);
  });

  it('replayed and out-of-order batches never double-count; the ack covers only the contiguous prefix', async () => {
    const a = await enrolAgent(f, 'edge-dup');
    await a.link.stop();
    const conn = await connectRaw(f.hub.url, { key: a.state.key, clusterId: 'edge-dup' });
    assert.ok(conn.ok);
    const hello = { type: 'hello' as const, clusterId: 'edge-dup', agentVersion: '0.1.0', inventory: { components: [], kubernetesVersion: '', targetInfrastructure: '', overrides: [] }, lastRevision: 0, outbox: { firstSeq: 1, lastSeq: 9 } };
    conn.ws.send(encodeMessage({ ...hello, proof: conn.prove('hello') }));
    assert.equal((await conn.next()).type, 'welcome');
    const batch = (afterSeq: number, seqs: number[]) =>
      encodeMessage({ type: 'reports', afterSeq, reports: seqs.map((seq) => ({ seq, kind: 'upgrade-completed', body: completed('edge-dup', seq), createdAt: '2030-01-01T00:00:00.000Z' })) });
    let expected: number | undefined;
    const ackOf = async (frame: string): Promise<number> => {
      conn.ws.send(frame);
      const m = await conn.next();
      assert.equal(m.type, 'ack');
      expected = m.type === 'ack' ? m.expectedAfterSeq : undefined;
      return m.type === 'ack' ? m.uptoSeq : -1;
    };
    assert.equal(await ackOf(batch(0, [1, 2, 3])), 3);
    assert.equal(await ackOf(batch(0, [1, 2, 3])), 3, 'a replay changes nothing');
    assert.equal(expected, undefined);
    assert.equal(await ackOf(batch(6, [7, 9])), 3, 'a batch after a report the hub does not hold is not acknowledged');
    assert.equal(expected, 3, '… and the hub says where to resume');
    assert.equal(await ackOf(batch(3, [4, 5])), 5);
    assert.equal(await ackOf(batch(5, [6])), 6);
    assert.equal(await ackOf(batch(6, [7, 9])), 9, 'the chain skips 8, which the journal never wrote');
    const events = (await f.api('GET', '/api/v1/telemetry?cluster=edge-dup')).body.events;
    assert.deepEqual(events.map((e: { seq: number }) => e.seq), [1, 2, 3, 4, 5, 6, 7, 9], 'each counted once, in seq order');
    conn.ws.close();
  });
});
