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
//          [--variant 'name=node args… (the agent script path last)'] [--no-defaults]
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { pino } from 'pino';
import { buildBundles, imageAgentArgv, root } from '../scripts/build.ts';
import { startHub } from '../src/hub/start-hub.ts';
import { exportPublicKeyPem, generateReleaseKey } from '../src/protocol/signing.ts';
import { startControlPlane } from '../src/testbed/control-plane.ts';
import { addonsRelease, asReleaseRequest, type AddonVersions } from '../src/testbed/sample-releases.ts';
import { heading, line, vmHwmBytes, vmRssBytes } from './stats.ts';

export interface Variant {
  name: string;
  /** node's arguments up to and including the script (the agent's flags follow). */
  node: string[];
}

export interface FootprintOptions {
  restMs: number;
  starts: number;
  variants: Variant[];
}

export const defaultVariants = (): Variant[] => [
  { name: 'bundle (image)', node: imageAgentArgv() },
  { name: 'sources', node: [join(root, 'bin/fleetlet.ts'), 'agent'] },
];

const ADMIN = 'bench-admin-token-0123456789';
const BOOTSTRAP = 'bench-bootstrap-token';
const HZ = 100; // USER_HZ: /proc/<pid>/stat counts CPU time in these ticks

interface Figures {
  startToReadyMs: number[];
  peakUpgradeBytes: number;
  restRssBytes: number;
  restCpuPercent: number;
}

const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const cpuTicks = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(stat[11]) + Number(stat[12]);
};
const mibText = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;

async function freePort(): Promise<number> {
  const srv = createServer().listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  srv.close();
  return port;
}

export async function agentFootprintBench(o: FootprintOptions): Promise<void> {
  heading(`agent footprint: real agent processes, one hub, rollouts to a two-stage release; ${o.variants.length} variants side by side`);
  line('machine', `${cpus().length} CPUs, load average at start ${loadavg()}`);
  buildBundles();
  const dir = mkdtempSync(join(tmpdir(), 'fleetlet-bench-footprint-'));
  const cp = await startControlPlane({ nodes: 1 });
  const keys = generateReleaseKey();
  writeFileSync(join(dir, 'release.pub.pem'), exportPublicKeyPem(keys.publicKey));
  const hub = await startHub({ port: 0, dbPath: join(dir, 'hub.db'), releaseKey: keys.privateKey, adminToken: ADMIN, bootstrapTokens: [BOOTSTRAP], heartbeatMs: 10_000, rolloutTickMs: 200, now: () => new Date(), logger: pino({ level: 'silent' }) });
  const api = async <T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${hub.httpUrl}${path}`, { method, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
    const json = (await res.json()) as T;
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(cp.kubeconfigPath);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const children: ChildProcess[] = [];
  try {
    const agents = await Promise.all(
      o.variants.map(async (v, i) => {
        const id = `footprint-${i}`;
        for (const ns of [`${id}-sys`, `${id}-app`]) await core.createNamespace({ body: { metadata: { name: ns } } });
        const port = await freePort();
        const argv = [
          ...v.node,
          `--cluster-id=${id}`,
          `--journal=${join(dir, `${id}.db`)}`,
          `--kubeconfig=${cp.kubeconfigPath}`,
          `--release-key=${join(dir, 'release.pub.pem')}`,
          `--hub=${hub.url}`,
          `--bootstrap-token=${BOOTSTRAP}`,
          `--namespace=${id}-sys`,
          `--target-namespace=${id}-app`,
          // As in a cluster: the manifests' agent elects a leader and serves probes and metrics.
          '--leader-elect',
          `--identity=${id}`,
          `--http-addr=127.0.0.1:${port}`,
        ];
        return { v, id, port, argv, figures: { startToReadyMs: [] } as unknown as Figures, child: undefined as ChildProcess | undefined };
      }),
    );
    const start = (a: (typeof agents)[number]) => {
      const child = spawn(process.execPath, a.argv, { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, LOG_LEVEL: 'warn' } });
      children.push(child);
      return child;
    };
    const untilReady = async (port: number, child: ChildProcess, t0: number) => {
      for (;;) {
        if (child.exitCode !== null) throw new Error(`agent exited with ${child.exitCode} before it was Ready`);
        const ok = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false);
        if (ok) return performance.now() - t0;
        await sleep(10);
      }
    };
    // Start → Ready: one variant at a time (they would compete for the CPUs), alternating.
    for (let r = 0; r < o.starts; r++) {
      for (const a of agents) {
        const t0 = performance.now();
        const child = start(a);
        a.figures.startToReadyMs.push(await untilReady(a.port, child, t0));
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        await exited;
      }
    }
    // The long-running agents: register, take release 1.0.0 through a rollout.
    for (const a of agents) {
      a.child = start(a);
      await untilReady(a.port, a.child, performance.now());
    }
    for (const a of agents) {
      while ((await api<{ registration?: string }>('GET', `/api/v1/clusters/${a.id}`).catch(() => ({}) as { registration?: string })).registration !== 'Pending') await sleep(100);
      await api('POST', `/api/v1/clusters/${a.id}/accept`);
    }
    const rollout = async (name: string, version: string, v: AddonVersions) => {
      const release = { ...asReleaseRequest(addonsRelease(undefined, 1, v)), version };
      await api('POST', '/api/v1/rollouts', { name, selector: { clusterIds: agents.map((a) => a.id) }, strategy: { type: 'All', progressDeadline: '5m' }, target: { kind: 'Release', release } });
      for (;;) {
        const r = await api<{ phase: string; counts: Record<string, number> }>('GET', `/api/v1/rollouts/${name}`);
        if (r.phase === 'Succeeded') return;
        if (r.phase !== 'Progressing') throw new Error(`rollout ${name} ended ${r.phase}: ${JSON.stringify(r.counts)}`);
        await sleep(50);
      }
    };
    await rollout('footprint-1-0', '1.0.0', { dns: '1.0.0', proxy: '1.0.0', metrics: '1.0.0' });
    await sleep(2_000);
    // The two-stage upgrade: the peak since a reset of the kernel's high-water mark, and samples.
    const peaks = agents.map((a) => {
      writeFileSync(`/proc/${a.child!.pid}/clear_refs`, '5');
      return vmRssBytes(a.child!.pid!) ?? 0;
    });
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        agents.forEach((a, i) => (peaks[i] = Math.max(peaks[i]!, vmRssBytes(a.child!.pid!) ?? 0)));
        await sleep(50);
      }
    })();
    await rollout('footprint-2-0', '2.0.0', { dns: '2.0.0', proxy: '2.0.0', metrics: '2.0.0' });
    sampling = false;
    await sampler;
    agents.forEach((a, i) => (a.figures.peakUpgradeBytes = Math.max(peaks[i]!, vmHwmBytes(a.child!.pid!) ?? 0)));
    // At rest: connected, nothing to do.
    const t0 = performance.now();
    const ticks0 = agents.map((a) => cpuTicks(a.child!.pid!));
    await sleep(o.restMs);
    const secs = (performance.now() - t0) / 1000;
    agents.forEach((a, i) => {
      a.figures.restRssBytes = vmRssBytes(a.child!.pid!) ?? 0;
      a.figures.restCpuPercent = ((cpuTicks(a.child!.pid!) - ticks0[i]!) / HZ / secs) * 100;
    });

    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const col = (s: string) => s.padStart(18);
    process.stdout.write(`  ${''.padEnd(44)} ${agents.map((a) => col(a.v.name)).join('')}\n`);
    line(`start → Ready (median of ${o.starts}; min–max)`, agents.map((a) => col(`${median(a.figures.startToReadyMs).toFixed(0)} ms (${Math.min(...a.figures.startToReadyMs).toFixed(0)}–${Math.max(...a.figures.startToReadyMs).toFixed(0)})`)).join('').trimStart());
    line('peak RSS through a two-stage upgrade', agents.map((a) => col(mibText(a.figures.peakUpgradeBytes))).join('').trimStart());
    line(`RSS after ${(o.restMs / 1000).toFixed(0)} s at rest`, agents.map((a) => col(mibText(a.figures.restRssBytes))).join('').trimStart());
    line(`CPU over those ${(o.restMs / 1000).toFixed(0)} s (process CPU time)`, agents.map((a) => col(`${a.figures.restCpuPercent.toFixed(2)} % core`)).join('').trimStart());
    for (const a of agents) line(`  ${a.v.name}`, `node ${a.v.node.map((x) => x.replace(root, '')).join(' ')}`);
    line('load average at end', loadavg());
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    await Promise.all(children.map((c) => (c.exitCode === null && c.signalCode === null ? once(c, 'exit') : undefined)));
    await hub.close();
    await cp.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { 'rest-ms': { type: 'string', default: '60000' }, starts: { type: 'string', default: '5' }, variant: { type: 'string', multiple: true }, 'no-defaults': { type: 'boolean', default: false } } });
  const extra = (values.variant ?? []).map((spec): Variant => {
    const eq = spec.indexOf('=');
    if (eq < 1) throw new TypeError(`--variant "${spec}": expected name=node args`);
    const args = spec.slice(eq + 1).split(/\s+/).filter(Boolean).map((a) => (a.startsWith('dist/') || a.startsWith('bin/') ? join(root, a) : a));
    return { name: spec.slice(0, eq), node: args };
  });
  await agentFootprintBench({ restMs: Number(values['rest-ms']), starts: Number(values.starts), variants: [...(values['no-defaults'] ? [] : defaultVariants()), ...extra] });
}
