// What the agent-process benchmarks share: the built-in control plane, one
// hub in this process, and real `fleetlet agent` processes, each its own
// cluster (its own namespaces and journal), started with the flags the
// manifests use (leader election, probes and metrics over HTTP).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as k8s from '@kubernetes/client-node';
import { pino } from 'pino';
import { startHub, type RunningHub } from '../src/hub/start-hub.ts';
import { exportPublicKeyPem, generateReleaseKey } from '../src/protocol/signing.ts';
import { startControlPlane, type ControlPlane } from '../src/testbed/control-plane.ts';

const ADMIN = 'bench-admin-token-0123456789';
const BOOTSTRAP = 'bench-bootstrap-token-0123456789abcdefghijklmnop';
const HZ = 100; // USER_HZ: /proc/<pid>/stat counts CPU time in these ticks

/** Seconds of CPU (user + system) a process has used: robust to other load on the machine, unlike wall-clock samples. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(stat[11]) + Number(stat[12])) / HZ;
}

/**
 * Makes the compile cache (NODE_COMPILE_CACHE in `env`) for an agent run
 * by `node <argv>`, as the image's build makes it (`… agent --help`): Node
 * keys the cache by the node flags, so a variant with flags of its own would
 * otherwise parse the bundle at its first start, which leaves megabytes in
 * the C heap.
 */
export function warmCompileCache(argv: readonly string[], env: Readonly<Record<string, string>>): void {
  const res = spawnSync(process.execPath, [...argv, '--help'], { env: { ...process.env, ...env }, stdio: 'ignore' });
  if (res.status !== 0) throw new Error(`\`node ${argv.join(' ')} --help\` exited ${res.status ?? res.signal}`);
}

export const loadavg = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

async function freePort(): Promise<number> {
  const srv = createServer().listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  srv.close();
  return port;
}

export class BenchAgent {
  child: ChildProcess | undefined;
  readonly #bed: AgentBed;
  readonly id: string;
  readonly port: number;
  readonly argv: string[];
  /** Environment variables set for the process on top of this one's (e.g. the image's ENV). */
  readonly env: Readonly<Record<string, string>>;

  constructor(bed: AgentBed, id: string, port: number, argv: string[], env: Readonly<Record<string, string>> = {}) {
    this.#bed = bed;
    this.id = id;
    this.port = port;
    this.argv = argv;
    this.env = env;
  }

  get pid(): number {
    if (this.child?.pid === undefined) throw new Error(`agent ${this.id} is not running`);
    return this.child.pid;
  }

  /** Spawns the process; resolves with the milliseconds from spawn to the first 200 from /readyz. */
  async start(): Promise<number> {
    const t0 = performance.now();
    const child = spawn(process.execPath, this.argv, { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, LOG_LEVEL: process.env.FLEETLET_BENCH_LOG ?? 'warn', FLEETLET_PROBE_DIR: this.#bed.dir, ...this.env } });
    this.child = child;
    this.#bed.children.add(child);
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`agent ${this.id} exited (${child.exitCode ?? child.signalCode}) before it was Ready`);
      if (await fetch(`http://127.0.0.1:${this.port}/readyz`).then((r) => r.ok, () => false)) return performance.now() - t0;
      await sleep(10);
    }
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    await exited;
  }

  /** Accepts its registration at the hub (once it asked). */
  async accept(): Promise<void> {
    while ((await this.#bed.api<{ registration?: string }>('GET', `/api/v1/clusters/${this.id}`).catch(() => ({}) as { registration?: string })).registration !== 'Pending') await sleep(100);
    await this.#bed.api('POST', `/api/v1/clusters/${this.id}/accept`);
  }
}

export class AgentBed {
  readonly children = new Set<ChildProcess>();
  readonly dir: string;
  readonly cp: ControlPlane;
  readonly hub: RunningHub;
  readonly #core: k8s.CoreV1Api;

  private constructor(dir: string, cp: ControlPlane, hub: RunningHub) {
    this.dir = dir;
    this.cp = cp;
    this.hub = hub;
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    this.#core = kc.makeApiClient(k8s.CoreV1Api);
  }

  static async start(o: { heartbeatMs: number }): Promise<AgentBed> {
    const dir = mkdtempSync(join(tmpdir(), 'fleetlet-bench-agents-'));
    const cp = await startControlPlane({ nodes: 1 });
    const keys = generateReleaseKey();
    writeFileSync(join(dir, 'release.pub.pem'), exportPublicKeyPem(keys.publicKey));
    const hub = await startHub({ port: 0, dbPath: join(dir, 'hub.db'), releaseKey: keys.privateKey, adminToken: ADMIN, bootstrapTokens: [BOOTSTRAP], heartbeatMs: o.heartbeatMs, rolloutTickMs: 200, now: () => new Date(), logger: pino({ level: 'silent' }) });
    return new AgentBed(dir, cp, hub);
  }

  async api<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${this.hub.httpUrl}${path}`, { method, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
    const json = (await res.json()) as T;
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  }

  /** An agent (not started) for cluster `id`, run by `node <nodeArgs> <agent flags>`. */
  async agent(id: string, nodeArgs: readonly string[], extra: readonly string[] = [], env: Readonly<Record<string, string>> = {}): Promise<BenchAgent> {
    for (const ns of [`${id}-sys`, `${id}-app`]) await this.#core.createNamespace({ body: { metadata: { name: ns } } });
    const port = await freePort();
    return new BenchAgent(this, id, port, [
      ...nodeArgs,
      `--cluster-id=${id}`,
      `--journal=${join(this.dir, `${id}.db`)}`,
      `--kubeconfig=${this.cp.kubeconfigPath}`,
      `--release-key=${join(this.dir, 'release.pub.pem')}`,
      `--hub=${this.hub.url}`,
      `--bootstrap-token=${BOOTSTRAP}`,
      `--namespace=${id}-sys`,
      `--target-namespace=${id}-app`,
      `--allowed-namespaces=${id}-app`,
      '--leader-elect',
      `--identity=${id}`,
      `--http-addr=127.0.0.1:${port}`,
      ...extra,
    ], env);
  }

  async close(): Promise<void> {
    for (const c of this.children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    await Promise.all([...this.children].map((c) => (c.exitCode === null && c.signalCode === null ? once(c, 'exit') : undefined)));
    await this.hub.close();
    await this.cp.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
