// The dashboard on hubs whose store is PostgreSQL (a private instance,
// initdb'd for this file): the same endpoints answer from the same
// repository as on SQLite, and the live updates are the replicas': a change
// made through replica A (a relabelling, an agent's reports, a token's
// revocation) reaches a page streaming from replica B. The sweep is off
// (10 minutes), so every event a stream gets here was announced, not found
// by looking. The browser's side of the dashboard is
// test/integration/dashboard.test.ts's, on SQLite.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startHub, type RunningHub } from '../../src/hub/start-hub.ts';
import { ClusterRepo } from '../../src/hub/store/cluster-repo.ts';
import { openPostgres } from '../../src/hub/store/database.ts';
import { generateReleaseKey } from '../../src/protocol/signing.ts';
import { startPostgres, type PrivatePostgres } from '../../src/testbed/postgres.ts';
import { nextEvent } from '../support/events.ts';
import { BOOTSTRAP_TOKEN } from '../support/hub-fixture.ts';
import { transition } from '../support/sample-reports.ts';
import { createTestAgent, drained, type TestAgent } from '../support/test-agent.ts';
import { testLogger } from '../support/test-log.ts';

const adminToken = randomBytes(16).toString('hex');
const keys = generateReleaseKey();
/** The hubs' coalescing interval: a stream is told at most once per this many ms. */
const COALESCE_MS = 500;

/** An open /api/events stream: counts its `changed` events, and waits for the next one or a sign-out. */
async function openEvents(dashboardUrl: string, token: string) {
  const controller = new AbortController();
  const res = await fetch(`${dashboardUrl}/api/events`, { headers: { authorization: `Bearer ${token}` }, signal: controller.signal });
  assert.equal(res.status, 200);
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  /** Everything received, and how much of it was read by next(). */
  let text = '';
  let readUpTo = 0;
  /** A read outlives a next() that gave up on it: the following one takes its chunk. */
  let reading: ReturnType<typeof reader.read> | undefined;
  return {
    /** `changed` events received so far. */
    get changed(): number {
      return text.split('event: changed\n').length - 1;
    },
    /** Reads the stream until its next unread `event`; false if none came within `timeoutMs`. */
    async next(event: 'changed' | 'signed-out', timeoutMs = 20_000): Promise<boolean> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const i = text.indexOf(`event: ${event}\n`, readUpTo);
        if (i >= 0) {
          readUpTo = i + 1;
          return true;
        }
        const left = deadline - Date.now();
        if (left <= 0) return false;
        reading ??= reader.read();
        const chunk = await Promise.race([reading, new Promise<'late'>((resolve) => setTimeout(() => resolve('late'), left).unref())]);
        if (chunk === 'late') return false;
        reading = undefined;
        if (chunk.done) return false;
        text += chunk.value;
      }
    },
    close: () => controller.abort(),
  };
}

describe('the dashboard on PostgreSQL hub replicas', () => {
  let pg: PrivatePostgres;
  /** Replica A: changes are made through it. */
  let hub: RunningHub;
  /** Replica B: pages stream from it. */
  let other: RunningHub;
  const agents: TestAgent[] = [];

  before(async () => {
    pg = await startPostgres();
    const database = await pg.createDatabase('dashboard');
    // Clusters as a hub left them: three accepted with labels, one waiting to be accepted.
    const seed = await openPostgres({ connectionString: database });
    const clusters = new ClusterRepo(seed, () => new Date());
    for (const [id, env] of [['prod-1', 'prod'], ['prod-2', 'prod'], ['canary-1', 'canary'], ['edge-new', null]] as const) {
      await clusters.requestRegistration({ id, labels: {}, agentVersion: '0.1.0', inventory: undefined, publicKey: id });
      if (env === null) continue;
      await clusters.accept(id);
      await clusters.setLabels(id, { env });
    }
    await seed.close();
    const replica = () =>
      startHub({
        port: 0,
        dbPath: join(mkdtempSync(join(tmpdir(), 'fleetlet-dashboard-pg-')), 'unused.db'),
        database,
        releaseKey: keys.privateKey,
        adminToken,
        bootstrapTokens: [BOOTSTRAP_TOKEN],
        dashboard: { port: 0, live: { coalesceMs: COALESCE_MS, sweepMs: 600_000 } },
        now: () => new Date(),
        logger: testLogger(),
      });
    hub = await replica();
    other = await replica();
  });

  after(async () => {
    await Promise.all(agents.map((a) => a.link.stop()));
    await hub?.close();
    await other?.close();
    await pg?.stop();
  });

  const get = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${hub.dashboardUrl}${path}`, { headers: { authorization: `Bearer ${adminToken}` } });
    assert.equal(res.status, 200, `${path}: ${await res.clone().text()}`);
    return (await res.json()) as T;
  };

  test('the overview and the cluster pages answer from PostgreSQL, a label filter included', async () => {
    const all = await get<{ total: number; byState: Record<string, number>; labels: { key: string; value: string; clusters: number }[] }>('/api/overview');
    assert.equal(all.total, 4);
    // Never heard from since they were accepted: Unknown; edge-new still waits.
    assert.equal(all.byState.Unknown, 3);
    assert.equal(all.byState.PendingRegistration, 1);
    assert.deepEqual(all.labels.map((l) => `${l.key}=${l.value}:${l.clusters}`), ['env=prod:2', 'env=canary:1']);
    const prod = await get<{ total: number }>('/api/overview?label=env%3Dprod');
    assert.equal(prod.total, 2);
    const page = await get<{ total: number; items: { id: string; state: string }[] }>('/api/clusters?state=PendingRegistration,Unknown&q=prod&limit=1&offset=1');
    assert.deepEqual([page.total, page.items.map((c) => c.id)], [2, ['prod-2']]);
    const detail = await get<{ state: string; cluster: { labels: Record<string, string> } }>('/api/clusters/canary-1');
    assert.deepEqual([detail.state, detail.cluster.labels], ['Unknown', { env: 'canary' }]);
  });

  const getFrom = async <T>(h: RunningHub, path: string): Promise<T> => {
    const res = await fetch(`${h.dashboardUrl}${path}`, { headers: { authorization: `Bearer ${adminToken}` } });
    assert.equal(res.status, 200, `${path}: ${await res.clone().text()}`);
    return (await res.json()) as T;
  };
  const api = (method: string, path: string, body?: unknown) =>
    fetch(`${hub.httpUrl}${path}`, { method, headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });

  test('a relabelling through replica A reaches a page streaming from replica B, and B\'s overview follows', async () => {
    const events = await openEvents(other.dashboardUrl ?? '', adminToken);
    try {
      // A new stream is told once, at once, that it may have missed something.
      assert.equal(await events.next('changed'), true);
      const put = await api('PUT', '/api/v1/clusters/canary-1/labels', { labels: { env: 'prod' } });
      assert.equal(put.status, 200, await put.text());
      assert.equal(await events.next('changed'), true, 'the stream on replica B was told of the relabelling on replica A');
      assert.equal((await getFrom<{ total: number }>(other, '/api/overview?label=env%3Dprod')).total, 3);
    } finally {
      events.close();
    }
  });

  test('1,000 reports ingested one batch at a time by replica A: pages on both replicas are told a few times, not 1,000', { timeout: 180_000 }, async (t) => {
    const agent = createTestAgent({ url: hub.url, clusterId: 'edge-live', releaseKey: keys.publicKey, now: () => new Date(), link: { heartbeatMs: 1000 } });
    agents.push(agent);
    const pending = nextEvent(agent.link, 'registration', (r: { status: string }) => r.status === 'pending');
    agent.link.start();
    await pending;
    const welcomed = nextEvent(agent.link, 'welcome');
    assert.equal((await api('POST', '/api/v1/clusters/edge-live/accept')).status, 200);
    await welcomed;

    const onB = await openEvents(other.dashboardUrl ?? '', adminToken);
    const onA = await openEvents(hub.dashboardUrl ?? '', adminToken);
    try {
      assert.equal(await onB.next('changed'), true);
      assert.equal(await onA.next('changed'), true);
      // Whatever the enrolment still announces is told before the burst is counted.
      await Promise.all([onB.next('changed', 2 * COALESCE_MS), onA.next('changed', 2 * COALESCE_MS)]);
      const before = { a: onA.changed, b: onB.changed };
      const started = performance.now();
      // Each report its own batch, committed and acknowledged before the next leaves: 1,000 separate changes.
      for (let i = 1; i <= 1000; i++) {
        agent.outbox.enqueue('attempt-transition', transition(i, 'Upgrading'));
        agent.link.flush();
        await drained(agent, `report ${i} to be acknowledged`);
      }
      const elapsedMs = performance.now() - started;
      // The last report is told too: B's overview then shows what it says.
      const quiet = async (s: Awaited<ReturnType<typeof openEvents>>) => {
        while (await s.next('changed', 3 * COALESCE_MS));
      };
      await Promise.all([quiet(onA), quiet(onB)]);
      const told = { a: onA.changed - before.a, b: onB.changed - before.b };
      const bound = Math.ceil(elapsedMs / COALESCE_MS) + 4;
      t.diagnostic(`1,000 reports in ${Math.round(elapsedMs)} ms: the page on replica A was told ${told.a} times, the page on replica B ${told.b} times (at most ${bound} allowed)`);
      for (const [replica, n] of Object.entries(told)) {
        assert.ok(n >= 1, `replica ${replica}'s page was told of the reports`);
        assert.ok(n <= bound, `replica ${replica}'s page was told ${n} times in ${Math.round(elapsedMs)} ms: at most once per ${COALESCE_MS} ms (${bound})`);
        assert.ok(n < 100, `replica ${replica}'s page was told ${n} times for 1,000 reports`);
      }
      const detail = await getFrom<{ state: string; attempts: { transitions: unknown[] }[] }>(other, '/api/clusters/edge-live');
      assert.equal(detail.state, 'InProgress');
      assert.equal((await getFrom<{ byState: Record<string, number> }>(other, '/api/overview')).byState.InProgress, 1);
    } finally {
      onA.close();
      onB.close();
    }
  });

  test('an operator token revoked through replica A signs out a page streaming from replica B', async () => {
    const made = (await (await api('POST', '/api/v1/operator-tokens', { name: 'short-lived', role: 'viewer' })).json()) as { id: string; token: string };
    const events = await openEvents(other.dashboardUrl ?? '', made.token);
    try {
      assert.equal(await events.next('changed'), true);
      assert.equal((await api('DELETE', `/api/v1/operator-tokens/${made.id}`)).status, 200);
      assert.equal(await events.next('signed-out'), true, 'the page on replica B was signed out');
    } finally {
      events.close();
    }
  });
});
