// Outbox replay after a long partition: a real journal holding N
// unacknowledged reports, then a real HubLink connects to a hub (in its own
// process) and drains it. Reports per second from connect to empty outbox.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { HubLink } from '../src/hub-link/hub-link.ts';
import { Journal } from '../src/store/journal.ts';
import { freePort } from '../src/testbed/control-plane.ts';
import { startPostgres } from '../src/testbed/postgres.ts';
import { seedClusters } from './hub-seed.ts';
import { launchHub } from './hub-process.ts';
import { heading, line, mib, ms } from './stats.ts';

export interface ReplayOptions {
  reports: number;
  random: () => number;
  /** The hub's database: its SQLite file (default), or PostgreSQL (a private instance started for the run). */
  backend?: 'sqlite' | 'postgres';
}

export async function outboxReplayBench(o: ReplayOptions): Promise<void> {
  const backend = o.backend ?? 'sqlite';
  heading(`outbox replay (${backend === 'sqlite' ? 'SQLite hub' : 'PostgreSQL hub'}): ${o.reports} reports buffered in a real journal (durability full), then one HubLink drains them`);
  const dir = mkdtempSync(join(tmpdir(), 'fleetlet-bench-replay-'));
  const pg = backend === 'postgres' ? await startPostgres() : undefined;
  try {
    const database = pg ? await pg.createDatabase('replay') : undefined;
    const [cluster] = await seedClusters(database ? { kind: 'postgres', connectionString: database } : join(dir, 'hub.db'), 1, () => new Date(), 'replay');
    if (!cluster) throw new Error('seeding failed');
    const journal = Journal.open(join(dir, 'journal.db'));
    let t = performance.now();
    journal.transaction(() => {
      const at = new Date().toISOString();
      for (let i = 1; i <= o.reports; i++) {
        journal.outbox.enqueue('attempt-transition', { attemptId: `attempt-${Math.ceil(i / 7)}`, release: { name: 'edge-addons', version: '1.2.0', revision: 1 }, phase: 'Upgrading', stage: 0, reason: null, message: `step ${i}`, at });
      }
    });
    line('filled the outbox (one transaction)', `${ms(performance.now() - t)}; journal ${mib(journal.sizeBytes())}`);

    const hub = await launchHub({ dbPath: join(dir, 'hub.db'), ...(database ? { database } : {}), port: await freePort(), heartbeatMs: 10_000 });
    const link = new HubLink({
      url: hub.url,
      clusterId: cluster.clusterId,
      agentVersion: 'bench',
      agentKey: cluster.key,
      registered: () => true,
      outbox: journal.outbox,
      lastRevision: () => 0,
      inventory: async () => ({ components: [], kubernetesVersion: '', targetInfrastructure: 'bench', overrides: [] }),
      onRelease: async () => {},
      now: () => new Date(),
      random: o.random,
      logger: pino({ level: 'silent' }),
    });
    const hubBefore = await hub.stats();
    const agentCpuStart = process.cpuUsage();
    t = performance.now();
    const drained = new Promise<void>((resolve) => {
      const check = (): void => {
        if (journal.outbox.stats().depth === 0) resolve();
      };
      link.on('acked', check);
    });
    const welcomed = new Promise<void>((resolve) => link.once('welcome', () => resolve()));
    link.start();
    await welcomed;
    const welcomeMs = performance.now() - t;
    await drained;
    const totalMs = performance.now() - t;
    line('connect → welcome', ms(welcomeMs));
    line('connect → outbox empty (all acknowledged)', `${ms(totalMs)} = ${(o.reports / (totalMs / 1000)).toFixed(0)} reports/s`);
    line('batches / window (HubLink defaults)', '100 reports per message, 500 unacknowledged at most');
    const stats = await hub.stats();
    const agentCpu = process.cpuUsage(agentCpuStart);
    line('CPU, hub process / agent (this process)', `${(((stats.cpuUserUs + stats.cpuSystemUs - hubBefore.cpuUserUs - hubBefore.cpuSystemUs) / 1000 / totalMs) * 100).toFixed(0)} % / ${(((agentCpu.user + agentCpu.system) / 1000 / totalMs) * 100).toFixed(0)} % of one core`);
    line('hub RSS after the replay', mib(stats.vmRss));
    await link.stop();
    journal.close();
    await hub.stop();
  } finally {
    await pg?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
