// The reference hub: WebSocket for agents and HTTP JSON for operators on one
// port, state in one SQLite file, or in PostgreSQL shared by several
// replicas (docs/hub-ha.md). `fleetlet hub` calls startHub.
import type { KeyObject } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, BlockList } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { AGENT_PATH, CLUSTER_ID_HEADER, MAX_FRAME_BYTES } from '../protocol/messages.ts';
import { AgentSession, type SessionIdentity } from './agent-session.ts';
import { BannedAddresses, type AbuseBanOptions } from './abuse-bans.ts';
import type { ConnectionBudgets } from './connection-budget.ts';
import type { ApiRateLimits } from './api-rate-limit.ts';
import type { FailureThrottleOptions } from './failure-throttle.ts';
import { MIN_BOOTSTRAP_TOKEN_CHARS } from './store/bootstrap-token-repo.ts';
import { startDashboard, type RunningDashboard } from './dashboard/server.ts';
import { createHttpApi } from './http-api.ts';
import { createHubContext } from './hub-context.ts';
import { startRolloutTicker } from './rollout/rollout-ticker.ts';
import { DashboardRepo } from './store/dashboard-repo.ts';
import { handleReplicaEvent } from './replicas/fleet-delivery.ts';
import { postgresBus, singleReplica, type ReplicaBus } from './replicas/replica-bus.ts';
import { Throttle } from './throttle.ts';
import { alwaysLeader, postgresLeader, type RolloutLeader } from './replicas/rollout-leader.ts';
import { openHubDatabase, type HubDatabaseLocation } from './store/database.ts';
import type { GroupCommitter } from './store/group-commit.ts';
import { PostgresSql } from './store/postgres-sql.ts';
import { authenticateUpgrade } from './upgrade-auth.ts';

export interface HubOptions {
  port: number;
  /** Default 127.0.0.1; bind 0.0.0.0 (with tls) to serve a fleet. */
  host?: string;
  /** The SQLite file (one machine), unless `database` names a PostgreSQL database. */
  dbPath: string;
  /** postgres://user@host:port/db: state in PostgreSQL, shared with other replicas (docs/hub-ha.md). */
  database?: string | undefined;
  /** The PostgreSQL password, when not in the URL (from the environment or a file, never argv). */
  databasePassword?: string | undefined;
  /** The hub's Ed25519 private release key. */
  releaseKey: KeyObject;
  /** Default: derived from the key (keyIdOf). */
  releaseKeyId?: string;
  /** The first admin: operators present it as "Authorization: Bearer <adminToken>"; more tokens, with roles, are created through the API. */
  adminToken: string;
  /**
   * Tokens an agent may register with, from the hub's configuration (at
   * least 43 characters: 32 random bytes, base64url). More can be issued
   * through the API, with an expiry and a use limit.
   */
  bootstrapTokens: readonly string[];
  /** Per-connection abuse budgets (connection-budget.ts); defaults suit a fleet. */
  budgets?: Partial<ConnectionBudgets>;
  /** How long an offender cut off for abuse is refused, growing per offence (abuse-bans.ts). */
  abuseBans?: Partial<AbuseBanOptions>;
  /** Operator API requests per source address (api-rate-limit.ts); defaults suit people and scripts, not a load test. */
  apiRateLimits?: Partial<ApiRateLimits>;
  /** Failed authentications allowed per source address and window. */
  throttle?: FailureThrottleOptions;
  /** New registrations are refused past this many pending. Default 1,000. */
  maxPendingRegistrations?: number;
  /** Most simultaneous TCP connections (agents and operators). Default 20,000. */
  maxConnections?: number;
  /** Heartbeat period agents are told to keep. Default 10 s. */
  heartbeatMs?: number;
  /** Lease = graceMultiplier × heartbeatMs. Default 5. */
  graceMultiplier?: number;
  /** Lifetime of a signed release. Default 7 days. */
  releaseTtlMs?: number;
  /** How often rollouts are evaluated without any change. Default 1000 ms. */
  rolloutTickMs?: number;
  /**
   * How often lease renewals (lastSeen) kept in memory are written, all in
   * one transaction; also on close. Default 1000 ms. See store/cluster-repo.ts
   * for why losing that much in a crash is harmless.
   */
  leaseFlushMs?: number;
  /** PEM key and certificate: serve https/wss. */
  tls?: { key: string | Buffer; cert: string | Buffer };
  /**
   * Serve the fleet dashboard on its own port (src/hub/dashboard), signed in with operator tokens (the admin token or those made through the API).
   * `live`: how its pages learn of changes (dashboard/change-feed.ts; tests shorten or lengthen them).
   */
  dashboard?: { port: number; host?: string; assetsDir?: string; live?: { coalesceMs?: number; sweepMs?: number } };
  now: () => Date;
  logger: Logger;
}

export interface RunningHub {
  /** Where agents connect (ws:// or wss://…/api/v1/agent). */
  url: string;
  /** Base URL of the HTTP API. */
  httpUrl: string;
  port: number;
  /** The dashboard's address, when it was asked for. */
  dashboardUrl?: string;
  /** Where this replica's writes spend their time, cumulative since start (the benchmarks read it: bench/hub-child.ts). */
  stats(): HubRuntimeStats;
  close(): Promise<void>;
}

export interface HubRuntimeStats {
  groupCommit: GroupCommitter['stats'] & { commits: number; pending: number };
  /** PostgreSQL only: statements sent (round trips) and the pool's connections now. */
  database?: { statements: number; poolTotal: number; poolIdle: number; poolWaiting: number };
}

export async function startHub(options: HubOptions): Promise<RunningHub> {
  const log = options.logger.child({ component: 'hub' });
  if (options.adminToken.length < 16) throw new TypeError('adminToken must be at least 16 characters');
  const weak = options.bootstrapTokens.findIndex((t) => t.length < MIN_BOOTSTRAP_TOKEN_CHARS);
  if (weak >= 0) throw new TypeError(`bootstrap token #${weak + 1} has ${options.bootstrapTokens[weak]?.length ?? 0} characters; at least ${MIN_BOOTSTRAP_TOKEN_CHARS} are required (32 random bytes, base64url: \`openssl rand -base64 32\`)`);
  const heartbeatMs = options.heartbeatMs ?? 10_000;
  const graceMultiplier = options.graceMultiplier ?? 5;
  const where: HubDatabaseLocation = options.database
    ? { kind: 'postgres', connectionString: options.database, password: options.databasePassword, onError: (err) => log.warn({ err: err.message }, 'a pooled database connection failed') }
    : { kind: 'sqlite', path: options.dbPath };
  const db = await openHubDatabase(where);
  let bus: ReplicaBus = singleReplica();
  let leader: RolloutLeader = alwaysLeader;
  if (db instanceof PostgresSql) {
    try {
      bus = await postgresBus(db, log);
    } catch (err) {
      await db.close();
      throw err;
    }
  }
  const ctx = await createHubContext({
    db,
    bus,
    now: options.now,
    log,
    heartbeatMs,
    graceMultiplier,
    bootstrapTokens: options.bootstrapTokens,
    adminToken: options.adminToken,
    budgets: options.budgets,
    abuseBans: options.abuseBans,
    apiRateLimits: options.apiRateLimits,
    throttle: options.throttle,
    maxPendingRegistrations: options.maxPendingRegistrations,
    releaseKey: options.releaseKey,
    releaseKeyId: options.releaseKeyId,
    releaseTtlMs: options.releaseTtlMs,
  });

  const tickMs = options.rolloutTickMs ?? 1000;
  if (db instanceof PostgresSql) {
    // Attempts every tick: a dead driver is replaced within one tick of the database freeing its lock.
    leader = postgresLeader(db, log, { attemptMs: tickMs, allowed: () => ctx.health.ready, onChange: (leading) => leading && ticker.notify() });
  }
  // A replica that cannot reach its database drives nothing: its view is stale, and what it decided could not be stored.
  const ticker = startRolloutTicker(ctx, log, { intervalMs: tickMs, leading: () => leader.leading && ctx.health.ready });
  /** Every live agent connection, whatever its state: sent away when the database goes. */
  const live = new Set<AgentSession>();
  // On a replica that does not drive rollouts, a change is announced to the one that does (at most every 50 ms).
  let announced: NodeJS.Timeout | undefined;
  ctx.rolloutInputChanged = () => {
    if (leader.leading) return ticker.notify();
    announced ??= setTimeout(() => {
      announced = undefined;
      bus.publish({ t: 'input' }).catch((err: unknown) => log.warn({ err }, 'announcing a rollout input to the driving replica failed'));
    }, 50);
  };
  // What the dashboard shows changed here: its pages look (set once it runs), and so do other replicas' dashboards, told at most every 250 ms.
  let dashboard: RunningDashboard | undefined;
  let announceTokens = false;
  const announcer = new Throttle(
    async () => {
      const tokens = announceTokens;
      announceTokens = false;
      await bus.publish({ t: 'changed', ...(tokens ? { tokens } : {}) });
    },
    250,
    { onError: (err) => log.warn({ err }, 'announcing a dashboard change to the other replicas failed') },
  );
  ctx.fleetChanged = (what = {}) => {
    dashboard?.hint(what);
    if (!bus.distributed) return;
    if (what.tokens) announceTokens = true;
    announcer.request();
  };
  bus.onMissed(() => {
    for (const session of live) session.sendAway('this hub replica missed changes made through other replicas: reconnect to get the current state', 'hub missed changes');
    ctx.rolloutInputChanged();
    dashboard?.hint({ tokens: true });
  });
  bus.subscribe((event) => {
    // Every event from another replica is a change there (a release sent, a cluster accepted or gone, an agent connected, reports applied, or said so).
    dashboard?.hint({ tokens: event.t === 'changed' && event.tokens === true });
    handleReplicaEvent(ctx, event, () => ctx.rolloutInputChanged()).catch((err: unknown) => log.error({ err, event: event.t }, 'handling an event from another replica failed'));
  });

  ctx.health.onChange((ready) => {
    if (ready) {
      ticker.notify();
      return;
    }
    const message = `${ctx.health.reason ?? 'this hub replica cannot reach its database'}: reconnect`;
    for (const session of live) session.sendAway(message);
    leader.release();
  });
  // SQLite is a file of this process: a slow probe would only measure a transaction holding the connection, and there is no other replica to send agents to.
  if (db instanceof PostgresSql) ctx.health.start();

  const flushLeases = async (): Promise<void> => {
    try {
      const connections = ctx.clusters.connectionsWritten;
      await ctx.clusters.flushLeases();
      // A (re)connected agent's lease is stored now: its cluster may no longer be Unknown. Renewals alone change nothing shown.
      if (ctx.clusters.connectionsWritten !== connections) ctx.fleetChanged();
    } catch (err) {
      // Kept in memory (and still what availability reads): the next flush retries.
      log.error({ err }, 'writing lease renewals failed');
    }
  };
  let flushing: Promise<void> | undefined;
  const leaseFlusher = setInterval(() => {
    flushing ??= flushLeases().finally(() => (flushing = undefined));
  }, options.leaseFlushMs ?? 1000);
  leaseFlusher.unref();

  // The operator API on Fastify, which makes the server (with its body limit and timeouts: http-api.ts); agents upgrade to a WebSocket on the same one.
  const http = await createHttpApi(ctx, log, { tls: options.tls });
  await http.ready();
  const server: Server = http.server;
  // Addresses banned for abuse that keep knocking are dropped as their connections are accepted (abuse-bans.ts).
  // net.Server takes a blockList option, but http.Server does not pass it on; net.Server reads the property on every accept.
  (server as Server & { blockList?: BlockList }).blockList = new BannedAddresses(ctx.bans);
  server.maxConnections = options.maxConnections ?? 20_000;
  server.maxHeadersCount = 100;
  // permessage-deflate without context takeover: with takeover, ws compresses
  // every frame whatever its size, so each connection pins a zlib deflate and
  // inflate context (~250 KiB) for its lifetime, which is most of the hub's
  // memory per agent (bench/hub-capacity.ts). Without it the 1 KiB threshold
  // applies: heartbeats, acks and welcomes go plain and allocate nothing;
  // releases and large report batches are still compressed.
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_FRAME_BYTES,
    perMessageDeflate: { serverNoContextTakeover: true, clientNoContextTakeover: true, threshold: 1024 },
  });

  /** Set by close(): no new agent connection from then on. */
  let shuttingDown = false;
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', (err) => log.debug({ err: err.message }, 'upgrade socket error'));
    // First, before anything else is looked at: an address cut off for abuse costs the hub this check and a short answer, not a handshake (abuse-bans.ts).
    const remote = req.socket.remoteAddress;
    const banned = remote === undefined ? 0 : ctx.bans.retryAfterMs({ kind: 'address', address: remote });
    if (banned > 0) {
      const seconds = Math.ceil(banned / 1000);
      // Not logged: the cut-off that started the ban was, once; a line per refused attempt is what a flooder wants.
      ctx.bans.refused({ kind: 'address', address: remote as string });
      refuseUpgrade(socket, 429, { reason: 'Banned', message: `connections from this address were cut off for exceeding their budget: retry in ${seconds} s` }, seconds);
      return;
    }
    if (shuttingDown) {
      // Agents reconnect within one backoff step of the 1001 close; one let in now would hold close() open.
      refuseUpgrade(socket, 503, { reason: 'ShuttingDown', message: 'the hub is shutting down; reconnect shortly' });
      return;
    }
    if (!ctx.health.ready) {
      // At once, not after a statement's timeout: the agent's next attempt goes to a replica that can serve it.
      refuseUpgrade(socket, 503, { reason: 'DatabaseUnavailable', message: ctx.health.reason ?? 'the hub cannot reach its database' });
      return;
    }
    authenticateUpgrade(ctx, req).then(
      (decision) => {
        if (shuttingDown) return refuseUpgrade(socket, 503, { reason: 'ShuttingDown', message: 'the hub is shutting down; reconnect shortly' });
        if (!decision.ok) {
          log.warn(
            { status: decision.status, reason: decision.reason, claimedClusterId: req.headers[CLUSTER_ID_HEADER], remote: req.socket.remoteAddress },
            'agent connection refused',
          );
          return refuseUpgrade(socket, decision.status, { reason: decision.reason, message: decision.message }, decision.retryAfterSeconds);
        }
        const identity = decision.identity;
        wss.handleUpgrade(req, socket, head, (ws) => attach(ws, identity, remote));
      },
      (err: unknown) => {
        // The database is unreachable: the agent retries, and finds another replica behind the Service.
        log.error({ err }, 'authenticating an agent failed');
        refuseUpgrade(socket, 503, { reason: 'Unavailable', message: 'the hub cannot reach its database; reconnect shortly' });
      },
    );
  });

  function attach(ws: WebSocket, identity: SessionIdentity, remote: string | undefined): void {
    const session = new AgentSession(ctx, identity, {
      send: (text) => ws.send(text),
      close: (code, reason) => ws.close(code, reason),
      stopReading: () => {
        // What the peer sends after its cut-off is not even read; a peer that never answers the close is dropped after a grace, not ws's 30 s.
        ws.pause();
        setTimeout(() => ws.terminate(), CUT_OFF_GRACE_MS).unref();
      },
    }, remote);
    live.add(session);
    ws.on('message', (data: RawData) => session.handleFrame(toBuffer(data)));
    ws.on('ping', () => session.pinged());
    ws.on('pong', () => session.pinged());
    // Oversized frames end here: ws closes with 1009 and nothing was parsed.
    ws.on('error', (err) => log.warn({ err: err.message, clusterId: session.clusterId }, 'agent connection error'));
    // A connection silent for the whole lease is dead (half-open); dropping it frees the session slot.
    let silentTicks = 0;
    const timer = setInterval(() => {
      if (session.sawTraffic) silentTicks = 0;
      else if (++silentTicks >= graceMultiplier) {
        log.warn({ clusterId: session.clusterId }, 'agent silent for a whole lease: dropping the connection');
        ws.terminate();
      }
      session.sawTraffic = false;
    }, heartbeatMs);
    timer.unref();
    ws.on('close', (code, reason) => {
      clearInterval(timer);
      live.delete(session);
      session.closed();
      log.info({ clusterId: session.clusterId, code, reason: reason.toString() }, 'agent disconnected');
    });
    session.start();
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  if (options.dashboard) {
    dashboard = await startDashboard({
      ctx,
      repo: new DashboardRepo(db),
      port: options.dashboard.port,
      host: options.dashboard.host,
      ...(options.tls ? { tls: options.tls } : {}),
      assetsDir: options.dashboard.assetsDir,
      live: options.dashboard.live,
      logger: log,
    }).catch(async (err: unknown) => {
      await announcer.close();
      await ctx.health.stop();
      await ticker.stop();
      await leader.stop();
      clearInterval(leaseFlusher);
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await http.close();
      await bus.close();
      await db.close();
      throw err;
    });
  }
  const host = options.host && options.host !== '0.0.0.0' && options.host !== '::' ? options.host : '127.0.0.1';
  const hostPart = host.includes(':') ? `[${host}]` : host;
  const secure = options.tls !== undefined;
  const httpUrl = `${secure ? 'https' : 'http'}://${hostPart}:${port}`;
  const url = `${secure ? 'wss' : 'ws'}://${hostPart}:${port}${AGENT_PATH}`;
  log.info({ url, httpUrl }, 'hub listening');

  let closing: Promise<void> | undefined;
  return {
    url,
    httpUrl,
    port,
    ...(dashboard ? { dashboardUrl: dashboard.url } : {}),
    stats: () => ({
      groupCommit: { ...ctx.commits.stats, commits: ctx.commits.commits, pending: ctx.commits.pending },
      ...(db instanceof PostgresSql ? { database: { statements: db.statements, poolTotal: db.pool.totalCount, poolIdle: db.pool.idleCount, poolWaiting: db.pool.waitingCount } } : {}),
    }),
    close: () => (closing ??= (async () => {
      // Stop listening first, so reconnecting agents cannot keep the server open.
      shuttingDown = true;
      // Commit what is queued while the connections are open, so its acks still go out.
      await ctx.commits.flush();
      const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
      const closed = [...wss.clients].map((ws) => new Promise<void>((resolve) => {
        if (ws.readyState === ws.CLOSED) return resolve();
        ws.once('close', () => resolve());
        ws.close(1001, 'hub shutting down');
        setTimeout(() => ws.terminate(), 1_000).unref();
      }));
      await ctx.health.stop();
      await ticker.stop();
      await leader.stop();
      await dashboard?.close();
      dashboard = undefined;
      await Promise.all(closed);
      // Anything upgraded while the list above was taken goes too; HTTP keep-alive connections with it.
      for (const ws of wss.clients) ws.terminate();
      server.closeAllConnections();
      await serverClosed;
      // Fastify's own close: its hooks (the server was listened on and closed here, not through Fastify).
      await http.close();
      wss.close();
      clearInterval(leaseFlusher);
      if (announced !== undefined) clearTimeout(announced);
      await announcer.close();
      // Frames that arrived while closing are committed (unanswered: the agent re-sends, the hub de-duplicates).
      await ctx.commits.flush();
      await flushing;
      await flushLeases();
      await bus.close();
      await db.close();
      log.info('hub stopped');
    })()),
  };
}

/**
 * How long a connection cut off for abuse keeps its socket: long enough for
 * the error and the close frame to leave, while nothing more is read from it.
 */
const CUT_OFF_GRACE_MS = 1_000;

function refuseUpgrade(socket: Duplex, status: number, body: { reason: string; message: string }, retryAfterSeconds?: number): void {
  const text = JSON.stringify({ error: body });
  const retryAfter = retryAfterSeconds === undefined ? '' : `retry-after: ${retryAfterSeconds}\r\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\n${retryAfter}connection: close\r\n\r\n${text}`,
  );
}

function toBuffer(data: RawData): Buffer {
  return Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
}
