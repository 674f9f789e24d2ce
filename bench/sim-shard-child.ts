// Entry of one simulated-agent shard (sim-shards.ts): a SimFleet over a
// slice of the agents, alone in its process so that its sockets count
// against its own open-file limit and its work runs on whichever core is
// free. Driven over IPC; it pushes how many of its agents are welcomed
// whenever that changes (at most every 25 ms), so the parent can time a
// failover across shards.
import { randomInt } from 'node:crypto';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { importAgentKeyPem } from '../src/protocol/agent-identity.ts';
import { SimFleet } from './sim-agent.ts';
import type { ShardReply, ShardRequest, ShardConfig } from './sim-shards.ts';
import { vmRssBytes } from './stats.ts';

// After the parent let go (stop), a count push still due has nowhere to go.
const reply = (m: ShardReply): void => void (process.connected && process.send?.(m));
const random = (): number => randomInt(0, 2 ** 31) / 2 ** 31;
let fleet: SimFleet | undefined;
let pushTimer: NodeJS.Timeout | undefined;
// A shard whose loop runs late reads acks late: its latencies would measure the simulator, not the hub.
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();

function pushCount(): void {
  if (pushTimer !== undefined) return;
  pushTimer = setTimeout(() => {
    pushTimer = undefined;
    if (fleet) reply({ type: 'count', welcomedNow: fleet.welcomedNow, connectedByUrl: [...fleet.connectedByUrl] });
  }, 25);
}

function init(c: ShardConfig): void {
  fleet = new SimFleet({
    ...c.fleet,
    agents: c.agents.map((a) => ({ clusterId: a.clusterId, key: importAgentKeyPem(a.keyPem) })),
    random,
  });
  fleet.on('welcome', pushCount);
  fleet.on('closed', pushCount);
  reply({ type: 'ready' });
}

process.on('message', (m: ShardRequest) => {
  const f = fleet;
  if (m.type === 'init') return init(m.config);
  if (f === undefined) return;
  switch (m.type) {
    case 'start':
      f.start();
      return;
    case 'reporting':
      f.setReporting(m.on);
      return;
    case 'measure':
      if (m.on) f.latencies = [];
      f.measuring = m.on;
      if (!m.on) reply({ type: 'latencies', values: f.latencies });
      return;
    case 'stats': {
      const cpu = process.cpuUsage();
      reply({
        type: 'stats',
        welcomedNow: f.welcomedNow,
        connectedByUrl: [...f.connectedByUrl],
        welcomes: f.welcomes,
        rejected: f.rejected,
        errors: f.errors,
        errorCodes: Object.fromEntries(f.errorCodes),
        hubErrors: f.hubErrors,
        hubErrorSamples: f.hubErrorSamples,
        reportsSent: f.reportsSent,
        reportsAcked: f.reportsAcked,
        reportsWritten: f.reportsWritten(),
        unacked: f.unacked(),
        vmRss: vmRssBytes() ?? process.memoryUsage().rss,
        cpuUs: cpu.user + cpu.system,
        shards: [{ pid: process.pid, cpuUs: cpu.user + cpu.system, loopDelayP99Ms: loopDelay.percentile(99) / 1e6, loopDelayMaxMs: loopDelay.max / 1e6 }],
      });
      loopDelay.reset();
      return;
    }
    case 'stop':
      clearTimeout(pushTimer);
      void f.stop().then(() => {
        clearTimeout(pushTimer);
        reply({ type: 'stopped' });
        process.disconnect();
      });
      return;
  }
});
