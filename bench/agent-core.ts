// Agent-core benchmarks (issue 3), printed, never asserted:
//  1. journal transitions per second, durability full (the default) and normal;
//  2. time from a release arriving (offer) to the first server-side apply,
//     with no checks or windows in the way, against the real control plane;
//  3. agent process RSS and CPU while idle and during an upgrade.
// Usage: node bench/agent-core.ts [--transitions 2000]
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import pino from 'pino';
import { Agent } from '../src/agent/agent.ts';
import { defaultAdmission } from '../src/agent/intake/admission.ts';
import { KubeClusterClient } from '../src/agent/kube/cluster-client.ts';
import type { KubeObject } from '../src/protocol/release.ts';
import { exportPublicKeyPem, generateReleaseKey, signRelease } from '../src/protocol/signing.ts';
import { Journal, type Durability } from '../src/store/journal.ts';
import { startControlPlane } from '../src/testbed/control-plane.ts';
import { addonsRelease } from '../src/testbed/sample-releases.ts';

const { values } = parseArgs({ options: { transitions: { type: 'string', default: '2000' } } });
const n = Number(values.transitions);
const root = new URL('../', import.meta.url).pathname;

function journalRate(durability: Durability): number {
  const j = Journal.open(join(mkdtempSync(join(tmpdir(), 'bench-j-')), 'journal.db'), { durability });
  const r = j.releases.accept({ revision: 1, name: 'b', version: '1.0.0' } as never, { payload: '{}', signature: 'AA==', keyId: 'k' });
  j.attempts.create({ id: 'a', releaseId: r.id, revision: 1, releaseName: 'b', releaseVersion: '1.0.0', plan: { revision: 1, stages: [], unchanged: [], removed: [] } });
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    // What the engine does per transition: the transition and its report, in one transaction.
    j.transaction(() => {
      j.attempts.transition('a', { phase: i % 2 ? 'Verifying' : 'Upgrading', stage: 0, reason: 'Bench', message: 'x'.repeat(80) });
      j.outbox.enqueue('attempt-transition', { i, phase: 'Upgrading', message: 'x'.repeat(80) });
    });
  }
  const secs = (performance.now() - start) / 1000;
  j.close();
  return n / secs;
}

function procStats(pid: number): { rssMiB: number; cpuTicks: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return { rssMiB: rss, cpuTicks: Number(stat[11]) + Number(stat[12]) };
}

console.log(`journal: ${n} transitions (+ outbox report each), one transaction per transition`);
for (const d of ['full', 'normal'] as const) console.log(`  durability=${d.padEnd(6)} ${journalRate(d).toFixed(0)} transitions/s`);

const cp = await startControlPlane({ nodes: 3 });
try {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(cp.kubeconfigPath);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const keys = generateReleaseKey();

  // 2. Release arriving → first apply, in-process, the real client wrapped to note the first apply.
  const samples: number[] = [];
  for (let i = 0; i < 5; i++) {
    const ns = `bench-first-apply-${i}`;
    await core.createNamespace({ body: { metadata: { name: ns } } });
    const cluster = new KubeClusterClient(kc);
    let firstApply = 0;
    const apply = cluster.apply.bind(cluster);
    cluster.apply = async (obj: KubeObject, opts?: { dryRun?: boolean }) => {
      if (!opts?.dryRun && !firstApply) firstApply = performance.now();
      return apply(obj, opts);
    };
    const journal = Journal.open(join(mkdtempSync(join(tmpdir(), 'bench-a-')), 'journal.db'));
    const agent = new Agent({ journal, cluster, logger: pino({ level: 'silent' }), now: () => new Date(), clusterId: 'bench', targetInfrastructure: () => 'kwok', releaseKeys: [keys.publicKey], admission: defaultAdmission, pollMs: 200, idleMs: 50 });
    const controller = new AbortController();
    const running = agent.run(controller.signal);
    const t0 = performance.now();
    await agent.offer(signRelease(addonsRelease(ns, 1, { dns: '1.0.0', proxy: '1.0.0', metrics: '1.0.0' }), keys.privateKey));
    while (!firstApply) await new Promise((r) => setTimeout(r, 5));
    samples.push(firstApply - t0);
    controller.abort();
    await running;
    journal.close();
  }
  samples.sort((a, b) => a - b);
  console.log(`release arriving → first apply (verify + admission dry-run of 8 objects + plan + snapshot): median ${samples[2]!.toFixed(0)} ms, min ${samples[0]!.toFixed(0)} ms, max ${samples[4]!.toFixed(0)} ms (5 runs)`);

  // 3. The agent as a process: idle, then during an upgrade.
  const dir = mkdtempSync(join(tmpdir(), 'bench-proc-'));
  writeFileSync(join(dir, 'key.pub.pem'), exportPublicKeyPem(keys.publicKey));
  await core.createNamespace({ body: { metadata: { name: 'bench-proc' } } });
  writeFileSync(join(dir, 'v1.json'), JSON.stringify(signRelease(addonsRelease('bench-proc', 1, { dns: '1.0.0', proxy: '1.0.0', metrics: '1.0.0' }), keys.privateKey)));
  const child = spawn(process.execPath, [join(root, 'bin/fleetlet.ts'), 'agent', '--cluster-id=bench', `--journal=${join(dir, 'j.db')}`, `--kubeconfig=${cp.kubeconfigPath}`, `--release-key=${join(dir, 'key.pub.pem')}`, `--release-file=${join(dir, 'v1.json')}`, '--namespace=bench-proc', '--allowed-namespaces=bench-proc', '--poll-ms=1000'], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, LOG_LEVEL: 'warn' },
  });
  const pid = child.pid!;
  const hz = 100; // USER_HZ on Linux
  // Upgrade: the release file starts an install at once.
  const u0 = procStats(pid);
  const t0 = performance.now();
  let peak = u0.rssMiB;
  const journalPath = join(dir, 'j.db');
  for (;;) {
    await new Promise((r) => setTimeout(r, 200));
    peak = Math.max(peak, procStats(pid).rssMiB);
    try {
      const j = Journal.open(journalPath);
      const done = j.attempts.latest()?.finishedAt;
      j.close();
      if (done) break;
    } catch {
      // not created yet
    }
  }
  const u1 = procStats(pid);
  const upSecs = (performance.now() - t0) / 1000;
  console.log(`agent process during an upgrade (${upSecs.toFixed(1)} s): peak RSS ${peak.toFixed(0)} MiB, CPU ${(((u1.cpuTicks - u0.cpuTicks) / hz / upSecs) * 100).toFixed(1)} % of one core (includes start-up)`);
  await new Promise((r) => setTimeout(r, 5000));
  const i0 = procStats(pid);
  await new Promise((r) => setTimeout(r, 20_000));
  const i1 = procStats(pid);
  console.log(`agent process idle (20 s): RSS ${i1.rssMiB.toFixed(0)} MiB, CPU ${(((i1.cpuTicks - i0.cpuTicks) / hz / 20) * 100).toFixed(2)} % of one core`);
  child.kill('SIGTERM');
} finally {
  await cp.stop();
}
