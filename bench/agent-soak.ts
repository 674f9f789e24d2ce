// Leak check (issue: agent footprint), printed, never asserted: real agent
// processes, the bundle as the image runs it, each driven through
// --attempts upgrade attempts (each a new release revision the hub pushes:
// one ConfigMap changed, a single stage) and at least --cycles report cycles
// (a report cycle: the agent's heartbeat to the hub and the WebSocket ping
// answered; the hub's heartbeat is --heartbeat-ms so the count is reached in
// minutes, not days) while the attempts' own reports (transitions,
// inventory) go through the outbox and are acknowledged. Resident memory is
// read at rest before (after a warm-up) and after (--settle-ms after the
// soak, then again after --rest-ms more at rest: V8's memory reducer shrinks
// the heap of a process that stays idle); a leak shows as growth in both.
// Each variant's compile cache is made before its agent starts (`… agent
// --help`, as the image's build makes it), since Node keys the cache by the
// node flags: a variant with other flags would otherwise parse the bundle.
// With --variant 'name=NAME=value … --node-flag …' more agents run side by
// side in the same run, each its own cluster, the agent's shipped command
// (its Deployment's, scripts/build.ts imageAgentArgv) with those node flags
// added and that environment on top of its own (e.g. a malloc setting); their
// attempts run concurrently, so each variant sees the same load.
// With --probe each agent loads bench/memory-probe.ts and reports where its
// memory is (process.memoryUsage(), V8's heap spaces, resident memory by
// mapping: the C heap, anonymous mappings, the node binary) at rest before
// (right after RSS is read) and after (after the last reading: the probe
// runs a full collection of its own, which would shrink it). No heap snapshot unless a
// variant's FLEETLET_PROBE_DIR names a directory for them: writing one takes
// ~100 MiB of C heap that glibc keeps, which would count as growth.
// Usage: node bench/agent-soak.ts [--attempts 200] [--cycles 10000] [--heartbeat-ms 25] [--settle-ms 30000] [--rest-ms 60000]
//          [--probe] [--variant 'name=NAME=value … --node-flag …'] [--no-defaults]
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { agentEnv, buildBundles, imageAgentArgv } from '../scripts/build.ts';
import { compileProbe } from './agent-footprint.ts';
import { AgentBed, cpuSeconds, loadavg, warmCompileCache, type BenchAgent } from './agent-bed.ts';
import { heading, line, mib, vmRssBytes } from './stats.ts';

export interface SoakVariant {
  name: string;
  /** On top of the environment the agent ships with (scripts/build.ts agentEnv). */
  env: Record<string, string>;
  /** Node/V8 flags after the shipped ones (e.g. --single-threaded), which NODE_OPTIONS may not carry. */
  nodeFlags?: string[];
}

export interface SoakOptions {
  attempts: number;
  cycles: number;
  heartbeatMs: number;
  settleMs: number;
  /** After the reading --settle-ms after the soak, how much longer at rest before the last reading. */
  restMs: number;
  warmup: number;
  probe?: boolean;
  variants: SoakVariant[];
}

/** The image's node argv with `flags` added before the script (the first argument that is not a flag). */
function withFlags(argv: readonly string[], flags: readonly string[]): string[] {
  const at = argv.findIndex((a) => !a.startsWith('-'));
  return [...argv.slice(0, at), ...flags, ...argv.slice(at)];
}

type View = { upgrade?: { status: string; phase: string; release: { revision: number } } };

export async function agentSoakBench(o: SoakOptions): Promise<void> {
  heading(`agent soak: ${o.attempts} upgrade attempts and ≥ ${o.cycles} report cycles (hub heartbeat ${o.heartbeatMs} ms) through each agent process (bundle); ${o.variants.length} side by side`);
  line('load average at start', loadavg());
  await buildBundles();
  const bed = await AgentBed.start({ heartbeatMs: o.heartbeatMs });
  try {
    const probe = o.probe ? ['--import', await compileProbe(bed.dir)] : [];
    const agents: { v: SoakVariant; a: BenchAgent; before: number; after: number; rested: number; cpu: number; acked: number }[] = [];
    for (const [i, v] of o.variants.entries()) {
      const env = { ...agentEnv(), FLEETLET_PROBE_DIR: '', ...v.env };
      const argv = withFlags(imageAgentArgv(), v.nodeFlags ?? []);
      line(`  ${v.name}`, `${Object.entries(env).map(([k, x]) => `${k}=${x} `).join('')}node ${argv.join(' ')}`);
      warmCompileCache(argv, env);
      agents.push({ v, a: await bed.agent(`soak-${i}`, [...probe, ...argv], ['--poll-ms=100'], env), before: 0, after: 0, rested: 0, cpu: 0, acked: 0 });
    }
    // The probe answers SIGUSR2 on the agent's stderr (inherited: this process's stderr).
    const report = async () => {
      if (!o.probe) return;
      for (const x of agents) {
        process.stderr.write(`${x.v.name}: `);
        x.a.child!.kill('SIGUSR2');
        await sleep(5_000);
      }
    };
    for (const x of agents) await x.a.start();
    for (const x of agents) await x.a.accept();
    const upgrade = async (id: string, n: number) => {
      const version = `1.${n}.0`;
      const { revision } = await bed.api<{ revision: number }>('PUT', `/api/v1/clusters/${id}/release`, {
        name: 'soak',
        version,
        components: [{ name: 'settings', version, stage: 0, health: { progressDeadlineSeconds: 30 }, manifests: [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'soak-settings' }, data: { version, padding: 'x'.repeat(2048) } }] }],
      });
      for (;;) {
        const v = await bed.api<View>('GET', `/api/v1/clusters/${id}`);
        if (v.upgrade?.release.revision === revision && v.upgrade.status !== 'InProgress') {
          if (v.upgrade.status !== 'Succeeded') throw new Error(`${id}: attempt for revision ${revision} ended ${v.upgrade.phase}`);
          return;
        }
        await sleep(20);
      }
    };
    const each = (from: number, to: number) => Promise.all(agents.map(async (x) => {
      for (let n = from; n <= to; n++) await upgrade(x.a.id, n);
    }));
    await each(1, o.warmup);
    await sleep(o.settleMs);
    for (const x of agents) x.before = vmRssBytes(x.a.pid) ?? 0;
    await report();
    const cpu0 = agents.map((x) => cpuSeconds(x.a.pid));
    const t0 = performance.now();
    await each(o.warmup + 1, o.warmup + o.attempts);
    const attemptsS = (performance.now() - t0) / 1000;
    // The rest of the report cycles, if the attempts took less time than they need.
    const cyclesMs = o.cycles * o.heartbeatMs;
    while (performance.now() - t0 < cyclesMs) await sleep(Math.min(1000, cyclesMs - (performance.now() - t0)));
    const soakS = (performance.now() - t0) / 1000;
    for (const [i, x] of agents.entries()) {
      x.cpu = cpuSeconds(x.a.pid) - cpu0[i]!;
      x.acked = (await bed.api<{ ackedSeq: number }>('GET', `/api/v1/clusters/${x.a.id}/reports?limit=1`)).ackedSeq;
    }
    await sleep(o.settleMs);
    for (const x of agents) x.after = vmRssBytes(x.a.pid) ?? 0;
    await sleep(o.restMs);
    for (const x of agents) x.rested = vmRssBytes(x.a.pid) ?? 0;
    // After both readings: the probe runs a full collection of its own, which would shrink the second.
    await report();
    line('upgrade attempts (all Succeeded)', `${o.attempts} per agent in ${attemptsS.toFixed(0)} s (after ${o.warmup} warm-up attempts)`);
    line('report cycles', `≥ ${Math.floor((soakS * 1000) / o.heartbeatMs)} heartbeats per agent in ${soakS.toFixed(0)} s`);
    const row = (label: string, f: (x: (typeof agents)[number]) => string) => line(label, agents.map((x) => f(x).padEnd(26)).join(''));
    row('', (x) => x.v.name);
    row('reports acknowledged', (x) => String(x.acked));
    row(`RSS at rest before (${(o.settleMs / 1000).toFixed(0)} s after the warm-up)`, (x) => mib(x.before));
    const growth = (b: number) => (b >= 0 ? '+' : '−') + mib(Math.abs(b));
    row(`RSS at rest after (${(o.settleMs / 1000).toFixed(0)} s after the soak)`, (x) => `${mib(x.after)} (${growth(x.after - x.before)})`);
    row(`RSS at rest after ${((o.settleMs + o.restMs) / 1000).toFixed(0)} s (${(o.restMs / 1000).toFixed(0)} s more)`, (x) => `${mib(x.rested)} (${growth(x.rested - x.before)})`);
    row('agent CPU during the soak', (x) => `${x.cpu.toFixed(1)} s (${((x.cpu / soakS) * 100).toFixed(1)} %)`);
    line('load average at end', loadavg());
  } finally {
    await bed.close();
  }
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { attempts: { type: 'string', default: '200' }, cycles: { type: 'string', default: '10000' }, 'heartbeat-ms': { type: 'string', default: '25' }, 'settle-ms': { type: 'string', default: '30000' }, 'rest-ms': { type: 'string', default: '60000' }, warmup: { type: 'string', default: '10' }, probe: { type: 'boolean', default: false }, variant: { type: 'string', multiple: true }, 'no-defaults': { type: 'boolean', default: false } } });
  const extra = (values.variant ?? []).map((spec): SoakVariant => {
    const eq = spec.indexOf('=');
    if (eq < 1) throw new TypeError(`--variant "${spec}": expected name=NAME=value …`);
    const env: Record<string, string> = {};
    const nodeFlags: string[] = [];
    for (const pair of spec.slice(eq + 1).split(/\s+/).filter(Boolean)) {
      if (pair.startsWith('--')) {
        nodeFlags.push(pair);
        continue;
      }
      const at = pair.indexOf('=');
      if (at < 1) throw new TypeError(`--variant "${spec}": "${pair}" is not NAME=value`);
      env[pair.slice(0, at)] = pair.slice(at + 1);
    }
    return { name: spec.slice(0, eq), env, nodeFlags };
  });
  await agentSoakBench({
    attempts: Number(values.attempts),
    cycles: Number(values.cycles),
    heartbeatMs: Number(values['heartbeat-ms']),
    settleMs: Number(values['settle-ms']),
    restMs: Number(values['rest-ms']),
    warmup: Number(values.warmup),
    probe: values.probe,
    variants: [...(values['no-defaults'] ? [] : [{ name: 'bundle (image)', env: {} }]), ...extra],
  });
}
