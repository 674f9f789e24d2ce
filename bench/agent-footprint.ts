// The agent's footprint as users run it (issue: agent footprint), printed,
// never asserted. Real `fleetlet agent` processes, each its own cluster on
// the built-in control plane, connected to one hub, side by side in the same
// run: the production bundle exactly as the image starts it (the
// Dockerfile's ENTRYPOINT, scripts/build.ts imageAgentArgv) and the
// TypeScript sources (`node bin/fleetlet.ts agent`, how the image ran before
// the bundle), plus any --variant given. Per variant:
//   start → Ready   spawn until /readyz answers 200 (median of --starts runs)
//   peak RSS        through a two-stage upgrade that a rollout sends (VmHWM
//                   reset right before it, and 50 ms samples)
//   RSS at rest     after --rest-ms (60 s) with nothing to do
//   CPU at rest     process CPU time (utime + stime) over those --rest-ms,
//                   so other load on the machine does not inflate it
// The machine's load average is printed at the start and the end: CPU time
// is robust to load, start → Ready is not.
// Usage: node bench/agent-footprint.ts [--rest-ms 60000] [--starts 5]
//          [--variant 'name=[ENV=value…] node args… (the agent script path last)'] [--no-defaults] [--probe]
import { build } from 'esbuild';
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { agentEnv, buildBundles, imageAgentArgv, root } from '../scripts/build.ts';
import { addonsRelease, asReleaseRequest, type AddonVersions } from '../src/testbed/sample-releases.ts';
import { summarizeHeap } from './heap-summary.ts';
import { AgentBed, cpuSeconds, loadavg, warmCompileCache, type BenchAgent } from './agent-bed.ts';
import { heading, line, vmHwmBytes, vmRssBytes } from './stats.ts';

export interface Variant {
  name: string;
  /** node's arguments up to and including the script (the agent's flags follow). */
  node: string[];
  /** Environment variables for the agent process (the image's ENV for the bundle). */
  env?: Record<string, string>;
}

export interface FootprintOptions {
  restMs: number;
  starts: number;
  variants: Variant[];
  /** Where memory goes: each agent loads bench/memory-probe.ts; at the end of the rest it reports and writes a heap snapshot, summarised here. */
  probe?: boolean;
}

/** The bundle as the image runs it and the sources; builds dist/ first. */
export async function defaultVariants(): Promise<Variant[]> {
  await buildBundles();
  return [
    { name: 'bundle (image)', node: imageAgentArgv(), env: agentEnv() },
    { name: 'sources', node: [join(root, 'bin/fleetlet.ts'), 'agent'] },
  ];
}

const mibText = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** bench/memory-probe.ts as plain JavaScript in `dir`, for `node --import`. */
export async function compileProbe(dir: string): Promise<string> {
  const outfile = join(dir, 'memory-probe.mjs');
  await build({ entryPoints: [join(root, 'bench/memory-probe.ts')], outfile, bundle: false, platform: 'node', format: 'esm', logLevel: 'warning' });
  return outfile;
}

/** Sends `version` of the two-stage sample release to `ids` through a rollout (strategy All) and waits for it to succeed. */
export async function rollout(bed: AgentBed, ids: string[], name: string, version: string, v: AddonVersions): Promise<void> {
  const release = { ...asReleaseRequest(addonsRelease(undefined, 1, v)), version };
  await bed.api('POST', '/api/v1/rollouts', { name, selector: { clusterIds: ids }, strategy: { type: 'All', progressDeadline: '5m' }, target: { kind: 'Release', release } });
  for (;;) {
    const r = await bed.api<{ phase: string; counts: Record<string, number> }>('GET', `/api/v1/rollouts/${name}`);
    if (r.phase === 'Succeeded') return;
    if (r.phase !== 'Progressing') throw new Error(`rollout ${name} ended ${r.phase}: ${JSON.stringify(r.counts)}`);
    await sleep(50);
  }
}

export async function agentFootprintBench(o: FootprintOptions): Promise<void> {
  heading(`agent footprint: real agent processes, one hub, rollouts of a two-stage release; ${o.variants.length} variants side by side`);
  line('machine', `${cpus().length} CPUs, load average at start ${loadavg()}`);
  const bed = await AgentBed.start({ heartbeatMs: 10_000 });
  try {
    const agents: { v: Variant; a: BenchAgent; startToReadyMs: number[]; peak: number; restRss: number; restCpu: number }[] = [];
    // The probe goes in as plain JavaScript: a .ts file would make Node load its TypeScript stripper (megabytes of WebAssembly) into the agent.
    const probe = o.probe ? ['--import', await compileProbe(bed.dir)] : [];
    // Each variant's compile cache made first, as the image ships the agent's (the sources have none).
    for (const v of o.variants) if (v.env?.NODE_COMPILE_CACHE) warmCompileCache(v.node, v.env);
    for (const [i, v] of o.variants.entries()) agents.push({ v, a: await bed.agent(`footprint-${i}`, [...probe, ...v.node], [], v.env), startToReadyMs: [], peak: 0, restRss: 0, restCpu: 0 });
    // Start → Ready: one process at a time (they would compete for the CPUs), variants alternating.
    for (let r = 0; r < o.starts; r++) {
      for (const x of agents) {
        x.startToReadyMs.push(await x.a.start());
        await x.a.stop();
      }
    }
    // The long-running agents: registered, then release 1.0.0 through a rollout.
    for (const x of agents) await x.a.start();
    for (const x of agents) await x.a.accept();
    const ids = agents.map((x) => x.a.id);
    await rollout(bed, ids, 'footprint-1-0', '1.0.0', { dns: '1.0.0', proxy: '1.0.0', metrics: '1.0.0' });
    await sleep(2_000);
    // The two-stage upgrade: the kernel's high-water mark, reset right before it, and 50 ms samples.
    for (const x of agents) {
      writeFileSync(`/proc/${x.a.pid}/clear_refs`, '5');
      x.peak = vmRssBytes(x.a.pid) ?? 0;
    }
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        for (const x of agents) x.peak = Math.max(x.peak, vmRssBytes(x.a.pid) ?? 0);
        await sleep(50);
      }
    })();
    await rollout(bed, ids, 'footprint-2-0', '2.0.0', { dns: '2.0.0', proxy: '2.0.0', metrics: '2.0.0' });
    sampling = false;
    await sampler;
    for (const x of agents) x.peak = Math.max(x.peak, vmHwmBytes(x.a.pid) ?? 0);
    // At rest: connected, nothing to do.
    const t0 = performance.now();
    const cpu0 = agents.map((x) => cpuSeconds(x.a.pid));
    await sleep(o.restMs);
    const secs = (performance.now() - t0) / 1000;
    agents.forEach((x, i) => {
      x.restRss = vmRssBytes(x.a.pid) ?? 0;
      x.restCpu = ((cpuSeconds(x.a.pid) - cpu0[i]!) / secs) * 100;
    });

    const row = (label: string, f: (x: (typeof agents)[number]) => string) => line(label, agents.map((x) => f(x).padEnd(20)).join(''));
    row('', (x) => x.v.name);
    row(`start → Ready (median of ${o.starts}; min–max)`, (x) => `${median(x.startToReadyMs).toFixed(0)} ms (${Math.min(...x.startToReadyMs).toFixed(0)}–${Math.max(...x.startToReadyMs).toFixed(0)})`);
    row('peak RSS through a two-stage upgrade', (x) => mibText(x.peak));
    row(`RSS after ${(o.restMs / 1000).toFixed(0)} s at rest`, (x) => mibText(x.restRss));
    row(`CPU over those ${(o.restMs / 1000).toFixed(0)} s (process CPU time)`, (x) => `${x.restCpu.toFixed(2)} % of a core`);
    for (const x of agents) line(`  ${x.v.name}`, `${Object.entries(x.v.env ?? {}).map(([k, v]) => `${k}=${v} `).join('')}node ${x.v.node.map((a) => a.replace(root, '')).join(' ')}`);
    line('load average at end', loadavg());
    if (o.probe) {
      for (const x of agents) {
        x.a.child!.kill('SIGUSR2');
        const snapshot = join(bed.dir, `agent-${x.a.pid}.heapsnapshot`);
        // Written synchronously by the agent, but slowly on a busy machine: read it once it parses.
        for (let tries = 0; ; tries++) {
          await sleep(2_000);
          try {
            process.stdout.write(`  ${x.v.name}:\n${summarizeHeap(snapshot)}\n`);
            break;
          } catch (err) {
            if (tries > 60) throw err;
          }
        }
      }
    }
  } finally {
    await bed.close();
  }
}

if (import.meta.main) {
  await buildBundles();
  const { values } = parseArgs({ options: { 'rest-ms': { type: 'string', default: '60000' }, starts: { type: 'string', default: '5' }, variant: { type: 'string', multiple: true }, 'no-defaults': { type: 'boolean', default: false }, probe: { type: 'boolean', default: false } } });
  const extra = (values.variant ?? []).map((spec): Variant => {
    const eq = spec.indexOf('=');
    if (eq < 1) throw new TypeError(`--variant "${spec}": expected name=node args`);
    const words = spec.slice(eq + 1).split(/\s+/).filter(Boolean);
    // Leading NAME=value words are the process's environment, as in a shell.
    const env: Record<string, string> = {};
    while (words[0] && /^[A-Z_][A-Z0-9_]*=/.test(words[0])) {
      const w = words.shift()!;
      env[w.slice(0, w.indexOf('='))] = w.slice(w.indexOf('=') + 1);
    }
    const args = words.map((a) => (a.startsWith('dist/') || a.startsWith('bin/') ? join(root, a) : a));
    return { name: spec.slice(0, eq), node: args, env };
  });
  await agentFootprintBench({ restMs: Number(values['rest-ms']), starts: Number(values.starts), variants: [...(values['no-defaults'] ? [] : await defaultVariants()), ...extra], probe: values.probe });
}
