// Entry of the hub benchmarks' child process: one reference hub, alone in
// its process so its memory and CPU are measured without the simulated
// agents'. Driven over IPC by hub-process.ts.
import { readdirSync } from 'node:fs';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { startHub, type HubRuntimeStats, type RunningHub } from '../src/hub/start-hub.ts';
import { generateReleaseKey, importPrivateKeyPem } from '../src/protocol/signing.ts';
import { BENCH_ADMIN_TOKEN } from './hub-process.ts';
import { vmRssBytes } from './stats.ts';

export interface HubChildConfig {
  dbPath: string;
  /** A PostgreSQL URL: the hub keeps its state there instead of dbPath (several replicas may share it). */
  database?: string;
  /** The release key (PKCS#8 PEM), when several replicas must sign alike; a fresh one otherwise. */
  releaseKeyPem?: string;
  port: number;
  heartbeatMs: number;
  /** The hub's steady rollout tick (start-hub.ts rolloutTickMs); the hub's default when absent. */
  rolloutTickMs?: number;
  /** startHub's maxPendingRegistrations (the registration benchmark registers more than the default at once). */
  maxPendingRegistrations?: number;
}

/** `gc`: a full garbage collection first (the child runs with --expose-gc), so heapUsed is what is retained, not what awaits collection. */
export type HubChildRequest = { type: 'stats'; gc?: boolean } | { type: 'stop' };
export type HubChildReply =
  | { type: 'ready'; port: number; url: string; httpUrl: string }
  | {
      type: 'stats';
      vmRss: number;
      heapUsed: number;
      heapTotal: number;
      external: number;
      arrayBuffers: number;
      cpuUserUs: number;
      cpuSystemUs: number;
      openFds: number;
      uptimeMs: number;
      eluActiveMs: number;
      eluIdleMs: number;
      /** Event-loop delay since the previous stats request: p99 and max, ms. */
      loopDelayP99Ms: number;
      loopDelayMaxMs: number;
      /** The hub's group commits and database pool (start-hub.ts stats()). */
      runtime: HubRuntimeStats | undefined;
    }
  | { type: 'stopped' }
  | { type: 'failed'; message: string };

const config = JSON.parse(process.env.FLEETLET_BENCH_HUB ?? '{}') as HubChildConfig;
const reply = (m: HubChildReply): void => void process.send?.(m);
const started = Date.now();
let hub: RunningHub | undefined;
// How late the event loop runs its callbacks: a replica whose loop is late answers late whatever its database does.
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();

process.on('message', (m: HubChildRequest) => {
  if (m.type === 'stats') {
    if (m.gc) (globalThis as { gc?: () => void }).gc?.();
    const mem = process.memoryUsage();
    const cpu = process.cpuUsage();
    // Cumulative event-loop busy/idle time: busy includes time blocked in synchronous calls (SQLite commits and their fsync), which CPU time does not.
    const elu = performance.eventLoopUtilization();
    reply({
      type: 'stats',
      vmRss: vmRssBytes() ?? mem.rss,
      heapUsed: mem.heapUsed,
      heapTotal: mem.heapTotal,
      external: mem.external,
      arrayBuffers: mem.arrayBuffers,
      cpuUserUs: cpu.user,
      cpuSystemUs: cpu.system,
      openFds: readdirSync('/proc/self/fd').length,
      uptimeMs: Date.now() - started,
      eluActiveMs: elu.active,
      eluIdleMs: elu.idle,
      loopDelayP99Ms: loopDelay.percentile(99) / 1e6,
      loopDelayMaxMs: loopDelay.max / 1e6,
      runtime: hub?.stats(),
    });
    loopDelay.reset();
  } else if (m.type === 'stop') {
    void (async () => {
      await hub?.close();
      reply({ type: 'stopped' });
      process.disconnect();
    })();
  }
});

try {
  hub = await startHub({
    port: config.port,
    dbPath: config.dbPath,
    database: config.database,
    releaseKey: config.releaseKeyPem !== undefined ? importPrivateKeyPem(config.releaseKeyPem) : generateReleaseKey().privateKey,
    adminToken: BENCH_ADMIN_TOKEN,
    bootstrapTokens: ['bench-bootstrap-token-0123456789abcdefghijklmnop'],
    heartbeatMs: config.heartbeatMs,
    ...(config.rolloutTickMs !== undefined ? { rolloutTickMs: config.rolloutTickMs } : {}),
    ...(config.maxPendingRegistrations !== undefined ? { maxPendingRegistrations: config.maxPendingRegistrations } : {}),
    // The benchmarks drive the API from one address far harder than an operator would (10,000 accepts).
    apiRateLimits: { perSecond: 1e9, burst: 1e9 },
    now: () => new Date(),
    logger: pino({ level: process.env.FLEETLET_BENCH_LOG ?? 'silent' }),
  });
  reply({ type: 'ready', port: hub.port, url: hub.url, httpUrl: hub.httpUrl });
} catch (err) {
  reply({ type: 'failed', message: (err as Error).message });
  process.exitCode = 1;
  process.disconnect();
}
