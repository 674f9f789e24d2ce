// The hub's repositories against both backends: the same contract on a
// SQLite file and on a real PostgreSQL (a private instance, initdb'd for this
// file). "Replicas" are separate Sql instances on one database: separate
// connection pools on PostgreSQL; on SQLite one instance (one process owns
// the file), whose calls interleave as a replica's would.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { AggregateRepo } from '../../src/hub/store/aggregate-repo.ts';
import { ClusterRepo } from '../../src/hub/store/cluster-repo.ts';
import { DashboardRepo } from '../../src/hub/store/dashboard-repo.ts';
import { openPostgres, openSqlite } from '../../src/hub/store/database.ts';
import { OverrideRepo } from '../../src/hub/store/override-repo.ts';
import { ReleaseRepo } from '../../src/hub/store/release-repo.ts';
import { ReportRepo } from '../../src/hub/store/report-repo.ts';
import { RolloutRepo } from '../../src/hub/store/rollout-repo.ts';
import { BootstrapTokenRepo } from '../../src/hub/store/bootstrap-token-repo.ts';
import { OperatorTokenRepo } from '../../src/hub/store/operator-token-repo.ts';
import { AuditRepo } from '../../src/hub/store/audit-repo.ts';
import type { Sql } from '../../src/hub/store/sql.ts';
import type { ReportEntry } from '../../src/protocol/messages.ts';
import { startPostgres, type PrivatePostgres } from '../../src/testbed/postgres.ts';

const log = pino({ level: 'silent' });
const T0 = Date.parse('2030-01-02T00:00:00.000Z');

interface Backend {
  name: string;
  /** `replicas` handles on one fresh database. */
  open(replicas: number): Promise<Sql[]>;
}

let pg: PrivatePostgres | undefined;
let dbCount = 0;
const scratch = mkdtempSync(join(tmpdir(), 'fleetlet-contract-'));

const backends: Backend[] = [
  {
    name: 'SQLite',
    async open(replicas) {
      const sql = openSqlite(join(scratch, `hub-${++dbCount}.db`));
      return Array.from({ length: replicas }, () => sql);
    },
  },
  {
    name: 'PostgreSQL',
    async open(replicas) {
      if (!pg) throw new Error('PostgreSQL did not start');
      const url = await pg.createDatabase(`contract_${++dbCount}`);
      // Replicas starting at the same moment: migrations run once, under their lock.
      return Promise.all(Array.from({ length: replicas }, () => openPostgres({ connectionString: url, max: 4 })));
    },
  },
];

before(async () => {
  pg = await startPostgres();
});

after(async () => {
  await pg?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

function completed(clusterId: string, seq: number): ReportEntry {
  return {
    seq,
    kind: 'upgrade-completed',
    createdAt: new Date(T0).toISOString(),
    body: { cluster_id: clusterId, target_infrastructure: 'aws', release: { name: 'edge-addons', version: '1.1.0' }, result: 'Succeeded', durationMs: seq, attemptId: `a-${seq}`, completedAt: new Date(T0).toISOString() },
  };
}

function transition(seq: number, phase: string, at: number, reason: string | null = null): ReportEntry {
  return {
    seq,
    kind: 'attempt-transition',
    createdAt: new Date(at).toISOString(),
    body: { attemptId: 'a-1', release: { name: 'edge-addons', version: '1.1.0', revision: 1 }, phase, stage: phase === 'Succeeded' ? null : 1, reason, message: reason && `because ${reason}`, at: new Date(at).toISOString() },
  };
}

const hotfixes = (overrides: { name: string; version: string; component: string }[]) => ({ components: [], kubernetesVersion: 'v1.33.0', targetInfrastructure: 'bare-metal', overrides });

async function closeAll(sqls: Sql[]): Promise<void> {
  for (const s of new Set(sqls)) await s.close();
}

for (const backend of backends) {
  describe(`hub repositories on ${backend.name}`, () => {
    it('registration is one row however many replicas race to create it; accept and labels round-trip', async () => {
      const dbs = await backend.open(3);
      try {
        const repos = dbs.map((db) => new ClusterRepo(db, () => new Date(T0)));
        const made = await Promise.all(repos.map((r, i) => r.requestRegistration({ id: 'edge-1', labels: { from: `replica-${i}` }, agentVersion: '0.1.0', inventory: undefined, publicKey: 'key-1' })));
        assert.equal(new Set(made.map((m) => JSON.stringify(m.labels))).size, 1, 'every replica got the same stored row back');
        assert.equal((await repos[0]?.list())?.length, 1);
        assert.equal(await repos[1]?.countPending(), 1);
        assert.deepEqual(await Promise.all(repos.map((r) => r.accept('edge-1'))).then((r) => r.filter(Boolean).length), 1, 'accepted once');
        assert.equal((await repos[2]?.get('edge-1'))?.status, 'Accepted');
        assert.equal(await repos[0]?.setLabels('edge-1', { ring: 'canary' }), true);
        assert.deepEqual((await repos[1]?.get('edge-1'))?.labels, { ring: 'canary' });
        await repos[0]?.recordKeyConflict('edge-1', 'other-key', '10.0.0.1');
        await repos[1]?.recordKeyConflict('edge-1', 'other-key', '10.0.0.2');
        assert.deepEqual((await repos[2]?.keyConflicts('edge-1'))?.map((k) => [k.publicKey, k.attempts, k.remoteAddress]), [['other-key', 2, '10.0.0.2']]);
        assert.equal(await repos[2]?.trustKey('edge-1', 'other-key'), true);
        assert.deepEqual(await repos[0]?.keyConflicts('edge-1'), []);
        assert.equal((await repos[0]?.get('edge-1'))?.publicKey, 'other-key');
      } finally {
        await closeAll(dbs);
      }
    });

    it('a lease only moves forward: a replica flushing an older renewal leaves the newer one', async () => {
      const dbs = await backend.open(2);
      try {
        let now = T0;
        const [a, b] = dbs.map((db) => new ClusterRepo(db, () => new Date(now))) as [ClusterRepo, ClusterRepo];
        await a.requestRegistration({ id: 'edge-1', labels: {}, agentVersion: '0.1.0', inventory: undefined, publicKey: 'k' });
        await a.accept('edge-1');
        a.touch('edge-1'); // replica A saw the agent at T0 …
        now = T0 + 30_000;
        await b.recordHello('edge-1', { agentVersion: '0.1.0', inventory: { components: [], kubernetesVersion: 'v1.35.4', targetInfrastructure: 'aws', overrides: [] }, lastRevision: 3 });
        assert.equal(await b.flushLeases(), 1); // … the agent moved to B at T0+30 s, B flushed first …
        assert.equal(await a.flushLeases(), 1); // … and A's older renewal arrives late.
        const stored = await new ClusterRepo(dbs[0] as Sql, () => new Date(now)).get('edge-1');
        assert.equal(stored?.lastSeen, new Date(T0 + 30_000).toISOString(), 'lastSeen never moves backwards');
        assert.equal(stored?.connectedAt, new Date(T0 + 30_000).toISOString());
        assert.equal(stored?.agentRevision, 3);
        // A reader on A with an older renewal in memory sees the newer stored value.
        now = T0 + 1_000;
        a.touch('edge-1');
        assert.equal((await a.get('edge-1'))?.lastSeen, new Date(T0 + 30_000).toISOString());
      } finally {
        await closeAll(dbs);
      }
    });

    it('connection epochs: every committed hello of a cluster takes a larger one, whichever replica commits it', async () => {
      const dbs = await backend.open(2);
      try {
        const [a, b] = dbs.map((db) => new ClusterRepo(db, () => new Date(T0))) as [ClusterRepo, ClusterRepo];
        await a.requestRegistration({ id: 'edge-1', labels: {}, agentVersion: '0.1.0', inventory: undefined, publicKey: 'k' });
        await a.accept('edge-1');
        const hello = { agentVersion: '0.1.0', inventory: { components: [], kubernetesVersion: 'v1.35.4', targetInfrastructure: 'aws', overrides: [] }, lastRevision: 0 };
        const epochs: number[] = [];
        for (let i = 0; i < 5; i++) epochs.push(...(await Promise.all([a.recordHello('edge-1', hello), b.recordHello('edge-1', hello)])));
        assert.deepEqual([...epochs].sort((x, y) => x - y), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 'no two hellos share an epoch');
        assert.equal(await b.recordHello('edge-1', hello), 11);
        // Hellos taken many at once (a group commit's), on both replicas at the same time: still one epoch each.
        await a.requestRegistration({ id: 'edge-2', labels: {}, agentVersion: '0.1.0', inventory: undefined, publicKey: 'k2' });
        await a.accept('edge-2');
        const proven = (id: string, publicKey: string) => ({ id, publicKey, hello: { ...hello, agentVersion: '0.2.0', lastRevision: 4 } });
        const [fromA, fromB] = await Promise.all([
          a.helloMany([proven('edge-1', 'k'), proven('edge-2', 'k2'), proven('edge-1', 'k')]),
          b.helloMany([proven('edge-2', 'k2'), proven('edge-1', 'k'), proven('edge-2', 'not-its-key')]),
        ]);
        const taken = [...(fromA ?? []), ...(fromB ?? [])];
        assert.deepEqual(taken.map((t) => t.accepted), [true, true, true, true, true, false], 'a hello under a key the cluster does not trust is not taken');
        const epochsOf = (id: string, list: typeof taken, ids: string[]) => list.flatMap((t, i) => (ids[i] === id && t.accepted ? [t.epoch] : []));
        const ids = ['edge-1', 'edge-2', 'edge-1', 'edge-2', 'edge-1', 'edge-2'];
        assert.deepEqual(epochsOf('edge-1', taken, ids).sort((x, y) => x - y), [12, 13, 14]);
        assert.deepEqual(epochsOf('edge-2', taken, ids).sort((x, y) => x - y), [1, 2]);
        const stored = await b.get('edge-2');
        assert.deepEqual([stored?.agentVersion, stored?.agentRevision], ['0.2.0', 4]);
        assert.equal(await a.revoke('edge-2'), true);
        assert.deepEqual(await b.helloMany([proven('edge-2', 'k2')]), [{ accepted: false }], 'a revoked cluster\'s hello is not taken');
      } finally {
        await closeAll(dbs);
      }
    });

    it('replicas flushing overlapping leases in opposite orders never deadlock and never move a lease backwards', async () => {
      const dbs = await backend.open(2);
      try {
        const ids = Array.from({ length: 120 }, (_, i) => `edge-${String(i).padStart(3, '0')}`);
        let nowA = T0;
        let nowB = T0;
        const a = new ClusterRepo(dbs[0] as Sql, () => new Date(nowA));
        const b = new ClusterRepo(dbs[1] as Sql, () => new Date(nowB));
        for (const id of ids) {
          await a.requestRegistration({ id, labels: {}, agentVersion: '0.1.0', inventory: undefined, publicKey: 'k' });
          await a.accept(id);
        }
        const newest = new Map<string, string>();
        const reversed = [...ids].reverse();
        for (let round = 1; round <= 25; round++) {
          // Replica A renews in ascending order, B in descending: with row
          // locks taken in renewal order, each would wait for the other.
          // B's clock lags A's every other round, so its flush is sometimes the older one.
          nowA = T0 + round * 1_000;
          nowB = T0 + round * 1_000 + (round % 2 === 0 ? -500 : 500);
          for (const id of ids) a.touch(id);
          for (const id of reversed) b.touch(id);
          const flushed = await Promise.allSettled([a.flushLeases(), b.flushLeases()]);
          for (const f of flushed) {
            if (f.status === 'rejected') assert.fail(`round ${round}: a lease flush failed: ${String((f.reason as { code?: string }).code ?? '')} ${String(f.reason)}`);
          }
          // A row the other flush held was skipped and kept for the next flush.
          while (a.dirtyLeases + b.dirtyLeases > 0) await Promise.all([a.flushLeases(), b.flushLeases()]);
          const expected = new Date(Math.max(nowA, nowB)).toISOString();
          for (const c of await new ClusterRepo(dbs[0] as Sql, () => new Date(T0)).list()) {
            const before = newest.get(c.id);
            assert.ok(before === undefined || (c.lastSeen !== null && c.lastSeen >= before), `${c.id}: lastSeen moved back from ${before} to ${c.lastSeen}`);
            assert.equal(c.lastSeen, expected, `${c.id}: the newer of both renewals is stored`);
            newest.set(c.id, c.lastSeen);
          }
        }
        if (backend.name === 'PostgreSQL') {
          // A flush never waits for a row another transaction holds (a group
          // commit ingesting that cluster): it keeps that renewal for the next flush.
          nowA += 60_000;
          a.touch('edge-000');
          a.touch('edge-001');
          await dbs[1]?.transaction(async () => {
            await dbs[1]?.get('SELECT id FROM clusters WHERE id = ? FOR UPDATE', ['edge-000']);
            assert.equal(await a.flushLeases(), 1, 'edge-001 written, edge-000 skipped');
            assert.equal(a.dirtyLeases, 1);
          });
          assert.equal(await a.flushLeases(), 1);
          assert.equal((await b.get('edge-000'))?.lastSeen, new Date(nowA).toISOString());
        }
      } finally {
        await closeAll(dbs);
      }
    });

    it('reports ingested concurrently by several replicas are stored and applied exactly once, telemetry included', async () => {
      const dbs = await backend.open(3);
      try {
        const clusters = new ClusterRepo(dbs[0] as Sql, () => new Date(T0));
        for (const id of ['edge-1', 'edge-2']) {
          await clusters.requestRegistration({ id, labels: {}, agentVersion: '0.1.0', inventory: undefined, publicKey: id });
          await clusters.accept(id);
        }
        const replicas = dbs.map((db) => new ReportRepo(db, () => new Date(T0), log));
        // Each agent's 60 reports in batches of 5, every batch sent to every replica at once (a reconnect mid-replay, many times over).
        const work: Promise<unknown>[] = [];
        for (const id of ['edge-1', 'edge-2']) {
          for (let after = 0; after < 60; after += 5) {
            const batch = Array.from({ length: 5 }, (_, i) => completed(id, after + i + 1));
            for (const r of replicas) work.push(r.ingest(id, after, batch));
          }
        }
        await Promise.all(work);
        // Whatever order they landed in, one more pass from the start completes every chain.
        for (const id of ['edge-1', 'edge-2']) {
          for (let after = 0; after < 60; after += 5) await replicas[after % 3]?.ingest(id, after, Array.from({ length: 5 }, (_, i) => completed(id, after + i + 1)));
        }
        const aggregate = new AggregateRepo(dbs[1] as Sql);
        for (const id of ['edge-1', 'edge-2']) {
          assert.equal(await replicas[2]?.ackedSeq(id), 60, `${id}: every report acknowledged`);
          const stored = await replicas[0]?.list(id, { afterSeq: 0, limit: 1000 });
          assert.deepEqual(stored?.map((r) => r.seq), Array.from({ length: 60 }, (_, i) => i + 1), `${id}: each report stored once`);
          const telemetry = await aggregate.telemetry({ clusterId: id, limit: 1000 });
          assert.deepEqual(telemetry.map((t) => t.seq).sort((x, y) => x - y), Array.from({ length: 60 }, (_, i) => i + 1), `${id}: each report counted once`);
        }
      } finally {
        await closeAll(dbs);
      }
    });

    it('a release refusal and an override refusal each keep their own place in the cluster\'s aggregate', async () => {
      const dbs = await backend.open(1);
      try {
        const clusters = new ClusterRepo(dbs[0] as Sql, () => new Date(T0));
        await clusters.requestRegistration({ id: 'edge-1', labels: {}, agentVersion: '0.1.0', inventory: undefined, publicKey: 'k' });
        await clusters.accept('edge-1');
        const reports = new ReportRepo(dbs[0] as Sql, () => new Date(T0), log);
        const at = new Date(T0).toISOString();
        await reports.ingest('edge-1', 0, [
          { seq: 1, kind: 'release-refused', body: { revision: 4, reason: 'UnknownKey', message: 'signed by k2', at }, createdAt: at },
          { seq: 2, kind: 'override-refused', body: { name: 'cve-2030-1', revision: 3, reason: 'Expired', message: 'override cve-2030-1 revision 3 expired', at }, createdAt: at },
        ]);
        const up = await new AggregateRepo(dbs[0] as Sql).upgrade('edge-1');
        assert.deepEqual(up?.lastRefusal, { revision: 4, reason: 'UnknownKey', message: 'signed by k2', at });
        assert.deepEqual(up?.lastOverrideRefusal, { name: 'cve-2030-1', revision: 3, reason: 'Expired', message: 'override cve-2030-1 revision 3 expired', at });
      } finally {
        await closeAll(dbs);
      }
    });

    it('revisions: issuers racing on several replicas never sign the same one, releases and overrides alike', async () => {
      const dbs = await backend.open(3);
      try {
        const clusters = new ClusterRepo(dbs[0] as Sql, () => new Date(T0));
        await clusters.requestRegistration({ id: 'edge-1', labels: {}, agentVersion: '0.1.0', inventory: undefined, publicKey: 'k' });
        const at = new Date(T0).toISOString();
        const releases = dbs.map((db) => new ReleaseRepo(db));
        const issued = await Promise.all(
          Array.from({ length: 30 }, (_, i) =>
            releases[i % 3]?.issue('edge-1', (revision) => ({ name: 'edge-addons', version: `1.0.${i}`, envelope: { payload: String(revision), signature: 's', keyId: 'k' } as never, issuedAt: at, expiresAt: at })),
          ),
        );
        assert.deepEqual(issued.map((r) => r?.revision).sort((a, b) => (a ?? 0) - (b ?? 0)), Array.from({ length: 30 }, (_, i) => i + 1));
        assert.ok(issued.every((r) => r !== undefined && (r.envelope as unknown as { payload: string }).payload === String(r.revision)), 'each signed what it stored');
        assert.equal((await releases[1]?.latest('edge-1'))?.revision, 30);

        const overrides = dbs.map((db) => new OverrideRepo(db));
        const docs = await Promise.all(
          Array.from({ length: 12 }, (_, i) =>
            overrides[i % 3]?.issue('edge-1', () => ({ name: `fix-${i % 2}`, version: '1', withdrawn: false, envelope: { payload: 'p', signature: 's', keyId: 'k' } as never, issuedAt: at, expiresAt: new Date(T0 + 3_600_000).toISOString() })),
          ),
        );
        assert.deepEqual(docs.map((d) => d?.revision).sort((a, b) => (a ?? 0) - (b ?? 0)), Array.from({ length: 12 }, (_, i) => i + 1));
        const current = await overrides[2]?.current('edge-1', new Date(T0));
        assert.equal(current?.length, 2, 'the newest document of each override');
        assert.equal((await overrides[0]?.document('edge-1', 12))?.revision, 12);
      } finally {
        await closeAll(dbs);
      }
    });

    it('rollout steps take turns across replicas: the second step reads what the first wrote', async () => {
      const dbs = await backend.open(2);
      try {
        const [a, b] = dbs.map((db) => new RolloutRepo(db)) as [RolloutRepo, RolloutRepo];
        const at = new Date(T0).toISOString();
        await a.create({ name: 'r1', spec: { name: 'r1' } as never, rollbackOf: null, createdAt: at }, [{ name: 'all', mandatory: false }], [{ clusterId: 'edge-1', group: 0 }]);
        // Two replicas each "send" to every member not yet sent to, inside a step.
        const step = (db: Sql, repo: RolloutRepo, revision: number): Promise<number> =>
          db.transaction(async () => {
            await repo.lockSteps();
            const todo = (await repo.members('r1')).filter((m) => m.sentRevision === null);
            // Give the other replica every chance to interleave.
            await new Promise((resolve) => setTimeout(resolve, 50));
            for (const m of todo) await repo.recordSent('r1', m.clusterId, revision, at, null);
            return todo.length;
          });
        const sent = await Promise.all([step(dbs[0] as Sql, a, 1), step(dbs[1] as Sql, b, 2)]);
        assert.deepEqual(sent.sort(), [0, 1], 'one step sent, the other found nothing left to send');
        assert.equal((await b.members('r1'))[0]?.sentRevision !== null, true);
      } finally {
        await closeAll(dbs);
      }
    });

    it('the dashboard: labels and reported hotfixes as rows in step with every write, whichever replica makes it', async () => {
      const dbs = await backend.open(2);
      try {
        const now = () => new Date(T0);
        const [clusters, other] = dbs.map((db) => new ClusterRepo(db, now)) as [ClusterRepo, ClusterRepo];
        const repo = new DashboardRepo(dbs[1] as Sql);
        const cutoff = new Date(T0 - 30_000).toISOString();
        await clusters.requestRegistration({ id: 'a', labels: { env: 'prod', region: 'eu' }, agentVersion: '0.1.0', publicKey: 'k', inventory: hotfixes([{ name: 'cve-dns', version: '1.2.0-hf1', component: 'dns' }]) });
        await other.requestRegistration({ id: 'b', labels: { env: 'prod' }, agentVersion: '0.1.0', publicKey: 'k', inventory: undefined });
        await clusters.requestRegistration({ id: 'c', labels: { env: 'staging' }, agentVersion: '0.1.0', publicKey: 'k', inventory: hotfixes([]) });
        const prod = async () => (await repo.clusters({ cutoff, filter: [['env', 'prod']], offset: 0, limit: 10 })).items.map((c) => c.id);
        assert.deepEqual(await prod(), ['a', 'b']);
        assert.deepEqual(await repo.overrideUsage(), [{ name: 'cve-dns', version: '1.2.0-hf1', component: 'dns', clusters: 1 }]);

        assert.equal(await other.setLabels('b', { env: 'staging' }), true);
        assert.deepEqual(await prod(), ['a']);
        assert.equal((await repo.countByState(cutoff, [['env', 'staging']])).PendingRegistration, 2);
        assert.deepEqual(await repo.labelPairs(10), [
          { key: 'env', value: 'staging', clusters: 2 },
          { key: 'env', value: 'prod', clusters: 1 },
          { key: 'region', value: 'eu', clusters: 1 },
        ]);

        await clusters.updateInventory('c', hotfixes([{ name: 'cve-dns', version: '1.2.0-hf2', component: 'dns' }]));
        await other.updateInventory('a', hotfixes([]));
        assert.deepEqual(await repo.overrideUsage(), [{ name: 'cve-dns', version: '1.2.0-hf2', component: 'dns', clusters: 1 }]);
        assert.deepEqual(await repo.overrideClusters('cve-dns', 0, 10), { total: 1, items: [{ clusterId: 'c', version: '1.2.0-hf2', runningVersion: null }] });

        assert.equal(await clusters.delete('c'), true);
        assert.deepEqual(await repo.overrideUsage(), []);
        assert.deepEqual((await repo.labelPairs(10)).map((p) => `${p.key}=${p.value}:${p.clusters}`), ['env=prod:1', 'env=staging:1', 'region=eu:1']);
      } finally {
        await closeAll(dbs);
      }
    });

    it('the dashboard: states, lists and pages from the store; its fingerprint moves with what it shows, not with heartbeats', async () => {
      const dbs = await backend.open(2);
      try {
        let now = T0;
        const clock = () => new Date(now);
        const clusters = new ClusterRepo(dbs[0] as Sql, clock);
        const reports = new ReportRepo(dbs[0] as Sql, clock, log);
        const repo = new DashboardRepo(dbs[1] as Sql);
        const ids = ['edge-1', 'edge-2', 'edge-3', 'edge-4', 'edge-5'];
        for (const id of ids) {
          await clusters.requestRegistration({ id, labels: { ring: id === 'edge-1' ? 'canary' : 'main' }, agentVersion: '0.1.0', inventory: undefined, publicKey: id });
          if (id !== 'edge-5') await clusters.accept(id);
          clusters.touch(id);
        }
        await clusters.flushLeases();
        await reports.ingest('edge-1', 0, [transition(1, 'Upgrading', T0 + 1), transition(2, 'Succeeded', T0 + 2)]);
        await reports.ingest('edge-2', 0, [transition(1, 'Upgrading', T0 + 3), transition(2, 'RolledBack', T0 + 4, 'HealthCheckFailed')]);
        await reports.ingest('edge-3', 0, [transition(1, 'WaitingForWindow', T0 + 5, 'OutsideWindow')]);
        const cutoff = () => new Date(now - 30_000).toISOString();

        assert.deepEqual(await repo.countByState(cutoff(), []), { Succeeded: 1, InProgress: 1, Failed: 0, RolledBack: 1, PendingRegistration: 1, Unknown: 0, NoRelease: 1 });
        assert.deepEqual(await repo.countByState(cutoff(), [['ring', 'canary']]), { Succeeded: 1, InProgress: 0, Failed: 0, RolledBack: 0, PendingRegistration: 0, Unknown: 0, NoRelease: 0 });
        assert.deepEqual(await repo.countByRunningRelease([]), [
          { name: null, version: null, clusters: 3 },
          { name: 'edge-addons', version: '1.1.0', clusters: 1 },
        ]);
        const failures = await repo.clusters({ cutoff: cutoff(), filter: [], states: ['Failed', 'RolledBack'], order: 'recent', offset: 0, limit: 10 });
        assert.deepEqual(failures.items.map((c) => [c.id, c.state, c.reason]), [['edge-2', 'RolledBack', 'HealthCheckFailed']]);
        const waiting = await repo.clusters({ cutoff: cutoff(), filter: [], phase: 'WaitingForWindow', order: 'recent', offset: 0, limit: 10 });
        assert.deepEqual(waiting.items.map((c) => c.id), ['edge-3']);
        const page = await repo.clusters({ cutoff: cutoff(), filter: [], search: 'dge-', offset: 1, limit: 2 });
        assert.deepEqual([page.total, page.items.map((c) => c.id)], [5, ['edge-2', 'edge-3']]);
        assert.equal((await repo.cluster('edge-5', cutoff()))?.state, 'PendingRegistration');
        assert.deepEqual((await repo.transitions('edge-2', 10)).map((t) => [t.seq, (t.body as { phase: string }).phase]), [[2, 'RolledBack'], [1, 'Upgrading']]);

        // Heartbeats alone leave it; a label, an attempt, an acceptance or an expired lease move it.
        const before = await repo.fingerprint(cutoff());
        now += 1_000;
        for (const id of ids) clusters.touch(id);
        await clusters.flushLeases();
        assert.equal(await repo.fingerprint(cutoff()), before, 'lease renewals are not changes');
        const moves = async (what: string, change: () => Promise<unknown>) => {
          const was = await repo.fingerprint(cutoff());
          await change();
          assert.notEqual(await repo.fingerprint(cutoff()), was, `${what} changes the fingerprint`);
        };
        await moves('a label', () => clusters.setLabels('edge-4', { ring: 'canary' }));
        await moves('an attempt transition', () => reports.ingest('edge-4', 0, [transition(1, 'Upgrading', now)]));
        await moves('an acceptance', () => clusters.accept('edge-5'));
        // The agent's reported maintenance window: stored per cluster, shown on its rows, a change moves the fingerprint, a repeat writes nothing.
        assert.equal((await clusters.get('edge-3'))?.maintenanceWindow, null, 'nothing reported yet (an older agent)');
        const closed = { open: false, opensAt: '2030-01-03T02:00:00.000Z', closesAt: null };
        await moves('a reported maintenance window', () => clusters.setMaintenanceWindow('edge-3', closed));
        assert.deepEqual((await clusters.get('edge-3'))?.maintenanceWindow, closed);
        assert.deepEqual((await repo.cluster('edge-3', cutoff()))?.maintenanceWindow, closed);
        const fp = await repo.fingerprint(cutoff());
        assert.equal(await clusters.setMaintenanceWindow('edge-3', closed), false, 'the same window again changes nothing');
        assert.equal(await repo.fingerprint(cutoff()), fp);
        const open = { open: true, opensAt: null, closesAt: '2030-01-03T04:00:00.000Z' };
        assert.equal(await clusters.setMaintenanceWindow('edge-3', open), true);
        assert.deepEqual((await repo.clusters({ cutoff: cutoff(), filter: [], phase: 'WaitingForWindow', offset: 0, limit: 10 })).items.map((c) => [c.id, c.maintenanceWindow]), [['edge-3', open]]);
        assert.equal(await clusters.setMaintenanceWindow('no-such-cluster', open), false);
        await moves('a lease running out', async () => {
          now += 31_000;
          clusters.touch('edge-1');
          await clusters.flushLeases();
        });
        assert.equal((await repo.countByState(cutoff(), [])).Unknown, 4);
        const offline = await repo.clusters({ cutoff: cutoff(), filter: [], states: ['Unknown'], order: 'lastSeen', offset: 0, limit: 2 });
        assert.equal(offline.total, 4);
        assert.equal(offline.items.length, 2);
      } finally {
        await closeAll(dbs);
      }
    });

    it('tokens and the audit table', async () => {
      const dbs = await backend.open(1);
      try {
        const db = dbs[0] as Sql;
        const boot = new BootstrapTokenRepo(db, () => new Date(T0));
        await boot.syncConfigured(['t'.repeat(43)]);
        const issued = await boot.issue({ ttlMs: 60_000, maxUses: 1 });
        assert.deepEqual((await boot.list()).map((t) => t.source), ['config', 'api'], 'in the order they were made');
        const check = await boot.check(issued.token);
        assert.equal(check.ok, true);
        assert.equal(check.ok && (await boot.use(check.id)), true);
        assert.equal(check.ok && (await boot.use(check.id)), false, 'its one use is spent');
        assert.deepEqual(await boot.check(issued.token), { ok: false, reason: 'UsedUp' });
        const ops = new OperatorTokenRepo(db, () => new Date(T0));
        const op = await ops.create({ name: 'ci', role: 'operator', createdBy: 'admin' });
        assert.equal((await ops.find(op.token))?.role, 'operator');
        assert.equal(await ops.revoke(op.record.id), true);
        assert.equal(await ops.find(op.token), undefined);
        const audit = new AuditRepo(db, () => new Date(T0));
        await audit.record({ actor: 'ci', role: 'operator', method: 'POST', path: '/api/v1/rollouts', status: 201, remoteAddress: null });
        await audit.record({ actor: 'anonymous', role: null, method: 'DELETE', path: '/api/v1/clusters/x', status: 401, remoteAddress: '10.0.0.9' });
        const entries = await audit.list({ afterId: 0, limit: 10 });
        assert.deepEqual(entries.map((e) => [e.actor, e.status]), [['ci', 201], ['anonymous', 401]]);
        assert.deepEqual(await audit.list({ afterId: entries[0]?.id ?? 0, limit: 10 }).then((l) => l.map((e) => e.actor)), ['anonymous']);
      } finally {
        await closeAll(dbs);
      }
    });
  });
}
