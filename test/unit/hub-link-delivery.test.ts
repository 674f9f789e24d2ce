// Reports reach the hub in order, exactly once, across connection loss and
// hub restarts; acknowledged rows leave the outbox.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AGENT_PATH, MAX_JSON_DEPTH, MAX_REPORT_BYTES } from '../../src/protocol/messages.ts';
import { Journal } from '../../src/store/journal.ts';
import { nextEvent } from '../support/events.ts';
import { startHubFixture, type HubFixture } from '../support/hub-fixture.ts';
import { completed, transition } from '../support/sample-reports.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';
import { createTestAgent, drained, enrolAgent, type TestAgent } from '../support/test-agent.ts';

async function storedReports(f: HubFixture, clusterId: string): Promise<{ seq: number; kind: string; acknowledged: boolean }[]> {
  const all: { seq: number; kind: string; acknowledged: boolean }[] = [];
  for (;;) {
    const res = await f.api('GET', `/api/v1/clusters/${clusterId}/reports?after=${all.at(-1)?.seq ?? 0}&limit=1000`);
    assert.equal(res.status, 200);
    if (res.body.reports.length === 0) return all;
    all.push(...res.body.reports);
  }
}

function enqueueMany(agent: TestAgent, clusterId: string, from: number, to: number): void {
  for (let n = from; n <= to; n++) {
    if (n % 10 === 0) agent.outbox.enqueue('upgrade-completed', completed(clusterId, n));
    else agent.outbox.enqueue('attempt-transition', transition(n));
  }
}

describe('report delivery', () => {
  let f: HubFixture;
  let agents: TestAgent[] = [];
  let proxy: TcpProxy | undefined;

  beforeEach(async () => {
    f = await startHubFixture();
    agents = [];
    proxy = undefined;
  });
  afterEach(async () => {
    await Promise.all(agents.map((a) => a.link.stop()));
    await proxy?.close();
    await f.close();
  });

  it('every enqueue reaches a connected hub with nobody calling flush; a row goes once its transaction commits, a rolled-back one never', async () => {
    const journal = Journal.open(':memory:');
    try {
      const a = await enrolAgent(f, 'edge-push', { outbox: journal.outbox });
      agents.push(a);
      journal.transaction(() => {
        journal.outbox.enqueue('attempt-transition', transition(1));
        journal.outbox.enqueue('upgrade-completed', completed('edge-push', 1));
      });
      await drained(a, 'the rows of a committed transaction to reach the hub');
      assert.throws(() =>
        journal.transaction(() => {
          journal.outbox.enqueue('attempt-transition', transition(2));
          throw new Error('rolled back');
        }),
      );
      // A lone report after everything was acknowledged (the inventory after an attempt's last transition).
      journal.outbox.enqueue('inventory', { components: [], kubernetesVersion: 'v1.35.4', targetInfrastructure: 'aws', overrides: [] });
      await drained(a, 'the lone report to reach the hub');
      assert.deepEqual(
        (await storedReports(f, 'edge-push')).map((r) => [r.seq, r.kind]),
        [
          [1, 'attempt-transition'],
          [2, 'upgrade-completed'],
          [3, 'inventory'],
        ],
      );
    } finally {
      await Promise.all(agents.splice(0).map((x) => x.link.stop()));
      journal.close();
    }
  });

  it('says hello, gets a welcome, and delivers queued reports in order; acked rows leave the outbox', async () => {
    const a = await enrolAgent(f, 'edge-1');
    agents.push(a);
    enqueueMany(a, 'edge-1', 1, 47);
    a.link.flush();
    await drained(a);
    const stored = await storedReports(f, 'edge-1');
    assert.deepEqual(stored.map((r) => r.seq), Array.from({ length: 47 }, (_, i) => i + 1));
    assert.ok(stored.every((r) => r.acknowledged));
    assert.equal(a.outbox.stats().depth, 0);
    const c = (await f.api('GET', '/api/v1/clusters/edge-1')).body;
    assert.equal(c.reports.ackedSeq, 47);
    assert.equal(c.upgrade.attemptId, 'attempt-47', 'the aggregate shows the last report');
    assert.equal(c.agentVersion, '0.1.0-test');
    assert.equal(c.targetInfrastructure, 'aws');
    assert.equal(a.link.counters.acked, 47);
    const telemetry = (await f.api('GET', '/api/v1/telemetry?cluster=edge-1')).body.events;
    assert.equal(telemetry.length, 4);
  });

  it('delivers every report exactly once, in order, when the connection is cut mid-batch', async () => {
    const enrolled = await enrolAgent(f, 'edge-2');
    await enrolled.link.stop();
    proxy = await startTcpProxy(f.hub.port);
    // The same cluster, now through a relay the test can cut.
    const a = createTestAgent({ url: proxy.url(AGENT_PATH), clusterId: 'edge-2', releaseKey: f.key.publicKey, now: f.clock.now, key: enrolled.state.key, registered: true, outbox: enrolled.outbox });
    agents.push(a);
    enqueueMany(a, 'edge-2', 1, 300);
    const cutOnce = nextEvent(a.link, 'acked', (upto: number) => upto >= 60).then(() => proxy?.cut());
    const reconnected = nextEvent(a.link, 'welcome', () => a.link.counters.reconnects > 0);
    a.link.start();
    await cutOnce;
    await reconnected;
    await drained(a);
    const stored = await storedReports(f, 'edge-2');
    assert.deepEqual(stored.map((r) => r.seq), Array.from({ length: 300 }, (_, i) => i + 1), 'no gap, no duplicate, in order');
    assert.equal(a.link.counters.acked, 300);
    assert.ok(a.link.counters.reconnects >= 1);
    const telemetry = (await f.api('GET', '/api/v1/telemetry?cluster=edge-2&limit=1000')).body.events;
    assert.equal(telemetry.length, 30, 'each upgrade-completed counted once');
  });

  it('survives a hub restart on the same database, with reports written while the hub was down', async () => {
    const a = await enrolAgent(f, 'edge-3');
    agents.push(a);
    enqueueMany(a, 'edge-3', 1, 40);
    a.link.flush();
    await drained(a);
    const disconnected = nextEvent(a.link, 'disconnected');
    const port = f.hub.port;
    await f.hub.close();
    await disconnected;
    enqueueMany(a, 'edge-3', 41, 90); // offline: the agent keeps writing its outbox
    assert.equal(a.outbox.stats().depth, 50);
    const welcomed = nextEvent(a.link, 'welcome');
    await f.restart();
    assert.equal(f.hub.port, port);
    const [welcome] = await welcomed;
    assert.deepEqual(welcome, { ackedSeq: 40 }, 'the restarted hub remembers what it acknowledged');
    await drained(a);
    const stored = await storedReports(f, 'edge-3');
    assert.deepEqual(stored.map((r) => r.seq), Array.from({ length: 90 }, (_, i) => i + 1));
    assert.equal((await f.api('GET', '/api/v1/telemetry?cluster=edge-3')).body.events.length, 9);
  });

  it('detects a half-open connection, reconnects, and delivers what was written meanwhile', async () => {
    const enrolled = await enrolAgent(f, 'edge-4');
    await enrolled.link.stop();
    proxy = await startTcpProxy(f.hub.port);
    const a = createTestAgent({
      url: proxy.url(AGENT_PATH),
      clusterId: 'edge-4',
      releaseKey: f.key.publicKey,
      now: f.clock.now,
      key: enrolled.state.key,
      registered: true,
      link: { heartbeatMs: 50 },
    });
    agents.push(a);
    const welcomed = nextEvent(a.link, 'welcome');
    a.link.start();
    await welcomed;
    const p = proxy;
    p.blackhole(true);
    enqueueMany(a, 'edge-4', 1, 12);
    a.link.flush();
    const dropped = nextEvent(a.link, 'disconnected');
    await dropped;
    assert.equal(a.link.counters.halfOpen, 1);
    assert.equal(a.outbox.stats().depth, 12, 'nothing was acknowledged through the black hole');
    p.blackhole(false);
    await drained(a);
    assert.deepEqual((await storedReports(f, 'edge-4')).map((r) => r.seq), Array.from({ length: 12 }, (_, i) => i + 1));
  });

  it('keeps at most `window` reports unacknowledged in flight', async () => {
    const a = await enrolAgent(f, 'edge-5', { link: { window: 7, batchSize: 3 } });
    agents.push(a);
    enqueueMany(a, 'edge-5', 1, 50);
    // Just before each ack lands, everything sent beyond the previous ack is in flight.
    let maxInFlight = 0;
    let previous = 0;
    a.link.on('acked', (upto: number) => {
      maxInFlight = Math.max(maxInFlight, a.link.counters.sent - previous);
      previous = upto;
    });
    a.link.flush();
    await drained(a);
    assert.equal(a.link.counters.sent, 50);
    assert.ok(maxInFlight <= 7, `in flight peaked at ${maxInFlight}`);
    assert.ok(maxInFlight > 3, `the window was used beyond one batch (peak ${maxInFlight})`);
  });

  it('a report the hub cannot take is quarantined once with its reason, never sent: the outbox moves on and the hub hears of it', async () => {
    const journal = Journal.open(join(mkdtempSync(join(tmpdir(), 'fleetlet-poison-')), 'journal.db'));
    try {
      const a = await enrolAgent(f, 'edge-poison', { outbox: journal.outbox, link: { batchSize: 100, window: 100, heartbeatMs: 5_000 } });
      agents.push(a);
      // Megabytes of JSON block this process (hub and agent both) for a while: a 200 ms heartbeat would call that a dead link.
      const nested = (depth: number): unknown => (depth === 0 ? 'x' : [nested(depth - 1)]);
      const closes: number[] = [];
      a.link.on('disconnected', ({ code }) => closes.push(code));
      const connects = a.link.counters.connects;
      journal.transaction(() => {
        journal.outbox.enqueue('attempt-transition', transition(1));
        // A frame holds 64 levels; the message and its array take two, the report one.
        journal.outbox.enqueue('deep', nested(MAX_JSON_DEPTH - 3)); // 2: the deepest the hub takes
        journal.outbox.enqueue('deep', nested(MAX_JSON_DEPTH - 2)); // 3: one level too deep
        journal.outbox.enqueue('attempt-transition', transition(4));
        journal.outbox.enqueue('big', { blob: 'x'.repeat(MAX_REPORT_BYTES) }); // 5: no frame holds it
        journal.outbox.enqueue('attempt-transition', transition(6));
      });
      await drained(a, 'the outbox to drain past the poison');

      const stored = await storedReports(f, 'edge-poison');
      assert.deepEqual(stored.map((r) => r.seq), [1, 2, 4, 6, 7, 8], 'every report but the two poison ones, and a notice for each');
      assert.ok(stored.every((r) => r.acknowledged));
      const notices = (await f.api('GET', '/api/v1/clusters/edge-poison/reports?after=6&limit=10')).body.reports as { kind: string; body: { seq: number; reason: string; kind: string } }[];
      assert.deepEqual(notices.map((n) => [n.kind, n.body.seq, n.body.kind, n.body.reason]), [
        ['report-quarantined', 3, 'deep', 'TooDeep'],
        ['report-quarantined', 5, 'big', 'FrameTooLarge'],
      ]);
      const kept = journal.outbox.quarantined();
      assert.deepEqual(kept.map((q) => [q.seq, q.reason]), [[5, 'FrameTooLarge'], [3, 'TooDeep']], 'the journal keeps both, with the reason');
      assert.deepEqual(kept[1]?.body, nested(MAX_JSON_DEPTH - 2), 'nothing the agent reported is lost');
      assert.equal(a.link.counters.quarantined, 2, 'each quarantined once');
      assert.deepEqual(closes, [], 'the hub never had to close the connection');
      assert.equal(a.link.counters.connects, connects, 'nor did the agent reconnect');
      assert.equal((await f.api('GET', '/api/v1/clusters/edge-poison')).body.reports.ackedSeq, 8);
    } finally {
      journal.close();
    }
  });

  it('splits reports into frames the hub accepts: 20 reports of 1 MiB arrive, none quarantined', async () => {
    const a = await enrolAgent(f, 'edge-bulk', { link: { batchSize: 100, window: 100, heartbeatMs: 5_000 } });
    agents.push(a);
    for (let n = 1; n <= 20; n++) a.outbox.enqueue('bulk', { n, blob: 'y'.repeat(1024 * 1024) });
    const closes: number[] = [];
    a.link.on('disconnected', ({ code }) => closes.push(code));
    a.link.flush();
    await drained(a);
    assert.deepEqual((await storedReports(f, 'edge-bulk')).map((r) => r.seq), Array.from({ length: 20 }, (_, i) => i + 1));
    assert.equal(a.link.counters.quarantined, 0);
    assert.deepEqual(closes, []);
  });
});
