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
