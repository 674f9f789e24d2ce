// The operator's HTTP JSON API (documented in docs/hub-api.md). Every
// /api/v1 route needs an operator token whose role allows it
// (auth/operator-auth.ts: reads need viewer, changes operator, tokens and
// keys admin); every mutating call is written to the audit table. Agents
// never use this API, they talk over the WebSocket.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { ApiError } from './api-error.ts';
import { acceptCluster, deregisterCluster, revokeCluster, setDesiredRelease, trustClusterKey } from './cluster-operations.ts';
import { issueBootstrapToken, revokeBootstrapToken } from './token-operations.ts';
import { clusterView, fleetSummary } from './cluster-view.ts';
import { authorizeOperator, identifyOperator, type OperatorRole } from './auth/operator-auth.ts';
import { createOperatorToken, revokeOperatorToken } from './token-operations.ts';
import type { HubContext } from './hub-context.ts';
import { createHubMetrics } from './metrics.ts';
import { DatabaseUnavailable } from './store/sql.ts';
import { labelsRequest } from '../protocol/rollout.ts';
import { overrideClusters } from './rollout/override-delivery.ts';
import { cancelRollout, createRollout, listRollouts, pauseRollout, resumeRollout, rollbackRollout, rolloutStatus } from './rollout/rollout-operations.ts';

/** A release with manifests can be large; anything past this is refused unread. */
const MAX_BODY_BYTES = 10 * 1024 * 1024;

type Handler = (ctx: HubContext, params: string[], url: URL, req: IncomingMessage) => Promise<unknown> | unknown;

interface Route {
  method: string;
  pattern: RegExp;
  status?: number;
  /** Default: viewer for GET, operator otherwise. */
  role?: OperatorRole;
  handler: Handler;
}

const id = '([a-z0-9][-a-z0-9.]{0,251}[a-z0-9]|[a-z0-9])';

const routes: Route[] = [
  { method: 'GET', pattern: /^\/api\/v1\/clusters$/, handler: async (ctx) => ({ clusters: await Promise.all((await ctx.clusters.list()).map((c) => clusterView(ctx, c))) }) },
  { method: 'GET', pattern: new RegExp(`^/api/v1/clusters/${id}$`), handler: async (ctx, [cid]) => clusterView(ctx, await requireCluster(ctx, cid)) },
  { method: 'DELETE', pattern: new RegExp(`^/api/v1/clusters/${id}$`), handler: async (ctx, [cid]) => (await deregisterCluster(ctx, cid ?? ''), { deregistered: cid }) },
  { method: 'POST', pattern: new RegExp(`^/api/v1/clusters/${id}/accept$`), handler: async (ctx, [cid]) => ({ accepted: cid, ...(await acceptCluster(ctx, cid ?? '')) }) },
  { method: 'POST', pattern: new RegExp(`^/api/v1/clusters/${id}/revoke$`), role: 'admin', handler: async (ctx, [cid]) => ({ revoked: cid, ...(await revokeCluster(ctx, cid ?? '')) }) },
  { method: 'POST', pattern: new RegExp(`^/api/v1/clusters/${id}/trust-key$`), role: 'admin', handler: async (ctx, [cid], _url, req) => ({ clusterId: cid, ...(await trustClusterKey(ctx, cid ?? '', await readJson(req))) }) },
  // ---- bootstrap tokens (docs/security.md)
  { method: 'GET', pattern: /^\/api\/v1\/bootstrap-tokens$/, role: 'admin', handler: async (ctx) => ({ tokens: await ctx.bootstrapTokens.list() }) },
  { method: 'POST', pattern: /^\/api\/v1\/bootstrap-tokens$/, role: 'admin', status: 201, handler: async (ctx, _p, _url, req) => issueBootstrapToken(ctx, await readOptionalJson(req)) },
  { method: 'DELETE', pattern: new RegExp(`^/api/v1/bootstrap-tokens/${id}$`), role: 'admin', handler: (ctx, [tid]) => revokeBootstrapToken(ctx, tid ?? '') },
  // ---- operator tokens and the audit table (docs/security.md)
  { method: 'GET', pattern: /^\/api\/v1\/operator-tokens$/, role: 'admin', handler: async (ctx) => ({ tokens: await ctx.operatorTokens.list() }) },
  { method: 'POST', pattern: /^\/api\/v1\/operator-tokens$/, role: 'admin', status: 201, handler: async (ctx, _p, _url, req) => createOperatorToken(ctx, await readJson(req), (await identifyOperator(ctx, req.headers.authorization))?.name ?? 'unknown') },
  { method: 'DELETE', pattern: new RegExp(`^/api/v1/operator-tokens/${id}$`), role: 'admin', handler: (ctx, [tid]) => revokeOperatorToken(ctx, tid ?? '') },
  {
    method: 'GET',
    pattern: /^\/api\/v1\/audit$/,
    role: 'admin',
    handler: async (ctx, _p, url) => {
      const entries = await ctx.audit.list({ afterId: intParam(url, 'after', 0), limit: intParam(url, 'limit', 100, 1000) });
      return { entries, next: entries.at(-1)?.id ?? null };
    },
  },
  {
    method: 'PUT',
    pattern: new RegExp(`^/api/v1/clusters/${id}/release$`),
    handler: async (ctx, [cid], _url, req) => {
      const { record, delivered } = await setDesiredRelease(ctx, cid ?? '', await readJson(req));
      return { clusterId: record.clusterId, revision: record.revision, name: record.name, version: record.version, issuedAt: record.issuedAt, expiresAt: record.expiresAt, keyId: record.envelope.keyId, delivered };
    },
  },
  {
    method: 'GET',
    pattern: new RegExp(`^/api/v1/clusters/${id}/release$`),
    handler: async (ctx, [cid]) => {
      await requireCluster(ctx, cid);
      const r = await ctx.releases.latest(cid ?? '');
      if (!r) throw new ApiError(404, 'NoRelease', `no desired release set for cluster "${cid}"`);
      return r;
    },
  },
  {
    method: 'GET',
    pattern: new RegExp(`^/api/v1/clusters/${id}/reports$`),
    handler: async (ctx, [cid], url) => {
      const c = await requireCluster(ctx, cid);
      return { clusterId: c.id, ackedSeq: c.ackedSeq, reports: await ctx.reports.list(c.id, { afterSeq: intParam(url, 'after', 0), limit: intParam(url, 'limit', 100, 1000) }) };
    },
  },
  {
    method: 'PUT',
    pattern: new RegExp(`^/api/v1/clusters/${id}/labels$`),
    handler: async (ctx, [cid], _url, req) => {
      await requireCluster(ctx, cid);
      const body = labelsRequest.safeParse(await readJson(req));
      if (!body.success) throw new ApiError(400, 'InvalidLabels', 'send {"labels": {"key": "value", ...}}', body.error.issues);
      await ctx.clusters.setLabels(cid ?? '', body.data.labels);
      return { clusterId: cid, labels: body.data.labels };
    },
  },
  { method: 'GET', pattern: /^\/api\/v1\/fleet\/summary$/, handler: (ctx) => fleetSummary(ctx) },
  // ---- rollouts (docs/hub-api.md "Rollouts")
  { method: 'GET', pattern: /^\/api\/v1\/rollouts$/, handler: (ctx) => listRollouts(ctx) },
  { method: 'POST', pattern: /^\/api\/v1\/rollouts$/, status: 201, handler: async (ctx, _p, _url, req) => createRollout(ctx, await readJson(req)) },
  {
    method: 'GET',
    pattern: new RegExp(`^/api/v1/rollouts/${id}$`),
    handler: (ctx, [name], url) => {
      const clusters = url.searchParams.get('clusters') ?? 'failed';
      if (clusters !== 'all' && clusters !== 'failed') throw new ApiError(400, 'InvalidQuery', '"clusters" must be all or failed');
      return rolloutStatus(ctx, name ?? '', { clusters });
    },
  },
  { method: 'POST', pattern: new RegExp(`^/api/v1/rollouts/${id}/pause$`), handler: async (ctx, [name], _url, req) => pauseRollout(ctx, name ?? '', await readOptionalJson(req)) },
  { method: 'POST', pattern: new RegExp(`^/api/v1/rollouts/${id}/resume$`), handler: (ctx, [name]) => resumeRollout(ctx, name ?? '') },
  { method: 'POST', pattern: new RegExp(`^/api/v1/rollouts/${id}/cancel$`), handler: (ctx, [name]) => cancelRollout(ctx, name ?? '') },
  { method: 'POST', pattern: new RegExp(`^/api/v1/rollouts/${id}/rollback$`), status: 201, handler: async (ctx, [name], _url, req) => rollbackRollout(ctx, name ?? '', await readOptionalJson(req)) },
  // ---- hotfix overrides
  { method: 'GET', pattern: /^\/api\/v1\/overrides$/, handler: async (ctx) => ({ overrides: await ctx.overrides.list() }) },
  {
    method: 'GET',
    pattern: new RegExp(`^/api/v1/overrides/${id}$`),
    handler: async (ctx, [name]) => {
      const o = await ctx.overrides.get(name ?? '');
      if (!o) throw new ApiError(404, 'NotFound', `no override "${name}"`);
      return o;
    },
  },
  {
    method: 'GET',
    pattern: new RegExp(`^/api/v1/overrides/${id}/clusters$`),
    handler: (ctx, [name], url) => {
      const state = url.searchParams.get('state') ?? 'running';
      if (state !== 'running' && state !== 'missing') throw new ApiError(400, 'InvalidQuery', '"state" must be running or missing');
      return overrideClusters(ctx, name ?? '', state);
    },
  },
  {
    method: 'GET',
    pattern: /^\/api\/v1\/telemetry$/,
    handler: async (ctx, _p, url) => {
      const cluster = url.searchParams.get('cluster') ?? undefined;
      const events = await ctx.aggregate.telemetry({ clusterId: cluster, afterId: intParam(url, 'after', 0), limit: intParam(url, 'limit', 100, 1000) });
      return { events, next: events.at(-1)?.id ?? null };
    },
  },
];

async function requireCluster(ctx: HubContext, cid: string | undefined) {
  const c = await ctx.clusters.get(cid ?? '');
  if (!c) throw new ApiError(404, 'NotFound', `no cluster "${cid}"`);
  return c;
}

function intParam(url: URL, name: string, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = url.searchParams.get(name);
  if (raw === null) return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw new ApiError(400, 'InvalidQuery', `"${name}" must be a non-negative integer`);
  return Math.min(n, max);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) throw new ApiError(413, 'TooLarge', `body is larger than ${MAX_BODY_BYTES} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new ApiError(413, 'TooLarge', `body is larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw new ApiError(400, 'NotJson', 'the body must be JSON');
  }
}

/** An empty body is an empty object: pause and rollback take optional JSON. */
async function readOptionalJson(req: IncomingMessage): Promise<unknown> {
  if (Number(req.headers['content-length'] ?? 0) === 0 && req.headers['transfer-encoding'] === undefined) return {};
  return readJson(req);
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/**
 * 503: this replica cannot reach its database. The request may succeed on
 * another replica, or here in a moment. Nothing was changed, unless the
 * connection broke while a change was committing (then the change may have
 * been made: read before repeating it).
 */
function sendUnavailable(res: ServerResponse, message: string): void {
  send(res, 503, { error: { reason: 'DatabaseUnavailable', message } }, { 'retry-after': '1' });
}

export function createApiHandler(ctx: HubContext, log: Logger): (req: IncomingMessage, res: ServerResponse) => void {
  const metrics = createHubMetrics(ctx);
  let rateLimitLoggedAt = -Infinity;
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://hub');
    if (url.pathname.startsWith('/api/')) {
      // Before the token is looked at: a flood of guesses costs a bucket, not a hash and an audit row each.
      const wait = ctx.apiRateLimit.take(req.socket.remoteAddress);
      if (wait > 0) {
        const { perSecond, burst } = ctx.apiRateLimit.limits;
        if (performance.now() - rateLimitLoggedAt > 10_000) {
          rateLimitLoggedAt = performance.now();
          log.warn({ remote: req.socket.remoteAddress, perSecond, burst }, 'API requests rate limited (logged at most every 10 s)');
        }
        send(res, 429, { error: { reason: 'RateLimited', message: `more than ${perSecond} API requests per second from this address (burst ${burst}): retry in ${Math.ceil(wait / 1000)} s` } }, { 'retry-after': String(Math.ceil(wait / 1000)) });
        return;
      }
    }
    if (url.pathname === '/healthz' || url.pathname === '/livez') {
      // Liveness: the process answers. Not the database: restarting a replica does not bring its database back.
      send(res, 200, { status: 'ok' });
      return;
    }
    if (url.pathname === '/readyz') {
      // Readiness: the database answered the last probes (database-health.ts); cut off from it, the replica is taken out of the Service.
      if (ctx.health.ready) send(res, 200, { status: 'ready', since: ctx.health.since.toISOString() });
      else send(res, 503, { status: 'unavailable', reason: 'DatabaseUnavailable', message: ctx.health.reason });
      return;
    }
    if (!ctx.health.ready && (url.pathname.startsWith('/api/') || url.pathname === '/metrics')) {
      // Nothing here can be answered without the database; at once, rather than after a statement's timeout. Unaudited: the audit table is there too.
      sendUnavailable(res, ctx.health.reason ?? 'this hub replica cannot reach its database');
      return;
    }
    if (url.pathname === '/metrics') {
      // A viewer token, as for the API: the series name every cluster. Prometheus sends it with `authorization: {credentials: …}`.
      authorizeOperator(ctx, req.headers.authorization, 'viewer').then(
        () => metrics.render(),
        (err: unknown) => {
          const e = err instanceof ApiError ? err : new ApiError(503, 'Unavailable', 'the hub cannot reach its database');
          send(res, e.status, { error: { reason: e.reason, message: e.message } }, e.status === 401 || e.status === 403 ? { 'www-authenticate': 'Bearer' } : {});
          return undefined;
        },
      ).then(
        (text) => {
          if (text === undefined) return;
          res.writeHead(200, { 'content-type': metrics.contentType, 'content-length': Buffer.byteLength(text) });
          res.end(text);
        },
        (err: unknown) => {
          log.error({ err }, 'rendering metrics failed');
          send(res, 500, { error: { reason: 'Internal', message: 'the hub failed; see its log' } });
        },
      );
      return;
    }
    const mutating = req.method !== 'GET' && req.method !== 'HEAD';
    const audit = async (status: number): Promise<void> => {
      if (!mutating || !url.pathname.startsWith('/api/')) return;
      try {
        const who = await identifyOperator(ctx, req.headers.authorization);
        await ctx.audit.record({ actor: who?.name ?? 'anonymous', role: who?.role ?? null, method: req.method ?? '', path: url.pathname, status, remoteAddress: req.socket.remoteAddress ?? null });
      } catch (err) {
        log.error({ err }, 'writing the audit table failed');
      }
    };
    void (async () => {
      try {
        const matching = routes.filter((r) => r.pattern.test(url.pathname));
        const route = matching.find((r) => r.method === req.method);
        if (url.pathname.startsWith('/api/')) {
          // Authenticated before the route is revealed: an anonymous caller learns nothing of the API's shape.
          try {
            await authorizeOperator(ctx, req.headers.authorization, route?.role ?? (req.method === 'GET' ? 'viewer' : 'operator'));
          } catch (err) {
            if (err instanceof ApiError) log.warn({ method: req.method, path: url.pathname, remote: req.socket.remoteAddress, reason: err.reason }, 'API request refused: token missing or its role too low');
            throw err;
          }
        }
        if (matching.length === 0) throw new ApiError(404, 'NotFound', `no route ${url.pathname}`);
        if (!route) throw new ApiError(405, 'MethodNotAllowed', `${req.method ?? ''} is not allowed here; use ${matching.map((r) => r.method).join(', ')}`);
        const params = (route.pattern.exec(url.pathname) ?? []).slice(1);
        const body = await route.handler(ctx, params, url, req);
        await audit(route.status ?? 200);
        send(res, route.status ?? 200, body);
      } catch (err) {
        if (err instanceof ApiError) {
          if (err.status >= 400 && err.status !== 404 && err.status !== 401 && err.status !== 403) log.info({ method: req.method, path: url.pathname, status: err.status, reason: err.reason }, 'API request refused');
          await audit(err.status);
          send(res, err.status, { error: { reason: err.reason, message: err.message, details: err.details } }, err.status === 401 ? { 'www-authenticate': 'Bearer' } : {});
          return;
        }
        if (err instanceof DatabaseUnavailable) {
          // Before the probe noticed: same answer as after, and the probe looks now.
          log.warn({ err: err.message, method: req.method, path: url.pathname }, 'API request failed: the database is unreachable');
          void ctx.health.check();
          if (!res.headersSent) sendUnavailable(res, `this hub replica cannot reach its database (${err.message}); another replica may answer`);
          else res.destroy();
          return;
        }
        log.error({ err, method: req.method, path: url.pathname }, 'API request failed');
        await audit(500);
        if (!res.headersSent) send(res, 500, { error: { reason: 'Internal', message: 'the hub failed; see its log' } });
        else res.destroy();
      }
    })();
  };
}
