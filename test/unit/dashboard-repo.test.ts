// A SQLite database created before the dashboard's rows (cluster_labels,
// cluster_overrides) existed gets them filled in when the hub opens it. That
// they follow every write, on SQLite and PostgreSQL alike, is
// test/integration/hub-store-contract.test.ts's.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { DashboardRepo } from '../../src/hub/store/dashboard-repo.ts';
import { openSqlite } from '../../src/hub/store/database.ts';
import { migrations } from '../../src/hub/store/migrations.ts';

const now = () => new Date('2026-11-30T12:00:00Z');
const inventory = (overrides: { name: string; version: string; component: string }[]) => ({ components: [], kubernetesVersion: 'v1.33.0', targetInfrastructure: 'bare-metal', overrides });
const dashboardMigration = migrations.findIndex((m) => m.includes('CREATE TABLE cluster_labels'));

describe('dashboard store', () => {
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
    assert.deepEqual(await repo.labelPairs(10), [{ key: 'ring', value: 'canary', clusters: 1 }]);
    assert.deepEqual(await repo.overrideUsage(), [{ name: 'cve-proxy', version: '2.0.1', component: 'proxy', clusters: 1 }]);
    await db.close();
  });
});
