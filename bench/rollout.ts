// A fleet rollout end to end (issue 6): N accepted clusters, each a simulated
// agent (sim-agent.ts in upgrade mode: it reports Pending → Upgrading →
// Verifying → Succeeded and an upgrade-completed event over a simulated
// upgrade), one Progressive rollout through the hub API with a mandatory
// canary group and zero soak. Measures create → Succeeded wall time and the
// hub's CPU and memory over it. The hub runs alone in a child process.
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { defaultBackoff } from '../src/lib/backoff.ts';
import type { RolloutRequestInput, RolloutView } from '../src/protocol/rollout.ts';
import { freePort } from '../src/testbed/control-plane.ts';
import { seedClusters } from './hub-seed.ts';
import { launchHub, type HubStats } from './hub-process.ts';
import { SimFleet } from './sim-agent.ts';
import { heading, line, mib, ms, summarize, vmHwmBytes, vmRssBytes } from './stats.ts';

export interface RolloutBenchOptions {
  clusters: number;
  maxConcurrency: number;
  /** Clusters in the mandatory canary group (spread over the fleet by label). */
  canaries: number;
  /** Mean simulated upgrade time, and its uniform jitter as a fraction. */
  upgradeMs: number;
  upgradeJitter: number;
  /** Heartbeat period the hub announces. */
  heartbeatMs: number;
  /** The hub's steady rollout tick; reports also trigger a tick (50 ms debounce). */
  rolloutTickMs: number;
  connectConcurrency: number;
  /** Give up when the rollout is not Succeeded this long after its creation. */
  timeoutMs: number;
  deflate: boolean;
  random: () => number;
}

const ADMIN_TOKEN = 'bench-admin-token-0123456789';
const NAME = 'bench-rollout';
/** /proc/<pid>/stat times are in clock ticks; 100 per second on Linux (sysconf(_SC_CLK_TCK)). */
const CLK_TCK = 100;

export async function rolloutBench(o: RolloutBenchOptions): Promise<void> {
  const canaries = Math.min(o.canaries, o.clusters);
  heading(
    `rollout: ${o.clusters} simulated agents, Progressive maxConcurrency ${o.maxConcurrency}, minSuccessTime 0s, mandatory canary group of ${canaries}, ` +
      `upgrade ${o.upgradeMs} ms ±${Math.round(o.upgradeJitter * 100)} %, heartbeat ${o.heartbeatMs} ms, rollout tick ${o.rolloutTickMs} ms`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'fleetlet-bench-rollout-'));
  const dbPath = join(dir, 'hub.db');
  try {
    // Canaries spread over the fleet, labelled as an operator would (PUT /clusters/:id/labels), seeded directly.
    const stride = canaries > 0 ? Math.max(1, Math.floor(o.clusters / canaries)) : Infinity;
    const isCanary = (i: number): boolean => i % stride === 0 && i / stride < canaries;
    let t = performance.now();
    const agents = await seedClusters(dbPath, o.clusters, () => new Date(), 'sim', (i) => ({ fleet: 'bench', ring: isCanary(i) ? 'canary' : 'main' }));
    line('seeded accepted, labelled clusters', `${o.clusters} in ${ms(performance.now() - t)}`);

    const port = await freePort();
    const hub = await launchHub({ dbPath, port, heartbeatMs: o.heartbeatMs, rolloutTickMs: o.rolloutTickMs });
    const fleet = new SimFleet({
      baseUrl: `ws://127.0.0.1:${port}`,
      agents,
      reportIntervalMs: 60_000,
      batchSize: 1,
      connectConcurrency: o.connectConcurrency,
      deflate: o.deflate,
      backoff: defaultBackoff,
      random: o.random,
      upgrade: { durationMs: o.upgradeMs, jitter: o.upgradeJitter },
    });
    try {
      t = performance.now();
      fleet.start();
      await fleet.awaitWelcomed(o.clusters, Math.max(120_000, o.clusters * 30));
      line('all agents connected (hello → welcome)', `${fleet.welcomedNow} in ${ms(performance.now() - t)}`);
      // Let the connect storm's writes settle before the measured part.
      await sleep(2000);

      const api = async (method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> => {
        const res = await fetch(`${hub.httpUrl}${path}`, {
          method,
          headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });
        return { status: res.status, json: (await res.json()) as unknown };
      };
      const request: RolloutRequestInput = {
        name: NAME,
        description: `bench: edge-addons 2.0.0 on ${o.clusters} simulated clusters`,
        target: {
          kind: 'Release',
          release: {
            name: 'edge-addons',
            version: '2.0.0',
            components: [{ name: 'dns', version: '2.0.0', manifests: [{ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'dns', namespace: 'kube-system' } }] }],
          },
        },
        selector: { matchLabels: { fleet: 'bench' } },
        groups: canaries > 0 ? [{ name: 'canary', mandatory: true, selector: { matchLabels: { ring: 'canary' } } }] : [],
        strategy: { type: 'Progressive', maxConcurrency: o.maxConcurrency, minSuccessTime: '0s' },
      };

      // Peak RSS by sampling /proc from here (no IPC: a busy hub would answer late); CPU per second from /proc/<pid>/stat.
      let peakRss = vmRssBytes(hub.pid) ?? 0;
      const cpuSeconds: number[] = [];
      let lastTicks = cpuTicks(hub.pid);
      let lastSampleAt = performance.now();
      const sampler = setInterval(() => {
        peakRss = Math.max(peakRss, vmRssBytes(hub.pid) ?? 0);
        const now = performance.now();
        if (now - lastSampleAt >= 1000) {
          const ticks = cpuTicks(hub.pid);
          cpuSeconds.push(((ticks - lastTicks) / CLK_TCK / ((now - lastSampleAt) / 1000)) * 100);
          lastTicks = ticks;
          lastSampleAt = now;
        }
      }, 100);

      const before = await hub.stats();
      const simCpuBefore = process.cpuUsage();
      const ackedBefore = fleet.reportsAcked;
      fleet.latencies = [];
      fleet.measuring = true;
      const created = performance.now();
      const post = await api('POST', '/api/v1/rollouts', request);
      const postMs = performance.now() - created;
      if (post.status !== 201) throw new Error(`POST /api/v1/rollouts answered ${post.status}: ${JSON.stringify(post.json).slice(0, 2000)}`);

      // Poll the status every second while upgrades run (each read evaluates every member), then closely once every agent's Succeeded is acknowledged.
      const deadline = created + o.timeoutMs;
      let status = post.json as RolloutView;
      let polls = 0;
      let canaryDoneMs: number | null = null;
      while (status.phase === 'Progressing') {
        if (performance.now() > deadline) {
          // What the hub holds of a few clusters still not Succeeded: their reports and aggregate.
          const all = (await api('GET', `/api/v1/rollouts/${NAME}?clusters=all`)).json as RolloutView;
          for (const c of (all.clusters ?? []).filter((x) => x.status !== 'Succeeded').slice(0, 3)) {
            process.stderr.write(`${JSON.stringify(c)}\n  reports: ${JSON.stringify((await api('GET', `/api/v1/clusters/${c.clusterId}/reports`)).json)}\n  cluster: ${JSON.stringify((await api('GET', `/api/v1/clusters/${c.clusterId}`)).json)}\n`);
          }
          throw new Error(
            `rollout still ${status.phase} after ${ms(performance.now() - created)}: ${JSON.stringify(status.counts)}; agents: ${fleet.upgrading} upgrading, ` +
              `${fleet.upgradesSucceeded} Succeeded written, ${fleet.upgradesAcked} acknowledged, ${fleet.unacked()} reports unacknowledged, ` +
              `hub errors ${fleet.hubErrors} ${JSON.stringify(fleet.hubErrorSamples)}`,
          );
        }
        // Wait up to a second, less once the last Succeeded report is acknowledged.
        for (let waited = 0; waited < 1000 && fleet.upgradesAcked < o.clusters; waited += 20) await sleep(20);
        if (fleet.upgradesAcked >= o.clusters) await sleep(20);
        const got = await api('GET', `/api/v1/rollouts/${NAME}`);
        polls++;
        if (got.status !== 200) throw new Error(`GET /api/v1/rollouts/${NAME} answered ${got.status}: ${JSON.stringify(got.json).slice(0, 2000)}`);
        status = got.json as RolloutView;
        if (canaryDoneMs === null && status.groups[0]?.mandatory && status.groups[0].state === 'Done') canaryDoneMs = performance.now() - created;
      }
      const wallMs = performance.now() - created;
      const after = await hub.stats();
      const simCpu = process.cpuUsage(simCpuBefore);
      // The status is computed at read time; the tick that records the end (endedAt) follows within a debounce or tick interval.
      for (let i = 0; i < 100 && status.phase === 'Succeeded' && status.endedAt === null; i++) {
        await sleep(50);
        status = (await api('GET', `/api/v1/rollouts/${NAME}`)).json as RolloutView;
      }
      fleet.measuring = false;
      clearInterval(sampler);
      peakRss = Math.max(peakRss, vmRssBytes(hub.pid) ?? 0);
      const lat = summarize(fleet.latencies);

      if (status.phase !== 'Succeeded') throw new Error(`rollout ended ${status.phase} (${status.reason}: ${status.message}); counts ${JSON.stringify(status.counts)}`);
      const hubWall = status.endedAt !== null ? Date.parse(status.endedAt) - Date.parse(status.createdAt) : Number.NaN;
      const canaryGroup = status.groups.find((g) => g.mandatory);
      const canaryHub = canaryGroup?.endedAt ? Date.parse(canaryGroup.endedAt) - Date.parse(status.createdAt) : Number.NaN;
      const waves = Math.ceil((o.clusters - canaries) / o.maxConcurrency);
      const ideal = (canaries > 0 ? o.upgradeMs : 0) + waves * o.upgradeMs;
      const cpu = cpuPercent(before, after);
      const elu = (after.eluActiveMs - before.eluActiveMs) / (after.eluActiveMs - before.eluActiveMs + after.eluIdleMs - before.eluIdleMs);
      const busiest = cpuSeconds.length > 0 ? Math.max(...cpuSeconds) : Number.NaN;
      const reports = fleet.reportsAcked - ackedBefore;

      line('POST /api/v1/rollouts (answer)', ms(postMs));
      line('create → Succeeded (client, polling)', `${ms(wallMs)} (${polls} status reads)`);
      line('create → Succeeded (hub createdAt → endedAt)', `${ms(hubWall)} (endedAt: when a tick recorded it)`);
      line('  canary group done (hub / client)', `${ms(canaryHub)} / ${canaryDoneMs === null ? 'n/a' : ms(canaryDoneMs)}`);
      line('  without hub overhead (upgrade × waves)', `~${ms(ideal)} (1 canary wave + ${waves} waves of ${o.maxConcurrency})`);
      line('  throughput after the canaries', `${((o.clusters - canaries) / ((hubWall - canaryHub) / 1000)).toFixed(0)} clusters/s`);
      line('rollout counts', JSON.stringify(status.counts));
      line('agents: releases taken / max upgrading at once', `${fleet.releasesReceived} / ${fleet.maxUpgrading} (unreadable ${fleet.badReleases})`);
      line('reports acknowledged during the rollout', `${reports} (${(reports / (wallMs / 1000)).toFixed(0)} reports/s)`);
      line('report → ack latency p50 / p90 / p99 / max', `${ms(lat.p50)} / ${ms(lat.p90)} / ${ms(lat.p99)} / ${ms(lat.max)} (${lat.n} batches)`);
      line('hub CPU over the rollout (avg / busiest 1 s)', `${cpu.toFixed(0)} % / ${busiest.toFixed(0)} % of one core`);
      line('hub event loop busy over the rollout', `${(elu * 100).toFixed(0)} % (CPU + time blocked in synchronous SQLite commits/fsync)`);
      line('hub RSS before / peak during the rollout', `${mib(before.vmRss)} / ${mib(peakRss)} (sampled every 100 ms)`);
      line('hub RSS high-water mark (process life)', mib(vmHwmBytes(hub.pid) ?? Number.NaN));
      line('hub RSS after', `${mib(after.vmRss)} (heap ${mib(after.heapUsed)})`);
      line('simulator CPU over the rollout', `${(((simCpu.user + simCpu.system) / 1000 / wallMs) * 100).toFixed(0)} % of one core (same machine)`);
      line('agents connected at the end', `${fleet.welcomedNow} (rejected ${fleet.rejected}, socket errors ${fleet.errors}, hub errors ${fleet.hubErrors})`);
    } finally {
      await fleet.stop();
      await hub.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** utime + stime of a process, in clock ticks (Linux); 0 when /proc is unavailable. */
function cpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

function cpuPercent(a: HubStats, b: HubStats): number {
  const cpuUs = b.cpuUserUs + b.cpuSystemUs - (a.cpuUserUs + a.cpuSystemUs);
  return (cpuUs / 1000 / (b.uptimeMs - a.uptimeMs)) * 100;
}
