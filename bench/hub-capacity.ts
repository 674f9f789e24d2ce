// How many agents one hub process holds with reports flowing, what each
// costs it in memory, report → ack latency, and how long the fleet takes to
// come back after a hub restart. The hub runs alone in a child process.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { defaultBackoff } from '../src/lib/backoff.ts';
import { freePort } from '../src/testbed/control-plane.ts';
import { seedClusters } from './hub-seed.ts';
import { cpuPercent, launchHub } from './hub-process.ts';
import { SimFleet } from './sim-agent.ts';
import { heading, kib, line, mib, ms, summarize, vmRssBytes } from './stats.ts';

export interface HubCapacityOptions {
  agents: number;
  /** Mean time between report batches per agent. */
  reportIntervalMs: number;
  batchSize: number;
  /** Heartbeat period the hub announces. */
  heartbeatMs: number;
  /** Length of the steady-state measurement window. */
  measureMs: number;
  connectConcurrency: number;
  /** Simulated agents offer permessage-deflate (as the hub link does). */
  deflate: boolean;
  /** Skip the hub-restart part. */
  restart: boolean;
  random: () => number;
}

export async function hubCapacityBench(o: HubCapacityOptions): Promise<void> {
  heading(`hub capacity: ${o.agents} simulated agents, a batch of ${o.batchSize} reports every ~${o.reportIntervalMs} ms each, heartbeat ${o.heartbeatMs} ms, permessage-deflate ${o.deflate ? 'on' : 'off'}`);
  const dir = mkdtempSync(join(tmpdir(), 'fleetlet-bench-hub-'));
  const dbPath = join(dir, 'hub.db');
  try {
    const t = performance.now();
    const agents = await seedClusters(dbPath, o.agents, () => new Date());
    line('seeded accepted clusters', `${o.agents} in ${ms(performance.now() - t)}`);

    const port = await freePort();
    let hub = await launchHub({ dbPath, port, heartbeatMs: o.heartbeatMs });
    const baseline = await hub.stats();
    line('hub RSS, no agent connected', mib(baseline.vmRss));

    const fleet = new SimFleet({
      baseUrl: `ws://127.0.0.1:${port}`,
      agents,
      reportIntervalMs: o.reportIntervalMs,
      batchSize: o.batchSize,
      connectConcurrency: o.connectConcurrency,
      deflate: o.deflate,
      backoff: defaultBackoff,
      random: o.random,
    });
    const connectMs = await fleet.connectAll();
    line('all agents connected (hello → welcome)', `${fleet.welcomedNow} in ${ms(connectMs)} (${(o.agents / (connectMs / 1000)).toFixed(0)} connects/s)`);

    // Steady state: reports flowing; the first quarter of the window warms up.
    fleet.setReporting(true);
    await sleep(o.measureMs / 4);
    const before = await hub.stats();
    const ackedBefore = fleet.reportsAcked;
    fleet.latencies = [];
    fleet.measuring = true;
    const windowStart = performance.now();
    await sleep(o.measureMs);
    fleet.measuring = false;
    const windowMs = performance.now() - windowStart;
    const during = await hub.stats();
    const acked = fleet.reportsAcked - ackedBefore;
    const cpu = cpuPercent(before, during);
    const lat = summarize(fleet.latencies);

    line('agents connected during the window', `${fleet.welcomedNow} (hub open files ${during.openFds}; rejected ${fleet.rejected}, socket errors ${fleet.errors})`);
    line('reports acknowledged', `${acked} in ${ms(windowMs)} = ${(acked / (windowMs / 1000)).toFixed(0)} reports/s`);
    line('report → ack latency p50 / p90 / p99 / max', `${ms(lat.p50)} / ${ms(lat.p90)} / ${ms(lat.p99)} / ${ms(lat.max)} (${lat.n} batches)`);
    line('  (ack = stored + aggregated in one commit)', '');
    line('hub RSS with every agent connected', `${mib(during.vmRss)} (heap ${mib(during.heapUsed)}, external ${mib(during.external)})`);
    line('hub memory per connected agent', `${kib((during.vmRss - baseline.vmRss) / o.agents)} RSS, ${kib((during.heapUsed - baseline.heapUsed) / o.agents)} heap`);
    line('hub CPU during the window', `${cpu.toFixed(0)} % of one core`);
    line('simulator RSS (all agents, one process)', mib(vmRssBytes() ?? process.memoryUsage().rss));

    if (!o.restart) {
      await fleet.stop();
      await hub.stop();
      return;
    }
    // Hub restart: a graceful close (every agent gets 1001), a new process on the same database and port.
    fleet.setReporting(false);
    const down = performance.now();
    const closing = hub.stop();
    await fleet.awaitAllClosed(60_000);
    await closing;
    const stoppedMs = performance.now() - down;
    hub = await launchHub({ dbPath, port, heartbeatMs: o.heartbeatMs });
    const up = performance.now();
    await fleet.awaitWelcomed(o.agents, Math.max(180_000, o.agents * 60));
    const back = performance.now();
    line('hub restart: stop (close every connection)', ms(stoppedMs));
    line('hub restart: new hub up → all agents back', `${ms(back - up)} (hub-link backoff: base ${defaultBackoff.baseMs} ms, cap ${defaultBackoff.capMs} ms, full jitter)`);
    line('hub restart: first close → all agents back', ms(back - down));
    const after = await hub.stats();
    line('hub RSS after the reconnect storm', mib(after.vmRss));

    await fleet.stop();
    await hub.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
