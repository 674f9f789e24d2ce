// Double opt-in registration, per-cluster credentials, deregistration.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { encodeMessage } from '../../src/protocol/messages.ts';
import { nextEvent } from '../support/events.ts';
import { ADMIN_TOKEN, startHubFixture, type HubFixture } from '../support/hub-fixture.ts';
import { connectRaw } from '../support/raw-agent.ts';
import { completed } from '../support/sample-reports.ts';
import { createTestAgent, drained, enrolAgent, type TestAgent } from '../support/test-agent.ts';

const inventory = { components: [], kubernetesVersion: 'v1.35.4', targetInfrastructure: 'aws', overrides: [] };

describe('registration and credentials', () => {
  let f: HubFixture;
  let agents: TestAgent[];
  beforeEach(async () => {
    f = await startHubFixture();
    agents = [];
  });
  afterEach(async () => {
    await Promise.all(agents.map((a) => a.link.stop()));
    await f.close();
  });

  it('double opt-in: a bootstrap token makes the cluster Pending; an operator accept delivers the credential to the waiting agent', async () => {
    const a = createTestAgent({ url: f.hub.url, clusterId: 'edge-a', releaseKey: f.key.publicKey, now: f.clock.now });
    agents.push(a);
    const pending = nextEvent(a.link, 'registration', (r: { status: string }) => r.status === 'pending');
    a.link.start();
    await pending;
    const before = (await f.api('GET', '/api/v1/clusters/edge-a')).body;
    assert.equal(before.registration, 'Pending');
    assert.equal(a.state.credential, undefined);
    assert.equal((await f.api('PUT', '/api/v1/clusters/edge-a/release', { name: 'x', version: '1.0.0', components: [] })).status, 409, 'a pending cluster gets no release');

    const welcomed = nextEvent(a.link, 'welcome');
    const accept = await f.api('POST', '/api/v1/clusters/edge-a/accept');
    assert.equal(accept.status, 200);
    assert.equal(accept.body.delivered, true);
    await welcomed;
    const issued: string | undefined = a.state.credential as string | undefined;
    assert.ok(issued !== undefined && issued.length >= 43, 'the credential was handed to onCredential');
    const after = (await f.api('GET', '/api/v1/clusters/edge-a')).body;
    assert.equal(after.registration, 'Accepted');
    assert.equal(after.availability.status, 'True');
    assert.equal((await f.api('POST', '/api/v1/clusters/edge-a/accept')).status, 409);
  });

  it('an agent that was offline when accepted gets its credential on its next connect, once', async () => {
    const first = createTestAgent({ url: f.hub.url, clusterId: 'edge-b', releaseKey: f.key.publicKey, now: f.clock.now });
    const pending = nextEvent(first.link, 'registration', (r: { status: string }) => r.status === 'pending');
    first.link.start();
    await pending;
    await first.link.stop();
    assert.equal((await f.api('POST', '/api/v1/clusters/edge-b/accept')).body.delivered, false);

    const second = createTestAgent({ url: f.hub.url, clusterId: 'edge-b', releaseKey: f.key.publicKey, now: f.clock.now });
    agents.push(second);
    const welcomed = nextEvent(second.link, 'welcome');
    second.link.start();
    await welcomed;
    assert.ok(second.state.credential);

    // The credential is in use now: the bootstrap token cannot mint another for this id.
    const thief = createTestAgent({ url: f.hub.url, clusterId: 'edge-b', releaseKey: f.key.publicKey, now: f.clock.now });
    const rejected = nextEvent(thief.link, 'registration', (r: { status: string }) => r.status === 'rejected');
    thief.link.start();
    const [r] = await rejected;
    await thief.link.stop();
    assert.match((r as { reason?: string }).reason ?? '', /already registered/);
    assert.equal(thief.state.credential, undefined);
  });

  it('refuses a bad bootstrap token and records nothing', async () => {
    const a = createTestAgent({ url: f.hub.url, clusterId: 'edge-c', releaseKey: f.key.publicKey, now: f.clock.now, bootstrapToken: 'guessed-token' });
    const rejected = nextEvent(a.link, 'registration', (r: { status: string }) => r.status === 'rejected');
    a.link.start();
    await rejected;
    await a.link.stop();
    assert.equal((await f.api('GET', '/api/v1/clusters/edge-c')).status, 404);
  });

  it('refuses a credential presented for another cluster before the upgrade, and changes nothing', async () => {
    const a = await enrolAgent(f, 'edge-d');
    const b = await enrolAgent(f, 'edge-e');
    agents.push(a, b);
    const bBefore = (await f.api('GET', '/api/v1/clusters/edge-e')).body;
    f.clock.advance(60_000);

    const cross = await connectRaw(f.hub.url, { credential: a.state.credential, clusterId: 'edge-e' });
    assert.equal(cross.ok, false);
    assert.equal(!cross.ok && cross.status, 403);
    assert.match(!cross.ok ? cross.body : '', /ClusterMismatch/);

    const unknown = await connectRaw(f.hub.url, { credential: 'A'.repeat(43), clusterId: 'edge-e' });
    assert.equal(!unknown.ok && unknown.status, 401);
    const malformed = await connectRaw(f.hub.url, { credential: 'has spaces in it', clusterId: 'edge-e' });
    assert.equal(!malformed.ok && malformed.status, 401);
    const noId = await connectRaw(f.hub.url, { credential: a.state.credential });
    assert.equal(!noId.ok && noId.status, 400);

    // The link itself reports the refusal.
    const impostor = createTestAgent({ url: f.hub.url, clusterId: 'edge-e', releaseKey: f.key.publicKey, now: f.clock.now, credential: a.state.credential });
    const refused = nextEvent(impostor.link, 'rejected');
    impostor.link.start();
    const [rej] = await refused;
    await impostor.link.stop();
    assert.equal((rej as { statusCode: number }).statusCode, 403);

    const bAfter = (await f.api('GET', '/api/v1/clusters/edge-e')).body;
    assert.equal(bAfter.lastSeen, bBefore.lastSeen, 'the victim cluster was not touched');
    assert.equal(bAfter.agentVersion, bBefore.agentVersion);
  });

  it('a hello claiming another cluster on a valid connection is refused and the connection closed', async () => {
    const a = await enrolAgent(f, 'edge-f');
    await a.link.stop();
    await enrolAgent(f, 'edge-g').then((g) => agents.push(g));
    const conn = await connectRaw(f.hub.url, { credential: a.state.credential, clusterId: 'edge-f' });
    assert.ok(conn.ok);
    conn.ws.send(encodeMessage({ type: 'hello', clusterId: 'edge-g', agentVersion: 'evil', inventory, lastRevision: 0, outbox: { firstSeq: null, lastSeq: 0 } }));
    const reply = await conn.next();
    assert.equal(reply.type, 'error');
    assert.equal(reply.type === 'error' && reply.code, 'ClusterMismatch');
    assert.equal((await conn.closed).code, 4003);
    assert.notEqual((await f.api('GET', '/api/v1/clusters/edge-g')).body.agentVersion, 'evil');
  });

  it('deregistration tells the connected agent, stops its link, revokes the credential and keeps telemetry', async () => {
    const a = await enrolAgent(f, 'edge-h');
    a.outbox.enqueue('upgrade-completed', completed('edge-h', 1));
    a.link.flush();
    await drained(a);
    const reconnectsBefore = a.link.counters.reconnects;
    const deregistered = nextEvent(a.link, 'deregistered');
    const del = await f.api('DELETE', '/api/v1/clusters/edge-h');
    assert.equal(del.status, 200);
    await deregistered;
    assert.equal(a.deregistrations.length, 1);
    await a.link.stop(); // returns at once: the link already stopped itself
    assert.equal(a.link.counters.reconnects, reconnectsBefore, 'no reconnect attempt after deregistration');

    assert.equal((await f.api('GET', '/api/v1/clusters/edge-h')).status, 404);
    const stale = await connectRaw(f.hub.url, { credential: 'unused', clusterId: 'edge-h' });
    assert.equal(!stale.ok && stale.status, 401);
    const telemetry = (await f.api('GET', '/api/v1/telemetry?cluster=edge-h')).body.events;
    assert.equal(telemetry.length, 1);
    assert.equal((await f.api('DELETE', '/api/v1/clusters/edge-h')).status, 404);
  });

  it('the revoked credential stops working', async () => {
    const a = await enrolAgent(f, 'edge-i');
    const credential = a.state.credential;
    const stopped = nextEvent(a.link, 'deregistered');
    await f.api('DELETE', '/api/v1/clusters/edge-i');
    await stopped;
    await a.link.stop();
    const res = await connectRaw(f.hub.url, { credential, clusterId: 'edge-i' });
    assert.equal(!res.ok && res.status, 401);
  });

  it('operator endpoints need the admin token', async () => {
    for (const [method, path] of [
      ['GET', '/api/v1/clusters'],
      ['GET', '/api/v1/fleet/summary'],
      ['POST', '/api/v1/clusters/x/accept'],
      ['DELETE', '/api/v1/clusters/x'],
    ] as const) {
      assert.equal((await f.api(method, path, undefined, 'wrong-token')).status, 401, `${method} ${path}`);
    }
    assert.equal((await f.api('GET', '/api/v1/clusters', undefined, ADMIN_TOKEN)).status, 200);
  });
});
