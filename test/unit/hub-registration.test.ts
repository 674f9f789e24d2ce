// Double opt-in registration with proof of possession, deregistration.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { hashSecret } from '../../src/hub/credentials.ts';
import { agentKeyFingerprint } from '../../src/protocol/agent-identity.ts';
import { encodeMessage } from '../../src/protocol/messages.ts';
import { nextEvent } from '../support/events.ts';
import { ADMIN_TOKEN, startHubFixture, type HubFixture } from '../support/hub-fixture.ts';
import { connectRaw } from '../support/raw-agent.ts';
import { completed } from '../support/sample-reports.ts';
import { createTestAgent, drained, enrolAgent, type TestAgent } from '../support/test-agent.ts';

const inventory = { components: [], kubernetesVersion: 'v1.35.4', targetInfrastructure: 'aws', overrides: [] };

describe('registration and agent keys', () => {
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

  it('double opt-in: a bootstrap token and a proven key make the cluster Pending; an operator accept lets the waiting agent in with that key', async () => {
    const a = createTestAgent({ url: f.hub.url, clusterId: 'edge-a', releaseKey: f.key.publicKey, now: f.clock.now });
    agents.push(a);
    const pending = nextEvent(a.link, 'registration', (r: { status: string }) => r.status === 'pending');
    a.link.start();
    await pending;
    const before = (await f.api('GET', '/api/v1/clusters/edge-a')).body;
    assert.equal(before.registration, 'Pending');
    assert.equal(before.key.fingerprint, agentKeyFingerprint(a.state.key.publicKey), 'the operator sees which key asks');
    assert.equal(a.state.registered, false);
    assert.equal((await f.api('PUT', '/api/v1/clusters/edge-a/release', { name: 'x', version: '1.0.0', components: [] })).status, 409, 'a pending cluster gets no release');

    const welcomed = nextEvent(a.link, 'welcome');
    const accept = await f.api('POST', '/api/v1/clusters/edge-a/accept');
    assert.equal(accept.status, 200);
    assert.equal(accept.body.delivered, true);
    await welcomed;
    assert.equal(a.state.registered, true, 'onRegistered persisted the acceptance');
    const after = (await f.api('GET', '/api/v1/clusters/edge-a')).body;
    assert.equal(after.registration, 'Accepted');
    assert.equal(after.availability.status, 'True');
    assert.equal((await f.api('POST', '/api/v1/clusters/edge-a/accept')).status, 409);
  });

  it('an agent that was offline when accepted connects with its key on its next start; a bootstrap-token holder with another key gets nothing', async () => {
    const first = createTestAgent({ url: f.hub.url, clusterId: 'edge-b', releaseKey: f.key.publicKey, now: f.clock.now });
    const pending = nextEvent(first.link, 'registration', (r: { status: string }) => r.status === 'pending');
    first.link.start();
    await pending;
    await first.link.stop();
    assert.equal((await f.api('POST', '/api/v1/clusters/edge-b/accept')).body.delivered, false);

    // The same agent (same key, from its Secret) starts again: its register is answered "accepted", then it proves the key.
    const second = createTestAgent({ url: f.hub.url, clusterId: 'edge-b', releaseKey: f.key.publicKey, now: f.clock.now, key: first.state.key });
    agents.push(second);
    const welcomed = nextEvent(second.link, 'welcome');
    second.link.start();
    await welcomed;
    assert.equal(second.state.registered, true);

    const thief = createTestAgent({ url: f.hub.url, clusterId: 'edge-b', releaseKey: f.key.publicKey, now: f.clock.now });
    const rejected = nextEvent(thief.link, 'registration', (r: { status: string }) => r.status === 'rejected');
    thief.link.start();
    const [r] = await rejected;
    await thief.link.stop();
    assert.equal((r as { code?: string }).code, 'KeyConflict');
    assert.equal(thief.state.registered, false);
    const view = (await f.api('GET', '/api/v1/clusters/edge-b')).body;
    assert.deepEqual(view.keyConflicts.map((c: { fingerprint: string }) => c.fingerprint), [agentKeyFingerprint(thief.state.key.publicKey)], 'the conflict is shown to the operator');
    assert.equal(view.key.fingerprint, agentKeyFingerprint(first.state.key.publicKey), 'never merged: the accepted key stays');
  });

  it('refuses a bad bootstrap token and records nothing', async () => {
    const a = createTestAgent({ url: f.hub.url, clusterId: 'edge-c', releaseKey: f.key.publicKey, now: f.clock.now, bootstrapToken: 'guessed-token' });
    const rejected = nextEvent(a.link, 'registration', (r: { status: string }) => r.status === 'rejected');
    a.link.start();
    await rejected;
    await a.link.stop();
    assert.equal((await f.api('GET', '/api/v1/clusters/edge-c')).status, 404);
  });

  it('refuses a key proven for another cluster, and changes nothing', async () => {
    const a = await enrolAgent(f, 'edge-d');
    const b = await enrolAgent(f, 'edge-e');
    agents.push(a, b);
    // B's own agent stops first: its heartbeats would move lastSeen, and only the attacker's frames are under test.
    await b.link.stop();
    const bBefore = (await f.api('GET', '/api/v1/clusters/edge-e')).body;
    f.clock.advance(60_000);

    // A's key, a hello for B: the proof does not verify with B's key.
    const cross = await connectRaw(f.hub.url, { key: a.state.key, clusterId: 'edge-e' });
    assert.ok(cross.ok);
    cross.ws.send(encodeMessage({ type: 'hello', clusterId: 'edge-e', agentVersion: 'evil', inventory, lastRevision: 0, outbox: { firstSeq: null, lastSeq: 0 }, proof: cross.prove('hello') }));
    const reply = await cross.next();
    assert.equal(reply.type === 'error' && reply.code, 'BadProof');
    assert.equal((await cross.closed).code, 4001);
    // A proof for A replayed as B's, and a proof from another connection's challenge: refused alike.
    const replay = await connectRaw(f.hub.url, { key: a.state.key, clusterId: 'edge-e' });
    assert.ok(replay.ok);
    replay.ws.send(encodeMessage({ type: 'hello', clusterId: 'edge-e', agentVersion: 'evil', inventory, lastRevision: 0, outbox: { firstSeq: null, lastSeq: 0 }, proof: replay.prove('hello', 'edge-d') }));
    assert.equal(((await replay.next()) as { code?: string }).code, 'BadProof');

    const unknown = await connectRaw(f.hub.url, { credential: 'A'.repeat(43), clusterId: 'edge-e' });
    assert.equal(!unknown.ok && unknown.status, 401);
    const malformed = await connectRaw(f.hub.url, { credential: 'has spaces in it', clusterId: 'edge-e' });
    assert.equal(!malformed.ok && malformed.status, 401);

    const bAfter = (await f.api('GET', '/api/v1/clusters/edge-e')).body;
    assert.equal(bAfter.lastSeen, bBefore.lastSeen, 'the victim cluster was not touched');
    assert.equal(bAfter.agentVersion, bBefore.agentVersion);
  });

  it('a legacy bearer credential still authenticates its own cluster, binds the agent\'s key on the hello, and is worthless after', async () => {
    const legacy = 'L'.repeat(43);
    // A cluster registered with a hub before keys: accepted, a credential hash, no key.
    const db = new Database(f.dbPath);
    db.prepare("INSERT INTO clusters (id, status, labels, requested_at, accepted_at, credential_hash) VALUES ('edge-f', 'Accepted', '{}', '2030-01-01T00:00:00.000Z', '2030-01-01T00:00:00.000Z', ?)").run(hashSecret(legacy));
    db.close();
    await enrolAgent(f, 'edge-g').then((g) => agents.push(g));

    const cross = await connectRaw(f.hub.url, { credential: legacy, clusterId: 'edge-g' });
    assert.equal(!cross.ok && cross.status, 403, 'a credential for another cluster is refused before the upgrade');
    const conn = await connectRaw(f.hub.url, { credential: legacy, clusterId: 'edge-f' });
    assert.ok(conn.ok);
    conn.ws.send(encodeMessage({ type: 'hello', clusterId: 'edge-g', agentVersion: 'evil', inventory, lastRevision: 0, outbox: { firstSeq: null, lastSeq: 0 } }));
    assert.equal(((await conn.next()) as { code?: string }).code, 'ClusterMismatch');
    assert.equal((await conn.closed).code, 4003);
    assert.notEqual((await f.api('GET', '/api/v1/clusters/edge-g')).body.agentVersion, 'evil');

    // The upgraded agent: its old credential plus a new key; the hub binds the key and forgets the credential.
    const upgraded = createTestAgent({ url: f.hub.url, clusterId: 'edge-f', releaseKey: f.key.publicKey, now: f.clock.now, legacyCredential: legacy });
    agents.push(upgraded);
    const welcomed = nextEvent(upgraded.link, 'welcome');
    upgraded.link.start();
    await welcomed;
    assert.equal(upgraded.state.legacyCredential, undefined, 'the agent dropped its credential');
    assert.equal(upgraded.state.registered, true);
    const view = (await f.api('GET', '/api/v1/clusters/edge-f')).body;
    assert.equal(view.key.fingerprint, agentKeyFingerprint(upgraded.state.key.publicKey));
    assert.equal(view.key.legacyCredential, false);
    const stale = await connectRaw(f.hub.url, { credential: legacy, clusterId: 'edge-f' });
    assert.equal(!stale.ok && stale.status, 401, 'the credential no longer authenticates');
  });

  it('deregistration tells the connected agent, stops its link, ends its right and keeps telemetry', async () => {
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
    const stale = await connectRaw(f.hub.url, { key: a.state.key, clusterId: 'edge-h' });
    assert.ok(stale.ok);
    stale.ws.send(encodeMessage({ type: 'hello', clusterId: 'edge-h', agentVersion: '0.1.0', inventory, lastRevision: 0, outbox: { firstSeq: null, lastSeq: 0 }, proof: stale.prove('hello') }));
    assert.equal(((await stale.next()) as { code?: string }).code, 'Deregistered');
    assert.equal((await stale.closed).code, 4004);
    const telemetry = (await f.api('GET', '/api/v1/telemetry?cluster=edge-h')).body.events;
    assert.equal(telemetry.length, 1);
    assert.equal((await f.api('DELETE', '/api/v1/clusters/edge-h')).status, 404);
  });

  it('revoking a cluster closes its connection; its agent stops reconnecting and reports Revoked; the key no longer gets in', async () => {
    const a = await enrolAgent(f, 'edge-i');
    const revoked = nextEvent(a.link, 'revoked');
    const res = await f.api('POST', '/api/v1/clusters/edge-i/revoke');
    assert.equal(res.status, 200);
    assert.equal(res.body.closed, 1);
    await revoked;
    const reconnects = a.link.counters.reconnects;
    await a.link.stop();
    assert.equal(a.link.counters.reconnects, reconnects, 'no reconnect after revocation');
    assert.equal(a.revocations.length, 1);
    assert.equal((await f.api('GET', '/api/v1/clusters/edge-i')).body.registration, 'Revoked');
    const again = createTestAgent({ url: f.hub.url, clusterId: 'edge-i', releaseKey: f.key.publicKey, now: f.clock.now, key: a.state.key, registered: true });
    const stopped = nextEvent(again.link, 'revoked');
    again.link.start();
    await stopped;
    await again.link.stop();
  });

  it('an operator resolves a key conflict by trusting the new key (a wiped Secret): the old key stops working', async () => {
    const a = await enrolAgent(f, 'edge-k');
    const wiped = createTestAgent({ url: f.hub.url, clusterId: 'edge-k', releaseKey: f.key.publicKey, now: f.clock.now });
    agents.push(wiped);
    const conflict = nextEvent(wiped.link, 'registration', (r: { code?: string }) => r.code === 'KeyConflict');
    wiped.link.start();
    await conflict;
    const fingerprint = agentKeyFingerprint(wiped.state.key.publicKey);
    assert.equal((await f.api('POST', '/api/v1/clusters/edge-k/trust-key', { fingerprint: 'sha256:nope' })).status, 404);
    const welcomed = nextEvent(wiped.link, 'welcome');
    const oldGone = nextEvent(a.link, 'disconnected');
    const trusted = await f.api('POST', '/api/v1/clusters/edge-k/trust-key', { fingerprint });
    assert.equal(trusted.status, 200);
    await oldGone;
    await a.link.stop();
    await welcomed;
    const view = (await f.api('GET', '/api/v1/clusters/edge-k')).body;
    assert.equal(view.key.fingerprint, fingerprint);
    assert.deepEqual(view.keyConflicts, []);
  });

  it('operator endpoints need the admin token', async () => {
    for (const [method, path] of [
      ['GET', '/api/v1/clusters'],
      ['GET', '/api/v1/fleet/summary'],
      ['POST', '/api/v1/clusters/x/accept'],
      ['DELETE', '/api/v1/clusters/x'],
      ['POST', '/api/v1/clusters/x/revoke'],
      ['POST', '/api/v1/bootstrap-tokens'],
    ] as const) {
      assert.equal((await f.api(method, path, undefined, 'wrong-token')).status, 401, `${method} ${path}`);
    }
    assert.equal((await f.api('GET', '/api/v1/clusters', undefined, ADMIN_TOKEN)).status, 200);
  });
});
