// The dashboard on a hub whose store is PostgreSQL (a private instance,
// initdb'd for this file): the same endpoints answer from the same
// repository as on SQLite, and an open page's event stream hears of a
// change made through the hub's API (a relabelling). The browser's side of
// the dashboard is test/integration/dashboard.test.ts's, on SQLite.
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
import { testLogger } from '../support/test-log.ts';

const adminToken = randomBytes(16).toString('hex');
const keys = generateReleaseKey();

describe('the dashboard on a PostgreSQL hub', () => {
  let pg: PrivatePostgres;
  let hub: RunningHub;

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
    hub = await startHub({
      port: 0,
      dbPath: join(mkdtempSync(join(tmpdir(), 'fleetlet-dashboard-pg-')), 'unused.db'),
      database,
      releaseKey: keys.privateKey,
      adminToken,
      bootstrapTokens: [],
      dashboard: { port: 0 },
      now: () => new Date(),
      logger: testLogger(),
    });
  });

  after(async () => {
    await hub?.close();
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

  test('a relabelling through the hub API reaches an open event stream, and the overview follows', async () => {
    const controller = new AbortController();
    const res = await fetch(`${hub.dashboardUrl}/api/events`, { headers: { authorization: `Bearer ${adminToken}` }, signal: controller.signal });
    assert.equal(res.status, 200);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffered = '';
    /** Reads the stream until its next `changed` event. */
    const nextChange = async (): Promise<void> => {
      for (;;) {
        const i = buffered.indexOf('event: changed\n');
        if (i >= 0) {
          buffered = buffered.slice(i + 1);
          return;
        }
        const { value, done } = await reader.read();
        if (done) assert.fail('the event stream ended');
        buffered += value;
      }
    };
    try {
      // A new stream is told once, at once, that it may have missed something.
      await nextChange();
      const put = await fetch(`${hub.httpUrl}/api/v1/clusters/canary-1/labels`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ labels: { env: 'prod' } }),
      });
      assert.equal(put.status, 200, await put.text());
      const heard = await Promise.race([nextChange().then(() => true), new Promise<false>((resolve) => setTimeout(() => resolve(false), 20_000).unref())]);
      assert.equal(heard, true, 'the open stream was told of the relabelling');
      assert.equal((await get<{ total: number }>('/api/overview?label=env%3Dprod')).total, 3);
    } finally {
      controller.abort();
    }
  });
});
