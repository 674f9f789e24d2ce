// Many simulated agents from one process, speaking the real wire protocol
// (src/protocol/messages.ts) over real WebSockets with permessage-deflate, as
// the hub link does: hello with the outbox range, heartbeats and pings,
// report batches chained by afterSeq, cumulative acks, re-sending what was
// not acknowledged after a reconnect with the hub link's jittered backoff.
// Light on purpose: no zod, no journal, one timer pair per agent.
//
// Optional upgrade mode (`upgrade`): each agent answers a `release` the way a
// real agent reports an upgrade (src/agent/upgrade/engine.ts): attempt-transition
// reports Pending → Upgrading → Verifying → Succeeded, then an
// upgrade-completed report with the Succeeded one, through the same outbox,
// seq and ack machinery, over a simulated upgrade duration. Without it,
// `release` messages are ignored, as before.
//
// Several hub replicas (`baseUrl` a list): the agents spread over them the
// way a Kubernetes Service spreads connections, without a balancer in
// between (a balancer in this process would hold two more sockets per agent,
// and the process's open-file limit caps them): each new connection goes to
// the next replica in turn, fleet-wide, and a connection a replica refuses
// (its process is gone) goes at once to the next one, as a Service skips an
// endpoint that is not there.
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { backoffDelay, type BackoffPolicy } from '../src/lib/backoff.ts';
import { signChallenge } from '../src/protocol/agent-identity.ts';
import { AGENT_PATH, CLUSTER_ID_HEADER, MAX_REPORTS_PER_BATCH, PROTOCOL_VERSION, type ReportEntry } from '../src/protocol/messages.ts';
import type { SeededCluster } from './hub-seed.ts';

export interface SimFleetOptions {
  /** ws://host:port (AGENT_PATH is appended), or one per hub replica. */
  baseUrl: string | readonly string[];
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
  /** Answer `release` messages with a simulated upgrade. Default: ignore them. */
  upgrade?: SimUpgradeOptions;
}

export interface SimUpgradeOptions {
  /** Mean time from receiving a release to its Succeeded report. */
  durationMs: number;
  /** Uniform jitter as a fraction of durationMs: 0.5 draws from [0.5, 1.5] × durationMs. */
  jitter: number;
}

export interface SimFleetEvents {
  welcome: [];
  closed: [];
}

interface ReportBody {
  kind: string;
  body: unknown;
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
  /** Upgrade mode: revision of the newest release taken (sent as hello.lastRevision, so the hub re-delivers only newer ones). */
  lastRevision = 0;
  /** Upgrade mode: the simulated upgrade's next transition. */
  upgradeTimer: NodeJS.Timeout | undefined;
  /** Upgrade mode: seq of the Succeeded report not yet acknowledged. */
  succeededSeq: number | null = null;
  /** Which of the fleet's hub URLs the current connection went to. */
  urlIndex = 0;
  /** Replicas that refused this attempt so far (each is skipped at once, without backoff). */
  refusedInAttempt = 0;

  constructor(fleet: SimFleet, id: SeededCluster) {
    this.fleet = fleet;
    this.id = id;
  }

  connect(done: () => void): void {
    this.urlIndex = this.fleet.nextUrl();
    const ws = new WebSocket(`${this.fleet.urls[this.urlIndex]}${AGENT_PATH}`, {
      headers: { [CLUSTER_ID_HEADER]: this.id.clusterId },
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
    ws.on('open', () => settle());
    ws.on('message', (data: Buffer) => this.onMessage(data));
    ws.on('unexpected-response', (_req, res) => {
      this.fleet.rejected++;
      res.resume();
      ws.terminate();
    });
    let refused = false;
    ws.on('error', (err: NodeJS.ErrnoException) => {
      this.fleet.errors++;
      if (err.code === 'ECONNREFUSED') refused = true;
      const code = err.code ?? err.message;
      this.fleet.errorCodes.set(code, (this.fleet.errorCodes.get(code) ?? 0) + 1);
    });
    ws.on('close', () => {
      settle();
      clearInterval(this.heartbeat);
      this.inflight = [];
      if (this.welcomed) {
        this.welcomed = false;
        this.fleet.welcomedNow--;
        this.fleet.connectedByUrl[this.urlIndex] = (this.fleet.connectedByUrl[this.urlIndex] ?? 1) - 1;
      }
      this.ws = undefined;
      this.fleet.emit('closed');
      if (this.fleet.stopping) return;
      if (refused && ++this.refusedInAttempt < this.fleet.urls.length) {
        // Nobody listens there: the next replica, now, as a Service would pick another endpoint.
        this.fleet.enqueue(this);
        return;
      }
      this.refusedInAttempt = 0;
      const wait = backoffDelay(this.attempt++, this.fleet.o.backoff, this.fleet.o.random);
      setTimeout(() => this.fleet.enqueue(this), wait).unref();
    });
  }

  onMessage(data: Buffer): void {
    const m = JSON.parse(data.toString('utf8')) as { type: string; nonce?: string; ackedSeq?: number; uptoSeq?: number; heartbeatMs?: number; envelope?: unknown; code?: string; message?: string };
    if (m.type === 'challenge') {
      // Proof of possession, as a real agent answers (src/hub-link): the hello signs the hub's challenge.
      const proof = signChallenge(this.id.key.privateKey, 'hello', m.nonce ?? '', this.id.clusterId);
      this.send({ type: 'hello', clusterId: this.id.clusterId, agentVersion: 'sim', inventory, lastRevision: this.lastRevision, outbox: { firstSeq: this.unacked[0]?.seq ?? null, lastSeq: this.lastSeq }, proof });
    } else if (m.type === 'welcome') {
      this.welcomed = true;
      this.attempt = 0;
      this.refusedInAttempt = 0;
      this.fleet.welcomedNow++;
      this.fleet.connectedByUrl[this.urlIndex] = (this.fleet.connectedByUrl[this.urlIndex] ?? 0) + 1;
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
    } else if (m.type === 'error') {
      this.fleet.hubErrors++;
      if (this.fleet.hubErrorSamples.length < 5) this.fleet.hubErrorSamples.push(`${this.id.clusterId}: ${m.code ?? '?'}: ${m.message ?? ''}`);
    } else if (m.type === 'release' && this.fleet.o.upgrade) {
      this.onRelease(m.envelope, this.fleet.o.upgrade);
    }
  }

  /**
   * Upgrade mode: reports a simulated upgrade of the release. The signature
   * is NOT verified (a real agent refuses an unsigned, forged or replayed
   * release with verifyRelease, src/protocol/signing.ts): the simulator only
   * reads name, version and revision from the envelope's JSON payload.
   */
  onRelease(envelope: unknown, o: SimUpgradeOptions): void {
    let r: { name?: unknown; version?: unknown; revision?: unknown };
    try {
      r = JSON.parse((envelope as { payload: string }).payload) as typeof r;
    } catch {
      this.fleet.badReleases++;
      return;
    }
    if (typeof r.name !== 'string' || typeof r.version !== 'string' || typeof r.revision !== 'number') {
      this.fleet.badReleases++;
      return;
    }
    // A re-delivery (after a hello that predates our lastRevision) or a replay: a real agent refuses it as Replayed, silently here.
    if (r.revision <= this.lastRevision) return;
    this.lastRevision = r.revision;
    this.fleet.releasesReceived++;
    // A newer release supersedes a simulated upgrade in progress.
    if (this.upgradeTimer !== undefined) this.fleet.upgrading--;
    clearTimeout(this.upgradeTimer);
    this.upgradeTimer = undefined;

    const release = { name: r.name, version: r.version, revision: r.revision };
    const attemptId = `${this.id.clusterId}-r${r.revision}`;
    const startedAt = Date.now();
    const duration = Math.max(1, o.durationMs * (1 - o.jitter + 2 * o.jitter * this.fleet.o.random()));
    const transition = (phase: string, stage: number | null, message: string): ReportBody => {
      const at = new Date().toISOString();
      return { kind: 'attempt-transition', body: { attemptId, release, phase, stage, reason: null, message, at } };
    };
    this.fleet.upgrading++;
    this.fleet.maxUpgrading = Math.max(this.fleet.maxUpgrading, this.fleet.upgrading);
    this.writeReports([transition('Pending', null, `release ${r.version} accepted`)]);
    // Each step schedules the next: timers of different durations due in the same
    // turn of a busy event loop do not reliably fire in expiry order, and the
    // transitions must be written in order.
    const after = (fraction: number, fn: () => void): void => {
      this.upgradeTimer = setTimeout(fn, duration * fraction);
      this.upgradeTimer.unref();
    };
    const succeed = (): void => {
      this.upgradeTimer = undefined;
      this.fleet.upgrading--;
      this.fleet.upgradesSucceeded++;
      const done = transition('Succeeded', null, `running ${r.version}`);
      const completedAt = (done.body as { at: string }).at;
      // As the engine does: the terminal transition and the telemetry event in one outbox write.
      this.succeededSeq = this.lastSeq + 1;
      this.writeReports([
        done,
        {
          kind: 'upgrade-completed',
          body: { cluster_id: this.id.clusterId, target_infrastructure: inventory.targetInfrastructure, release: { name: release.name, version: release.version }, result: 'Succeeded', durationMs: Math.max(0, Date.parse(completedAt) - startedAt), attemptId, completedAt },
        },
      ]);
    };
    after(0.1, () => {
      this.writeReports([transition('Upgrading', 0, 'applying stage 0')]);
      after(0.6, () => {
        this.writeReports([transition('Verifying', 0, 'stage 0 applied; checking health')]);
        after(0.3, succeed);
      });
    });
  }

  /** Appends reports to the outbox, then sends what is unsent. */
  writeReports(entries: readonly ReportBody[]): void {
    const at = new Date().toISOString();
    for (const e of entries) this.unacked.push({ seq: ++this.lastSeq, kind: e.kind, createdAt: at, body: e.body });
    this.pump(true);
  }

  acked(upto: number): void {
    let n = 0;
    while (n < this.unacked.length && (this.unacked[n]?.seq ?? Infinity) <= upto) n++;
    if (n > 0) {
      this.unacked.splice(0, n);
      this.fleet.reportsAcked += n;
    }
    if (this.succeededSeq !== null && this.succeededSeq <= upto) {
      this.succeededSeq = null;
      this.fleet.upgradesAcked++;
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
  /** The hub replicas' base URLs, in the order connections rotate over them. */
  readonly urls: readonly string[];
  /** Agents welcomed now on each URL. */
  readonly connectedByUrl: number[];
  /** Connection errors by code (ECONNREFUSED, ECONNRESET, EMFILE, …). */
  readonly errorCodes = new Map<string, number>();
  readonly #agents: SimAgent[];
  readonly #queue: SimAgent[] = [];
  #connecting = 0;
  #nextUrl = 0;
  stopping = false;
  measuring = false;
  welcomedNow = 0;
  welcomes = 0;
  rejected = 0;
  errors = 0;
  reportsSent = 0;
  reportsAcked = 0;
  /** Upgrade mode: new releases taken, upgrades in progress now and at most, Succeeded written, Succeeded acknowledged, unreadable releases. */
  releasesReceived = 0;
  upgrading = 0;
  maxUpgrading = 0;
  upgradesSucceeded = 0;
  upgradesAcked = 0;
  badReleases = 0;
  /** `error` messages from the hub, and the first few of them. */
  hubErrors = 0;
  hubErrorSamples: string[] = [];
  /** Report batch → its ack, ms, while measuring. */
  latencies: number[] = [];

  constructor(o: SimFleetOptions) {
    super();
    this.setMaxListeners(0);
    this.o = o;
    this.urls = typeof o.baseUrl === 'string' ? [o.baseUrl] : [...o.baseUrl];
    if (this.urls.length === 0) throw new TypeError('SimFleet needs at least one hub URL');
    this.connectedByUrl = this.urls.map(() => 0);
    this.#agents = o.agents.map((a) => new SimAgent(this, a));
  }

  /** The URL index the next connection goes to: each in turn. */
  nextUrl(): number {
    const i = this.#nextUrl;
    this.#nextUrl = (i + 1) % this.urls.length;
    return i;
  }

  get size(): number {
    return this.#agents.length;
  }

  start(): void {
    for (const a of this.#agents) this.enqueue(a);
  }

  /**
   * Starts every agent and waits until all are welcomed at once; resolves
   * with how long that took (ms). The wait allows 30 ms per agent, at least
   * two minutes: connects are paced by connectConcurrency, not free.
   */
  async connectAll(): Promise<number> {
    const t = performance.now();
    this.start();
    await this.awaitWelcomed(this.size, Math.max(120_000, this.size * 30));
    return performance.now() - t;
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

  /** Reports written into the outboxes so far, fleet-wide (every sequence number used). */
  reportsWritten(): number {
    return this.#agents.reduce((n, a) => n + a.lastSeq, 0);
  }

  /** Outbox rows not yet acknowledged, fleet-wide. */
  unacked(): number {
    return this.#agents.reduce((n, a) => n + a.unacked.length, 0);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.setReporting(false);
    for (const a of this.#agents) {
      clearTimeout(a.upgradeTimer);
      a.upgradeTimer = undefined;
    }
    this.#queue.length = 0;
    const closing = this.#agents.filter((a) => a.ws).map((a) => new Promise<void>((resolve) => {
      const ws = a.ws as WebSocket;
      ws.once('close', () => resolve());
      ws.terminate();
    }));
    await Promise.all(closing);
  }
}
