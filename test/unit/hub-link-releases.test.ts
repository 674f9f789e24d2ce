// Releases reach the agent only signed, fresh and newer; every refusal is
// reported back through the outbox.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { encodeMessage, parseMessage, type ReportEntry } from '../../src/protocol/messages.ts';
import { generateReleaseKey, signRelease } from '../../src/protocol/signing.ts';
import { nextEvent, waitFor } from '../support/events.ts';
import { startHubFixture, TestClock, type HubFixture } from '../support/hub-fixture.ts';
import { sampleRelease, sampleReleaseRequest } from '../support/sample-release.ts';
import { createTestAgent, drained, enrolAgent, type TestAgent } from '../support/test-agent.ts';

describe('releases from the reference hub', () => {
  let f: HubFixture | undefined;
  const agents: TestAgent[] = [];
  afterEach(async () => {
    await Promise.all(agents.splice(0).map((a) => a.link.stop()));
    await f?.close();
    f = undefined;
  });

  it('a release set over HTTP reaches the connected agent, and an offline agent on its next hello', async () => {
    f = await startHubFixture();
    const a = await enrolAgent(f, 'edge-r1');
    agents.push(a);
    const received = nextEvent(a.link, 'release');
    const put = await f.api('PUT', '/api/v1/clusters/edge-r1/release', sampleReleaseRequest('1.4.2'));
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.equal(put.body.revision, 1);
    assert.equal(put.body.delivered, true);
    await received;
    assert.equal(a.releases[0]?.version, '1.4.2');
    assert.equal(a.state.lastRevision, 1);

    const disconnected = nextEvent(a.link, 'disconnected');
    await a.link.stop();
    await disconnected;
    const offline = await f.api('PUT', '/api/v1/clusters/edge-r1/release', sampleReleaseRequest('1.5.0'));
    assert.equal(offline.body.revision, 2);
    assert.equal(offline.body.delivered, false);

    const again = createTestAgent({ url: f.hub.url, clusterId: 'edge-r1', releaseKey: f.key.publicKey, now: f.clock.now, credential: a.state.credential, lastRevision: 1 });
    agents.push(again);
    const next = nextEvent(again.link, 'release');
    again.link.start();
    const [r] = await next;
    assert.equal((r as { version: string }).version, '1.5.0');
    assert.equal(again.refusals.length, 0, 'revision 1 is not re-sent to an agent that holds it');
    const desired = (await f.api('GET', '/api/v1/clusters/edge-r1')).body.desiredRelease;
    assert.equal(desired.revision, 2);
  });

  it('an invalid release request is refused with the field at fault and burns no revision', async () => {
    f = await startHubFixture();
    const a = await enrolAgent(f, 'edge-r2');
    agents.push(a);
    const bad = await f.api('PUT', '/api/v1/clusters/edge-r2/release', { ...sampleReleaseRequest(), version: 'latest' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.reason, 'InvalidRelease');
    assert.deepEqual(bad.body.error.details[0].path, ['version']);
    const ok = await f.api('PUT', '/api/v1/clusters/edge-r2/release', sampleReleaseRequest());
    assert.equal(ok.body.revision, 1);
  });

  it('a release signed with a key the agent does not trust is refused, and the hub learns why', async () => {
    f = await startHubFixture();
    const trusted = generateReleaseKey();
    const a = await enrolAgent(f, 'edge-r3', { releaseKey: trusted.publicKey });
    agents.push(a);
    const refused = nextEvent(a.link, 'refused');
    await f.api('PUT', '/api/v1/clusters/edge-r3/release', sampleReleaseRequest());
    await refused;
    assert.equal(a.releases.length, 0, 'nothing ran');
    await drained(a);
    const c = (await f.api('GET', '/api/v1/clusters/edge-r3')).body;
    assert.equal(c.lastRefusal.reason, 'UnknownKey');
    const cond = c.conditions.find((x: { type: string }) => x.type === 'ReleaseAccepted');
    assert.equal(cond?.status, 'False');
    assert.equal(cond?.reason, 'UnknownKey');
  });
});

describe('releases over a compromised link', () => {
  it('refuses forged, replayed, unsigned and expired releases, runs nothing, and reports each refusal', async () => {
    const key = generateReleaseKey();
    const clock = new TestClock();
    const good = signRelease(sampleRelease({ revision: 3, issuedAt: '2030-01-01T00:00:00.000Z', expiresAt: '2030-02-01T00:00:00.000Z' }), key.privateKey);
    const old = signRelease(sampleRelease({ revision: 2, issuedAt: '2030-01-01T00:00:00.000Z', expiresAt: '2030-02-01T00:00:00.000Z' }), key.privateKey);
    const stale = signRelease(sampleRelease({ revision: 9, issuedAt: '2029-01-01T00:00:00.000Z', expiresAt: '2029-02-01T00:00:00.000Z' }), key.privateKey);
    const forged = { ...good, payload: good.payload.replace('"revision":3', '"revision":4') };
    const unsigned = { payload: good.payload, signature: '', keyId: good.keyId };

    // A man in the middle: a WebSocket server that speaks the protocol but holds no key.
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise((resolve) => wss.once('listening', resolve));
    const received: ReportEntry[] = [];
    wss.on('connection', (ws: WebSocket) => {
      ws.on('message', (data: Buffer) => {
        const m = parseMessage(data, 'from-agent');
        if (!m.ok) return;
        if (m.message.type === 'hello') {
          ws.send(encodeMessage({ type: 'welcome', ackedSeq: 0, heartbeatMs: 10_000, leaseDurationMs: 50_000 }));
          for (const envelope of [forged, old, unsigned, stale]) ws.send(encodeMessage({ type: 'release', envelope }));
        }
        if (m.message.type === 'reports') {
          received.push(...m.message.reports);
          ws.send(encodeMessage({ type: 'ack', uptoSeq: m.message.reports.at(-1)?.seq ?? 0 }));
        }
      });
    });
    const url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/api/v1/agent`;
    const a = createTestAgent({ url, clusterId: 'edge-m', releaseKey: key.publicKey, now: clock.now, credential: 'x'.repeat(43), lastRevision: 2 });
    a.link.start();
    try {
      await waitFor(a.link, ['acked'], () => received.length === 4, 'four refusal reports');
      assert.equal(a.releases.length, 0, 'onRelease never called');
      assert.deepEqual(
        received.map((r) => [r.kind, (r.body as { reason: string }).reason]),
        [
          ['release-refused', 'BadSignature'],
          ['release-refused', 'Replayed'],
          ['release-refused', 'Unsigned'],
          ['release-refused', 'Expired'],
        ],
      );
      assert.equal((received[1]?.body as { revision?: number }).revision, 2, 'a verified revision is named');
      assert.equal((received[0]?.body as { revision?: number }).revision, undefined, 'an unverified one is not');
      assert.equal(a.link.counters.refused, 4);
    } finally {
      await a.link.stop();
      await new Promise((resolve) => wss.close(resolve));
    }
  });
});
