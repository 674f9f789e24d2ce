// Several hub replicas on one private PostgreSQL, with simulated agents
// spread over them as a Kubernetes Service spreads connections (each new
// connection to the next replica, a refused one to the next at once:
// sim-agent.ts), from several processes (sim-shards.ts: one process may
// hold at most 20,000 sockets here) (docs/scale.md): connect time, report → ack latency and
// throughput, each replica's CPU, the database's connections; then the
// replica driving rollouts is killed (SIGKILL): how long until its agents
// are welcomed by the others, and until another replica holds the driver
// lock; at the end, every report written is stored exactly once.
//
// The driver is found in the database: the replica holding the advisory
// lock names itself `fleetlet-hub driver <pid>@<host>` in pg_stat_activity
// (store/postgres-sql.ts applicationName).
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { defaultBackoff } from '../src/lib/backoff.ts';
import { exportPrivateKeyPem, generateReleaseKey } from '../src/protocol/signing.ts';
import { freePort } from '../src/testbed/control-plane.ts';
import { startPostgres } from '../src/testbed/postgres.ts';
import { seedClusters } from './hub-seed.ts';
import { cpuPercent, launchHub, type HubProcess, type HubStats } from './hub-process.ts';
import { cpuPercentOf, machineCpu, postmasterPid, processCpu, topOthers } from './process-cpu.ts';
import { ShardedFleet, type ShardStats } from './sim-shards.ts';
import { heading, line, mib, ms, summarize } from './stats.ts';

export interface HubReplicasOptions {
  replicas: number;
  agents: number;
  reportIntervalMs: number;
  batchSize: number;
  heartbeatMs: number;
  measureMs: number;
  connectConcurrency: number;
  rolloutTickMs: number;
  /** Kill the driving replica and measure the failover (needs at least two replicas). */
  kill: boolean;
  /** Processes the simulated agents run in. */
  simProcesses: number;
}

/** Enough simulator processes that none holds more than 5,000 agents (each a socket; the open-file limit is 20,000). */
export function defaultSimProcesses(agents: number): number {
  return Math.max(1, Math.ceil(agents / 5000));
}

interface DatabaseCounters {
  commits: number;
  inserted: number;
  updated: number;
  deleted: number;
  walBytes: number;
}

/** The database's own counters (pg_stat_database, and the WAL it wrote): what the hub costs it. */
async function databaseCounters(db: pg.Client): Promise<DatabaseCounters> {
  const r = await db.query<DatabaseCounters>(
    'SELECT xact_commit::float8 AS commits, tup_inserted::float8 AS inserted, tup_updated::float8 AS updated, tup_deleted::float8 AS deleted, (SELECT wal_bytes::float8 FROM pg_stat_wal) AS "walBytes" FROM pg_stat_database WHERE datname = current_database()',
  );
  return r.rows[0] as DatabaseCounters;
}

/** The pid of the process holding the rollout-driver lock, if one does. */
async function driverPid(db: pg.Client): Promise<number | undefined> {
  const r = await db.query<{ name: string }>(
    "SELECT a.application_name AS name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted AND a.application_name LIKE 'fleetlet-hub driver %'",
  );
  const m = /^fleetlet-hub driver (\d+)@/.exec(r.rows[0]?.name ?? '');
  return m ? Number(m[1]) : undefined;
}

export async function hubReplicasBench(o: HubReplicasOptions): Promise<void> {
  heading(`hub replicas: ${o.replicas} on one PostgreSQL, ${o.agents} simulated agents in ${o.simProcesses} processes spread over them as a Service does, a batch of ${o.batchSize} reports every ~${o.reportIntervalMs} ms each, heartbeat ${o.heartbeatMs} ms`);
  const dir = mkdtempSync(join(tmpdir(), 'fleetlet-bench-replicas-'));
  const postgres = await startPostgres();
  const hubs: HubProcess[] = [];
  let admin: pg.Client | undefined;
  let fleet: ShardedFleet | undefined;
  try {
    const database = await postgres.createDatabase('bench');
    const t = performance.now();
    const agents = await seedClusters({ kind: 'postgres', connectionString: database }, o.agents, () => new Date());
    line('seeded accepted clusters', `${o.agents} in ${ms(performance.now() - t)}`);
    const releaseKeyPem = exportPrivateKeyPem(generateReleaseKey().privateKey);
    const ports = await Promise.all(Array.from({ length: o.replicas }, () => freePort()));
    hubs.push(...(await Promise.all(ports.map((port) => launchHub({ dbPath: join(dir, 'unused.db'), database, releaseKeyPem, port, heartbeatMs: o.heartbeatMs, rolloutTickMs: o.rolloutTickMs })))));
    admin = new pg.Client({ connectionString: database });
    await admin.connect();

    const urls = ports.map((p) => `ws://127.0.0.1:${p}`);
    fleet = await ShardedFleet.start({
      baseUrl: urls,
      agents,
      shards: o.simProcesses,
      reportIntervalMs: o.reportIntervalMs,
      batchSize: o.batchSize,
      connectConcurrency: o.connectConcurrency,
      deflate: true,
      backoff: defaultBackoff,
    });
    const connectMs = await fleet.connectAll();
    const connected = await fleet.stats();
    line('all agents connected (hello → welcome)', `${connected.welcomedNow} in ${ms(connectMs)} (${(o.agents / (connectMs / 1000)).toFixed(0)} connects/s); per replica ${connected.connectedByUrl.join(' / ')}; connection errors ${connected.errors} ${JSON.stringify(connected.errorCodes)}`);

    fleet.setReporting(true);
    await sleep(o.measureMs / 4);
    const before: HubStats[] = await Promise.all(hubs.map((h) => h.stats()));
    const dbBefore = await databaseCounters(admin);
    const simBefore = await fleet.stats();
    const procBefore = processCpu();
    const machineBefore = machineCpu();
    fleet.startMeasuring();
    const windowStart = performance.now();
    // What the replicas' connections are doing, sampled across the window: where time goes when it is not the hub's CPU.
    const waits = new Map<string, number>();
    const blockers = new Map<string, number>();
    // The replicas' and the shards' event-loop delay (since the previous sample), their commit queues and pool waiters, per sample.
    const samples: { hubs: HubStats[]; shards: ShardStats['shards'] }[] = [];
    for (let i = 0; i < 10; i++) {
      await sleep(o.measureMs / 10);
      samples.push({ hubs: await Promise.all(hubs.map((h) => h.stats())), shards: (await fleet.stats()).shards });
      const rows = (await admin.query<{ what: string; n: number }>("SELECT split_part(application_name, ' ', 2) || ' ' || state || coalesce(' ' || wait_event_type || ':' || wait_event, '') AS what, count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE 'fleetlet-hub %' GROUP BY 1")).rows;
      for (const r of rows) waits.set(r.what, (waits.get(r.what) ?? 0) + r.n);
      const blocked = (await admin.query<{ waiting: string; blocking: string }>("SELECT left(w.query, 60) AS waiting, left(b.query, 60) || ' [' || b.state || ']' AS blocking FROM pg_stat_activity w JOIN pg_stat_activity b ON b.pid = ANY (pg_blocking_pids(w.pid)) WHERE w.application_name LIKE 'fleetlet-hub %'")).rows;
      for (const r of blocked) blockers.set(`${r.waiting} ⟵ ${r.blocking}`, (blockers.get(`${r.waiting} ⟵ ${r.blocking}`) ?? 0) + 1);
    }
    const latencies = await fleet.stopMeasuring();
    const windowMs = performance.now() - windowStart;
    const procDuring = processCpu();
    const machineDuring = machineCpu();
    const during: HubStats[] = await Promise.all(hubs.map((h) => h.stats()));
    const dbDuring = await databaseCounters(admin);
    const simDuring = await fleet.stats();
    const acked = simDuring.reportsAcked - simBefore.reportsAcked;
    const lat = summarize(latencies);
    const connections = (await admin.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE 'fleetlet-hub %'")).rows[0]?.n;
    line('reports acknowledged', `${acked} in ${ms(windowMs)} = ${(acked / (windowMs / 1000)).toFixed(0)} reports/s`);
    line('report → ack latency p50 / p90 / p99 / max', `${ms(lat.p50)} / ${ms(lat.p90)} / ${ms(lat.p99)} / ${ms(lat.max)} (${lat.n} batches)`);
    line('replica CPU during the window', hubs.map((_h, i) => `${cpuPercent(before[i] as HubStats, during[i] as HubStats).toFixed(0)} %`).join(' / ') + ' of one core');
    line('replica RSS', during.map((s) => mib(s.vmRss)).join(' / '));
    line('replica open files', during.map((s) => String(s.openFds)).join(' / '));
    line('agents connected during the window', `${simDuring.welcomedNow} (per replica ${simDuring.connectedByUrl.join(' / ')}); hub errors ${simDuring.hubErrors} ${simDuring.hubErrorSamples.join('; ')}`);
    line('simulator CPU during the window', `${(((simDuring.cpuUs - simBefore.cpuUs) / 1000 / windowMs) * 100).toFixed(0)} % of one core over ${o.simProcesses} processes, RSS ${mib(simDuring.vmRss)}`);
    line('database connections of the hub replicas', String(connections));
    for (const [w, n] of [...blockers].sort((a, b) => b[1] - a[1]).slice(0, 5)) line('  a statement waiting ⟵ the one holding its lock', `${w} ×${n}`);
    line('  their states, summed over 10 samples', [...waits].sort((a, b) => b[1] - a[1]).map(([w, n]) => `${w} ×${n}`).join(', '));
    // Where the machine's cores went during the window.
    const postmaster = postmasterPid(join(postgres.dir, 'data'));
    const isPostgres = (pid: number, p: { ppid: number }): boolean => pid === postmaster || p.ppid === postmaster;
    const hubPids = new Set(hubs.map((h) => h.pid));
    const shardPids = new Set(fleet.processes);
    const ours = (pid: number, p: { ppid: number }): boolean => hubPids.has(pid) || shardPids.has(pid) || isPostgres(pid, p) || pid === process.pid;
    const pct = (which: (pid: number, p: { ppid: number }) => boolean): string => `${cpuPercentOf(procBefore, procDuring, windowMs, which).toFixed(0)} %`;
    const machinePct = ((machineDuring.busyMs - machineBefore.busyMs) / (machineDuring.totalMs - machineBefore.totalMs)) * 100;
    line('machine CPU during the window', `${machinePct.toFixed(0)} % busy of ${availableParallelism()} cores; load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    line('  replicas / simulator shards / PostgreSQL / bench', `${pct((pid) => hubPids.has(pid))} / ${pct((pid) => shardPids.has(pid))} / ${pct(isPostgres)} / ${pct((pid) => pid === process.pid)} (% of one core)`);
    line('  other processes on the machine', `${pct((pid, p) => !ours(pid, p))}: ${topOthers(procBefore, procDuring, windowMs, ours).join(', ')}`);
    const shardCpu = simDuring.shards.map((sh) => ((sh.cpuUs - (simBefore.shards.find((b) => b.pid === sh.pid)?.cpuUs ?? 0)) / 1000 / windowMs) * 100);
    line('  each simulator shard', shardCpu.map((c) => `${c.toFixed(0)} %`).join(' / '));
    const worst = (xs: number[]): string => ms(Math.max(...xs));
    line('event-loop delay, worst p99 / max of 10 samples', `replicas ${hubs.map((_h, i) => `${worst(samples.map((x) => x.hubs[i]?.loopDelayP99Ms ?? NaN))} / ${worst(samples.map((x) => x.hubs[i]?.loopDelayMaxMs ?? NaN))}`).join(', ')}; shards ${worst(samples.flatMap((x) => x.shards.map((sh) => sh.loopDelayP99Ms)))} / ${worst(samples.flatMap((x) => x.shards.map((sh) => sh.loopDelayMaxMs)))}`);
    const gc = (i: number, k: 'jobs' | 'busyMs' | 'waitedMs' | 'commits'): number => (during[i]?.runtime?.groupCommit[k] ?? 0) - (before[i]?.runtime?.groupCommit[k] ?? 0);
    line('group commits per replica: groups / jobs / mean group', hubs.map((_h, i) => `${gc(i, 'commits')} / ${gc(i, 'jobs')} / ${(gc(i, 'jobs') / Math.max(1, gc(i, 'commits'))).toFixed(1)}`).join(', '));
    line('  committing (% of the window) / mean wait in queue', hubs.map((_h, i) => `${((gc(i, 'busyMs') / windowMs) * 100).toFixed(0)} % / ${ms(gc(i, 'waitedMs') / Math.max(1, gc(i, 'jobs')))}`).join(', '));
    line('  largest group / queue since start', hubs.map((_h, i) => `${during[i]?.runtime?.groupCommit.largestGroup} / ${during[i]?.runtime?.groupCommit.largestQueue}`).join(', '));
    line('  queued jobs, per sample', hubs.map((_h, i) => samples.map((x) => x.hubs[i]?.runtime?.groupCommit.pending ?? 0).join(' ')).join(' | '));
    const stmts = (i: number): number => (during[i]?.runtime?.database?.statements ?? 0) - (before[i]?.runtime?.database?.statements ?? 0);
    line('statements (round trips) per replica: per s / per job', hubs.map((_h, i) => `${(stmts(i) / (windowMs / 1000)).toFixed(0)} / ${(stmts(i) / Math.max(1, gc(i, 'jobs'))).toFixed(1)}`).join(', '));
    line('pool connections: total / idle / waiting, per sample', hubs.map((_h, i) => samples.map((x) => { const d = x.hubs[i]?.runtime?.database; return `${d?.poolTotal}/${d?.poolIdle}/${d?.poolWaiting}`; }).join(' ')).join(' | '));
    const perSecond = (k: keyof DatabaseCounters): string => ((dbDuring[k] - dbBefore[k]) / (windowMs / 1000)).toFixed(0);
    const perReport = (k: keyof DatabaseCounters): string => ((dbDuring[k] - dbBefore[k]) / Math.max(1, acked)).toFixed(2);
    line('database per second: commits / rows inserted / updated / deleted', `${perSecond('commits')} / ${perSecond('inserted')} / ${perSecond('updated')} / ${perSecond('deleted')} (the whole database, leases and events included)`);
    line('database per acknowledged report: commits / inserted / updated / WAL bytes', `${perReport('commits')} / ${perReport('inserted')} / ${perReport('updated')} / ${perReport('walBytes')}`);

    if (o.kill && o.replicas > 1) {
      const driver = await driverPid(admin);
      const victim = hubs.find((h) => h.pid === driver);
      if (victim === undefined) throw new Error(`no replica holds the rollout-driver lock (found pid ${driver})`);
      const sim = fleet;
      const beforeKill = await sim.stats();
      const onVictim = beforeKill.connectedByUrl[hubs.indexOf(victim)] ?? 0;
      // The fewest welcomed at once after the kill (the killed replica's agents all drop together), and how the count came back.
      let lowest = sim.welcomedNow;
      let killedAt = 0;
      const counts: [number, number][] = [];
      const onCount = (n: number): void => {
        lowest = Math.min(lowest, n);
        counts.push([performance.now() - killedAt, n]);
      };
      sim.on('count', onCount);
      killedAt = performance.now();
      await victim.kill();
      let newDriverMs: number | undefined;
      const watch = (async () => {
        while (newDriverMs === undefined) {
          const now = await driverPid(admin as pg.Client);
          if (now !== undefined && now !== driver) newDriverMs = performance.now() - killedAt;
          else await sleep(50);
        }
      })();
      // The killed replica's connections close as the kernel notices; only then can they come back.
      while (sim.welcomedNow === o.agents && performance.now() - killedAt < 30_000) await sleep(5);
      await sim.awaitWelcomed(o.agents, Math.max(120_000, o.agents * 30));
      const backMs = performance.now() - killedAt;
      sim.off('count', onCount);
      await watch;
      const after = await sim.stats();
      line('driving replica killed (SIGKILL): its agents', `${onVictim} were on it, ${o.agents - lowest} dropped at the lowest; all ${o.agents} welcomed again ${ms(backMs)} after the kill (hub-link backoff: base ${defaultBackoff.baseMs} ms, cap ${defaultBackoff.capMs} ms)`);
      // Drops and returns overlap (the kernel notices closed sockets over time), so "back" is not counted per agent:
      // the fleet's welcomed count at each mark, and when it was lowest, tell the curve.
      const welcomedAt = (t: number): number => counts.filter(([at]) => at <= t).at(-1)?.[1] ?? o.agents;
      const lowestAt = counts.find(([, n]) => n === lowest)?.[0];
      line(
        '  welcomed 1 / 5 / 10 / 20 / 40 s after the kill',
        `${[1, 5, 10, 20, 40].map((s) => String(welcomedAt(s * 1000))).join(' / ')} of ${o.agents}; lowest ${lowest}${lowestAt === undefined ? '' : ` at ${ms(lowestAt)}`}`,
      );
      const codes = Object.entries(after.errorCodes).map(([k, v]) => [k, v - (beforeKill.errorCodes[k] ?? 0)] as const).filter(([, v]) => v > 0);
      line('  meanwhile: refused at the upgrade / socket errors', `${after.rejected - beforeKill.rejected} / ${after.errors - beforeKill.errors} ${JSON.stringify(Object.fromEntries(codes))}; hub error messages ${after.hubErrors - beforeKill.hubErrors} ${after.hubErrorSamples.join('; ')}`);
      line('  agents per replica afterwards', after.connectedByUrl.map((n, i) => (hubs[i] === victim ? `${n} (killed)` : String(n))).join(' / '));
      line('  another replica holds the driver lock', `${ms(newDriverMs ?? NaN)} after the kill (--rollout-tick-ms ${o.rolloutTickMs})`);
      hubs.splice(hubs.indexOf(victim), 1);
    }

    // Every report written is stored once: the simulated outboxes drain, then the database counts.
    fleet.setReporting(false);
    const deadline = Date.now() + Math.max(120_000, o.agents * 10);
    let end = await fleet.stats();
    while (end.unacked > 0 && Date.now() < deadline) {
      await sleep(500);
      end = await fleet.stats();
    }
    const stored = (await admin.query<{ n: number; distinct: number }>('SELECT count(*)::int AS n, count(DISTINCT (cluster_id, seq))::int AS distinct FROM reports')).rows[0];
    const ackedSum = (await admin.query<{ s: number }>('SELECT coalesce(sum(acked_seq), 0)::int AS s FROM clusters')).rows[0]?.s;
    line('reports written by the agents / stored / distinct / acknowledged marks', `${end.reportsWritten} / ${stored?.n} / ${stored?.distinct} / ${ackedSum} (unacknowledged left: ${end.unacked})`);
    await fleet.stop();
    fleet = undefined;
  } finally {
    await fleet?.kill();
    await admin?.end().catch(() => undefined);
    await Promise.all(hubs.map((h) => h.stop().catch(() => h.kill())));
    await postgres.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
