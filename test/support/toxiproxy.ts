// Toxiproxy (Shopify) between an agent and its hub: a real TCP proxy whose
// faults (partition, resets, half-open, latency) are switched by its HTTP
// API. The server binary is built with the control plane
// (loadBinaries().toxiproxy); each test file starts its own on free ports.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, loadBinaries } from '../../src/testbed/control-plane.ts';

/** Raised when the Toxiproxy server cannot be started or its API refuses a request. */
export class ToxiproxyError extends Error {
  readonly reason: 'ToxiproxyUnavailable' | 'ToxiproxyRequestFailed';
  constructor(reason: ToxiproxyError['reason'], message: string) {
    super(message);
    this.name = 'ToxiproxyError';
    this.reason = reason;
  }
}

export type ToxicType = 'latency' | 'timeout' | 'reset_peer' | 'bandwidth' | 'slow_close' | 'slicer' | 'limit_data';

export interface Toxic {
  name: string;
  type: ToxicType;
  /** upstream = client → server bytes, downstream = server → client. */
  stream: 'upstream' | 'downstream';
  /** Probability [0, 1] that a connection gets the toxic. Default 1. */
  toxicity?: number;
  attributes: Record<string, number>;
}

export interface ProxyInfo {
  name: string;
  /** host:port the proxy listens on (resolved when created with port 0). */
  listen: string;
  upstream: string;
  enabled: boolean;
}

export interface Proxy {
  readonly name: string;
  readonly port: number;
  /** ws://127.0.0.1:<port><path> */
  url(path: string): string;
  /** A disabled proxy closes its listener and every connection through it: a clean partition. */
  setEnabled(enabled: boolean): Promise<void>;
  addToxic(toxic: Toxic): Promise<void>;
  removeToxic(name: string): Promise<void>;
  /** Every toxic this proxy has now. */
  toxics(): Promise<Toxic[]>;
  /** Deletes the proxy (its listener and connections go with it). */
  remove(): Promise<void>;
}

export interface Toxiproxy {
  apiUrl: string;
  createProxy(name: string, upstreamPort: number): Promise<Proxy>;
  /** Enables every proxy and removes every toxic. */
  reset(): Promise<void>;
  stop(): Promise<void>;
}

export async function startToxiproxy(opts: { binary?: string; startTimeoutMs?: number } = {}): Promise<Toxiproxy> {
  const binary = opts.binary ?? loadBinaries().toxiproxy;
  if (!existsSync(binary)) throw new ToxiproxyError('ToxiproxyUnavailable', `${binary} is missing: re-run scripts/build-control-plane.sh`);
  // freePort can race with another process taking the port; a second port usually settles it.
  let lastError = '';
  for (let tries = 0; tries < 3; tries++) {
    const port = await freePort();
    const child = spawn(binary, ['-host', '127.0.0.1', '-port', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (c: string) => {
      if (stderr.length < 8192) stderr += c;
    });
    const apiUrl = `http://127.0.0.1:${port}`;
    if (await ready(apiUrl, child, opts.startTimeoutMs ?? 10_000)) return client(apiUrl, child);
    lastError = stderr.slice(-2000);
    await kill(child);
  }
  throw new ToxiproxyError('ToxiproxyUnavailable', `toxiproxy-server did not start: ${lastError}`);
}

async function ready(apiUrl: string, child: ChildProcess, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) return false;
    try {
      const res = await fetch(`${apiUrl}/version`);
      if (res.ok) return true;
    } catch {
      // not listening yet
    }
    // Polling a starting process: there is no event to wait on.
    await sleep(50);
  }
  return false;
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
  await exited;
  clearTimeout(timer);
}

function client(apiUrl: string, child: ChildProcess): Toxiproxy {
  const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${apiUrl}${path}`, { method, ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }) });
    const text = await res.text();
    if (!res.ok) throw new ToxiproxyError('ToxiproxyRequestFailed', `${method} ${path}: ${res.status} ${text}`);
    return (text ? JSON.parse(text) : undefined) as T;
  };
  return {
    apiUrl,
    async createProxy(name, upstreamPort) {
      // Port 0: toxiproxy picks a free port and keeps it across disable/enable.
      const info = await call<ProxyInfo>('POST', '/proxies', { name, listen: '127.0.0.1:0', upstream: `127.0.0.1:${upstreamPort}`, enabled: true });
      const port = Number(info.listen.slice(info.listen.lastIndexOf(':') + 1));
      const path = `/proxies/${encodeURIComponent(name)}`;
      return {
        name,
        port,
        url: (p) => `ws://127.0.0.1:${port}${p}`,
        setEnabled: async (enabled) => void (await call('POST', path, { enabled })),
        addToxic: async (toxic) => void (await call('POST', `${path}/toxics`, { toxicity: 1, ...toxic })),
        removeToxic: async (toxicName) => void (await call('DELETE', `${path}/toxics/${encodeURIComponent(toxicName)}`)),
        toxics: () => call<Toxic[]>('GET', `${path}/toxics`),
        remove: async () => void (await call('DELETE', path)),
      };
    },
    reset: async () => void (await call('POST', '/reset')),
    stop: () => kill(child),
  };
}
