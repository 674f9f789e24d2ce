// Starts the reference hub in a child process (hub-child.ts) and talks to
// it over IPC: its memory, CPU and open files, a graceful stop, a kill.
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { HubChildConfig, HubChildReply } from './hub-child.ts';

export type HubStats = Extract<HubChildReply, { type: 'stats' }>;

/** The bench hub's operator token (hub-child.ts starts the hub with it). */
export const BENCH_ADMIN_TOKEN = 'bench-admin-token-0123456789';

/** The hub's CPU between two samples, in % of one core. */
export function cpuPercent(a: HubStats, b: HubStats): number {
  const cpuUs = b.cpuUserUs + b.cpuSystemUs - (a.cpuUserUs + a.cpuSystemUs);
  return (cpuUs / 1000 / (b.uptimeMs - a.uptimeMs)) * 100;
}

/** Raised when the hub child fails to start or dies while it is asked something. */
export class HubProcessError extends Error {
  readonly reason: 'HubStartFailed' | 'HubExited';
  constructor(reason: HubProcessError['reason'], message: string) {
    super(message);
    this.name = 'HubProcessError';
    this.reason = reason;
  }
}

export interface HubProcess {
  pid: number;
  port: number;
  url: string;
  httpUrl: string;
  /** `gc`: after a full garbage collection in the hub (heapUsed is then what it retains). */
  stats(o?: { gc?: boolean }): Promise<HubStats>;
  /** hub.close(): agents get a 1001 close, then the process exits. */
  stop(): Promise<void>;
  kill(): Promise<void>;
}

const entry = fileURLToPath(new URL('./hub-child.ts', import.meta.url));

export async function launchHub(config: HubChildConfig): Promise<HubProcess> {
  const child: ChildProcess = fork(entry, [], {
    env: { ...process.env, FLEETLET_BENCH_HUB: JSON.stringify(config) },
    execPath: process.execPath,
    // stats({gc: true}) collects first; nothing collects otherwise.
    execArgv: [...process.execArgv, '--expose-gc'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = once(child, 'exit');
  const next = <T extends HubChildReply['type']>(type: T): Promise<Extract<HubChildReply, { type: T }>> =>
    new Promise((resolve, reject) => {
      const onMessage = (m: HubChildReply): void => {
        if (m.type === type) {
          cleanup();
          resolve(m as Extract<HubChildReply, { type: T }>);
        } else if (m.type === 'failed') {
          cleanup();
          reject(new HubProcessError('HubStartFailed', m.message));
        }
      };
      const onExit = (): void => {
        cleanup();
        reject(new HubProcessError('HubExited', `hub process ${child.pid} exited (code ${child.exitCode}, signal ${child.signalCode})`));
      };
      const cleanup = (): void => {
        child.off('message', onMessage);
        child.off('exit', onExit);
      };
      child.on('message', onMessage);
      child.once('exit', onExit);
    });
  const ready = await next('ready');
  return {
    pid: child.pid ?? 0,
    port: ready.port,
    url: ready.url,
    httpUrl: ready.httpUrl,
    async stats(o = {}) {
      const reply = next('stats');
      child.send({ type: 'stats', ...(o.gc ? { gc: true } : {}) });
      return reply;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.send({ type: 'stop' });
      await exited;
    },
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
}
