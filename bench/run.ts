// `npm run bench`: prints figures, asserts nothing. Scale with flags, e.g.
//   npm run bench -- --agents 10000 --only hub
//   npm run bench -- --replay 100000 --only replay
//   npm run bench -- --replay 20000 --only ingest   (the replay on SQLite and on PostgreSQL)
//   npm run bench -- --agents 3000 --replicas 3 --only replicas   (hub replicas on PostgreSQL, one killed)
//   npm run bench -- --agents 1000 --only compare   (one hub on SQLite, one on PostgreSQL, same load)
//   npm run bench -- --clusters 10000 --only rollout   (with `ulimit -n 20000`)
// Benchmarks: hub (capacity, memory per agent, report latency, reconnect
// after a hub restart), replay (outbox drain after a partition), journal
// (transitions/s by durability), agent (bench/agent-footprint.ts: real agent
// processes, bundle and sources side by side: start → Ready, peak RSS through
// a two-stage upgrade, RSS and CPU at rest), soak (bench/agent-soak.ts: RSS
// before and after 200 upgrade attempts and 10,000 report cycles),
// rollout (a Progressive rollout across simulated agents: wall time, hub CPU
// and memory), upgrade (bench/agent-core.ts: release → first apply and the
// agent process's RSS/CPU during an upgrade, on the built-in control plane),
// flood (a junk-frame flooder beside honest agents: their ack latency, hub
// RSS, time to cut the flooder off), register (N agents registering with
// proof of possession: time and hub CPU per phase), dashboard
// (bench/dashboard.ts: each view with 10,000 clusters in headless chromium),
// replicas (bench/hub-replicas.ts: hub replicas on one PostgreSQL, agents
// spread over them as a Service does, report latency, then the driving
// replica killed: agents back, driver lock taken over, reports stored once),
// compare (bench/hub-compare.ts: one hub on SQLite and one on PostgreSQL
// under the same load, side by side).
import { randomInt } from 'node:crypto';
import { parseArgs } from 'node:util';
import { agentFootprintBench, defaultVariants } from './agent-footprint.ts';
import { agentSoakBench } from './agent-soak.ts';
import { hubFloodBench, registrationBench } from './hub-abuse.ts';
import { dashboardBench } from './dashboard.ts';
import { hubCapacityBench } from './hub-capacity.ts';
import { hubCompareBench } from './hub-compare.ts';
import { defaultSimProcesses, hubReplicasBench } from './hub-replicas.ts';
import { outboxReplayBench } from './hub-replay.ts';
import { journalBench } from './journal.ts';
import { rolloutBench } from './rollout.ts';

const all = ['hub', 'replicas', 'compare', 'replay', 'ingest', 'journal', 'agent', 'soak', 'rollout', 'upgrade', 'flood', 'register', 'dashboard'] as const;
type Bench = (typeof all)[number];

const { values } = parseArgs({
  options: {
    agents: { type: 'string', default: '2000' },
    'report-interval-ms': { type: 'string', default: '5000' },
    batch: { type: 'string', default: '2' },
    // Default 10000 for hub, 30000 for rollout (so heartbeats do not dominate the hub's load there).
    'heartbeat-ms': { type: 'string' },
    'measure-ms': { type: 'string', default: '20000' },
    'connect-concurrency': { type: 'string', default: '200' },
    replay: { type: 'string', default: '100000' },
    'journal-ms': { type: 'string', default: '3000' },
    'rest-ms': { type: 'string', default: '60000' },
    starts: { type: 'string', default: '5' },
    attempts: { type: 'string', default: '200' },
    cycles: { type: 'string', default: '10000' },
    'no-deflate': { type: 'boolean', default: false },
    'no-restart': { type: 'boolean', default: false },
    clusters: { type: 'string', default: '2000' },
    'dashboard-clusters': { type: 'string', default: '10000' },
    'dashboard-runs': { type: 'string', default: '10' },
    'max-concurrency': { type: 'string', default: '500' },
    canaries: { type: 'string', default: '10' },
    'upgrade-ms': { type: 'string', default: '200' },
    'upgrade-jitter': { type: 'string', default: '0.5' },
    'rollout-tick-ms': { type: 'string', default: '1000' },
    'rollout-timeout-ms': { type: 'string', default: '900000' },
    'honest-agents': { type: 'string', default: '1000' },
    'flood-rate': { type: 'string', default: '20000' },
    'register-agents': { type: 'string', default: '10000' },
    replicas: { type: 'string', default: '3' },
    // Processes the simulated agents of the replicas and compare benches run in; default: one per 5,000 agents.
    'sim-processes': { type: 'string' },
    only: { type: 'string', multiple: true },
    help: { type: 'boolean', default: false },
  },
});

if (values.help) {
  process.stdout.write(`npm run bench -- [--agents N] [--report-interval-ms MS] [--batch N] [--heartbeat-ms MS] [--measure-ms MS]
                 [--connect-concurrency N] [--no-deflate] [--no-restart] [--replay N] [--journal-ms MS] [--rest-ms MS] [--starts N] [--attempts N] [--cycles N]
                 [--honest-agents N] [--flood-rate N] [--register-agents N] [--replicas N] [--sim-processes N]
                 [--clusters N] [--max-concurrency N] [--canaries N] [--upgrade-ms MS] [--upgrade-jitter F] [--rollout-tick-ms MS] [--rollout-timeout-ms MS]
                 [--dashboard-clusters N] [--dashboard-runs N]
                 [--only ${all.join('|')} ...]\n`);
  process.exit(0);
}

const int = (name: string, v: string | undefined): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new TypeError(`--${name} must be a non-negative integer, got ${v}`);
  return n;
};
const only = new Set<Bench>((values.only ?? all).flatMap((s) => s.split(',')).map((s) => {
  if (!(all as readonly string[]).includes(s)) throw new TypeError(`--only: unknown benchmark "${s}" (known: ${all.join(', ')})`);
  return s as Bench;
}));
const random = () => randomInt(0, 2 ** 31) / 2 ** 31;

process.stdout.write(`fleetlet benchmarks on ${process.platform}/${process.arch}, Node ${process.version}\n`);
if (only.has('journal')) await journalBench({ durationMs: int('journal-ms', values['journal-ms']) });
if (only.has('replay')) await outboxReplayBench({ reports: int('replay', values.replay), random });
// The same replay into a hub on SQLite and into one on PostgreSQL, side by side (docs/hub-ha.md).
// Only when asked for (--only ingest): it starts a PostgreSQL of its own.
if (only.has('ingest') && values.only !== undefined) {
  for (const backend of ['sqlite', 'postgres'] as const) await outboxReplayBench({ reports: int('replay', values.replay), random, backend });
}
/** The simulated agents and their report load: the options the single-hub and the replicas benches share. */
function simulatedFleet() {
  return {
    agents: int('agents', values.agents),
    reportIntervalMs: int('report-interval-ms', values['report-interval-ms']),
    batchSize: Math.max(1, int('batch', values.batch)),
    heartbeatMs: int('heartbeat-ms', values['heartbeat-ms'] ?? '10000'),
    measureMs: int('measure-ms', values['measure-ms']),
    connectConcurrency: Math.max(1, int('connect-concurrency', values['connect-concurrency'])),
  };
}
function simProcesses(): number {
  return values['sim-processes'] !== undefined ? Math.max(1, int('sim-processes', values['sim-processes'])) : defaultSimProcesses(int('agents', values.agents));
}
if (only.has('hub')) {
  await hubCapacityBench({
    ...simulatedFleet(),
    deflate: !values['no-deflate'],
    restart: !values['no-restart'],
    random,
  });
}
// Only when asked for (--only replicas): it starts a PostgreSQL of its own.
if (only.has('replicas') && values.only !== undefined) {
  await hubReplicasBench({
    replicas: Math.max(1, int('replicas', values.replicas)),
    ...simulatedFleet(),
    rolloutTickMs: Math.max(1, int('rollout-tick-ms', values['rollout-tick-ms'])),
    kill: true,
    simProcesses: simProcesses(),
  });
}
// One hub on SQLite, then one on PostgreSQL, under the same simulated load (--only compare): it starts a PostgreSQL of its own.
if (only.has('compare') && values.only !== undefined) {
  await hubCompareBench({ ...simulatedFleet(), simProcesses: simProcesses() });
}
if (only.has('flood')) {
  await hubFloodBench({ honestAgents: Math.max(1, int('honest-agents', values['honest-agents'])), floodRate: Math.max(1, int('flood-rate', values['flood-rate'])), measureMs: int('measure-ms', values['measure-ms']), reportIntervalMs: int('report-interval-ms', values['report-interval-ms']), random });
}
if (only.has('register')) {
  await registrationBench({ agents: Math.max(1, int('register-agents', values['register-agents'])), concurrency: Math.max(1, int('connect-concurrency', values['connect-concurrency'])) });
}
if (only.has('rollout')) {
  const jitter = Number(values['upgrade-jitter']);
  if (!(jitter >= 0 && jitter <= 1)) throw new TypeError(`--upgrade-jitter must be a fraction from 0 to 1, got ${values['upgrade-jitter']}`);
  await rolloutBench({
    clusters: Math.max(1, int('clusters', values.clusters)),
    maxConcurrency: Math.max(1, int('max-concurrency', values['max-concurrency'])),
    canaries: int('canaries', values.canaries),
    upgradeMs: int('upgrade-ms', values['upgrade-ms']),
    upgradeJitter: jitter,
    heartbeatMs: Math.max(1, int('heartbeat-ms', values['heartbeat-ms'] ?? '30000')),
    rolloutTickMs: Math.max(1, int('rollout-tick-ms', values['rollout-tick-ms'])),
    connectConcurrency: Math.max(1, int('connect-concurrency', values['connect-concurrency'])),
    timeoutMs: int('rollout-timeout-ms', values['rollout-timeout-ms']),
    deflate: !values['no-deflate'],
    random,
  });
}
if (only.has('upgrade')) {
  // Its own process: it starts the built-in control plane and spawns the agent CLI.
  const { spawnSync } = await import('node:child_process');
  console.log('== upgrade: release arriving → first apply, and the agent process during an upgrade (real control plane)');
  spawnSync(process.execPath, [new URL('./agent-core.ts', import.meta.url).pathname], { stdio: 'inherit' });
}
if (only.has('agent')) await agentFootprintBench({ restMs: int('rest-ms', values['rest-ms']), starts: Math.max(1, int('starts', values.starts)), variants: await defaultVariants() });
if (only.has('soak')) await agentSoakBench({ attempts: int('attempts', values.attempts), cycles: int('cycles', values.cycles), heartbeatMs: 25, settleMs: 30_000, restMs: 60_000, warmup: 10, variants: [{ name: 'bundle (image)', env: {} }] });
if (only.has('dashboard')) await dashboardBench({ clusters: Math.max(1, int('dashboard-clusters', values['dashboard-clusters'])), runs: Math.max(1, int('dashboard-runs', values['dashboard-runs'])) });
