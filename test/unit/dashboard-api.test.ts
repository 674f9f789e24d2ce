// The dashboard's server on a real hub: sign-in and roles, aggregates
// counted in SQL from a seeded store, pagination, the cluster story, hotfix
// usage, and the live event stream.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { clusterStates } from '../../src/hub/store/dashboard-repo.ts';
import { fleetOf, seedFleet, type SeedState } from '../support/fleet-seed.ts';
import { ADMIN_TOKEN, startHubFixture, type HubFixture } from '../support/hub-fixture.ts';
import { enrolAgent } from '../support/test-agent.ts';

// Operator tokens made through the hub's API, as an admin makes them.
let VIEWER = '';
let OPERATOR = '';
const fleet = fleetOf(39);

/** What the dashboard should call each seeded state. */
const expected = (s: SeedState) => (s === 'WaitingForWindow' ? 'InProgress' : s);

/** The events of an open /api/events stream, read as they come. */
async function openEvents(url: string, token: string) {
  const ac = new AbortController();
  const res = await fetch(`${url}/api/events`, { headers: { authorization: `Bearer ${token}` }, signal: ac.signal });
  assert.equal(res.status, 200);
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let seen = '';
  return {
    headers: res.headers,
    /** Resolves at the next `event` not read yet. */
    async next(event: string, timeoutMs = 10_000): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      while (!seen.includes(`event: ${event}`)) {
        if (Date.now() > deadline) assert.fail(`no "${event}" event within ${timeoutMs} ms; got ${seen}`);
        const { value, done } = await reader.read();
        if (done) assert.fail(`the stream ended before a "${event}" event; got ${seen}`);
        seen += decoder.decode(value);
      }
      seen = seen.slice(seen.indexOf(`event: ${event}`) + 1);
    },
    close: () => ac.abort(),
  };
}

describe('dashboard server', () => {
  let f: HubFixture;
  let base: string;
  const call = async (method: string, path: string, o: { token?: string; cookie?: string; body?: unknown; write?: boolean } = {}) => {
    const headers: Record<string, string> = {};
    if (o.token) headers.authorization = `Bearer ${o.token}`;
    if (o.cookie) headers.cookie = o.cookie;
    if (o.write ?? method !== 'GET') headers['x-fleetlet-dashboard'] = '1';
    if (o.body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${base}${path}`, { method, headers, ...(o.body !== undefined ? { body: JSON.stringify(o.body) } : {}) });
    const text = await res.text();
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    return { status: res.status, headers: res.headers, body: (text.startsWith('{') ? JSON.parse(text) : text) as any };
  };

  before(async () => {
    // No sweep while these run: every event a stream gets here was caused by a change, not found by looking.
    f = await startHubFixture({ dashboard: { port: 0, live: { sweepMs: 600_000 } } });
    base = f.hub.dashboardUrl ?? '';
    VIEWER = (await f.api('POST', '/api/v1/operator-tokens', { name: 'watcher', role: 'viewer' })).body.token;
    OPERATOR = (await f.api('POST', '/api/v1/operator-tokens', { name: 'on-call', role: 'operator' })).body.token;
    await seedFleet(f.dbPath, fleet, f.clock.now);
  });
  after(() => f.close());

  it('refuses a missing or wrong token with the reason, signs a known one in with an HttpOnly cookie', async () => {
    const none = await call('GET', '/api/overview');
    assert.equal(none.status, 401);
    assert.equal(none.body.error.reason, 'NoToken');
    const wrong = await call('GET', '/api/overview', { token: 'not-a-token-of-this-hub' });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.body.error.reason, 'UnknownToken');
    assert.match(wrong.body.error.message, /not one this hub knows/);

    const refused = await call('POST', '/api/session', { body: { token: 'nope-nope-nope-nope' } });
    assert.equal(refused.status, 401);
    assert.equal(refused.headers.get('set-cookie'), null);
    const signed = await call('POST', '/api/session', { body: { token: VIEWER } });
    assert.equal(signed.status, 200);
    assert.equal(signed.body.role, 'viewer');
    const cookie = signed.headers.get('set-cookie') ?? '';
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /SameSite=Strict/);
    const session = await call('GET', '/api/session', { cookie: cookie.split(';')[0] });
    assert.deepEqual(session.body, { role: 'viewer' });
    assert.equal((await call('GET', '/api/session', { token: ADMIN_TOKEN })).body.role, 'admin');
  });

  it('lets a viewer look but not act, and an operator act only with the page header', async () => {
    const name = 'edge-00011';
    assert.equal(fleet[11]?.state, 'PendingRegistration');
    const viewer = await call('POST', `/api/clusters/${name}/accept`, { token: VIEWER });
    assert.equal(viewer.status, 403);
    assert.equal(viewer.body.error.reason, 'Forbidden');
    const noHeader = await call('POST', `/api/clusters/${name}/accept`, { token: OPERATOR, write: false });
    assert.equal(noHeader.status, 403);
    assert.equal(noHeader.body.error.reason, 'MissingHeader');
    assert.equal((await f.api('GET', `/api/v1/clusters/${name}`)).body.registration, 'Pending', 'nothing changed');
    const accepted = await call('POST', `/api/clusters/${name}/accept`, { token: OPERATOR });
    assert.equal(accepted.status, 200, JSON.stringify(accepted.body));
    assert.equal((await f.api('GET', `/api/v1/clusters/${name}`)).body.registration, 'Accepted');
    const again = await call('POST', `/api/clusters/${name}/accept`, { token: OPERATOR });
    assert.equal(again.status, 409);
    assert.equal(again.body.error.reason, 'AlreadyAccepted');
    // Every one of them is in the hub's audit table: who, what, and the answer.
    const path = `/api/clusters/${name}/accept`;
    const entries = (await f.api('GET', '/api/v1/audit?limit=1000')).body.entries.filter((e: { path: string }) => e.path === path);
    assert.deepEqual(
      entries.map((e: { actor: string; role: string | null; method: string; status: number }) => [e.actor, e.role, e.method, e.status]),
      [
        ['watcher', 'viewer', 'POST', 403],
        ['on-call', 'operator', 'POST', 403],
        ['on-call', 'operator', 'POST', 200],
        ['on-call', 'operator', 'POST', 409],
      ],
    );
  });

  it('refuses a revoked token at once, and signs out a page that streams with it', async () => {
    const made = (await f.api('POST', '/api/v1/operator-tokens', { name: 'short-lived', role: 'viewer' })).body;
    assert.equal((await call('GET', '/api/overview', { token: made.token })).status, 200);
    const ac = new AbortController();
    const res = await fetch(`${base}/api/events`, { headers: { authorization: `Bearer ${made.token}` }, signal: ac.signal });
    assert.equal(res.status, 200);
    assert.equal((await f.api('DELETE', `/api/v1/operator-tokens/${made.id}`)).status, 200);
    const refused = await call('GET', '/api/overview', { token: made.token });
    assert.equal(refused.status, 401);
    assert.equal(refused.body.error.reason, 'UnknownToken');
    let text = '';
    const decoder = new TextDecoder();
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const deadline = Date.now() + 10_000;
    while (!text.includes('event: signed-out') && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value);
    }
    ac.abort();
    assert.match(text, /event: signed-out\ndata: .*UnknownToken/);
  });

  it('counts clusters by state and by running release in the store, and narrows by label', async () => {
    const o = (await call('GET', '/api/overview', { token: VIEWER })).body;
    const want = Object.fromEntries(clusterStates.map((s) => [s, 0])) as Record<(typeof clusterStates)[number], number>;
    // edge-00011 was accepted above and its agent never connected: Unknown.
    for (const c of fleet) want[c.id === 'edge-00011' ? 'Unknown' : expected(c.state)]++;
    assert.deepEqual(o.byState, want);
    assert.equal(o.total, fleet.length);
    assert.equal(o.waitingForWindow.total, fleet.filter((c) => c.state === 'WaitingForWindow').length);
    assert.equal(o.failures.total, want.Failed + want.RolledBack);
    assert.equal(o.failures.items[0].reason, 'StageDeadlineExceeded');
    assert.equal(o.offline.total, want.Unknown);
    const versions = Object.fromEntries(o.byRelease.map((r: { version: string | null; clusters: number }) => [r.version ?? 'none', r.clusters]));
    assert.equal(Object.values(versions).reduce((a, b) => (a as number) + (b as number), 0), fleet.length - want.PendingRegistration);

    const region = (await call('GET', '/api/overview?label=region%3Dregion-3', { token: VIEWER })).body;
    assert.equal(region.total, fleet.filter((c) => c.labels.region === 'region-3').length);
    assert.deepEqual(region.filter, [['region', 'region-3']]);
    const both = (await call('GET', '/api/overview?label=region%3Dregion-0&label=ring%3Dcanary', { token: VIEWER })).body;
    assert.equal(both.total, fleet.filter((c) => c.labels.region === 'region-0' && c.labels.ring === 'canary').length);
    const bad = await call('GET', '/api/overview?label=nokey', { token: VIEWER });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.reason, 'InvalidLabel');
  });

  it('pages clusters on the server, filtered by state', async () => {
    const p1 = (await call('GET', '/api/clusters?limit=10', { token: VIEWER })).body;
    assert.equal(p1.total, fleet.length);
    assert.deepEqual(p1.items.map((c: { id: string }) => c.id), fleet.slice(0, 10).map((c) => c.id));
    const p2 = (await call('GET', '/api/clusters?limit=10&offset=30', { token: VIEWER })).body;
    assert.deepEqual(p2.items.map((c: { id: string }) => c.id), fleet.slice(30).map((c) => c.id));
    const failed = (await call('GET', '/api/clusters?state=Failed,RolledBack', { token: VIEWER })).body;
    assert.deepEqual(failed.items.map((c: { id: string }) => c.id), fleet.filter((c) => c.state === 'Failed' || c.state === 'RolledBack').map((c) => c.id));
    assert.equal((await call('GET', '/api/clusters?state=Sideways', { token: VIEWER })).status, 400);
    // A page by state and the overview's count by state are two queries over the same rules: they agree for every state.
    const byState = (await call('GET', '/api/overview', { token: VIEWER })).body.byState as Record<string, number>;
    for (const s of clusterStates) assert.equal((await call('GET', `/api/clusters?state=${s}&limit=1`, { token: VIEWER })).body.total, byState[s], s);
  });

  it("tells a cluster's story: attempts with their transitions and the rollback reason, its window", async () => {
    const rolledBack = fleet.find((c) => c.state === 'RolledBack');
    const d = (await call('GET', `/api/clusters/${rolledBack?.id}`, { token: VIEWER })).body;
    assert.equal(d.state, 'RolledBack');
    assert.equal(d.attempts.length, 2);
    assert.equal(d.attempts[0].phase, 'RolledBack');
    assert.deepEqual(d.attempts[0].transitions.map((t: { phase: string }) => t.phase), ['Upgrading', 'Verifying', 'RollingBack', 'RolledBack']);
    assert.equal(d.attempts[0].transitions[2].reason, 'StageDeadlineExceeded');
    assert.equal(d.attempts[1].phase, 'Succeeded');
    const waiting = fleet.find((c) => c.state === 'WaitingForWindow');
    const w = (await call('GET', `/api/clusters/${waiting?.id}`, { token: VIEWER })).body;
    assert.equal(w.windows.agent.nextOpensAt, '2030-01-03T02:00:00.000Z');
    assert.equal((await call('GET', '/api/clusters/no-such-cluster', { token: VIEWER })).status, 404);
  });

  it('lists every hotfix with the clusters that run it', async () => {
    const list = (await call('GET', '/api/overrides', { token: VIEWER })).body.overrides;
    const running = fleet.filter((c) => c.overrides?.some((o) => o.name === 'cve-dns')).map((c) => c.id);
    assert.equal(list.length, 1);
    assert.equal(list[0].name, 'cve-dns');
    assert.equal(list[0].runningTotal, running.length);
    assert.equal(list[0].defined, false, 'seen in inventories only');
    const page = (await call('GET', '/api/overrides/cve-dns/clusters?limit=3&offset=1', { token: VIEWER })).body;
    assert.equal(page.total, running.length);
    assert.deepEqual(page.items.map((c: { clusterId: string }) => c.clusterId), running.slice(1, 4));
  });

  it('streams an event when something shown changes', async () => {
    const events = await openEvents(base, VIEWER);
    assert.match(events.headers.get('content-type') ?? '', /text\/event-stream/);
    await events.next('hello');
    await events.next('changed'); // told once when it opens: the page refetches what it may have missed
    const pending = fleet.find((c) => c.state === 'PendingRegistration' && c.id !== 'edge-00011');
    assert.equal((await call('POST', `/api/clusters/${pending?.id}/deregister`, { token: OPERATOR })).status, 200);
    await events.next('changed');
    // Through the operator API too.
    assert.equal((await f.api('PUT', `/api/v1/clusters/${fleet[0]?.id}/labels`, { labels: { ring: 'relabelled' } })).status, 200);
    await events.next('changed');
    events.close();
  });
});

describe('dashboard server: a lease running out', () => {
  let f: HubFixture;
  before(async () => {
    f = await startHubFixture({ dashboard: { port: 0, live: { sweepMs: 200 } } });
  });
  after(() => f.close());

  it('turns a cluster Unknown on open pages with no write to announce it (the sweep)', async () => {
    const agent = await enrolAgent(f, 'edge-quiet');
    const base = f.hub.dashboardUrl ?? '';
    const overview = async () => (await (await fetch(`${base}/api/overview`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as { byState: Record<string, number> };
    // Its lease is stored (flushed within a second of the hello).
    const deadline = Date.now() + 10_000;
    while ((await overview()).byState.NoRelease !== 1) {
      if (Date.now() > deadline) assert.fail(`the cluster never showed as connected: ${JSON.stringify(await overview())}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await agent.link.stop();
    const events = await openEvents(base, ADMIN_TOKEN);
    await events.next('changed');
    // The lease (5 heartbeats of 10 s) runs out on the hub's clock; nothing is written.
    f.clock.advance(50_001);
    await events.next('changed');
    assert.equal((await overview()).byState.Unknown, 1);
    events.close();
  });
});
