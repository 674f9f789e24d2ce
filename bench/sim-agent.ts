// Many simulated agents from one process, speaking the real wire protocol
// (src/protocol/messages.ts) over real WebSockets with permessage-deflate, as
// the hub link does: hello with the outbox range, heartbeats and pings,
// report batches chained by afterSeq, cumulative acks, re-sending what was
// not acknowledged after a reconnect with the hub link's jittered backoff.
// Light on purpose: no zod, no journal, one timer pair per agent.
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { backoffDelay, type BackoffPolicy } from '../src/hub-link/backoff.ts';
import { AGENT_PATH, CLUSTER_ID_HEADER, MAX_REPORTS_PER_BATCH, PROTOCOL_VERSION, type ReportEntry } from '../src/protocol/messages.ts';
import type { SeededCluster } from './hub-seed.ts';

export interface SimFleetOptions {
  /** ws://host:port (AGENT_PATH is appended). */
  baseUrl: string;
  agents: readonly SeededCluster[];
  /** Mean time between report batches of one agent (uniformly jittered ±50 %). */
  reportIntervalMs: number;
  batchSize: number;
  /** Handshakes in flight at once. */
  connectConcurrency: number;
  backoff: BackoffPolicy;
  /** [0, 1) */
  random: () => number;
  /** Offer permessage-deflate, as the hub link does. Default true. */
  deflate?: boolean;
}

export interface SimFleetEvents {
  welcome: [];
  closed: [];
}

interface Batch {
  lastSeq: number;
  sentAt: number;
}

const inventory = { components: [{ name: 'dns', version: '1.0.0' }], kubernetesVersion: 'v1.35.4', targetInfrastructure: 'sim', overrides: [] };

class SimAgent {
  readonly fleet: SimFleet;
  readonly id: SeededCluster;
  ws: WebSocket | undefined;
  welcomed = false;
  attempt = 0;
  lastSeq = 0;
  lastSentSeq = 0;
  /** Written and not acknowledged: the outbox. */
  unacked: ReportEntry[] = [];
  inflight: Batch[] = [];
  heartbeat: NodeJS.Timeout | undefined;
  reports: NodeJS.Timeout | undefined;

  constructor(fleet: SimFleet, id: SeededCluster) {
    this.fleet = fleet;
    this.id = id;
  }

  connect(done: () => void): void {
    const ws = new WebSocket(`${this.fleet.o.baseUrl}${AGENT_PATH}`, {
      headers: { authorization: `Bearer ${this.id.credential}`, [CLUSTER_ID_HEADER]: this.id.clusterId },
      perMessageDeflate: this.fleet.o.deflate ?? true,
      handshakeTimeout: 30_000,
    });
    this.ws = ws;
    let settled = false;
    const settle = (): void => {
      if (!settled) {
        settled = true;
        done();
      }
    };
    ws.on('open', () => {
      settle();
      this.send({ type: 'hello', clusterId: this.id.clusterId, agentVersion: 'sim', inventory, lastRevision: 0, outbox: { firstSeq: this.unacked[0]?.seq ?? null, lastSeq: this.lastSeq } });
    });
    ws.on('message', (data: Buffer) => this.onMessage(data));
    ws.on('unexpected-response', (_req, res) => {
      this.fleet.rejected++;
      res.resume();
      ws.terminate();
    });
    ws.on('error', () => {
      this.fleet.errors++;
    });
    ws.on('close', () => {
      settle();
      clearInterval(this.heartbeat);
      this.inflight = [];
      if (this.welcomed) {
        this.welcomed = false;
        this.fleet.welcomedNow--;
      }
      this.ws = undefined;
      this.fleet.emit('closed');
      if (!this.fleet.stopping) {
        const wait = backoffDelay(this.attempt++, this.fleet.o.backoff, this.fleet.o.random);
        setTimeout(() => this.fleet.enqueue(this), wait).unref();
      }
    });
  }

  onMessage(data: Buffer): void {
    const m = JSON.parse(data.toString('utf8')) as { type: string; ackedSeq?: number; uptoSeq?: number; heartbeatMs?: number };
    if (m.type === 'welcome') {
      this.welcomed = true;
      this.attempt = 0;
      this.fleet.welcomedNow++;
      this.fleet.welcomes++;
      this.acked(m.ackedSeq ?? 0);
      this.lastSentSeq = m.ackedSeq ?? 0;
      clearInterval(this.heartbeat);
      this.heartbeat = setInterval(() => {
        this.send({ type: 'heartbeat', sentAt: new Date().toISOString() });
        if (this.ws?.readyState === WebSocket.OPEN) this.ws.ping();
      }, m.heartbeatMs ?? 10_000);
      this.heartbeat.unref();
      this.pump(false);
      this.fleet.emit('welcome');
    } else if (m.type === 'ack') {
      const upto = m.uptoSeq ?? 0;
      const now = performance.now();
      while (this.inflight.length > 0 && (this.inflight[0]?.lastSeq ?? Infinity) <= upto) {
        const b = this.inflight.shift() as Batch;
        if (this.fleet.measuring) this.fleet.latencies.push(now - b.sentAt);
      }
      this.acked(upto);
    }
  }

  acked(upto: number): void {
    let n = 0;
    while (n < this.unacked.length && (this.unacked[n]?.seq ?? Infinity) <= upto) n++;
    if (n > 0) {
      this.unacked.splice(0, n);
      this.fleet.reportsAcked += n;
    }
  }

  /** Writes a batch to the outbox, then sends what is unsent. */
  write(): void {
    const at = new Date().toISOString();
    for (let i = 0; i < this.fleet.o.batchSize; i++) {
      const seq = ++this.lastSeq;
      this.unacked.push({
        seq,
        kind: 'attempt-transition',
        createdAt: at,
        body: { attemptId: `${this.id.clusterId}-a${seq}`, release: { name: 'edge-addons', version: '1.2.0', revision: 1 }, phase: 'Upgrading', stage: 0, reason: null, message: 'applying stage 0', at },
      });
    }
    this.pump(true);
  }

  pump(measure: boolean): void {
    if (!this.welcomed) return;
    const unsent = this.unacked.filter((r) => r.seq > this.lastSentSeq);
    for (let i = 0; i < unsent.length; i += MAX_REPORTS_PER_BATCH) {
      const reports = unsent.slice(i, i + MAX_REPORTS_PER_BATCH);
      if (!this.send({ type: 'reports', afterSeq: this.lastSentSeq, reports })) return;
      this.lastSentSeq = reports.at(-1)?.seq ?? this.lastSentSeq;
      // Re-sends after a reconnect are not timed: they waited for the link, not the hub.
      if (measure) this.inflight.push({ lastSeq: this.lastSentSeq, sentAt: performance.now() });
      this.fleet.reportsSent += reports.length;
    }
  }

  send(m: Record<string, unknown>): boolean {
    if (this.ws?.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify({ ...m, protocolVersion: PROTOCOL_VERSION }));
    return true;
  }
}

export class SimFleet extends EventEmitter<SimFleetEvents> {
  readonly o: SimFleetOptions;
  readonly #agents: SimAgent[];
  readonly #queue: SimAgent[] = [];
  #connecting = 0;
  stopping = false;
  measuring = false;
  welcomedNow = 0;
  welcomes = 0;
  rejected = 0;
  errors = 0;
  reportsSent = 0;
  reportsAcked = 0;
  /** Report batch → its ack, ms, while measuring. */
  latencies: number[] = [];

  constructor(o: SimFleetOptions) {
    super();
    this.setMaxListeners(0);
    this.o = o;
    this.#agents = o.agents.map((a) => new SimAgent(this, a));
  }

  get size(): number {
    return this.#agents.length;
  }

  start(): void {
    for (const a of this.#agents) this.enqueue(a);
  }

  enqueue(a: SimAgent): void {
    if (this.stopping) return;
    this.#queue.push(a);
    this.#pump();
  }

  #pump(): void {
    while (this.#connecting < this.o.connectConcurrency && this.#queue.length > 0) {
      const a = this.#queue.shift() as SimAgent;
      this.#connecting++;
      a.connect(() => {
        this.#connecting--;
        this.#pump();
      });
    }
  }

  /** Resolves when `count` agents are welcomed at once. */
  awaitWelcomed(count: number, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (this.welcomedNow >= count) {
          cleanup();
          resolve();
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`only ${this.welcomedNow} of ${count} agents connected within ${timeoutMs} ms (rejected ${this.rejected}, errors ${this.errors})`));
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        this.off('welcome', check);
      };
      this.on('welcome', check);
      check();
    });
  }

  /** Resolves when no agent is connected. */
  awaitAllClosed(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (this.welcomedNow === 0) {
          cleanup();
          resolve();
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${this.welcomedNow} agents still connected after ${timeoutMs} ms`));
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        this.off('closed', check);
      };
      this.on('closed', check);
      check();
    });
  }

  /** Every agent writes a batch every reportIntervalMs (jittered), or stops writing. */
  setReporting(on: boolean): void {
    for (const a of this.#agents) {
      clearTimeout(a.reports);
      a.reports = undefined;
      if (!on) continue;
      const tick = (): void => {
        a.write();
        a.reports = setTimeout(tick, this.o.reportIntervalMs * (0.5 + this.o.random()));
        a.reports.unref();
      };
      // Spread the first batches over one interval so the fleet does not pulse.
      a.reports = setTimeout(tick, this.o.reportIntervalMs * this.o.random());
      a.reports.unref();
    }
  }

  /** Outbox rows not yet acknowledged, fleet-wide. */
  unacked(): number {
    return this.#agents.reduce((n, a) => n + a.unacked.length, 0);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.setReporting(false);
    this.#queue.length = 0;
    const closing = this.#agents.filter((a) => a.ws).map((a) => new Promise<void>((resolve) => {
      const ws = a.ws as WebSocket;
      ws.once('close', () => resolve());
      ws.terminate();
    }));
    await Promise.all(closing);
  }
}
