// The journal across agent versions, with two real builds: the previous
// tagged release (v0.1.0, bundled from the tag by test/support/release-build.ts)
// and HEAD (dist/, from the global set-up). One version's agent process
// starts an attempt that fails and is SIGKILLed as its rollback begins; the
// other version's process starts on the same journal file, finishes the
// rollback and reports it to the hub exactly once. Both directions:
// - v0.1.0 → HEAD: HEAD migrates v0.1.0's journal as it starts.
// - HEAD → v0.1.0: the case. v0.1.0 runs, its self-upgrade to HEAD
//   migrates the journal, HEAD fails, v0.1.0 is restored on the journal HEAD
//   touched and must finish the rollback.
// And a journal above an agent's format level is refused by both builds,
// with a message naming the levels, and left untouched.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { KubeClusterClient } from '../../src/agent/kube/cluster-client.ts';
import type { StoredReport } from '../../src/hub/store/report-repo.ts';
import { exportPublicKeyPem } from '../../src/protocol/signing.ts';
import { Journal } from '../../src/store/journal.ts';
import { formatLevel, migrate, migrations } from '../../src/store/migrations.ts';
import { eventually, kubeConfig, testNamespace } from '../support/cluster.ts';
import { BOOTSTRAP_TOKEN, startHubFixture, type HubFixture } from '../support/hub-fixture.ts';
import { headBuild, releaseBuild, type AgentBuild } from '../support/release-build.ts';
import { releaseRequest, storedReports } from '../support/runtime-fixture.ts';
import { testPolicyYaml } from '../support/test-policy.ts';

/** The release an agent may be rolled back to (the one before HEAD). */
const PREVIOUS = 'v0.1.0';
/** The commit v0.1.0 was released from: the build is found by it when a clone has no tags. */
const PREVIOUS_COMMIT = '890d3c2ee8c942e5dad9231ebb894b96e90d22c1';
/** What each build calls itself to the hub (FLEETLET_AGENT_VERSION), so the hub's view says which one reported. */
const versionOf = (b: AgentBuild) => (b.label === 'HEAD' ? '0.1.0-head' : b.label.replace(/^v/, ''));

interface Proc {
  child: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startAgent(build: AgentBuild, args: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(process.execPath, build.argv(args), {
    env: { ...process.env, ...build.env(), LOG_LEVEL: 'warn', FLEETLET_AGENT_VERSION: versionOf(build), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.on('exit', (code, signal) => res({ code, signal })));
  return { child, output: () => out, exited };
}

/** Reads the journal file as it is, without migrating it (HEAD's Journal.open would). */
function peek<T>(path: string, read: (db: Database.Database) => T): T {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return read(db);
  } finally {
    db.close();
  }
}

interface JournalState {
  level: number;
  recorded: { id: number; name: string; kind: string; level: number; agent_version: string | null }[] | null;
  attempt: { id: string; revision: number; phase: string; finished_at: string | null } | undefined;
  outboxDepth: number;
  lastSeq: number;
}

function journalState(path: string): JournalState {
  return peek(path, (db) => ({
    level: db.pragma('user_version', { simple: true }) as number,
    recorded: db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'journal_migrations'").get()
      ? (db.prepare('SELECT id, name, kind, level, agent_version FROM journal_migrations ORDER BY id').all() as JournalState['recorded'])
      : null,
    attempt: db.prepare('SELECT id, revision, phase, finished_at FROM attempts ORDER BY started_at DESC, rowid DESC LIMIT 1').get() as JournalState['attempt'],
    outboxDepth: (db.prepare('SELECT COUNT(*) AS n FROM outbox').get() as { n: number }).n,
    lastSeq: (db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").get() as { seq: number } | undefined)?.seq ?? 0,
  }));
}

/** `p`, or a failure naming what was awaited once `ms` passed. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)));
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** sha256 of the file; skipChangeCounter leaves out the header's file change counter and the version-valid-for number written with it (offsets 24 and 92). */
function fileDigest(path: string, o: { skipChangeCounter?: boolean } = {}): string {
  const bytes = readFileSync(path);
  if (o.skipChangeCounter) {
    bytes.fill(0, 24, 28);
    bytes.fill(0, 92, 96);
  }
  return createHash('sha256').update(bytes).digest('hex');
}

describe(`the journal across agent versions (${PREVIOUS} and HEAD, real builds)`, () => {
  let hub: HubFixture;
  let previous: AgentBuild;
  const head = headBuild();
  const build = (label: string) => (label === 'HEAD' ? head : previous);

  before(async () => {
    // Fails, never skips, if the tag is missing (a shallow clone) or cannot be built.
    previous = releaseBuild(PREVIOUS, PREVIOUS_COMMIT);
    hub = await startHubFixture({ now: () => new Date(), heartbeatMs: 300 });
  });
  after(async () => {
    previous?.dispose();
    await hub?.close();
  });

  const api = async (method: string, path: string, body?: unknown) => {
    const r = await hub.api(method, path, body);
    assert.ok(r.status < 300, `${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };

  for (const [from, to] of [
    [PREVIOUS, 'HEAD'],
    ['HEAD', PREVIOUS],
  ] as const) {
    test(`${from}'s agent dies as its rollback begins; ${to}'s agent on the same journal finishes the rollback and reports it once`, async () => {
      const agentNs = await testNamespace('jc-sys');
      const addonsNs = await testNamespace('jc-app');
      const clusterId = `jc-${randomBytes(3).toString('hex')}`;
      const dir = mkdtempSync(join(tmpdir(), 'fleetlet-jcompat-'));
      const journalPath = join(dir, 'journal.db');
      writeFileSync(join(dir, 'release.pub.pem'), exportPublicKeyPem(hub.key.publicKey));
      writeFileSync(join(dir, 'policy.yaml'), testPolicyYaml());
      const args = [
        `--cluster-id=${clusterId}`,
        `--journal=${journalPath}`,
        `--kubeconfig=${process.env.FLEETLET_TEST_KUBECONFIG}`,
        `--namespace=${agentNs.name}`,
        `--allowed-namespaces=${addonsNs.name}`,
        `--release-key=${join(dir, 'release.pub.pem')}`,
        `--policy=${join(dir, 'policy.yaml')}`,
        `--hub=${hub.hub.url}`,
        '--poll-ms=200',
        '--no-leader-elect',
      ];
      const tokenEnv = { FLEETLET_BOOTSTRAP_TOKEN: BOOTSTRAP_TOKEN };
      const procs: Proc[] = [];
      const run = (b: AgentBuild, env: Record<string, string> = {}) => {
        const p = startAgent(b, args, { ...tokenEnv, ...env });
        procs.push(p);
        return p;
      };
      const view = async () => api('GET', `/api/v1/clusters/${clusterId}`);
      /** Until the hub shows `revision`'s attempt ended in `phase` and holds every report the journal wrote. */
      const settled = (p: Proc, revision: number, phase: string) => {
        // An agent that exits meanwhile (a refused journal) fails at once, with what it said.
        const died = p.exited.then((e) => Promise.reject(new Error(`the agent exited (${e.code ?? e.signal}) before revision ${revision} was ${phase}: ${p.output().slice(-2000)}`)));
        died.catch(() => {}); // a later exit (our own stop) is expected
        return Promise.race([died, settledOnHub(p, revision, phase)]);
      };
      const settledOnHub = (p: Proc, revision: number, phase: string) =>
        eventually(
          `the hub to show revision ${revision} ${phase}, every report acknowledged`,
          async () => {
            const v = await view();
            const j = journalState(journalPath);
            return v.upgrade?.release.revision === revision && v.upgrade.phase === phase && j.outboxDepth === 0 && v.reports.ackedSeq === j.lastSeq ? v : undefined;
          },
          150_000,
          500,
        ).catch((err: unknown) => {
          throw new Error(`${(err as Error).message}; the agent said: ${p.output().slice(-2000)}`);
        });
      const stop = async (p: Proc) => {
        p.child.kill('SIGTERM');
        const { code } = await p.exited;
        assert.equal(code, 0, `a graceful stop exits 0: ${p.output().slice(-2000)}`);
      };
      try {
        // 1. The released agent (PREVIOUS) runs the cluster: registered, v1 installed.
        const installer = run(previous);
        await eventually('the registration request', async () => ((await view().catch(() => undefined))?.registration === 'Pending' ? true : undefined));
        await api('POST', `/api/v1/clusters/${clusterId}/accept`);
        const v1 = await api('PUT', `/api/v1/clusters/${clusterId}/release`, releaseRequest(addonsNs.name, '1.1.0', { dns: '1.0.0', proxy: '1.0.0', metrics: '1.0.0' }));
        await settled(installer, v1.revision as number, 'Succeeded');
        await stop(installer);
        const afterInstall = journalState(journalPath);
        assert.equal(afterInstall.level, 5);
        assert.equal(afterInstall.recorded, null, `${PREVIOUS} knows nothing of journal_migrations`);

        // 2. `from` runs v2, whose stage 1 never gets ready, and dies as the rollback begins.
        const attempter = run(build(from), { FLEETLET_FAILPOINT_KILL_IN_PHASE: 'RollingBack' });
        const v2 = await api(
          'PUT',
          `/api/v1/clusters/${clusterId}/release`,
          releaseRequest(addonsNs.name, '1.2.0', { dns: '2.0.0', proxy: '2.0.0', metrics: '2.0.0', metricsApiSuffix: '-unready' }),
        );
        const died = await within(attempter.exited, 180_000, `${from}'s agent to die as its rollback begins`);
        assert.equal(died.signal, 'SIGKILL', `${from}'s agent was killed by the failpoint as its rollback began: ${attempter.output().slice(-2000)}`);
        const midway = journalState(journalPath);
        assert.equal(midway.attempt?.revision, v2.revision);
        assert.equal(midway.attempt?.phase, 'RollingBack', 'the rollback is the work left');
        assert.equal(midway.attempt?.finished_at, null);
        assert.equal(midway.level, 5, `the format level ${PREVIOUS} reads`);
        if (from === 'HEAD') {
          assert.deepEqual(midway.recorded, [{ id: 6, name: 'journal-migrations', kind: 'additive', level: 5, agent_version: versionOf(head) }], 'HEAD migrated the journal');
        } else {
          assert.equal(midway.recorded, null);
        }

        // 3. `to` starts on that journal and finishes the rollback.
        const finisher = run(build(to));
        const shown = await settled(finisher, v2.revision as number, 'RolledBack');
        await stop(finisher);
        assert.equal(shown.agentVersion, versionOf(build(to)), `${to}'s agent is the one the hub last heard`);
        assert.equal(shown.upgrade.attemptId, midway.attempt!.id, 'the same attempt, finished');

        const end = journalState(journalPath);
        assert.equal(end.level, 5);
        assert.deepEqual(end.recorded, [{ id: 6, name: 'journal-migrations', kind: 'additive', level: 5, agent_version: versionOf(head) }], 'HEAD migrated the journal once; the other version left the record alone');
        assert.equal(end.attempt?.phase, 'RolledBack');
        const { transitions, installed } = peek(journalPath, (db) => ({
          transitions: db.prepare('SELECT phase, stage, reason, message, at FROM transitions WHERE attempt_id = ? ORDER BY id').all(end.attempt!.id) as {
            phase: string;
            stage: number | null;
            reason: string | null;
            message: string | null;
            at: string;
          }[],
          installed: db.prepare('SELECT component, version FROM installed ORDER BY component').all() as { component: string; version: string }[],
        }));
        const phases = transitions.map((t) => t.phase);
        assert.equal(phases[0], 'Pending');
        assert.equal(phases.filter((p) => p === 'RollingBack').length, 1, `one rollback: ${phases.join(' ')}`);
        assert.equal(phases.at(-1), 'RolledBack');
        assert.deepEqual(installed, [
          { component: 'dns', version: '1.0.0' },
          { component: 'metrics', version: '1.0.0' },
          { component: 'proxy', version: '1.0.0' },
        ]);

        // Exactly once, in order, as the hub sees it: seqs 1..lastSeq each once, every transition of the attempt once.
        const stored: StoredReport[] = await storedReports(hub, clusterId);
        assert.deepEqual(
          stored.map((r) => r.seq),
          Array.from({ length: end.lastSeq }, (_, i) => i + 1),
          'no report lost or duplicated across the two versions',
        );
        for (const r of stored) {
          assert.ok(r.acknowledged, `report ${r.seq} acknowledged`);
          assert.equal(r.problem, null, `report ${r.seq} applied`);
        }
        const onHub = stored
          .filter((r) => r.kind === 'attempt-transition' && (r.body as { attemptId: string }).attemptId === end.attempt!.id)
          .map((r) => {
            const b = r.body as { phase: string; stage: number | null; reason: string | null; message: string | null; at: string };
            return { phase: b.phase, stage: b.stage, reason: b.reason, message: b.message, at: b.at };
          });
        assert.deepEqual(onHub, transitions, 'the hub holds every transition of the attempt once, in journal order');
        const completed = stored.filter((r) => r.kind === 'upgrade-completed' && (r.body as { attemptId: string }).attemptId === end.attempt!.id);
        assert.equal(completed.length, 1, 'one upgrade-completed report');
        const telemetry = (await api('GET', `/api/v1/telemetry?cluster=${clusterId}&limit=1000`)).events as { event: { attemptId: string; result: string } }[];
        assert.deepEqual(
          telemetry.filter((e) => e.event.attemptId === end.attempt!.id).map((e) => e.event.result),
          ['RolledBack'],
          'one telemetry event, RolledBack',
        );

        // The cluster is back on v1.
        const cluster = new KubeClusterClient(kubeConfig());
        for (const [kind, name, image] of [
          ['Deployment', 'dns', 'registry.example/dns:1.0.0'],
          ['DaemonSet', 'proxy', 'registry.example/proxy:1.0.0'],
          ['StatefulSet', 'metrics-store', 'registry.example/metrics-store:1.0.0'],
          ['Deployment', 'metrics-api', 'registry.example/metrics-api:1.0.0'],
        ] as const) {
          const o = (await cluster.read({ apiVersion: 'apps/v1', kind, name, namespace: addonsNs.name })) as unknown as { spec: { template: { spec: { containers: { image: string }[] } } } };
          assert.equal(o.spec.template.spec.containers[0]!.image, image, `${kind} ${name} rolled back`);
        }
      } finally {
        for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
        await Promise.all(procs.map((p) => p.exited));
        await agentNs.dispose();
        await addonsNs.dispose();
      }
    });
  }

  test('a journal above the agent\'s format level is refused by both builds with a message naming the levels, and left untouched', async () => {
    const agentNs = await testNamespace('jc-new');
    const dir = mkdtempSync(join(tmpdir(), 'fleetlet-jcompat-new-'));
    const journalPath = join(dir, 'journal.db');
    try {
      // The journal a future agent leaves: HEAD's, then a breaking migration HEAD does not know.
      Journal.open(journalPath, { durability: 'normal' }).close();
      const db = new Database(journalPath);
      migrate(db, { agentVersion: '9.9.9' }, [...migrations, { name: 'future-breaking', kind: 'breaking', sql: 'ALTER TABLE attempts DROP COLUMN message;' }]);
      db.close();
      const level = formatLevel() + 1;
      const digest = fileDigest(journalPath);
      copyFileSync(journalPath, `${journalPath}.before`);
      writeFileSync(join(dir, 'release.pub.pem'), exportPublicKeyPem(hub.key.publicKey));
      const args = [
        '--cluster-id=jc-newer',
        `--journal=${journalPath}`,
        `--kubeconfig=${process.env.FLEETLET_TEST_KUBECONFIG}`,
        `--namespace=${agentNs.name}`,
        `--allowed-namespaces=${agentNs.name}`,
        `--release-key=${join(dir, 'release.pub.pem')}`,
        '--no-leader-elect',
      ];

      const h = startAgent(head, args);
      const headExit = await h.exited;
      assert.equal(headExit.code, 1, h.output());
      const line = h
        .output()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { reason?: string; msg: string })
        .find((l) => l.reason === 'JournalTooNew');
      assert.ok(line, `HEAD logs one JournalTooNew line: ${h.output()}`);
      assert.match(line.msg, new RegExp(`is at format level ${level} \\(raised by fleetlet agent 9\\.9\\.9\\), but this agent \\(0\\.1\\.0-head\\) reads format levels up to ${formatLevel()}`));
      assert.match(line.msg, /Run agent 9\.9\.9 or a newer one on this journal/);
      assert.equal(fileDigest(journalPath), digest, 'HEAD left the journal untouched');

      const p = startAgent(previous, args);
      const previousExit = await p.exited;
      assert.notEqual(previousExit.code, 0, p.output());
      assert.match(p.output(), new RegExp(`journal schema version ${level} is newer than this agent knows \\(5\\)`), `${PREVIOUS} refuses in its own words`);
      // v0.1.0 sets PRAGMA auto_vacuum before it looks at the level, which
      // bumps the header's change counter (released code, unchangeable);
      // every other byte, every page of data, stays as it was.
      assert.equal(fileDigest(journalPath, { skipChangeCounter: true }), fileDigest(journalPath + '.before', { skipChangeCounter: true }), `${PREVIOUS} left the journal's content untouched`);
    } finally {
      await agentNs.dispose();
    }
  });
});
