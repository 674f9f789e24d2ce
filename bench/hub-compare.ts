// One hub on SQLite, then one hub on PostgreSQL, under the same simulated
// load, in one run (docs/scale.md): connected agents, reports acknowledged
// per second, report → ack latency, the hub's RSS and CPU, and on
// PostgreSQL the database server's CPU too (SQLite's work is inside the
// hub's process). The two run one after the other rather than at once, so
// neither takes the other's CPU on a small machine. Each ends with the exact
// count: every report the agents wrote is stored once.
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { defaultBackoff } from '../src/lib/backoff.ts';
import { openHubDatabase, type HubDatabaseLocation } from '../src/hub/store/database.ts';
import { freePort } from '../src/testbed/control-plane.ts';
import { startPostgres, type PrivatePostgres } from '../src/testbed/postgres.ts';
import { seedClusters } from './hub-seed.ts';
import { cpuPercent, launchHub, type HubProcess } from './hub-process.ts';
import { machineCpu, postmasterPid, processCpu } from './process-cpu.ts';
import { ShardedFleet } from './sim-shards.ts';
import { heading, line, mib, ms, summarize } from './stats.ts';

export interface HubCompareOptions {
  agents: number;
  reportIntervalMs: number;
  batchSize: number;
  heartbeatMs: number;
  measureMs: number;
  connectConcurrency: number;
  simProcesses: number;
}

interface Row {
  backend: string;
  connected: string;
  connectTime: string;
  reportsPerSecond: string;
  p50: string;
  p99: string;
  hubRss: string;
  hubCpu: string;
  databaseCpu: string;
  simulatorCpu: string;
  machineCpu: string;
  groups: string;
  committing: string;
  counted: string;
}

/** CPU time (ms) of the postmaster and each of its children now, by pid. */
function postgresCpu(pg: PrivatePostgres): Map<number, number> {
  const postmaster = postmasterPid(join(pg.dir, 'data'));
  return new Map([...processCpu()].filter(([pid, p]) => pid === postmaster || p.ppid === postmaster).map(([pid, p]) => [pid, p.cpuMs]));
}

/** CPU the server's processes used between two samples, % of one core; a backend that exited meanwhile is not counted. */
function postgresCpuPercent(a: Map<number, number>, b: Map<number, number>, windowMs: number): number {
  let used = 0;
  for (const [pid, t] of b) used += t - (a.get(pid) ?? 0);
  return (used / windowMs) * 100;
}

async function countStored(where: HubDatabaseLocation): Promise<{ n: number; distinct: number }> {
  const db = await openHubDatabase(where);
  try {
    const r = await db.get<{ n: number; distinct: number }>('SELECT count(*) AS n, (SELECT count(*) FROM (SELECT DISTINCT cluster_id, seq FROM reports) d) AS "distinct" FROM reports');
    return { n: Number(r?.n ?? 0), distinct: Number(r?.distinct ?? 0) };
  } finally {
    await db.close();
  }
}

async function runOne(o: HubCompareOptions, backend: 'sqlite' | 'postgres', dir: string, postgres: PrivatePostgres | undefined): Promise<Row> {
  const dbPath = join(dir, `${backend}.db`);
  const database = postgres ? await postgres.createDatabase('compare') : undefined;
  const where: HubDatabaseLocation = database ? { kind: 'postgres', connectionString: database } : { kind: 'sqlite', path: dbPath };
  const t = performance.now();
  const agents = await seedClusters(where, o.agents, () => new Date());
  line(`${backend}: seeded accepted clusters`, `${o.agents} in ${ms(performance.now() - t)}`);
  const port = await freePort();
  let hub: HubProcess | undefined = await launchHub({ dbPath, ...(database ? { database } : {}), port, heartbeatMs: o.heartbeatMs });
  let fleet: ShardedFleet | undefined;
  try {
    fleet = await ShardedFleet.start({
      baseUrl: `ws://127.0.0.1:${port}`,
      agents,
      shards: o.simProcesses,
      reportIntervalMs: o.reportIntervalMs,
      batchSize: o.batchSize,
      connectConcurrency: o.connectConcurrency,
      deflate: true,
      backoff: defaultBackoff,
    });
    const connectMs = await fleet.connectAll();
    fleet.setReporting(true);
    await sleep(o.measureMs / 4);
    const hubBefore = await hub.stats();
    const simBefore = await fleet.stats();
    const pgBefore = postgres ? postgresCpu(postgres) : undefined;
    const machineBefore = machineCpu();
    fleet.startMeasuring();
    const windowStart = performance.now();
    await sleep(o.measureMs);
    const latencies = await fleet.stopMeasuring();
    const windowMs = performance.now() - windowStart;
    const hubDuring = await hub.stats();
    const simDuring = await fleet.stats();
    const pgDuring = postgres ? postgresCpu(postgres) : undefined;
    const machineDuring = machineCpu();
    const lat = summarize(latencies);
    const acked = simDuring.reportsAcked - simBefore.reportsAcked;
    // The hub's group commits in the window: how many, how full, how much of the time one was running, what jobs waited.
    const gc = (k: 'jobs' | 'busyMs' | 'waitedMs' | 'commits'): number => (hubDuring.runtime?.groupCommit[k] ?? 0) - (hubBefore.runtime?.groupCommit[k] ?? 0);
    const statements = (hubDuring.runtime?.database?.statements ?? 0) - (hubBefore.runtime?.database?.statements ?? 0);

    // The exact count: the outboxes drain, the hub stops, the database is read.
    fleet.setReporting(false);
    const deadline = Date.now() + Math.max(120_000, o.agents * 10);
    let end = await fleet.stats();
    while (end.unacked > 0 && Date.now() < deadline) {
      await sleep(500);
      end = await fleet.stats();
    }
    await fleet.stop();
    fleet = undefined;
    await hub.stop();
    hub = undefined;
    const stored = await countStored(where);
    const row: Row = {
      backend: backend === 'sqlite' ? 'SQLite (synchronous=FULL)' : 'PostgreSQL (local, default settings)',
      connected: `${simDuring.welcomedNow} of ${o.agents}`,
      connectTime: ms(connectMs),
      reportsPerSecond: (acked / (windowMs / 1000)).toFixed(0),
      p50: ms(lat.p50),
      p99: ms(lat.p99),
      hubRss: mib(hubDuring.vmRss),
      hubCpu: `${cpuPercent(hubBefore, hubDuring).toFixed(0)} %`,
      databaseCpu: pgBefore && pgDuring ? `${postgresCpuPercent(pgBefore, pgDuring, windowMs).toFixed(0)} %` : '(in the hub)',
      simulatorCpu: `${(((simDuring.cpuUs - simBefore.cpuUs) / 1000 / windowMs) * 100).toFixed(0)} %`,
      machineCpu: `${(((machineDuring.busyMs - machineBefore.busyMs) / (machineDuring.totalMs - machineBefore.totalMs)) * 100).toFixed(0)} % of ${availableParallelism()} cores (load ${loadavg()[0]?.toFixed(1)})`,
      groups: `${gc('commits')} of ${(gc('jobs') / Math.max(1, gc('commits'))).toFixed(1)} jobs${hubDuring.runtime?.database ? `, ${(statements / Math.max(1, gc('jobs'))).toFixed(1)} statements per job` : ''}`,
      committing: `${((gc('busyMs') / windowMs) * 100).toFixed(0)} % / ${ms(gc('waitedMs') / Math.max(1, gc('jobs')))}`,
      counted: `${end.reportsWritten} / ${stored.n} / ${stored.distinct}${end.unacked > 0 ? ` (${end.unacked} unacknowledged)` : ''}`,
    };
    line(`${backend}: done`, `${row.reportsPerSecond} reports/s, p99 ${row.p99}, written / stored / distinct ${row.counted}`);
    return row;
  } finally {
    await fleet?.kill();
    await hub?.kill();
  }
}

export async function hubCompareBench(o: HubCompareOptions): Promise<void> {
  heading(`one hub on SQLite, then one on PostgreSQL: ${o.agents} simulated agents in ${o.simProcesses} processes, a batch of ${o.batchSize} reports every ~${o.reportIntervalMs} ms each, heartbeat ${o.heartbeatMs} ms, ${o.measureMs} ms measured`);
  const dir = mkdtempSync(join(tmpdir(), 'fleetlet-bench-compare-'));
  let postgres: PrivatePostgres | undefined;
  try {
    const rows = [await runOne(o, 'sqlite', dir, undefined)];
    postgres = await startPostgres();
    rows.push(await runOne(o, 'postgres', dir, postgres));
    const fields: [string, keyof Row][] = [
      ['agents connected', 'connected'],
      ['all connected in', 'connectTime'],
      ['reports acknowledged / s', 'reportsPerSecond'],
      ['report → ack p50', 'p50'],
      ['report → ack p99', 'p99'],
      ['hub RSS', 'hubRss'],
      ['hub CPU (one core = 100 %)', 'hubCpu'],
      ['database server CPU', 'databaseCpu'],
      ['simulator CPU', 'simulatorCpu'],
      ['machine busy (everything on it)', 'machineCpu'],
      ['group commits in the window', 'groups'],
      ['committing (% of the window) / mean wait for a group', 'committing'],
      ['reports written / stored / distinct', 'counted'],
    ];
    process.stdout.write(`\n  | | ${rows.map((r) => r.backend).join(' | ')} |\n  |---|${rows.map(() => '---').join('|')}|\n`);
    for (const [label, k] of fields) process.stdout.write(`  | ${label} | ${rows.map((r) => r[k]).join(' | ')} |\n`);
  } finally {
    await postgres?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
