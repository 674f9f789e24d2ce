// The rows the dashboard's indexes read (cluster_labels, cluster_overrides)
// follow every write to the clusters' JSON, whichever repository makes it,
// and a database created before they existed gets them filled in when the
// hub opens it.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { ClusterRepo } from '../../src/hub/store/cluster-repo.ts';
import { DashboardRepo } from '../../src/hub/store/dashboard-repo.ts';
import { openSqlite } from '../../src/hub/store/database.ts';
import { migrations } from '../../src/hub/store/migrations.ts';

const now = () => new Date('2026-11-30T12:00:00Z');
const inventory = (overrides: { name: string; version: string; component: string }[]) => ({ components: [], kubernetesVersion: 'v1.33.0', targetInfrastructure: 'bare-metal', overrides });
const dashboardMigration = migrations.findIndex((m) => m.includes('CREATE TABLE cluster_labels'));

describe('dashboard store', () => {
  it('keeps labels and reported hotfixes as rows in step with registration, relabelling, new inventories and deregistration', async () => {
    const db = openSqlite(join(mkdtempSync(join(tmpdir(), 'fleetlet-dashboard-repo-')), 'hub.db'));
    const clusters = new ClusterRepo(db, now);
    const repo = new DashboardRepo(db);
    const cutoff = new Date(now().getTime() - 30_000).toISOString();
    await clusters.requestRegistration({ id: 'a', labels: { env: 'prod', region: 'eu' }, agentVersion: '0.1.0', publicKey: 'k', inventory: inventory([{ name: 'cve-dns', version: '1.2.0-hf1', component: 'dns' }]) });
    await clusters.requestRegistration({ id: 'b', labels: { env: 'prod' }, agentVersion: '0.1.0', publicKey: 'k', inventory: undefined });
    await clusters.requestRegistration({ id: 'c', labels: { env: 'staging' }, agentVersion: '0.1.0', publicKey: 'k', inventory: inventory([]) });
    const prod = () => repo.clusters({ cutoff, filter: [['env', 'prod']], offset: 0, limit: 10 }).items.map((c) => c.id);
    assert.deepEqual(prod(), ['a', 'b']);
    assert.deepEqual(repo.overrideUsage(), [{ name: 'cve-dns', version: '1.2.0-hf1', component: 'dns', clusters: 1 }]);

    assert.equal(await clusters.setLabels('b', { env: 'staging' }), true);
    assert.deepEqual(prod(), ['a']);
    assert.equal(repo.countByState(cutoff, [['env', 'staging']]).PendingRegistration, 2);
    assert.deepEqual(repo.labelPairs(10), [
      { key: 'env', value: 'staging', clusters: 2 },
      { key: 'env', value: 'prod', clusters: 1 },
      { key: 'region', value: 'eu', clusters: 1 },
    ]);

    await clusters.updateInventory('c', inventory([{ name: 'cve-dns', version: '1.2.0-hf2', component: 'dns' }]));
    await clusters.updateInventory('a', inventory([]));
    assert.deepEqual(repo.overrideUsage(), [{ name: 'cve-dns', version: '1.2.0-hf2', component: 'dns', clusters: 1 }]);
    assert.deepEqual(repo.overrideClusters('cve-dns', 0, 10).items.map((c) => c.clusterId), ['c']);

    assert.equal(await clusters.delete('c'), true);
    assert.deepEqual(repo.overrideUsage(), []);
    assert.deepEqual(repo.labelPairs(10).map((p) => `${p.key}=${p.value}:${p.clusters}`), ['env=prod:1', 'env=staging:1', 'region=eu:1']);
    await db.close();
  });

  it('fills them in for the clusters of a database made before they existed', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'fleetlet-dashboard-repo-')), 'hub.db');
    const old = new Database(path);
    for (const m of migrations.slice(0, dashboardMigration)) old.exec(m);
    old.pragma(`user_version = ${dashboardMigration}`);
    old
      .prepare(`INSERT INTO clusters (id, status, labels, requested_at, inventory) VALUES (?, 'Pending', ?, ?, ?)`)
      .run('old-1', JSON.stringify({ ring: 'canary' }), now().toISOString(), JSON.stringify(inventory([{ name: 'cve-proxy', version: '2.0.1', component: 'proxy' }])));
    old.close();

    const db = openSqlite(path);
    const repo = new DashboardRepo(db);
    assert.deepEqual(repo.labelPairs(10), [{ key: 'ring', value: 'canary', clusters: 1 }]);
    assert.deepEqual(repo.overrideUsage(), [{ name: 'cve-proxy', version: '2.0.1', component: 'proxy', clusters: 1 }]);
    await db.close();
  });
});
