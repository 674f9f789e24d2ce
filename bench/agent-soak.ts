// Leak check (issue: agent footprint), printed, never asserted: one real
// agent process, the bundle as the image runs it, driven through
// --attempts upgrade attempts (each a new release revision the hub pushes:
// one ConfigMap changed, a single stage) and at least --cycles report cycles
// (a report cycle: the agent's heartbeat to the hub and the WebSocket ping
// answered; the hub's heartbeat is --heartbeat-ms so the count is reached in
// minutes, not days) while the attempts' own reports (transitions,
// inventory) go through the outbox and are acknowledged. Resident memory is
// read at rest before (after a warm-up) and after; a leak shows as growth.
// Usage: node bench/agent-soak.ts [--attempts 200] [--cycles 10000] [--heartbeat-ms 25] [--settle-ms 30000]
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { buildBundles, imageAgentArgv } from '../scripts/build.ts';
import { AgentBed, cpuSeconds, loadavg } from './agent-bed.ts';
import { heading, line, mib, vmRssBytes } from './stats.ts';

export interface SoakOptions {
  attempts: number;
  cycles: number;
  heartbeatMs: number;
  settleMs: number;
  warmup: number;
}

type View = { upgrade?: { status: string; phase: string; release: { revision: number } } };

export async function agentSoakBench(o: SoakOptions): Promise<void> {
  heading(`agent soak: ${o.attempts} upgrade attempts and ≥ ${o.cycles} report cycles (hub heartbeat ${o.heartbeatMs} ms) through one agent process (bundle)`);
  await buildBundles();
  const bed = await AgentBed.start({ heartbeatMs: o.heartbeatMs });
  try {
    const agent = await bed.agent('soak', imageAgentArgv(), ['--poll-ms=100']);
    await agent.start();
    await agent.accept();
    let revision = 0;
    const upgrade = async (n: number) => {
      const version = `1.${n}.0`;
      const res = await bed.api<{ revision: number }>('PUT', `/api/v1/clusters/${agent.id}/release`, {
        name: 'soak',
        version,
        components: [{ name: 'settings', version, stage: 0, health: { progressDeadlineSeconds: 30 }, manifests: [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'soak-settings' }, data: { version, padding: 'x'.repeat(2048) } }] }],
      });
      revision = res.revision;
      for (;;) {
        const v = await bed.api<View>('GET', `/api/v1/clusters/${agent.id}`);
        if (v.upgrade?.release.revision === revision && v.upgrade.status !== 'InProgress') {
          if (v.upgrade.status !== 'Succeeded') throw new Error(`attempt for revision ${revision} ended ${v.upgrade.phase}`);
          return;
        }
        await sleep(20);
      }
    };
    for (let n = 1; n <= o.warmup; n++) await upgrade(n);
    await sleep(o.settleMs);
    const before = vmRssBytes(agent.pid) ?? 0;
    const cpu0 = cpuSeconds(agent.pid);
    const t0 = performance.now();
    for (let n = 1; n <= o.attempts; n++) await upgrade(o.warmup + n);
    const attemptsS = (performance.now() - t0) / 1000;
    // The rest of the report cycles, if the attempts took less time than they need.
    const cyclesMs = o.cycles * o.heartbeatMs;
    while (performance.now() - t0 < cyclesMs) await sleep(Math.min(1000, cyclesMs - (performance.now() - t0)));
    const soakS = (performance.now() - t0) / 1000;
    const reports = await bed.api<{ ackedSeq: number }>('GET', `/api/v1/clusters/${agent.id}/reports?limit=1`);
    const cpu = cpuSeconds(agent.pid) - cpu0;
    await sleep(o.settleMs);
    const after = vmRssBytes(agent.pid) ?? 0;
    line('upgrade attempts (all Succeeded)', `${o.attempts} in ${attemptsS.toFixed(0)} s (after ${o.warmup} warm-up attempts)`);
    line('report cycles', `≥ ${Math.floor((soakS * 1000) / o.heartbeatMs)} heartbeats in ${soakS.toFixed(0)} s; ${reports.ackedSeq} reports acknowledged in all`);
    line(`RSS at rest before (${(o.settleMs / 1000).toFixed(0)} s after the warm-up)`, mib(before));
    line(`RSS at rest after (${(o.settleMs / 1000).toFixed(0)} s after the soak)`, `${mib(after)} (${after >= before ? '+' : '−'}${mib(Math.abs(after - before))})`);
    line('agent CPU during the soak', `${cpu.toFixed(1)} s (${((cpu / soakS) * 100).toFixed(1)} % of a core)`);
    line('load average at end', loadavg());
  } finally {
    await bed.close();
  }
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { attempts: { type: 'string', default: '200' }, cycles: { type: 'string', default: '10000' }, 'heartbeat-ms': { type: 'string', default: '25' }, 'settle-ms': { type: 'string', default: '30000' }, warmup: { type: 'string', default: '10' } } });
  await agentSoakBench({ attempts: Number(values.attempts), cycles: Number(values.cycles), heartbeatMs: Number(values['heartbeat-ms']), settleMs: Number(values['settle-ms']), warmup: Number(values.warmup) });
}
