// Simulated agents in several child processes (sim-shard-child.ts), each
// running a SimFleet over its slice of the agents. One process cannot hold
// tens of thousands: each agent is a socket, and a process here may open at
// most 20,000 files (a hard limit). Shards also let the simulation use every
// core. The parent sees the fleet as one: counters are summed, latencies
// gathered, and the welcomed count follows every shard's pushes.
import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { BackoffPolicy } from '../src/lib/backoff.ts';
import { exportAgentKeyPem } from '../src/protocol/agent-identity.ts';
import type { SeededCluster } from './hub-seed.ts';
import type { SimFleetOptions } from './sim-agent.ts';

export interface ShardConfig {
  fleet: Omit<SimFleetOptions, 'agents' | 'random' | 'upgrade'> & { backoff: BackoffPolicy };
  agents: { clusterId: string; keyPem: string }[];
}

export type ShardRequest =
  | { type: 'init'; config: ShardConfig }
  | { type: 'start' }
  | { type: 'reporting'; on: boolean }
  | { type: 'measure'; on: boolean }
  | { type: 'stats' }
  | { type: 'stop' };

export interface ShardStats {
  welcomedNow: number;
  connectedByUrl: number[];
  welcomes: number;
  rejected: number;
  errors: number;
  errorCodes: Record<string, number>;
  hubErrors: number;
  hubErrorSamples: string[];
  reportsSent: number;
  reportsAcked: number;
  reportsWritten: number;
  unacked: number;
  vmRss: number;
  cpuUs: number;
  /** Each shard's CPU (µs, cumulative) and event-loop delay since the previous stats (ms). */
  shards: { pid: number; cpuUs: number; loopDelayP99Ms: number; loopDelayMaxMs: number }[];
}

export type ShardReply =
  | { type: 'ready' }
  | { type: 'count'; welcomedNow: number; connectedByUrl: number[] }
  | { type: 'latencies'; values: number[] }
  | ({ type: 'stats' } & ShardStats)
  | { type: 'stopped' };

/** Raised when a shard process dies while the fleet needs it. */
export class ShardExited extends Error {
  override readonly name = 'ShardExited';
}

const entry = fileURLToPath(new URL('./sim-shard-child.ts', import.meta.url));

interface Shard {
  child: ChildProcess;
  welcomedNow: number;
  connectedByUrl: number[];
  exited: Promise<unknown>;
}

export interface ShardedFleetEvents {
  /** The fleet-wide welcomed count changed (a shard pushed its count). */
  count: [welcomedNow: number];
}

export interface ShardedFleetOptions extends Omit<SimFleetOptions, 'agents' | 'random' | 'upgrade'> {
  agents: readonly SeededCluster[];
  /** Child processes; the agents are dealt out round-robin. */
  shards: number;
}

export class ShardedFleet extends EventEmitter<ShardedFleetEvents> {
  readonly size: number;
  readonly #shards: Shard[];
  #stopping = false;
  /** Why a shard is gone, once one died. */
  #died: string | undefined;

  private constructor(size: number, shards: Shard[]) {
    super();
    this.setMaxListeners(0);
    this.size = size;
    this.#shards = shards;
  }

  static async start(o: ShardedFleetOptions): Promise<ShardedFleet> {
    const n = Math.max(1, Math.min(o.shards, o.agents.length));
    const { agents, shards: _n, ...fleet } = o;
    const urls = typeof o.baseUrl === 'string' ? 1 : o.baseUrl.length;
    const slices: ShardConfig['agents'][] = Array.from({ length: n }, () => []);
    agents.forEach((a, i) => slices[i % n]?.push({ clusterId: a.clusterId, keyPem: exportAgentKeyPem(a.key.privateKey) }));
    const shards: Shard[] = slices.map(() => {
      const child = fork(entry, [], { execPath: process.execPath, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      return { child, welcomedNow: 0, connectedByUrl: Array.from({ length: urls }, () => 0), exited: once(child, 'exit') };
    });
    const sharded = new ShardedFleet(agents.length, shards);
    for (const s of shards) {
      // A shard that dies takes its agents' sockets with it: say so at once, with how it ended, rather than leave a wait hanging.
      s.child.once('exit', (code, signal) => {
        if (sharded.#stopping) return;
        sharded.#died = `simulated-agent shard ${s.child.pid} exited unexpectedly (code ${code}, signal ${signal})`;
        process.stderr.write(`${sharded.#died}\n`);
        sharded.emit('count', sharded.welcomedNow);
      });
      s.child.on('message', (m: ShardReply) => {
        if (m.type !== 'count') return;
        s.welcomedNow = m.welcomedNow;
        s.connectedByUrl = m.connectedByUrl;
        sharded.emit('count', sharded.welcomedNow);
      });
    }
    // Each shard's connect storm is its share of the fleet's.
    const perShard = Math.max(1, Math.ceil(o.connectConcurrency / n));
    await Promise.all(shards.map((s, i) => {
      const ready = sharded.#next(s, 'ready');
      s.child.send({ type: 'init', config: { fleet: { ...fleet, connectConcurrency: perShard }, agents: slices[i] ?? [] } } satisfies ShardRequest);
      return ready;
    }));
    return sharded;
  }

  #next<T extends ShardReply['type']>(s: Shard, type: T): Promise<Extract<ShardReply, { type: T }>> {
    return new Promise((resolve, reject) => {
      if (s.child.exitCode !== null || s.child.signalCode !== null) {
        reject(new ShardExited(`simulated-agent shard ${s.child.pid} has exited (code ${s.child.exitCode}, signal ${s.child.signalCode})`));
        return;
      }
      const onMessage = (m: ShardReply): void => {
        if (m.type !== type) return;
        cleanup();
        resolve(m as Extract<ShardReply, { type: T }>);
      };
      const onExit = (): void => {
        cleanup();
        reject(new ShardExited(`simulated-agent shard ${s.child.pid} exited (code ${s.child.exitCode}, signal ${s.child.signalCode})`));
      };
      const cleanup = (): void => {
        s.child.off('message', onMessage);
        s.child.off('exit', onExit);
      };
      s.child.on('message', onMessage);
      s.child.once('exit', onExit);
    });
  }

  #sendAll(m: ShardRequest): void {
    for (const s of this.#shards) if (s.child.connected) s.child.send(m);
  }

  get processes(): readonly number[] {
    return this.#shards.map((s) => s.child.pid ?? 0);
  }

  /** Agents welcomed now, fleet-wide, as the shards last pushed (at most 25 ms old). */
  get welcomedNow(): number {
    return this.#shards.reduce((n, s) => n + s.welcomedNow, 0);
  }

  /** Agents welcomed now on each hub URL, as last pushed. */
  get connectedByUrl(): number[] {
    const sum: number[] = [];
    for (const s of this.#shards) s.connectedByUrl.forEach((v, i) => (sum[i] = (sum[i] ?? 0) + v));
    return sum;
  }

  /** Starts every agent and waits until all are welcomed at once; resolves with how long it took (ms). */
  async connectAll(): Promise<number> {
    const t = performance.now();
    this.#sendAll({ type: 'start' });
    await this.awaitWelcomed(this.size, Math.max(120_000, this.size * 30));
    return performance.now() - t;
  }

  /** Resolves when `count` agents are welcomed at once. */
  awaitWelcomed(count: number, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (this.#died !== undefined) {
          cleanup();
          reject(new ShardExited(this.#died));
        } else if (this.welcomedNow >= count) {
          cleanup();
          resolve();
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        void this.stats().then(
          (s) => reject(new Error(`only ${this.welcomedNow} of ${count} agents connected within ${timeoutMs} ms (rejected ${s.rejected}, errors ${s.errors}: ${JSON.stringify(s.errorCodes)})`)),
          (err: unknown) => reject(err instanceof Error ? err : new Error(String(err))),
        );
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        this.off('count', check);
      };
      this.on('count', check);
      check();
    });
  }

  setReporting(on: boolean): void {
    this.#sendAll({ type: 'reporting', on });
  }

  /** Report → ack latencies are kept from now on (earlier ones dropped). */
  startMeasuring(): void {
    this.#sendAll({ type: 'measure', on: true });
  }

  /** Stops keeping latencies; resolves with every shard's since startMeasuring (ms). */
  async stopMeasuring(): Promise<number[]> {
    const replies = this.#shards.map((s) => this.#next(s, 'latencies'));
    this.#sendAll({ type: 'measure', on: false });
    return (await Promise.all(replies)).flatMap((r) => r.values);
  }

  /** Every shard's counters, summed (error codes merged, a few hub error samples kept). */
  async stats(): Promise<ShardStats> {
    const replies = this.#shards.map((s) => this.#next(s, 'stats'));
    this.#sendAll({ type: 'stats' });
    const all = await Promise.all(replies);
    const sum = (k: keyof ShardStats): number => all.reduce((n, s) => n + (s[k] as number), 0);
    const errorCodes: Record<string, number> = {};
    const connectedByUrl: number[] = [];
    for (const s of all) {
      for (const [code, n] of Object.entries(s.errorCodes)) errorCodes[code] = (errorCodes[code] ?? 0) + n;
      s.connectedByUrl.forEach((v, i) => (connectedByUrl[i] = (connectedByUrl[i] ?? 0) + v));
    }
    return {
      welcomedNow: sum('welcomedNow'),
      connectedByUrl,
      welcomes: sum('welcomes'),
      rejected: sum('rejected'),
      errors: sum('errors'),
      errorCodes,
      hubErrors: sum('hubErrors'),
      hubErrorSamples: all.flatMap((s) => s.hubErrorSamples).slice(0, 5),
      reportsSent: sum('reportsSent'),
      reportsAcked: sum('reportsAcked'),
      reportsWritten: sum('reportsWritten'),
      unacked: sum('unacked'),
      vmRss: sum('vmRss'),
      cpuUs: sum('cpuUs'),
      shards: all.flatMap((s) => s.shards),
    };
  }

  /** Closes every agent's connection and ends the shard processes. */
  async stop(): Promise<void> {
    this.#stopping = true;
    await Promise.all(this.#shards.map(async (s) => {
      if (s.child.exitCode !== null || s.child.signalCode !== null) return;
      const stopped = this.#next(s, 'stopped').catch(() => undefined);
      s.child.send({ type: 'stop' } satisfies ShardRequest);
      await stopped;
      await s.exited;
    }));
  }

  /** Ends the shard processes at once (after a failure). */
  async kill(): Promise<void> {
    this.#stopping = true;
    await Promise.all(this.#shards.map(async (s) => {
      if (s.child.exitCode !== null || s.child.signalCode !== null) return;
      s.child.kill('SIGKILL');
      await s.exited;
    }));
  }
}
