// The agent's side of the wire: one WebSocket to the hub, kept alive for as
// long as the agent runs. Pure transport: it sends the outbox in order, as
// soon as a row is enqueued, and forgets rows only when the hub acknowledged
// them (docs/architecture.md, invariant 3); what the hub sends it hands on
// unopened, because the agent is the one door for signed input (invariant 4).
//
// It authenticates by proof of possession (docs/security.md): the hub opens
// every connection with a challenge, and the link answers with a register
// (bootstrap token, public key) or a hello, each signed with the agent's own
// key. No secret ever comes back from the hub.
import { EventEmitter } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import type { Logger } from 'pino';
import WebSocket from 'ws';
import { signChallenge, type AgentKeyPair } from '../protocol/agent-identity.ts';
import type { Inventory } from '../protocol/inventory.ts';
import {
  closeCodes,
  CLUSTER_ID_HEADER,
  encodeMessage,
  MAX_FRAME_BYTES,
  MAX_REPORT_BYTES,
  parseMessage,
  reportProblem,
  type AgentMessage,
  type HubMessage,
  type MaintenanceWindow,
  type Outgoing,
  type RegistrationStatus,
  type ReportEntry,
} from '../protocol/messages.ts';
import type { Outbox, OutboxRow } from '../store/outbox.ts';
import { backoffDelay, defaultBackoff, delayAfterRefusal, parseRetryAfter, type BackoffPolicy } from '../lib/backoff.ts';

export interface HubLinkOptions {
  /** ws:// or wss:// URL of the hub's agent endpoint (AGENT_PATH). */
  url: string;
  clusterId: string;
  agentVersion: string;
  /** The agent's own key pair (generated on first start, kept by the caller); it signs every connection's challenge. */
  agentKey: AgentKeyPair;
  /** Whether an operator accepted this cluster (as the caller persisted it): hello at once instead of registering. */
  registered?: () => boolean;
  /** An operator accepted the registration; must persist that before it resolves. */
  onRegistered?: () => Promise<void>;
  /**
   * A bearer credential from a hub before keys, if the agent still holds
   * one: presented once more, with the key, which the hub then binds in its
   * place (docs/security.md, migration). onKeyBound lets the caller drop it.
   */
  legacyCredential?: () => string | undefined;
  onKeyBound?: () => Promise<void>;
  /** Used to register with the hub. */
  bootstrapToken?: () => string | undefined;
  outbox: Outbox;
  /** Revision of the newest release the agent accepted (0 when none), for the hello. */
  lastRevision: () => number;
  inventory: () => Promise<Inventory>;
  /** A release's envelope as the hub sent it, unopened, one at a time: the agent verifies it, stores or refuses it, before this resolves. */
  onRelease: (envelope: unknown) => Promise<void>;
  /** A hotfix override's envelope, unopened, like a release's. */
  onOverride?: (envelope: unknown) => Promise<void>;
  /** The hub removed this cluster; the link stops. */
  onDeregister?: (reason: string) => Promise<void>;
  /** An operator revoked this cluster's key: the link stops and does not reconnect; the agent waits for a new bootstrap. */
  onRevoked?: (reason: string) => Promise<void>;
  /**
   * When the agent's policy next lets an upgrade start (maintenanceWindowReport);
   * sent with a heartbeat when it changed since the last one this connection sent.
   */
  maintenanceWindow?: () => MaintenanceWindow | undefined;
  now: () => Date;
  /** [0, 1), for backoff jitter. */
  random: () => number;
  logger: Logger;
  /** Heartbeat period; the hub's welcome may shorten it. Default 10 s. */
  heartbeatMs?: number;
  backoff?: BackoffPolicy;
  /** Most reports sent and not yet acknowledged. Default 500. */
  window?: number;
  /** Most reports per `reports` message. Default 100. */
  batchSize?: number;
  /** TLS trust for wss:// (a private CA in production). */
  tls?: { ca?: string | Buffer; rejectUnauthorized?: boolean };
}

export interface HubLinkCounters {
  connects: number;
  reconnects: number;
  /** Reports sent, counting re-sends after a reconnect. */
  sent: number;
  /** Reports the hub acknowledged (rows that left the outbox). */
  acked: number;
  /** Release messages handed to the agent. */
  releases: number;
  /** Connections dropped because the hub went silent. */
  halfOpen: number;
  /** Reports the hub could not take, moved to the journal's quarantine instead of being sent. */
  quarantined: number;
}

export interface HubLinkEvents {
  connected: [];
  welcome: [{ ackedSeq: number }];
  acked: [uptoSeq: number];
  /** A release message was handed to the agent (which verified it, and stored or refused it). */
  release: [envelope: unknown];
  registration: [{ status: RegistrationStatus; code?: string | undefined; reason: string | undefined }];
  deregistered: [reason: string];
  revoked: [reason: string];
  disconnected: [{ code: number; reason: string }];
  /** The hub refused the WebSocket upgrade (bad credential, wrong cluster id). */
  rejected: [{ statusCode: number; body: string }];
  'hub-error': [{ code: string; message: string }];
}

/** Ticks of silence (no message, no pong) after which the connection is presumed half-open. */
const SILENT_HEARTBEATS = 2;

type Outcome = 'welcomed' | 'failed' | 'reconnect-now' | 'stop';

interface Session {
  ws: WebSocket;
  mode: 'hello' | 'register';
  /** Presented a legacy bearer credential at the upgrade. */
  bearer: boolean;
  /** The opening (register or hello) went out, in answer to the challenge. */
  opened: boolean;
  welcomed: boolean;
  /** Highest seq sent on this connection (or acknowledged in the welcome). */
  lastSentSeq: number;
  ackedSeq: number;
  /** Seqs sent and not yet acknowledged, ascending. */
  inflight: number[];
  sawTraffic: boolean;
  silentTicks: number;
  timer: NodeJS.Timeout | undefined;
  outcome: Outcome;
  /** The maintenance window last sent on this connection, as JSON: a new connection sends it again. */
  sentWindow?: string;
  /** The hub said it will refuse this agent for that long (Retry-After, or retryAfterMs in its error). */
  retryAfterMs?: number;
}

const emptyInventory: Inventory = { components: [], kubernetesVersion: '', targetInfrastructure: '', overrides: [] };

export class HubLink extends EventEmitter<HubLinkEvents> {
  readonly #o: HubLinkOptions;
  readonly #log: Logger;
  readonly #heartbeatMs: number;
  readonly #backoff: BackoffPolicy;
  readonly #window: number;
  readonly #batchSize: number;
  readonly #counters: HubLinkCounters = { connects: 0, reconnects: 0, sent: 0, acked: 0, releases: 0, halfOpen: 0, quarantined: 0 };
  #stopping = new AbortController();
  #loop: Promise<void> | undefined;
  #session: Session | undefined;
  /** Messages are handled one after another, so releases never race and acks apply in order. */
  #inbound: Promise<void> = Promise.resolve();
  #unsubscribe: (() => void) | undefined;
  /** Accepted by an operator (persisted by the caller through onRegistered): connect with hello. */
  #registered: boolean;
  /** Bound the key on a legacy-credential hello this run: the credential is spent. */
  #keyBound = false;

  constructor(options: HubLinkOptions) {
    super();
    this.#o = options;
    this.#log = options.logger.child({ component: 'hub-link', clusterId: options.clusterId });
    this.#heartbeatMs = options.heartbeatMs ?? 10_000;
    this.#backoff = options.backoff ?? defaultBackoff;
    this.#window = Math.max(1, options.window ?? 500);
    this.#batchSize = Math.max(1, options.batchSize ?? 100);
    this.#registered = options.registered?.() ?? false;
  }

  get counters(): HubLinkCounters {
    return { ...this.#counters };
  }

  get connected(): boolean {
    return this.#session?.welcomed === true;
  }

  /** Runs until stop() or the signal aborts; reconnects on its own. */
  start(signal?: AbortSignal): void {
    if (this.#loop) throw new Error('HubLink already started');
    signal?.addEventListener('abort', () => void this.stop(), { once: true });
    // Every enqueue leads to a send while connected, whoever enqueued it.
    this.#unsubscribe = this.#o.outbox.subscribe?.(() => this.#pump());
    this.#loop = this.#run();
  }

  /** Resolves once the link stopped for good: stop(), its signal, a deregistration or a revocation. */
  async stopped(): Promise<void> {
    await this.#loop;
    await this.#inbound;
  }

  /** Hint that rows were enqueued, for an outbox that cannot tell the link itself: sends them now if the window allows. */
  flush(): void {
    this.#pump();
  }

  /** Closes the connection cleanly and waits for the link to wind down. */
  async stop(): Promise<void> {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    this.#stopping.abort();
    const s = this.#session;
    if (s) {
      s.outcome = 'stop';
      s.ws.close(1000, 'agent stopping');
      // A hub that never answers the close handshake must not hold the agent's shutdown.
      setTimeout(() => s.ws.terminate(), 2_000).unref();
    }
    await this.#loop;
    await this.#inbound;
  }

  async #run(): Promise<void> {
    let attempt = 0;
    const stop = this.#stopping.signal;
    while (!stop.aborted) {
      const { outcome, retryAfterMs } = await this.#connectOnce();
      if (stop.aborted || outcome === 'stop') break;
      if (outcome !== 'failed') attempt = 0;
      const wait = outcome === 'reconnect-now' ? 0 : delayAfterRefusal(backoffDelay(attempt++, this.#backoff, this.#o.random), retryAfterMs, this.#o.random);
      this.#counters.reconnects++;
      this.#log.info({ delayMs: wait, attempt, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) }, 'reconnecting to hub');
      try {
        await delay(wait, undefined, { signal: stop });
      } catch {
        break; // stopped while waiting
      }
    }
    this.#log.info('hub link stopped');
  }

  /** One connection, from opening to close: how it ended, and how long the hub asked to be left alone. */
  #connectOnce(): Promise<{ outcome: Outcome; retryAfterMs?: number | undefined }> {
    return new Promise((resolve) => {
      const credential = this.#keyBound ? undefined : this.#o.legacyCredential?.();
      const bootstrapToken = this.#o.bootstrapToken?.();
      const headers: Record<string, string> = { [CLUSTER_ID_HEADER]: this.#o.clusterId };
      let mode: Session['mode'];
      if (credential) {
        headers.authorization = `Bearer ${credential}`;
        mode = 'hello';
      } else if (this.#registered) {
        mode = 'hello';
      } else if (bootstrapToken) {
        mode = 'register';
      } else {
        this.#log.error('not registered and no bootstrap token: configure a bootstrap token to register this cluster with the hub');
        resolve({ outcome: 'failed' });
        return;
      }
      let ws: WebSocket;
      try {
        ws = new WebSocket(this.#o.url, {
          headers,
          perMessageDeflate: true,
          maxPayload: MAX_FRAME_BYTES,
          handshakeTimeout: this.#heartbeatMs * SILENT_HEARTBEATS,
          ...this.#o.tls,
        });
      } catch (err) {
        this.#log.error({ err, url: this.#o.url }, 'cannot open a connection to the hub: check the hub URL');
        resolve({ outcome: 'failed' });
        return;
      }
      const s: Session = { ws, mode, bearer: credential !== undefined, opened: false, welcomed: false, lastSentSeq: 0, ackedSeq: 0, inflight: [], sawTraffic: true, silentTicks: 0, timer: undefined, outcome: 'failed' };
      if (this.#stopping.signal.aborted) s.outcome = 'stop';
      this.#session = s;

      ws.on('unexpected-response', (_req, res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (body.length < 4096) body += chunk;
        });
        const done = (): void => {
          const statusCode = res.statusCode ?? 0;
          // 429 (throttled, or banned after a cut-off from this address) and 503 pass by themselves: the link retries with
          // backoff, and not before the Retry-After the hub sent.
          if (statusCode === 429 || statusCode === 503) {
            s.retryAfterMs = parseRetryAfter(res.headers['retry-after'], this.#o.now().getTime());
            this.#log.warn({ statusCode, retryAfterMs: s.retryAfterMs, body: body.slice(0, 4096) }, 'hub refused the connection for now: retrying with backoff');
          }
          else this.#log.error({ statusCode, body: body.slice(0, 4096) }, 'hub refused the connection: check this cluster\'s credential and id');
          this.emit('rejected', { statusCode, body });
          ws.terminate();
        };
        res.once('end', done);
        res.once('error', done);
      });
      ws.on('open', () => {
        this.#counters.connects++;
        this.#log.info({ mode }, 'connected to hub');
        this.emit('connected');
        this.#startHeartbeat(s, this.#heartbeatMs);
        // The opening waits for the hub's challenge (#handle).
      });
      ws.on('message', (data) => {
        s.sawTraffic = true;
        const raw = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
        this.#inbound = this.#inbound.then(() => this.#handle(s, raw)).catch((err: unknown) => this.#log.error({ err }, 'handling a hub message failed'));
      });
      ws.on('pong', () => {
        s.sawTraffic = true;
      });
      ws.on('ping', () => {
        s.sawTraffic = true;
      });
      ws.on('error', (err) => {
        this.#log.warn({ err: err.message }, 'hub connection error');
      });
      ws.on('close', (code, reasonBuf) => {
        clearInterval(s.timer);
        if (this.#session === s) this.#session = undefined;
        const reason = reasonBuf.toString();
        this.#log.info({ code, reason }, 'disconnected from hub');
        if (code === closeCodes.revoked && s.outcome !== 'stop') {
          // #revoked stops the link before its first await, so the loop below sees it.
          this.#revoked(s, 'the hub closed the connection: this cluster was revoked').catch((err: unknown) => this.#log.error({ err }, 'handling the revocation failed'));
        }
        this.emit('disconnected', { code, reason });
        resolve({ outcome: s.outcome, retryAfterMs: s.retryAfterMs });
      });
    });
  }

  #startHeartbeat(s: Session, periodMs: number): void {
    clearInterval(s.timer);
    s.timer = setInterval(() => {
      if (!s.sawTraffic) {
        s.silentTicks++;
        if (s.silentTicks >= SILENT_HEARTBEATS) {
          this.#counters.halfOpen++;
          this.#log.warn({ silentMs: periodMs * s.silentTicks }, 'hub is silent: presuming a half-open connection and reconnecting');
          s.ws.terminate();
          return;
        }
      } else {
        s.silentTicks = 0;
      }
      s.sawTraffic = false;
      if (s.welcomed) this.#heartbeat(s);
      if (s.ws.readyState === WebSocket.OPEN) s.ws.ping();
    }, periodMs);
  }

  #heartbeat(s: Session): void {
    const window = this.#windowChange(s);
    this.#send(s, { type: 'heartbeat', sentAt: this.#o.now().toISOString(), ...(window ? { maintenanceWindow: window } : {}) });
  }

  /** The maintenance window when it differs from what this connection last sent (marked sent), else undefined. */
  #windowChange(s: Session): MaintenanceWindow | undefined {
    let window: MaintenanceWindow | undefined;
    try {
      window = this.#o.maintenanceWindow?.();
    } catch (err) {
      // A policy that cannot be evaluated must not stop the lease renewing.
      this.#log.warn({ err }, 'maintenance window unavailable; heartbeat sent without it');
      return undefined;
    }
    if (!window) return undefined;
    const json = JSON.stringify(window);
    if (json === s.sentWindow) return undefined;
    s.sentWindow = json;
    return window;
  }

  async #sendOpening(s: Session, nonce: string): Promise<void> {
    if (s.opened) return;
    s.opened = true;
    let inv: Inventory = emptyInventory;
    try {
      inv = await this.#o.inventory();
    } catch (err) {
      this.#log.warn({ err }, 'inventory unavailable; sending an empty one');
    }
    if (s.mode === 'register') {
      this.#send(s, {
        type: 'register',
        bootstrapToken: this.#o.bootstrapToken?.() ?? '',
        clusterId: this.#o.clusterId,
        agentVersion: this.#o.agentVersion,
        inventory: inv,
        publicKey: this.#o.agentKey.publicKey,
        proof: signChallenge(this.#o.agentKey.privateKey, 'register', nonce, this.#o.clusterId),
      });
      return;
    }
    const stats = this.#o.outbox.stats();
    this.#send(s, {
      type: 'hello',
      clusterId: this.#o.clusterId,
      agentVersion: this.#o.agentVersion,
      inventory: inv,
      lastRevision: this.#o.lastRevision(),
      outbox: { firstSeq: stats.firstSeq, lastSeq: stats.lastSeq },
      proof: signChallenge(this.#o.agentKey.privateKey, 'hello', nonce, this.#o.clusterId),
      // Over a legacy credential: the key the hub binds in its place.
      ...(s.bearer ? { publicKey: this.#o.agentKey.publicKey } : {}),
    });
  }

  async #handle(s: Session, raw: Buffer): Promise<void> {
    const parsed = parseMessage(raw, 'from-hub');
    if (!parsed.ok) {
      this.#log.warn({ reason: parsed.error.reason, path: parsed.error.path, err: parsed.error.message }, 'ignoring a frame from the hub');
      return;
    }
    const m: HubMessage = parsed.message;
    switch (m.type) {
      case 'challenge':
        await this.#sendOpening(s, m.nonce);
        return;
      case 'welcome': {
        if (s.mode !== 'hello') return;
        if (s.bearer && !this.#keyBound) {
          this.#keyBound = true;
          this.#registered = true;
          this.#log.info('the hub bound this agent\'s key in place of its bearer credential');
          await this.#o.onRegistered?.();
          await this.#o.onKeyBound?.();
        }
        const lastSeq = this.#o.outbox.stats().lastSeq;
        if (m.ackedSeq > lastSeq) {
          this.#log.error({ hubAckedSeq: m.ackedSeq, lastSeq }, 'hub has acknowledged reports this agent never wrote: the journal was reset; deregister and register the cluster again');
        }
        this.#ackLocally(m.ackedSeq);
        s.welcomed = true;
        s.ackedSeq = m.ackedSeq;
        s.lastSentSeq = m.ackedSeq;
        if (m.heartbeatMs < this.#heartbeatMs) this.#startHeartbeat(s, m.heartbeatMs);
        this.#log.info({ ackedSeq: m.ackedSeq }, 'hub welcomed this agent');
        this.emit('welcome', { ackedSeq: m.ackedSeq });
        s.outcome = s.outcome === 'stop' ? 'stop' : 'welcomed';
        // The hub learns the window at once rather than a heartbeat period later.
        if (this.#o.maintenanceWindow) this.#heartbeat(s);
        this.#pump();
        return;
      }
      case 'ack': {
        if (m.expectedAfterSeq !== undefined && m.expectedAfterSeq < s.lastSentSeq) {
          // The hub holds nothing after this seq of what was sent: send it again from there.
          this.#log.warn({ expectedAfterSeq: m.expectedAfterSeq, lastSentSeq: s.lastSentSeq }, 'hub asked to resume reports from its mark');
          s.lastSentSeq = Math.max(m.expectedAfterSeq, m.uptoSeq);
          s.inflight = s.inflight.filter((seq) => seq <= s.lastSentSeq);
        }
        if (m.uptoSeq <= s.ackedSeq) {
          this.#pump();
          return;
        }
        this.#ackLocally(m.uptoSeq);
        s.ackedSeq = m.uptoSeq;
        while (s.inflight.length > 0 && (s.inflight[0] ?? 0) <= m.uptoSeq) s.inflight.shift();
        this.emit('acked', m.uptoSeq);
        this.#pump();
        return;
      }
      case 'release':
        this.#counters.releases++;
        await this.#o.onRelease(m.envelope);
        this.emit('release', m.envelope);
        return;
      case 'override':
        await this.#o.onOverride?.(m.envelope);
        return;
      case 'registration':
        await this.#registration(s, m.status, m.code, m.reason);
        return;
      case 'deregister': {
        const reason = m.reason ?? 'deregistered by the hub operator';
        this.#log.warn({ reason }, 'hub deregistered this cluster; stopping the link');
        this.#registered = false;
        this.#stopping.abort();
        s.outcome = 'stop';
        s.ws.close(1000, 'deregistered');
        await this.#o.onDeregister?.(reason);
        this.emit('deregistered', reason);
        return;
      }
      case 'error':
        this.#log.warn({ code: m.code, message: m.message, retryAfterMs: m.retryAfterMs }, 'hub reported an error');
        if (m.retryAfterMs !== undefined) s.retryAfterMs = m.retryAfterMs;
        this.emit('hub-error', { code: m.code, message: m.message });
        if (m.code === 'Revoked') await this.#revoked(s, m.message);
        // Not (or no longer) registered under this key: ask again with the bootstrap token.
        else if ((m.code === 'Deregistered' || m.code === 'NotAccepted') && s.mode === 'hello' && !s.bearer) this.#registered = false;
        return;
    }
  }

  async #revoked(s: Session, reason: string): Promise<void> {
    if (this.#stopping.signal.aborted) return;
    this.#log.error({ reason }, 'this cluster was revoked on the hub: the link stops until the agent is bootstrapped again');
    this.#registered = false;
    this.#stopping.abort();
    s.outcome = 'stop';
    s.ws.close(1000, 'revoked');
    await this.#o.onRevoked?.(reason);
    this.emit('revoked', reason);
  }

  async #registration(s: Session, status: RegistrationStatus, code: string | undefined, reason: string | undefined): Promise<void> {
    if (s.mode !== 'register') return;
    if (status === 'pending') {
      this.#log.info('registration pending: an operator must accept this cluster on the hub');
    } else if (status === 'accepted') {
      await this.#o.onRegistered?.();
      this.#registered = true;
      this.#log.info('registration accepted; reconnecting to prove this agent\'s key');
      if (s.outcome !== 'stop') s.outcome = 'reconnect-now';
      s.ws.close(1000, 'registered');
    } else if (code === 'Revoked') {
      await this.#revoked(s, reason ?? 'revoked');
    } else {
      // KeyConflict waits for an operator, a bad token for a new one: both retry with backoff.
      this.#log.error({ code, reason }, 'hub rejected the registration');
      s.ws.close(1000, 'registration rejected');
    }
    this.emit('registration', { status, code, reason });
  }

  /**
   * Drops acknowledged rows and counts them by what ack() says it removed
   * (the Outbox contract). Not by stats().depth before and after: the
   * journal counts its rows with a scan, so a deep outbox (a long partition)
   * paid two full scans per ack and draining 100k reports was quadratic
   * (bench/hub-replay.ts).
   */
  #ackLocally(uptoSeq: number): void {
    const removed = this.#o.outbox.ack(uptoSeq);
    this.#counters.acked += Number.isFinite(removed) ? Math.max(0, removed) : 0;
  }

  #pump(): void {
    const s = this.#session;
    if (!s?.welcomed || s.ws.readyState !== WebSocket.OPEN) return;
    while (s.inflight.length < this.#window) {
      const rows = this.#o.outbox.pending(s.lastSentSeq, Math.min(this.#batchSize, this.#window - s.inflight.length));
      if (rows.length === 0) return;
      const batch = this.#batch(rows);
      if (batch === undefined) return;
      if (batch.length === 0) continue; // the head was quarantined: look again past it
      const sent = this.#send(s, { type: 'reports', afterSeq: s.lastSentSeq, reports: batch });
      if (!sent) return;
      for (const r of batch) s.inflight.push(r.seq);
      s.lastSentSeq = batch[batch.length - 1]?.seq ?? s.lastSentSeq;
      this.#counters.sent += batch.length;
    }
  }

  /**
   * The rows that fit one frame, in order, up to the first the hub could not
   * take: that one is quarantined (the outbox moves on; the hub hears of it
   * in a report), never sent to be refused and re-sent forever. Undefined
   * when the journal could not quarantine it: try again at the next pump.
   */
  #batch(rows: readonly OutboxRow[]): ReportEntry[] | undefined {
    const batch: ReportEntry[] = [];
    let bytes = 0;
    for (const r of rows) {
      const entry: ReportEntry = { seq: r.seq, kind: r.kind, body: r.body, createdAt: r.createdAt };
      const json = JSON.stringify(entry);
      const problem = reportProblem(entry, json);
      if (problem) {
        try {
          this.#o.outbox.quarantine(r.seq, problem);
        } catch (err) {
          this.#log.error({ err, seq: r.seq }, 'cannot quarantine a report the hub cannot take');
          return batch.length > 0 ? batch : undefined;
        }
        this.#counters.quarantined++;
        this.#log.error({ seq: r.seq, kind: r.kind, reason: problem.reason, bytes: problem.bytes }, `quarantined a report the hub cannot take: ${problem.message}`);
        return batch;
      }
      // One frame holds what the hub accepts in one (MAX_FRAME_BYTES): the rest goes in the next.
      const share = Buffer.byteLength(json) + 1;
      if (batch.length > 0 && bytes + share > MAX_REPORT_BYTES) return batch;
      bytes += share;
      batch.push(entry);
    }
    return batch;
  }

  #send(s: Session, message: Outgoing<AgentMessage>): boolean {
    if (s.ws.readyState !== WebSocket.OPEN) return false;
    let text: string;
    try {
      text = encodeMessage(message);
    } catch (err) {
      this.#log.error({ err, type: message.type }, 'cannot serialise a message for the hub');
      return false;
    }
    s.ws.send(text);
    return true;
  }
}
