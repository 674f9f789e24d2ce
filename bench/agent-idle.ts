// The agent at rest: resident memory and CPU of one agent runtime connected
// to a hub, with nothing to upgrade, on the built-in control plane. The agent
// runs alone in a child process (agent-child.ts).
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import * as k8s from '@kubernetes/client-node';
import { pino } from 'pino';
import { startHub } from '../src/hub/start-hub.ts';
import { exportPublicKeyPem, generateReleaseKey } from '../src/protocol/signing.ts';
import { startControlPlane } from '../src/testbed/control-plane.ts';
import type { AgentChildConfig, AgentChildReply } from './agent-child.ts';
import { heading, line, mib } from './stats.ts';

export interface AgentIdleOptions {
  /** How long CPU is sampled once the agent is connected and settled. */
  windowMs: number;
  heartbeatMs: number;
}

const ADMIN = 'bench-admin-token-0123456789';

export async function agentIdleBench(o: AgentIdleOptions): Promise<void> {
  heading(`agent at rest: one runtime connected to a hub (heartbeat ${o.heartbeatMs} ms), nothing to do`);
  const dir = mkdtempSync(join(tmpdir(), 'fleetlet-bench-agent-'));
  const cp = await startControlPlane({ nodes: 1 });
  const keys = generateReleaseKey();
  const hub = await startHub({ port: 0, dbPath: join(dir, 'hub.db'), releaseKey: keys.privateKey, adminToken: ADMIN, bootstrapTokens: ['bench-bootstrap'], heartbeatMs: o.heartbeatMs, now: () => new Date(), logger: pino({ level: 'silent' }) });
  const api = async (method: string, path: string) => (await fetch(`${hub.httpUrl}${path}`, { method, headers: { authorization: `Bearer ${ADMIN}` } })).json() as Promise<Record<string, unknown>>;
  try {
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    await kc.makeApiClient(k8s.CoreV1Api).createNamespace({ body: { metadata: { name: 'fleetlet-system' } } });
    const config: AgentChildConfig = {
      kubeconfigPath: cp.kubeconfigPath,
      journalPath: join(dir, 'journal.db'),
      clusterId: 'idle-1',
      namespace: 'fleetlet-system',
      hubUrl: hub.url,
      bootstrapToken: 'bench-bootstrap',
      releaseKeyPem: exportPublicKeyPem(keys.publicKey),
      heartbeatMs: o.heartbeatMs,
    };
    const child = fork(fileURLToPath(new URL('./agent-child.ts', import.meta.url)), [], { env: { ...process.env, FLEETLET_BENCH_AGENT: JSON.stringify(config) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const stats = async (): Promise<AgentChildReply> => {
      const reply = once(child, 'message') as Promise<[AgentChildReply]>;
      child.send({ type: 'stats' });
      return (await reply)[0];
    };
    // Polling the hub's API: the benchmark has no other view of the child's progress.
    while ((await api('GET', '/api/v1/clusters/idle-1')).registration !== 'Pending') await sleep(100);
    await api('POST', '/api/v1/clusters/idle-1/accept');
    while ((await api('GET', '/api/v1/clusters/idle-1')).connected !== true) await sleep(100);
    await sleep(3_000);
    const a = await stats();
    await sleep(o.windowMs);
    const b = await stats();
    const cpu = ((b.cpuUserUs + b.cpuSystemUs - a.cpuUserUs - a.cpuSystemUs) / 1000 / (b.uptimeMs - a.uptimeMs)) * 100;
    line('agent RSS at rest', `${mib(b.vmRss)} (heap ${mib(b.heapUsed)})`);
    line(`agent CPU at rest (over ${(o.windowMs / 1000).toFixed(0)} s)`, `${cpu.toFixed(2)} % of one core`);
    const exited = once(child, 'exit');
    child.send({ type: 'stop' });
    await exited;
  } finally {
    await hub.close();
    await cp.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
