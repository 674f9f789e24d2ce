// The operator's HTTP JSON API (docs/hub-api.md; docs/openapi.json is
// generated from the routes below), on Fastify. Every /api/v1 route needs an
// operator token whose role allows it (auth/operator-auth.ts: reads need
// viewer, changes operator, tokens and keys admin), checked in an onRequest
// hook before the body is read or the route revealed; every mutating call is
// written to the audit table. Paths, queries and bodies are validated against
// the zod schemas of src/protocol before a handler runs. Agents never use this
// API: they upgrade to a WebSocket on the same server (start-hub.ts).
import fastifySwagger from '@fastify/swagger';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifySchema,
  type RawReplyDefaultExpression,
  type RawRequestDefaultExpression,
  type RawServerDefault,
} from 'fastify';
import { jsonSchemaTransform, jsonSchemaTransformObject, serializerCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import type { z } from 'zod';
import {
  acceptedCluster,
  apiErrorBody,
  auditPage,
  bootstrapToken,
  bootstrapTokenList,
  bootstrapTokenRequest,
  clusterLabels,
  clusterList,
  clusterParams,
  clusterView as clusterViewBody,
  createdOperatorToken,
  deregisteredCluster,
  desiredRelease,
  fleetSummary as fleetSummaryBody,
  idParams,
  issuedBootstrapToken,
  labelsRequest,
  liveness,
  MAX_PAGE,
  nameParams,
  openApiDocumentBody,
  operatorToken,
  operatorTokenList,
  operatorTokenRequest,
  overrideClusters as overrideClustersBody,
  overrideClustersQuery,
  overrideDefinition,
  overrideList,
  pageQuery,
  pauseRequest,
  readiness,
  releaseRequest,
  releaseSet,
  reportPage,
  revokedCluster,
  rollbackRequest,
  rollbackResult,
  rolloutList,
  rolloutRequest,
  rolloutStatusQuery,
  rolloutView,
  telemetryPage,
  telemetryQuery,
  trustedKey,
  trustKeyRequest,
  unreadiness,
  type ApiErrorBody,
} from '../protocol/hub-api.ts';
import { ApiError } from './api-error.ts';
import { identifyOperator, requireRole, type OperatorPrincipal, type OperatorRole } from './auth/operator-auth.ts';
import { acceptCluster, deregisterCluster, revokeCluster, setDesiredRelease, trustClusterKey } from './cluster-operations.ts';
import { clusterView, fleetSummary } from './cluster-view.ts';
import type { HubContext } from './hub-context.ts';
import { createHubMetrics, type HubMetrics } from './metrics.ts';
import { overrideClusters } from './rollout/override-delivery.ts';
import { cancelRollout, createRollout, listRollouts, pauseRollout, resumeRollout, rollbackRollout, rolloutStatus } from './rollout/rollout-operations.ts';
import { DatabaseConflict, DatabaseUnavailable } from './store/sql.ts';
import { createOperatorToken, issueBootstrapToken, revokeBootstrapToken, revokeOperatorToken } from './token-operations.ts';

/** A release with manifests can be large; anything past this is refused unread (413). */
export const MAX_BODY_BYTES = 10 * 1024 * 1024;
/**
 * Slow or idle clients cannot hold sockets open: a request's headers must
 * arrive within 10 s and all of it within 60 s; an idle keep-alive
 * connection closes after 5 s. There is no idle-socket timeout
 * (connectionTimeout): it would also cut agents' upgraded WebSocket
 * sockets, whose liveness the lease and ws pings look after.
 */
export const HTTP_TIMEOUTS = { headersTimeout: 10_000, requestTimeout: 60_000, keepAliveTimeout: 5_000 } as const;

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The role the route needs. Default: viewer for GET, operator otherwise. */
    role?: OperatorRole;
    /** How a body that does not validate is refused: the reason, and what to send instead. */
    invalidBody?: { reason: string; hint: string };
  }
  interface FastifyRequest {
    /** The caller, once the onRequest hook identified the token (null: none, or not a valid one). */
    operator: OperatorPrincipal | null;
    /** Refused before anything was looked at (rate limited, database unreachable): no audit row. */
    unaudited: boolean;
  }
}

/** A request that does not match its schema; the zod issues (with their paths) become the answer's details, as the API always gave them. */
class RequestInvalid extends Error {
  readonly issues: z.core.$ZodIssue[];
  /** Set by Fastify: which part of the request failed. */
  validationContext?: 'body' | 'querystring' | 'params' | 'headers';
  constructor(issues: z.core.$ZodIssue[]) {
    super('the request does not match its schema');
    this.issues = issues;
  }
}

const errorResponses = { '4xx': apiErrorBody, '5xx': apiErrorBody };
/** The answer's schema for a status, with the error shape: the answer is checked against it before it leaves (serializerCompiler). */
const answers = <S extends 200 | 201, T extends z.ZodType>(status: S, schema: T) => ({ [status]: schema, ...errorResponses }) as Record<S, T> & typeof errorResponses;
const pathOf = (req: FastifyRequest): string => req.url.split('?', 1)[0] ?? req.url;
const fail = (reason: string, message: string): ApiErrorBody => ({ error: { reason, message } });

/** "labels.ring: expected string; strategy: …": the fields at fault, in the message a person reads first. */
function describeIssues(issues: readonly z.core.$ZodIssue[], whole: string): string {
  const shown = issues.slice(0, 5).map((i) => `${i.path.length > 0 ? i.path.join('.') : whole}: ${i.message}`);
  return issues.length > 5 ? `${shown.join('; ')}; and ${issues.length - 5} more` : shown.join('; ');
}

/** The refusal an error stands for, or undefined for a failure of the hub (500). */
function refusalOf(err: unknown, req: FastifyRequest): ApiError | undefined {
  if (err instanceof ApiError) return err;
  if (err instanceof RequestInvalid) {
    if (err.validationContext === 'querystring') return new ApiError(400, 'InvalidQuery', `the query is invalid: ${describeIssues(err.issues, 'query')}`, err.issues);
    if (err.validationContext === 'params') return new ApiError(400, 'InvalidPath', `the path is invalid: ${describeIssues(err.issues, 'path')}`, err.issues);
    const { reason, hint } = req.routeOptions.config.invalidBody ?? { reason: 'InvalidRequest', hint: 'the request body is invalid' };
    return new ApiError(400, reason, `${hint}: ${describeIssues(err.issues, 'body')}`, err.issues);
  }
  const e = err as { code?: unknown; statusCode?: unknown; message?: unknown };
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new ApiError(413, 'TooLarge', `body is larger than ${MAX_BODY_BYTES} bytes`);
  // Fastify's own refusals (a bad Content-Length, a body on a route that takes none, …): a client error, said as such.
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) return new ApiError(e.statusCode, 'BadRequest', String(e.message));
  return undefined;
}

export interface HttpApiOptions {
  /** PEM key and certificate: serve https (and wss for agents). */
  tls?: { key: string | Buffer; cert: string | Buffer } | undefined;
}

/**
 * The hub's HTTP server: the operator API, /metrics and the probes, as a
 * Fastify instance whose `server` start-hub listens on and attaches the
 * agents' WebSocket upgrade to. `ctx` is only read by handlers, so the
 * OpenAPI document can be built without a hub (openApiDocument).
 */
export async function createHttpApi(ctx: HubContext, log: Logger, o: HttpApiOptions = {}): Promise<FastifyInstance> {
  const common = {
    loggerInstance: log,
    // The hub logs what matters about a request itself (refusals, failures, actions); one line per request would drown it.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: MAX_BODY_BYTES,
    requestTimeout: HTTP_TIMEOUTS.requestTimeout,
    keepAliveTimeout: HTTP_TIMEOUTS.keepAliveTimeout,
    // Cluster ids are DNS subdomains of up to 253 characters.
    routerOptions: { maxParamLength: 253 },
    // A URL the router cannot decode: refused in the API's shape, before any hook.
    frameworkErrors: (err: Error, _req: FastifyRequest, reply: FastifyReply) => {
      void reply.code(400).send(fail('BadUrl', `the URL cannot be read: ${err.message}`));
    },
  };
  // The https variant of Fastify's types differs only in the raw server; routes and hooks are the same.
  const app = (
    o.tls
      ? Fastify({ ...common, https: { key: o.tls.key, cert: o.tls.cert, headersTimeout: HTTP_TIMEOUTS.headersTimeout } })
      : Fastify({ ...common, http: { headersTimeout: HTTP_TIMEOUTS.headersTimeout } })
  ) as unknown as FastifyInstance;

  // Our own validator: Fastify calls it with the zod schema of each part of the request and keeps the parsed value (defaults applied).
  app.setValidatorCompiler(({ schema, httpPart }) => (data: unknown) => {
    // No body arrives as null; so does a JSON null, which is no request either: the optional bodies default, the others are refused.
    const result = (schema as z.ZodType).safeParse(httpPart === 'body' && data === null ? undefined : data);
    return result.success ? { value: result.data } : { error: new RequestInvalid(result.error.issues) };
  });
  app.setSerializerCompiler(serializerCompiler);
  app.decorateRequest('operator', null);
  app.decorateRequest('unaudited', false);

  // Whatever the Content-Type (or none), a body is JSON, as the API always read it: `curl -d` sends a form type by default.
  app.removeAllContentTypeParsers();
  const json = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('*', { parseAs: 'string' }, (req, body, done) => {
    // An empty body is no body: pause, rollback and bootstrap tokens take optional JSON (their schemas default it).
    if (body === '') return done(null, undefined);
    // Fastify's parser: it also refuses "__proto__" and "constructor.prototype" keys.
    void json(req, body as string, (err, value) => (err ? done(new ApiError(400, 'NotJson', 'the body must be JSON')) : done(null, value)));
  });

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'fleetlet hub operator API',
        version: 'v1',
        description:
          'The reference hub\'s HTTP JSON API for operators (docs/hub-api.md). Every /api/v1 route needs "Authorization: Bearer <token>" with the role named in its description (viewer < operator < admin). Errors are {"error": {"reason", "message", "details"?}}.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'an operator token (viewer, operator or admin)' } } },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
    // Schemas with an id (ApiError, RolloutRequest, …) become components, referenced from every route that uses them.
    transformObject: (input) => withoutUnusedSchemas(optionalBodies(jsonSchemaTransformObject(input))),
  });

  // ---- before anything else: rate limit, readiness, the caller and its role
  let rateLimitLoggedAt = -Infinity;
  app.addHook('onRequest', async (req, reply) => {
    const path = pathOf(req);
    const api = path.startsWith('/api/');
    if (api) {
      // Before the token is looked at: a flood of guesses costs a bucket, not a hash and an audit row each.
      const wait = ctx.apiRateLimit.take(req.socket.remoteAddress);
      if (wait > 0) {
        req.unaudited = true;
        const { perSecond, burst } = ctx.apiRateLimit.limits;
        if (performance.now() - rateLimitLoggedAt > 10_000) {
          rateLimitLoggedAt = performance.now();
          log.warn({ remote: req.socket.remoteAddress, perSecond, burst }, 'API requests rate limited (logged at most every 10 s)');
        }
        const seconds = Math.ceil(wait / 1000);
        return reply
          .code(429)
          .header('retry-after', String(seconds))
          .send(fail('RateLimited', `more than ${perSecond} API requests per second from this address (burst ${burst}): retry in ${seconds} s`));
      }
    }
    if (!api && path !== '/metrics') return;
    if (!ctx.health.ready) {
      // Nothing here can be answered without the database; at once, rather than after a statement's timeout. Unaudited: the audit table is there too.
      req.unaudited = true;
      return reply.code(503).header('retry-after', '1').send(fail('DatabaseUnavailable', ctx.health.reason ?? 'this hub replica cannot reach its database'));
    }
    // Authenticated before the route is revealed (unknown routes too): an anonymous caller learns nothing of the API's shape.
    req.operator = (await identifyOperator(ctx, req.headers.authorization)) ?? null;
    const need = req.routeOptions.config.role ?? (req.method === 'GET' || req.method === 'HEAD' ? 'viewer' : 'operator');
    try {
      requireRole(req.operator ?? undefined, need);
    } catch (err) {
      if (err instanceof ApiError) log.warn({ method: req.method, path, remote: req.socket.remoteAddress, reason: err.reason }, 'API request refused: token missing or its role too low');
      throw err;
    }
    return undefined;
  });

  // ---- every mutating call, allowed or refused, before its answer leaves
  app.addHook('onSend', async (req, reply, payload) => {
    const path = pathOf(req);
    if (req.unaudited || req.method === 'GET' || req.method === 'HEAD' || !path.startsWith('/api/')) return payload;
    try {
      await ctx.audit.record({ actor: req.operator?.name ?? 'anonymous', role: req.operator?.role ?? null, method: req.method, path, status: reply.statusCode, remoteAddress: req.socket.remoteAddress ?? null });
    } catch (err) {
      log.error({ err }, 'writing the audit table failed');
    }
    // A write went through (committed): the dashboard looks whether it shows (dashboard/change-feed.ts); a token's revocation signs its open pages out.
    if (reply.statusCode < 400) ctx.fleetChanged({ tokens: path.startsWith('/api/v1/operator-tokens') });
    return payload;
  });

  app.setErrorHandler(async (err: unknown, req, reply) => {
    const path = pathOf(req);
    if (err instanceof DatabaseUnavailable) {
      // Before the probe noticed: the same answer as after, and the probe looks now. Nothing is audited: the audit table is in that database.
      req.unaudited = true;
      log.warn({ err: err.message, method: req.method, path }, 'API request failed: the database is unreachable');
      void ctx.health.check();
      return reply.code(503).header('retry-after', '1').send(fail('DatabaseUnavailable', `this hub replica cannot reach its database (${err.message}); another replica may answer`));
    }
    if (err instanceof DatabaseConflict) {
      // The database aborted the transaction to break a deadlock (or a serialization failure): nothing was written, and the same call again succeeds.
      log.warn({ err: err.message, method: req.method, path }, 'API request aborted by the database for a conflict with another transaction');
      return reply.code(503).header('retry-after', '1').send(fail('DatabaseConflict', `${err.message}; nothing was changed: send the request again`));
    }
    const refusal = refusalOf(err, req);
    if (!refusal) {
      log.error({ err, method: req.method, path }, 'API request failed');
      return reply.code(500).send(fail('Internal', 'the hub failed; see its log'));
    }
    if (![401, 403, 404].includes(refusal.status)) log.info({ method: req.method, path, status: refusal.status, reason: refusal.reason }, 'API request refused');
    // Prometheus is told to authenticate on 403 too: its scrape config holds the token.
    if (refusal.status === 401 || (refusal.status === 403 && path === '/metrics')) void reply.header('www-authenticate', 'Bearer');
    return reply.code(refusal.status).send({ error: { reason: refusal.reason, message: refusal.message, details: refusal.details } });
  });

  app.setNotFoundHandler(async (req) => {
    const path = pathOf(req);
    const allowed = ['GET', 'POST', 'PUT', 'DELETE'].filter((method) => method !== req.method && app.findRoute({ method, url: path }) !== null);
    if (allowed.length > 0) throw new ApiError(405, 'MethodNotAllowed', `${req.method} is not allowed here; use ${allowed.join(', ')}`);
    throw new ApiError(404, 'NotFound', `no route ${path}`);
  });

  registerRoutes(app.withTypeProvider<ZodTypeProvider>(), ctx);
  return app;
}

/**
 * @fastify/swagger marks every request body required; the ones whose schema
 * has a default (pause, rollback, bootstrap tokens) may be left out.
 */
function optionalBodies<T>(doc: T): T {
  type Operation = { requestBody?: { required?: boolean; content?: Record<string, { schema?: object }> } };
  for (const item of Object.values((doc as { paths?: Record<string, Record<string, Operation>> }).paths ?? {})) {
    for (const op of Object.values(item)) {
      const body = op.requestBody;
      if (body && Object.values(body.content ?? {}).every((c) => c.schema !== undefined && 'default' in c.schema)) body.required = false;
    }
  }
  return doc;
}

/**
 * The transform makes an input and an output component of every schema that
 * has an id (ClusterView and ClusterViewInput, …), used or not; only those a
 * route refers to, directly or through another component, stay.
 */
function withoutUnusedSchemas<T>(doc: T): T {
  const d = doc as { paths?: unknown; components?: { schemas?: Record<string, unknown> } };
  const schemas = d.components?.schemas;
  if (!schemas) return doc;
  const used = new Set<string>();
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(visit);
    if (typeof node !== 'object' || node === null) return;
    for (const [k, v] of Object.entries(node)) {
      const name = k === '$ref' && typeof v === 'string' ? /^#\/components\/schemas\/(.+)$/.exec(v)?.[1] : undefined;
      if (name !== undefined && !used.has(name)) {
        used.add(name);
        visit(schemas[name]);
      } else visit(v);
    }
  };
  visit(d.paths);
  for (const name of Object.keys(schemas)) if (!used.has(name)) delete schemas[name];
  return doc;
}

/** The OpenAPI 3 document of the API, built from its routes without a hub (`npm run gen:openapi` writes docs/openapi.json). */
export async function openApiDocument(log: Logger): Promise<Record<string, unknown>> {
  const noHub = new Proxy({} as HubContext, {
    get: () => {
      throw new Error('the OpenAPI document is built without a hub: no handler runs');
    },
  });
  const app = await createHttpApi(noHub, log);
  await app.ready();
  const doc = app.swagger() as unknown as Record<string, unknown>;
  await app.close();
  return doc;
}

/** The instance, typed by the zod schemas of each route. */
type Api = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, FastifyBaseLogger, ZodTypeProvider>;

function registerRoutes(api: Api, ctx: HubContext): void {
  /** Summary, tags and the role a route needs, for the OpenAPI document. */
  const doc = (tag: string, summary: string, role: OperatorRole): Pick<FastifySchema, 'summary' | 'description' | 'tags'> & { 'x-fleetlet-role': OperatorRole } => ({
    tags: [tag],
    summary,
    description: `Role: ${role}.`,
    'x-fleetlet-role': role,
  });

  const requireCluster = async (id: string) => {
    const c = await ctx.clusters.get(id);
    if (!c) throw new ApiError(404, 'NotFound', `no cluster "${id}"`);
    return c;
  };

  // ---- probes and metrics (no /api prefix)
  // Liveness: the process answers. Not the database: restarting a replica does not bring its database back.
  const probe = { tags: ['probes'], security: [] };
  api.get('/healthz', { schema: { ...probe, summary: 'Liveness', response: { 200: liveness } } }, async () => ({ status: 'ok' as const }));
  api.get('/livez', { schema: { ...probe, summary: 'Liveness (the same as /healthz)', response: { 200: liveness } } }, async () => ({ status: 'ok' as const }));
  // Readiness: the database answered the last probes (database-health.ts); cut off from it, the replica is taken out of the Service.
  api.get('/readyz', { schema: { ...probe, summary: 'Readiness: whether this replica reaches its database', response: { 200: readiness, 503: unreadiness } } }, async (_req, reply) => {
    if (ctx.health.ready) return reply.code(200).send({ status: 'ready', since: ctx.health.since.toISOString() });
    return reply.code(503).send({ status: 'unavailable', reason: 'DatabaseUnavailable', message: ctx.health.reason ?? 'this hub replica cannot reach its database' });
  });
  // A viewer token, as for the API: the series name every cluster. Prometheus sends it with `authorization: {credentials: …}`.
  let metrics: HubMetrics | undefined;
  api.get('/metrics', { config: { role: 'viewer' }, schema: { ...doc('metrics', 'Prometheus metrics (text format)', 'viewer'), produces: ['text/plain'] } }, async (_req, reply) => {
    metrics ??= createHubMetrics(ctx);
    const text = await metrics.render();
    return reply.type(metrics.contentType).send(text);
  });

  api.get('/api/v1/openapi.json', { schema: { ...doc('api', 'This document (OpenAPI 3)', 'viewer'), response: answers(200, openApiDocumentBody) } }, async () => api.swagger() as unknown as Record<string, unknown>);

  // ---- clusters
  api.get('/api/v1/clusters', { schema: { ...doc('clusters', 'Every cluster, by id', 'viewer'), response: answers(200, clusterList) } }, async () => ({
    clusters: await Promise.all((await ctx.clusters.list()).map((c) => clusterView(ctx, c))),
  }));
  api.get('/api/v1/clusters/:id', { schema: { ...doc('clusters', 'One cluster', 'viewer'), params: clusterParams, response: answers(200, clusterViewBody) } }, async (req) => clusterView(ctx, await requireCluster(req.params.id)));
  api.delete('/api/v1/clusters/:id', { schema: { ...doc('clusters', 'Deregister a cluster', 'operator'), params: clusterParams, response: { 200: deregisteredCluster, ...errorResponses } } }, async (req) => {
    await deregisterCluster(ctx, req.params.id);
    return { deregistered: req.params.id };
  });
  api.post('/api/v1/clusters/:id/accept', { schema: { ...doc('clusters', 'Accept a pending registration', 'operator'), params: clusterParams, response: { 200: acceptedCluster, ...errorResponses } } }, async (req) => ({
    accepted: req.params.id,
    ...(await acceptCluster(ctx, req.params.id)),
  }));
  api.post('/api/v1/clusters/:id/revoke', { config: { role: 'admin' }, schema: { ...doc('clusters', 'Revoke a cluster\'s key', 'admin'), params: clusterParams, response: { 200: revokedCluster, ...errorResponses } } }, async (req) => ({
    revoked: req.params.id,
    ...(await revokeCluster(ctx, req.params.id)),
  }));
  api.post(
    '/api/v1/clusters/:id/trust-key',
    {
      config: { role: 'admin', invalidBody: { reason: 'InvalidRequest', hint: 'send {"fingerprint": "sha256:…"} naming one of the cluster\'s keyConflicts' } },
      schema: { ...doc('clusters', 'Trust one of the cluster\'s conflicting keys', 'admin'), params: clusterParams, body: trustKeyRequest, response: { 200: trustedKey, ...errorResponses } },
    },
    async (req) => ({ clusterId: req.params.id, ...(await trustClusterKey(ctx, req.params.id, req.body)) }),
  );
  api.put(
    '/api/v1/clusters/:id/release',
    {
      config: { invalidBody: { reason: 'InvalidRelease', hint: 'the release request is invalid' } },
      schema: { ...doc('clusters', 'Set the cluster\'s desired release (signed, pushed to a connected agent)', 'operator'), params: clusterParams, body: releaseRequest, response: { 200: releaseSet, ...errorResponses } },
    },
    async (req) => {
      const { record, delivered } = await setDesiredRelease(ctx, req.params.id, req.body);
      return { clusterId: record.clusterId, revision: record.revision, name: record.name, version: record.version, issuedAt: record.issuedAt, expiresAt: record.expiresAt, keyId: record.envelope.keyId, delivered };
    },
  );
  api.get('/api/v1/clusters/:id/release', { schema: { ...doc('clusters', 'The stored desired release, with its signed envelope', 'viewer'), params: clusterParams, response: answers(200, desiredRelease) } }, async (req) => {
    await requireCluster(req.params.id);
    const r = await ctx.releases.latest(req.params.id);
    if (!r) throw new ApiError(404, 'NoRelease', `no desired release set for cluster "${req.params.id}"`);
    return r;
  });
  api.get('/api/v1/clusters/:id/reports', { schema: { ...doc('clusters', 'Stored reports, ascending', 'viewer'), params: clusterParams, querystring: pageQuery, response: answers(200, reportPage) } }, async (req) => {
    const c = await requireCluster(req.params.id);
    return { clusterId: c.id, ackedSeq: c.ackedSeq, reports: await ctx.reports.list(c.id, { afterSeq: req.query.after, limit: Math.min(req.query.limit, MAX_PAGE) }) };
  });
  api.put(
    '/api/v1/clusters/:id/labels',
    {
      config: { invalidBody: { reason: 'InvalidLabels', hint: 'send {"labels": {"key": "value", ...}}' } },
      schema: { ...doc('clusters', 'Replace the cluster\'s labels', 'operator'), params: clusterParams, body: labelsRequest, response: { 200: clusterLabels, ...errorResponses } },
    },
    async (req) => {
      await requireCluster(req.params.id);
      await ctx.clusters.setLabels(req.params.id, req.body.labels);
      return { clusterId: req.params.id, labels: req.body.labels };
    },
  );
  api.get('/api/v1/fleet/summary', { schema: { ...doc('clusters', 'Counts over the fleet, failed clusters, overrides', 'viewer'), response: answers(200, fleetSummaryBody) } }, async () => fleetSummary(ctx));
  api.get('/api/v1/telemetry', { schema: { ...doc('clusters', 'Upgrade-completed events, once each', 'viewer'), querystring: telemetryQuery, response: answers(200, telemetryPage) } }, async (req) => {
    const events = await ctx.aggregate.telemetry({ clusterId: req.query.cluster, afterId: req.query.after, limit: Math.min(req.query.limit, MAX_PAGE) });
    return { events, next: events.at(-1)?.id ?? null };
  });

  // ---- bootstrap tokens (docs/security.md)
  api.get('/api/v1/bootstrap-tokens', { config: { role: 'admin' }, schema: { ...doc('tokens', 'Bootstrap tokens, without their text', 'admin'), response: { 200: bootstrapTokenList, ...errorResponses } } }, async () => ({
    tokens: await ctx.bootstrapTokens.list(),
  }));
  api.post(
    '/api/v1/bootstrap-tokens',
    {
      config: { role: 'admin', invalidBody: { reason: 'InvalidRequest', hint: 'send {"ttlSeconds"?: n, "maxUses"?: n, "description"?: "…"}' } },
      schema: { ...doc('tokens', 'Issue a bootstrap token (its text is in this answer only)', 'admin'), body: bootstrapTokenRequest, response: { 201: issuedBootstrapToken, ...errorResponses } },
    },
    async (req, reply) => reply.code(201).send(await issueBootstrapToken(ctx, req.body)),
  );
  api.delete('/api/v1/bootstrap-tokens/:id', { config: { role: 'admin' }, schema: { ...doc('tokens', 'Revoke a bootstrap token', 'admin'), params: idParams, response: { 200: bootstrapToken, ...errorResponses } } }, async (req) =>
    revokeBootstrapToken(ctx, req.params.id),
  );

  // ---- operator tokens and the audit table (docs/security.md)
  api.get('/api/v1/operator-tokens', { config: { role: 'admin' }, schema: { ...doc('tokens', 'Operator tokens, without their text', 'admin'), response: { 200: operatorTokenList, ...errorResponses } } }, async () => ({
    tokens: await ctx.operatorTokens.list(),
  }));
  api.post(
    '/api/v1/operator-tokens',
    {
      config: { role: 'admin', invalidBody: { reason: 'InvalidRequest', hint: 'send {"name": "…", "role": "viewer" | "operator" | "admin"}' } },
      schema: { ...doc('tokens', 'Create an operator token with a role (its text is in this answer only)', 'admin'), body: operatorTokenRequest, response: { 201: createdOperatorToken, ...errorResponses } },
    },
    async (req, reply) => reply.code(201).send(await createOperatorToken(ctx, req.body, req.operator?.name ?? 'unknown')),
  );
  api.delete('/api/v1/operator-tokens/:id', { config: { role: 'admin' }, schema: { ...doc('tokens', 'Revoke an operator token, at once', 'admin'), params: idParams, response: { 200: operatorToken, ...errorResponses } } }, async (req) =>
    revokeOperatorToken(ctx, req.params.id),
  );
  api.get('/api/v1/audit', { config: { role: 'admin' }, schema: { ...doc('tokens', 'The audit table: every mutating call', 'admin'), querystring: pageQuery, response: { 200: auditPage, ...errorResponses } } }, async (req) => {
    const entries = await ctx.audit.list({ afterId: req.query.after, limit: Math.min(req.query.limit, MAX_PAGE) });
    return { entries, next: entries.at(-1)?.id ?? null };
  });

  // ---- rollouts (docs/hub-api.md "Rollouts")
  api.get('/api/v1/rollouts', { schema: { ...doc('rollouts', 'Every rollout\'s status', 'viewer'), response: answers(200, rolloutList) } }, async () => listRollouts(ctx));
  api.post(
    '/api/v1/rollouts',
    {
      config: { invalidBody: { reason: 'InvalidRollout', hint: 'the rollout request is invalid' } },
      schema: { ...doc('rollouts', 'Create a rollout', 'operator'), body: rolloutRequest, response: answers(201, rolloutView) },
    },
    async (req, reply) => reply.code(201).send(await createRollout(ctx, req.body)),
  );
  api.get('/api/v1/rollouts/:name', { schema: { ...doc('rollouts', 'A rollout\'s status (?clusters=all lists every cluster)', 'viewer'), params: nameParams, querystring: rolloutStatusQuery, response: answers(200, rolloutView) } }, async (req) =>
    rolloutStatus(ctx, req.params.name, { clusters: req.query.clusters }),
  );
  api.post(
    '/api/v1/rollouts/:name/pause',
    { config: { invalidBody: { reason: 'InvalidRequest', hint: 'the pause request is invalid' } }, schema: { ...doc('rollouts', 'Pause: no new cluster starts', 'operator'), params: nameParams, body: pauseRequest, response: answers(200, rolloutView) } },
    async (req) => pauseRollout(ctx, req.params.name, req.body),
  );
  api.post('/api/v1/rollouts/:name/resume', { schema: { ...doc('rollouts', 'Resume a paused rollout; failures so far are accepted', 'operator'), params: nameParams, response: answers(200, rolloutView) } }, async (req) => resumeRollout(ctx, req.params.name));
  api.post('/api/v1/rollouts/:name/cancel', { schema: { ...doc('rollouts', 'Cancel for good; clusters keep what they were sent', 'operator'), params: nameParams, response: answers(200, rolloutView) } }, async (req) => cancelRollout(ctx, req.params.name));
  api.post(
    '/api/v1/rollouts/:name/rollback',
    {
      config: { invalidBody: { reason: 'InvalidRollback', hint: 'the rollback request is invalid' } },
      schema: { ...doc('rollouts', 'Cancel and roll the reached clusters back, as a new rollout', 'operator'), params: nameParams, body: rollbackRequest, response: answers(201, rollbackResult) },
    },
    async (req, reply) => reply.code(201).send(await rollbackRollout(ctx, req.params.name, req.body)),
  );

  // ---- hotfix overrides
  api.get('/api/v1/overrides', { schema: { ...doc('overrides', 'Override definitions', 'viewer'), response: answers(200, overrideList) } }, async () => ({ overrides: await ctx.overrides.list() }));
  api.get('/api/v1/overrides/:name', { schema: { ...doc('overrides', 'One override definition', 'viewer'), params: nameParams, response: answers(200, overrideDefinition) } }, async (req) => {
    const found = await ctx.overrides.get(req.params.name);
    if (!found) throw new ApiError(404, 'NotFound', `no override "${req.params.name}"`);
    return found;
  });
  api.get('/api/v1/overrides/:name/clusters', { schema: { ...doc('overrides', 'Clusters running an override, or affected ones missing it', 'viewer'), params: nameParams, querystring: overrideClustersQuery, response: answers(200, overrideClustersBody) } }, async (req) =>
    overrideClusters(ctx, req.params.name, req.query.state),
  );
}
