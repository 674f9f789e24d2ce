// The hub as an attacker meets it: a bare WebSocket client (the `ws`
// package, not fleetlet's hub link) on a real socket, doing what the hub
// must not allow. Each case is one attack from docs/security.md; each was
// possible before agents registered keys.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import WebSocket from 'ws';
import { hashSecret } from '../../src/hub/credentials.ts';
import { startHub } from '../../src/hub/start-hub.ts';
import { generateAgentKey, type AgentKeyPair } from '../../src/protocol/agent-identity.ts';
import { encodeMessage, MAX_REVISION, type HubMessage } from '../../src/protocol/messages.ts';
import { generateReleaseKey } from '../../src/protocol/signing.ts';
import { ADMIN_TOKEN, BOOTSTRAP_TOKEN, startHubFixture, type HubFixture } from '../support/hub-fixture.ts';
import { connectRaw, type RawConnection } from '../support/raw-agent.ts';
import { sampleReleaseRequest } from '../support/releases.ts';
import { completed } from '../support/sample-reports.ts';
import { enrolAgent } from '../support/test-agent.ts';

const inventory = { components: [], kubernetesVersion: 'v1.35.4', targetInfrastructure: 'aws', overrides: [] };
const hello = (clusterId: string) => ({ type: 'hello' as const, clusterId, agentVersion: '0.1.0', inventory, lastRevision: 0, outbox: { firstSeq: null, lastSeq: 0 } });

/** Every log line the hub writes, as text. */
function capturedLog(): { logger: pino.Logger; text: () => string; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void chunks.push(s) });
  return { logger, text: () => chunks.join(''), lines: () => chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

async function connect(f: HubFixture, opts: { key?: AgentKeyPair; clusterId?: string; credential?: string; localAddress?: string } = {}): Promise<RawConnection> {
  const c = await connectRaw(f.hub.url, opts);
  if (!c.ok) throw new Error(`upgrade refused: ${c.status} ${c.body}`);
  return c;
}

async function register(f: HubFixture, clusterId: string, key: AgentKeyPair, bootstrapToken = BOOTSTRAP_TOKEN): Promise<{ conn: RawConnection; reply: HubMessage }> {
  const conn = await connect(f, { key, clusterId });
  conn.ws.send(encodeMessage({ type: 'register', bootstrapToken, clusterId, agentVersion: '0.1.0', inventory, publicKey: key.publicKey, proof: conn.prove('register') }));
  return { conn, reply: await conn.next() };
}

/** A hello proven with `key`; resolves with the hub's answer. */
async function proveHello(f: HubFixture, clusterId: string, key: AgentKeyPair): Promise<{ conn: RawConnection; reply: HubMessage }> {
  const conn = await connect(f, { key, clusterId });
  conn.ws.send(encodeMessage({ ...hello(clusterId), proof: conn.prove('hello') }));
  return { conn, reply: await conn.next() };
}

/**
 * A cluster registered before agents had keys: accepted, holding a bearer
 * credential. The hub still lets such an agent in (until it binds a key), so
 * attacks on what follows authentication (acks, leases, floods beside it)
 * are set up the same way against any hub.
 */
async function legacyAgent(f: HubFixture, id: string): Promise<{ conn: RawConnection; reply: HubMessage }> {
  const credential = randomBytes(32).toString('base64url');
  const db = new Database(f.dbPath);
  db.prepare("INSERT INTO clusters (id, status, labels, requested_at, accepted_at, credential_hash) VALUES (?, 'Accepted', '{}', '2030-01-01T00:00:00.000Z', '2030-01-01T00:00:00.000Z', ?)").run(id, hashSecret(credential));
  db.close();
  const conn = await connect(f, { credential, clusterId: id });
  conn.ws.send(encodeMessage(hello(id)));
  return { conn, reply: await conn.next() };
}

/** Resolves with the close, or 'still open' after `ms`. */
function closedWithin(conn: RawConnection, ms: number): Promise<{ code: number; reason: string } | 'still open'> {
  return Promise.race([conn.closed, sleep(ms).then(() => 'still open' as const)]);
}

function stateOf(f: HubFixture, id: string): Promise<{ status: number; body: Record<string, unknown> }> {
  return f.api('GET', `/api/v1/clusters/${id}`);
}

describe('attacks on registration', () => {
  let f: HubFixture;
  beforeEach(async () => {
    f = await startHubFixture();
  });
  afterEach(async () => {
    await f.close();
  });

  it('a bootstrap-token holder registering a pending cluster\'s id gets nothing when the operator accepts', async () => {
    const honest = generateAgentKey();
    const waiting = await register(f, 'edge-victim', honest);
    assert.equal(waiting.reply.type === 'registration' && waiting.reply.status, 'pending');

    // Same token, same id, its own key (it cannot sign with the honest agent's).
    const thief = await register(f, 'edge-victim', generateAgentKey());
    assert.equal(thief.reply.type === 'registration' && thief.reply.status, 'rejected', 'the second registrant is refused, not queued');
    assert.equal(thief.reply.type === 'registration' && thief.reply.code, 'KeyConflict');
    assert.equal((await thief.conn.closed).code, 4009);
    // Nor can it claim the honest agent's public key without its private key.
    const copycat = await connect(f, { key: generateAgentKey(), clusterId: 'edge-victim' });
    copycat.ws.send(encodeMessage({ type: 'register', bootstrapToken: BOOTSTRAP_TOKEN, clusterId: 'edge-victim', agentVersion: '0.1.0', publicKey: honest.publicKey, proof: copycat.prove('register') }));
    assert.equal(((await copycat.next()) as { code?: string }).code, 'BadProof');

    assert.equal((await f.api('POST', '/api/v1/clusters/edge-victim/accept')).status, 200);
    const accepted = await waiting.conn.next();
    assert.deepEqual(accepted.type === 'registration' && { status: accepted.status, keys: Object.keys(accepted).sort() }, { status: 'accepted', keys: ['protocolVersion', 'status', 'type'] }, 'nothing secret is delivered, even to the honest agent');
    assert.equal(thief.conn.messages.some((m) => m.type === 'registration' && m.status === 'accepted'), false);

    // Only the accepted key gets in.
    assert.equal((await proveHello(f, 'edge-victim', generateAgentKey())).reply.type, 'error');
    assert.equal((await proveHello(f, 'edge-victim', honest)).reply.type, 'welcome');
  });

  it('after an offline accept, a bootstrap-token holder who connects first under the id collects nothing', async () => {
    const honest = generateAgentKey();
    const first = await register(f, 'edge-offline', honest);
    first.conn.ws.close();
    await first.conn.closed;
    const accept = await f.api('POST', '/api/v1/clusters/edge-offline/accept');
    assert.equal(accept.body.delivered, false, 'the agent was offline');

    const thief = await register(f, 'edge-offline', generateAgentKey());
    assert.equal(thief.reply.type === 'registration' && thief.reply.status, 'rejected');
    const thiefHello = await proveHello(f, 'edge-offline', generateAgentKey());
    assert.equal(thiefHello.reply.type === 'error' && thiefHello.reply.code, 'BadProof');
    // The operator sees the conflict; the honest agent still gets in with its key.
    const view = (await stateOf(f, 'edge-offline')).body as { keyConflicts: unknown[] };
    assert.equal(view.keyConflicts.length, 1);
    assert.equal((await proveHello(f, 'edge-offline', honest)).reply.type, 'welcome');
  });
});

describe('attacks on sessions', () => {
  let f: HubFixture;
  beforeEach(async () => {
    f = await startHubFixture();
  });
  afterEach(async () => {
    await f.close();
  });

  it('deregistering a cluster closes a connection that authenticated but never said hello', async () => {
    // A cluster holding a bearer credential from before keys: it authenticates at the upgrade.
    const legacy = 'C'.repeat(43);
    const db = new Database(f.dbPath);
    db.prepare("INSERT INTO clusters (id, status, labels, requested_at, accepted_at, credential_hash) VALUES ('edge-hijack', 'Accepted', '{}', '2030-01-01T00:00:00.000Z', '2030-01-01T00:00:00.000Z', ?)").run(hashSecret(legacy));
    db.close();
    const lurker = await connect(f, { credential: legacy, clusterId: 'edge-hijack' });
    // Also a proven registrant waiting, and a welcomed agent of another state: every connection of the cluster.
    assert.equal((await f.api('DELETE', '/api/v1/clusters/edge-hijack')).status, 200);
    const closed = await closedWithin(lurker, 2_000);
    assert.notEqual(closed, 'still open', 'the authenticated connection outlived the deregistration');
    assert.equal(closed !== 'still open' && closed.code, 4004);

    // Re-registered under the same id by its rightful agent: the lurker is gone and cannot act for it.
    const key = generateAgentKey();
    await register(f, 'edge-hijack', key);
    await f.api('POST', '/api/v1/clusters/edge-hijack/accept');
    assert.equal(lurker.ws.readyState, WebSocket.CLOSED);
  });

  it('revoking a cluster ends its connections in every state: welcomed, and pending-registrant', async () => {
    const key = generateAgentKey();
    await register(f, 'edge-r', key);
    await f.api('POST', '/api/v1/clusters/edge-r/accept');
    const welcomed = await proveHello(f, 'edge-r', key);
    assert.equal(welcomed.reply.type, 'welcome');
    const second = await register(f, 'edge-r', key); // same key: told to connect, and still open
    assert.equal(second.reply.type === 'registration' && second.reply.status, 'accepted');
    const res = await f.api('POST', '/api/v1/clusters/edge-r/revoke');
    assert.equal(res.status, 200);
    assert.equal(((await closedWithin(welcomed.conn, 2_000)) as { code: number }).code, 4005);
    assert.equal(((await closedWithin(second.conn, 2_000)) as { code: number }).code, 4005);
    assert.equal((await proveHello(f, 'edge-r', key)).reply.type === 'error', true);
  });

  it('a junk-frame flood is cut off with a policy close after its budget, logged once, while an honest agent keeps its acks', async () => {
    const log = capturedLog();
    await f.close();
    f = await startHubFixture({ logger: log.logger });
    const honest = await legacyAgent(f, 'edge-honest');
    assert.equal(honest.reply.type, 'welcome');

    const flooder = await connect(f);
    let sent = 0;
    while (flooder.ws.readyState === WebSocket.OPEN && sent < 5_000) {
      flooder.ws.send(`{"junk": ${sent}`);
      sent++;
    }
    const closed = await closedWithin(flooder, 5_000);
    assert.notEqual(closed, 'still open', `a flooder that sent ${sent} junk frames is still connected`);
    assert.equal(closed !== 'still open' && closed.code, 1008);
    const replies = flooder.messages.filter((m) => m.type === 'error');
    assert.ok(replies.length <= 12, `${replies.length} error replies: one per frame is what a flooder wants`);
    assert.equal(replies.at(-1)?.type === 'error' && replies.at(-1)?.code, 'BudgetExceeded');
    const refusals = log.lines().filter((l) => String(l.msg).startsWith('rejected a frame'));
    assert.equal(refusals.length, 1, 'one log line per connection, not per frame');

    honest.conn.ws.send(encodeMessage({ type: 'reports', afterSeq: 0, reports: [{ seq: 1, kind: 'upgrade-completed', body: completed('edge-honest', 1), createdAt: f.clock.now().toISOString() }] }));
    const ack = await honest.conn.next();
    assert.equal(ack.type === 'ack' && ack.uptoSeq, 1);
  });

  it('a flooder cut off for abuse is refused at the upgrade for a back-off that doubles; agents from other addresses are not', async () => {
    const attacker = '127.0.0.2';
    const flood = async (): Promise<{ code: number; reply: HubMessage | undefined }> => {
      const conn = await connect(f, { localAddress: attacker });
      for (let i = 0; i < 20 && conn.ws.readyState === WebSocket.OPEN; i++) conn.ws.send(`{"junk": ${i}`);
      const closed = await closedWithin(conn, 5_000);
      assert.notEqual(closed, 'still open');
      return { code: closed !== 'still open' ? closed.code : 0, reply: conn.messages.find((m) => m.type === 'error' && m.code === 'BudgetExceeded') };
    };
    const refusedAt = async (): Promise<{ status: number; reason: string; retryAfter: unknown } | 'connected'> => {
      const c = await connectRaw(f.hub.url, { localAddress: attacker });
      if (c.ok) {
        c.ws.close();
        return 'connected';
      }
      return { status: c.status, reason: (JSON.parse(c.body) as { error: { reason: string } }).error.reason, retryAfter: c.headers['retry-after'] };
    };

    const first = await flood();
    assert.equal(first.code, 1008);
    assert.match(first.reply?.type === 'error' ? first.reply.message : '', /this address may reconnect in 1 s/);
    assert.deepEqual(await refusedAt(), { status: 429, reason: 'Banned', retryAfter: '1' }, 'a new connection from the flooder\'s address is refused before the handshake');
    // Another host (the honest agents' 127.0.0.1) is not touched by the flooder's ban.
    const key = generateAgentKey();
    await register(f, 'edge-neighbour', key);
    await f.api('POST', '/api/v1/clusters/edge-neighbour/accept');
    assert.equal((await proveHello(f, 'edge-neighbour', key)).reply.type, 'welcome');

    f.clock.advance(1_000);
    assert.equal((await flood()).code, 1008, 'after the back-off the address may connect again, and is cut off again');
    f.clock.advance(1_000);
    assert.deepEqual(await refusedAt(), { status: 429, reason: 'Banned', retryAfter: '1' }, 'the second ban lasts twice as long');
    f.clock.advance(1_000);
    assert.equal(await refusedAt(), 'connected');

    // One that keeps knocking during its ban is told why ten times, then dropped as its TCP connection is accepted.
    assert.equal((await flood()).code, 1008);
    for (let i = 0; i < 10; i++) assert.deepEqual(await refusedAt(), { status: 429, reason: 'Banned', retryAfter: '4' }, 'the third ban lasts 4 s');
    await assert.rejects(connectRaw(f.hub.url, { localAddress: attacker }), /socket hang up|ECONNRESET/, 'dropped before any HTTP answer');
    assert.equal((await connectRaw(f.hub.url)).ok, true, 'other addresses still connect');
  });

  it('an agent that floods after proving its key is banned as its cluster: its neighbours on the same address keep connecting', async () => {
    const noisy = generateAgentKey();
    const quiet = generateAgentKey();
    for (const [id, key] of [['edge-noisy', noisy], ['edge-quiet', quiet]] as const) {
      await register(f, id, key);
      await f.api('POST', '/api/v1/clusters/' + id + '/accept');
    }
    const { conn, reply } = await proveHello(f, 'edge-noisy', noisy);
    assert.equal(reply.type, 'welcome');
    for (let i = 0; i < 20 && conn.ws.readyState === WebSocket.OPEN; i++) conn.ws.send('not json');
    assert.equal(((await closedWithin(conn, 5_000)) as { code: number }).code, 1008);
    assert.match(conn.messages.map((m) => (m.type === 'error' ? m.message : '')).join('\n'), /this cluster may reconnect in 1 s/);

    // Same address, another cluster: not banned.
    assert.equal((await proveHello(f, 'edge-quiet', quiet)).reply.type, 'welcome');
    // The noisy cluster itself: refused after its proof, before its hello is written.
    const again = await proveHello(f, 'edge-noisy', noisy);
    assert.deepEqual(again.reply.type === 'error' && [again.reply.code, again.reply.message, again.reply.retryAfterMs], ['Banned', 'cluster "edge-noisy" was cut off for exceeding its connection budget: retry in 1 s', 1_000]);
    assert.equal((await again.conn.closed).code, 4029);
    f.clock.advance(1_000);
    assert.equal((await proveHello(f, 'edge-noisy', noisy)).reply.type, 'welcome');
  });

  it('a frame nested past the depth limit is refused before parsing and ends the connection', async () => {
    const conn = await connect(f);
    conn.ws.send(`{"type":"heartbeat","protocolVersion":1,"x":${'['.repeat(100_000)}${']'.repeat(100_000)}}`);
    const reply = await conn.next();
    assert.equal(reply.type === 'error' && reply.code, 'TooDeep');
    assert.equal(((await closedWithin(conn, 2_000)) as { code: number }).code, 1008);
  });

  it('a wrong afterSeq cannot wedge the acks: the hub names the seq it expects and the agent resumes from it', async () => {
    const { conn, reply } = await legacyAgent(f, 'edge-w');
    assert.equal(reply.type, 'welcome');
    const batch = (afterSeq: number, seqs: number[]) =>
      encodeMessage({ type: 'reports', afterSeq, reports: seqs.map((seq) => ({ seq, kind: 'upgrade-completed', body: completed('edge-w', seq), createdAt: '2030-01-01T00:00:00.000Z' })) });
    conn.ws.send(batch(0, [1, 2]));
    assert.equal(((await conn.next()) as { uptoSeq: number }).uptoSeq, 2);
    // Claims report 3 precedes 4; the journal skipped 3, so 3 will never come.
    conn.ws.send(batch(3, [4]));
    const refused = await conn.next();
    assert.deepEqual(refused.type === 'ack' && [refused.uptoSeq, refused.expectedAfterSeq], [2, 2]);
    conn.ws.send(batch(2, [4, 5]));
    assert.equal(((await conn.next()) as { uptoSeq: number }).uptoSeq, 5, 'resumed from the expected seq, the chain moves on');
  });

  it('wrong bootstrap tokens are throttled per address; a 1,000-label registration is refused', async () => {
    for (let i = 0; i < 10; i++) {
      const conn = await connect(f, { key: generateAgentKey(), clusterId: `edge-t${i}` });
      conn.ws.send(encodeMessage({ type: 'register', bootstrapToken: `guess-${i}`, clusterId: `edge-t${i}`, agentVersion: '0.1.0' }));
      assert.equal(((await conn.next()) as { code?: string }).code, 'BadBootstrapToken');
    }
    const blocked = await connectRaw(f.hub.url);
    assert.equal(!blocked.ok && blocked.status, 429);
    assert.match(!blocked.ok ? blocked.body : '', /Throttled/);
    f.clock.advance(61_000);
    const labels = Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`k${i}`, 'v']));
    const key = generateAgentKey();
    const conn = await connect(f, { key, clusterId: 'edge-labels' });
    conn.ws.send(encodeMessage({ type: 'register', bootstrapToken: BOOTSTRAP_TOKEN, clusterId: 'edge-labels', agentVersion: '0.1.0', labels, publicKey: key.publicKey, proof: conn.prove('register') }));
    const reply = await conn.next();
    assert.equal(reply.type === 'error' && reply.code, 'InvalidMessage');
    assert.equal((await stateOf(f, 'edge-labels')).status, 404);
  });

  it('a hello claiming revision 2^53-1 is refused with the reason; one at the highest revision allowed still gets its next release', async () => {
    const raw = await connect(f, { key: generateAgentKey(), clusterId: 'edge-big' });
    raw.ws.send(encodeMessage({ ...hello('edge-big'), lastRevision: Number.MAX_SAFE_INTEGER, proof: raw.prove('hello') }));
    const refused = await raw.next();
    assert.equal(refused.type === 'error' && refused.code, 'InvalidMessage');
    assert.match(refused.type === 'error' ? refused.message : '', /lastRevision/);

    const a = await enrolAgent(f, 'edge-max', { lastRevision: MAX_REVISION });
    try {
      const res = await f.api('PUT', '/api/v1/clusters/edge-max/release', sampleReleaseRequest());
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.revision, MAX_REVISION + 1);
    } finally {
      await a.link.stop();
    }
  });

  it('a ping renews the cluster\'s lease, as any traffic does', async () => {
    const { conn } = await legacyAgent(f, 'edge-p');
    const before = (await stateOf(f, 'edge-p')).body.lastSeen;
    f.clock.advance(30_000);
    const pong = new Promise((resolve) => conn.ws.once('pong', resolve));
    conn.ws.ping();
    await pong;
    const after = (await stateOf(f, 'edge-p')).body.lastSeen;
    assert.notEqual(after, before);
    assert.equal(after, f.clock.now().toISOString());
  });
});

describe('secrets at rest and in logs', () => {
  it('the database files are 0600; neither they nor the log hold a token or any prefix of one', async () => {
    const log = capturedLog();
    const configured = randomBytes(32).toString('base64url');
    const f = await startHubFixture({ logger: log.logger, bootstrapTokens: [configured] });
    try {
      for (const file of [f.dbPath, `${f.dbPath}-wal`, `${f.dbPath}-shm`]) {
        assert.equal(statSync(file).mode & 0o777, 0o600, `${file} is readable by others`);
      }
      const key = generateAgentKey();
      await register(f, 'edge-s', key, configured);
      await f.api('POST', '/api/v1/clusters/edge-s/accept');
      assert.equal((await proveHello(f, 'edge-s', key)).reply.type, 'welcome');
      const issued = await f.api('POST', '/api/v1/bootstrap-tokens', { ttlSeconds: 3600, maxUses: 2 });
      assert.equal(issued.status, 201);
      const apiToken: string = issued.body.token;
      assert.ok(apiToken.length >= 43);
      // A frame that breaks right after a secret: a parser's error message would quote it.
      const conn = await connect(f);
      conn.ws.send(`{"type":"register","bootstrapToken":"${configured}"!!`);
      assert.equal(((await conn.next()) as { code: string }).code, 'NotJson');

      const atRest = Buffer.concat([readFileSync(f.dbPath), readFileSync(`${f.dbPath}-wal`)]).toString('latin1');
      for (const secret of [configured, apiToken, ADMIN_TOKEN]) {
        assert.equal(atRest.includes(secret.slice(0, 12)), false, 'a secret (or its first 12 characters) is in the database or its WAL');
        assert.equal(log.text().includes(secret.slice(0, 8)), false, `the log holds a prefix of a secret: ${secret.slice(0, 8)}`);
      }
      assert.ok(log.text().includes('edge-s'), 'the log was captured');
    } finally {
      await f.close();
    }
  });

  it('a bootstrap token shorter than 32 bytes of entropy is refused at start; issued tokens expire, run out and can be revoked', async () => {
    const key = generateReleaseKey();
    await assert.rejects(
      startHub({ port: 0, dbPath: ':memory:', releaseKey: key.privateKey, adminToken: ADMIN_TOKEN, bootstrapTokens: ['x'], now: () => new Date(), logger: pino({ level: 'silent' }) }),
      /bootstrap token #1 has 1 characters; at least 43/,
    );
    const f = await startHubFixture();
    try {
      const regWith = async (token: string, id: string): Promise<HubMessage> => {
        const k = generateAgentKey();
        const conn = await connect(f, { key: k, clusterId: id });
        conn.ws.send(encodeMessage({ type: 'register', bootstrapToken: token, clusterId: id, agentVersion: '0.1.0', publicKey: k.publicKey, proof: conn.prove('register') }));
        return conn.next();
      };
      const once = (await f.api('POST', '/api/v1/bootstrap-tokens', { maxUses: 1, ttlSeconds: 600 })).body;
      assert.equal(((await regWith(once.token, 'edge-u1')) as { status: string }).status, 'pending');
      assert.match(((await regWith(once.token, 'edge-u2')) as { reason: string }).reason, /used up/);
      const shortLived = (await f.api('POST', '/api/v1/bootstrap-tokens', { ttlSeconds: 60 })).body;
      f.clock.advance(61_000);
      assert.match(((await regWith(shortLived.token, 'edge-u3')) as { reason: string }).reason, /expired/);
      const revoked = (await f.api('POST', '/api/v1/bootstrap-tokens', { ttlSeconds: 600 })).body;
      assert.equal((await f.api('DELETE', `/api/v1/bootstrap-tokens/${revoked.id}`)).status, 200);
      assert.match(((await regWith(revoked.token, 'edge-u4')) as { reason: string }).reason, /revoked/);
      const listed = (await f.api('GET', '/api/v1/bootstrap-tokens')).body.tokens as Record<string, unknown>[];
      assert.ok(listed.length >= 4);
      assert.ok(listed.every((t) => !('token' in t) && !('tokenHash' in t)), 'a listing never shows a token');
    } finally {
      await f.close();
    }
  });
});
