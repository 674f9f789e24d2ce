// The fleet dashboard: a Fastify server on its own port that serves the
// browser app (built with the bundles by scripts/build.ts into dist/dashboard), the
// read endpoints it needs, operator actions, and a server-sent event stream
// that tells open pages when something they show changed.
//
// Sign-in: the browser posts an operator token once; it comes back as an
// HttpOnly, SameSite=Strict cookie (EventSource cannot send an Authorization
// header), and every request is authorized again from it by the hub's one
// check (auth/operator-auth.ts authorizeOperator), so a token revoked on the
// hub stops working at once. A viewer may look; acting needs the operator
// role, as on the operator API, and every action (and every refused one) is
// written to the audit table. API clients may send "Authorization: Bearer".
// Writes also need the x-fleetlet-dashboard header, which no cross-site form
// can send.
import { existsSync, readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import fastifyCookie from '@fastify/cookie';
import fastifyStatic from '@fastify/static';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { ApiError } from '../api-error.ts';
import { authorizeOperator, identifyOperator, type OperatorPrincipal, type OperatorRole } from '../auth/operator-auth.ts';
import { acceptCluster, deregisterCluster } from '../cluster-operations.ts';
import { bearerToken } from '../credentials.ts';
import type { HubContext } from '../hub-context.ts';
import { cancelRollout, pauseRollout, resumeRollout, rollbackRollout } from '../rollout/rollout-operations.ts';
import { clusterStates, type ClusterState, type DashboardRepo, type LabelFilter } from '../store/dashboard-repo.ts';
import type { Overview } from './api-types.ts';
import { ChangeFeed, type ChangeHint } from './change-feed.ts';
import { clusterDetail, clusterPage, cutoffOf, overrideClusterPage, overrideList, overview, rolloutDetail, rolloutList, RolloutViews, type ViewDeps } from './views.ts';

export const SESSION_COOKIE = 'fleetlet_dashboard';
export const WRITE_HEADER = 'x-fleetlet-dashboard';
/** Where `npm run build` puts the browser app: beside a bundled hub (dist/*.mjs), or dist/ from the sources. */
export const DEFAULT_ASSETS_DIR = [new URL('./dashboard/', import.meta.url), new URL('../../../dist/dashboard/', import.meta.url)]
  .map((u) => fileURLToPath(u))
  .find((dir) => existsSync(`${dir}/index.html`)) ?? fileURLToPath(new URL('../../../dist/dashboard/', import.meta.url));

export interface DashboardOptions {
  ctx: HubContext;
  repo: DashboardRepo;
  port: number;
  host?: string;
  /** PEM key and certificate: serve https (the session cookie is then Secure). */
  tls?: { key: string | Buffer; cert: string | Buffer };
  assetsDir?: string;
  /** How open pages learn of changes (change-feed.ts): at most one look at the store per `coalesceMs`, and one every `sweepMs` without any hint. */
  live?: { coalesceMs?: number; sweepMs?: number };
  logger: Logger;
}

export interface RunningDashboard {
  url: string;
  port: number;
  /** Something it shows may have changed, here or on another replica (ctx.fleetChanged, the replica bus). */
  hint(what: ChangeHint): void;
  close(): Promise<void>;
}

type Handler = (req: FastifyRequest, who: OperatorPrincipal) => unknown;

const MAX_PAGE = 200;
/** How long an unchanged rollout's evaluation is reused: its soak and deadline countdowns move with the clock alone. */
const ROLLOUT_REUSE_MS = 2000;

export async function startDashboard(o: DashboardOptions): Promise<RunningDashboard> {
  const log = o.logger.child({ component: 'dashboard' });
  const rollouts = new RolloutViews(o.ctx, ROLLOUT_REUSE_MS);
  /** What a request's views read; the store's fingerprint is computed at most once per request. */
  const depsNow = (): ViewDeps => {
    let fingerprint: Promise<string> | undefined;
    return { ctx: o.ctx, repo: o.repo, rollouts, fingerprint: () => (fingerprint ??= o.repo.fingerprint(cutoffOf(o.ctx))) };
  };
  const assetsDir = o.assetsDir ?? DEFAULT_ASSETS_DIR;
  const indexPath = `${assetsDir}/index.html`;
  // The https variant of Fastify's types differs only in the raw server; routes and hooks are the same.
  const app = (o.tls ? Fastify({ bodyLimit: 64 * 1024, https: { key: o.tls.key, cert: o.tls.cert } }) : Fastify({ bodyLimit: 64 * 1024 })) as unknown as FastifyInstance;
  await app.register(fastifyCookie);

  const tokenOf = (req: FastifyRequest): string | undefined => bearerToken(req.headers.authorization) ?? req.cookies[SESSION_COOKIE];

  app.addHook('onSend', async (_req, reply) => {
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'no-referrer');
    reply.header('x-frame-options', 'DENY');
    reply.header('content-security-policy', "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'");
  });

  app.setErrorHandler((err, req, reply) => {
    if (err instanceof ApiError) {
      if (err.status >= 400 && err.status !== 404) log.info({ method: req.method, path: req.url, status: err.status, reason: err.reason }, 'dashboard request refused');
      return reply.code(err.status).send({ error: { reason: err.reason, message: err.message, details: err.details } });
    }
    const status = (err as { statusCode?: number }).statusCode;
    if (status !== undefined && status >= 400 && status < 500) {
      return reply.code(status).send({ error: { reason: 'BadRequest', message: (err as Error).message } });
    }
    log.error({ err, method: req.method, path: req.url }, 'dashboard request failed');
    return reply.code(500).send({ error: { reason: 'Internal', message: 'the hub failed; see its log' } });
  });

  /** The token's holder, if it may do what needs `need`; otherwise the refusal the sign-in page shows (the hub's one check decides). */
  const authorize = async (token: string | undefined, need: OperatorRole): Promise<OperatorPrincipal> => {
    if (token === undefined || token === '') throw new ApiError(401, 'NoToken', 'sign in with a viewer, operator or admin token of this hub');
    try {
      return await authorizeOperator(o.ctx, `Bearer ${token}`, need);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) throw new ApiError(401, 'UnknownToken', 'this token is not one this hub knows: it is mistyped, or it was revoked');
      throw err;
    }
  };
  const requireRole = async (req: FastifyRequest, need: OperatorRole): Promise<OperatorPrincipal> => {
    if (need !== 'viewer' && req.headers[WRITE_HEADER] === undefined) {
      throw new ApiError(403, 'MissingHeader', `actions need the ${WRITE_HEADER} header (sent by the dashboard page)`);
    }
    return authorize(tokenOf(req), need);
  };
  /** Every mutating call, allowed or refused, into the hub's audit table, as the operator API does (its path tells the dashboard's from the API's). */
  const audit = async (req: FastifyRequest, token: string | undefined, status: number): Promise<void> => {
    try {
      const who = token ? await identifyOperator(o.ctx, `Bearer ${token}`) : undefined;
      await o.ctx.audit.record({ actor: who?.name ?? 'anonymous', role: who?.role ?? null, method: req.method, path: req.url.split('?')[0] ?? req.url, status, remoteAddress: req.ip });
    } catch (err) {
      log.error({ err }, 'writing the audit table failed');
    }
  };
  const audited = async <T>(req: FastifyRequest, token: string | undefined, run: () => T | Promise<T>): Promise<T> => {
    try {
      const result = await run();
      await audit(req, token, 200);
      return result;
    } catch (err) {
      await audit(req, token, err instanceof ApiError ? err.status : 500);
      throw err;
    }
  };
  const read = (path: string, handler: Handler) => app.get(path, async (req) => handler(req, await requireRole(req, 'viewer')));
  const act = (path: string, handler: Handler) =>
    app.post(path, async (req) =>
      audited(req, tokenOf(req), async () => {
        const result = await handler(req, await requireRole(req, 'operator'));
        // Committed: open pages here and on other replicas look.
        o.ctx.fleetChanged();
        return result;
      }),
    );

  // ---- session
  app.get('/api/session', async (req) => ({ role: (await requireRole(req, 'viewer')).role }));
  app.post('/api/session', async (req, reply) => {
    const raw = (req.body as { token?: unknown } | undefined)?.token;
    const token = typeof raw === 'string' ? raw.trim() : undefined;
    const who = await audited(req, token, () => authorize(token, 'viewer'));
    reply.setCookie(SESSION_COOKIE, token ?? '', { httpOnly: true, sameSite: 'strict', path: '/', secure: o.tls !== undefined });
    log.info({ actor: who.name, role: who.role, remote: req.ip }, 'dashboard sign-in');
    return { role: who.role };
  });
  app.delete('/api/session', async (_req, reply) => {
    reply.clearCookie(SESSION_COOKIE, { path: '/' });
    return { signedOut: true };
  });

  // ---- reads
  // Every open page refetches the overview on each change, all at once: they share one computation per filter and
  // fingerprint (the store's: it moves with anything the overview counts, a lease running out included), so an
  // answer is reused for as long as nothing changed, with only its clock brought up to date. A change the feed
  // sees drops them all (they would miss anyway; this frees them).
  const overviews = new Map<string, { fingerprint: string; value: Promise<Overview> }>();
  read('/api/overview', async (req) => {
    const filter = labelFilter(req);
    const key = JSON.stringify(filter);
    const deps = depsNow();
    const fp = await deps.fingerprint();
    let hit = overviews.get(key);
    if (hit?.fingerprint !== fp) {
      if (overviews.size >= 100) overviews.clear();
      const entry = { fingerprint: fp, value: overview(deps, filter) };
      overviews.set(key, entry);
      entry.value.catch(() => overviews.get(key) === entry && overviews.delete(key));
      hit = entry;
    }
    return { ...(await hit.value), now: o.ctx.now().toISOString() };
  });
  read('/api/clusters', (req) => {
    const q = req.query as Record<string, string | undefined>;
    return clusterPage(depsNow(), { filter: labelFilter(req), states: states(q.state), search: q.q || undefined, ...paging(q) });
  });
  read('/api/clusters/:id', (req) => clusterDetail(depsNow(), (req.params as { id: string }).id));
  read('/api/rollouts', (req) => {
    const q = req.query as Record<string, string | undefined>;
    const { offset, limit } = paging(q);
    return rolloutList(depsNow(), offset, limit, q.active !== undefined && q.active !== 'false');
  });
  read('/api/rollouts/:name', (req) => {
    const q = req.query as Record<string, string | undefined>;
    return rolloutDetail(depsNow(), (req.params as { name: string }).name, { group: q.group || undefined, status: q.status || undefined, ...paging(q) });
  });
  read('/api/overrides', async () => ({ overrides: await overrideList(depsNow()) }));
  read('/api/overrides/:name/clusters', (req) => {
    const { offset, limit } = paging(req.query as Record<string, string | undefined>);
    return overrideClusterPage(depsNow(), (req.params as { name: string }).name, offset, limit);
  });

  // ---- operator actions (the same operations as the hub's API)
  const rolloutName = (req: FastifyRequest) => (req.params as { name: string }).name;
  const clusterId = (req: FastifyRequest) => (req.params as { id: string }).id;
  const acted = (what: string, req: FastifyRequest, who: OperatorPrincipal) => log.warn({ action: what, params: req.params, actor: who.name, role: who.role, remote: req.ip }, 'dashboard action');
  act('/api/rollouts/:name/pause', (req, who) => (acted('pause', req, who), pauseRollout(o.ctx, rolloutName(req), { reason: `paused from the dashboard by ${who.name}` })));
  act('/api/rollouts/:name/resume', (req, who) => (acted('resume', req, who), resumeRollout(o.ctx, rolloutName(req))));
  act('/api/rollouts/:name/cancel', (req, who) => (acted('cancel', req, who), cancelRollout(o.ctx, rolloutName(req), 'CancelledByOperator', `cancelled from the dashboard by ${who.name}: no new cluster starts; clusters keep what they were sent`)));
  act('/api/rollouts/:name/rollback', (req, who) => (acted('rollback', req, who), rollbackRollout(o.ctx, rolloutName(req), {})));
  act('/api/clusters/:id/accept', async (req, who) => (acted('accept', req, who), { accepted: clusterId(req), ...(await acceptCluster(o.ctx, clusterId(req))) }));
  act('/api/clusters/:id/deregister', async (req, who) => (acted('deregister', req, who), await deregisterCluster(o.ctx, clusterId(req)), { deregistered: clusterId(req) }));

  // ---- live updates
  // Event-driven (change-feed.ts): a stream is told `changed` when the store's fingerprint moved after a hint
  // (a change here or on another replica) or the sweep, at most once per coalescing interval. Each stream is
  // also told once when it opens, so a change between the page's first fetch and its stream is never missed.
  // Its token is checked again when one is revoked (on any replica) and at every sweep: a revoked one is signed out.
  type Stream = { res: ServerResponse; token: string | undefined; unsubscribe?: () => void; ended: boolean };
  const streams = new Set<Stream>();
  const end = (s: Stream, last?: string): void => {
    if (s.ended) return;
    s.ended = true;
    streams.delete(s);
    s.unsubscribe?.();
    s.res.end(last);
  };
  let checkingTokens: Promise<void> | undefined;
  const reauthorize = (): void => {
    checkingTokens ??= (async () => {
      // One check per token, however many pages hold it.
      const verdicts = new Map<string | undefined, Promise<ApiError | undefined>>();
      for (const s of [...streams]) {
        let verdict = verdicts.get(s.token);
        if (verdict === undefined) {
          // A store that cannot answer now is no reason to sign anyone out: the next sweep asks again.
          verdict = authorize(s.token, 'viewer').then(
            () => undefined,
            (err: unknown) => (err instanceof ApiError && err.status < 500 ? err : undefined),
          );
          verdicts.set(s.token, verdict);
        }
        const refusal = await verdict;
        if (refusal) end(s, `event: signed-out\ndata: ${JSON.stringify({ reason: refusal.reason, message: refusal.message })}\n\n`);
      }
    })()
      .catch((err: unknown) => log.warn({ err }, 'checking the tokens of open dashboard pages failed'))
      .finally(() => (checkingTokens = undefined));
  };
  const feed = new ChangeFeed({
    fingerprint: () => o.repo.fingerprint(cutoffOf(o.ctx)),
    reauthorize,
    ...(o.live?.coalesceMs !== undefined ? { coalesceMs: o.live.coalesceMs } : {}),
    ...(o.live?.sweepMs !== undefined ? { sweepMs: o.live.sweepMs } : {}),
    onError: (err) => log.error({ err }, 'checking for dashboard changes failed'),
  });
  const tell = (s: Stream): void => {
    s.res.write(`event: changed\ndata: ${JSON.stringify({ now: o.ctx.now().toISOString() })}\n\n`);
  };
  const keepAlive = setInterval(() => {
    for (const s of streams) s.res.write(': keep-alive\n\n');
  }, 15_000);
  keepAlive.unref();

  app.get('/api/events', async (req, reply) => {
    await requireRole(req, 'viewer');
    const s: Stream = { res: reply.raw, token: tokenOf(req), ended: false };
    // Subscribed before the stream answers: once a client has the answer's headers, every change after is told.
    const unsubscribe = await feed.subscribe(() => {
      overviews.clear();
      tell(s);
    });
    s.unsubscribe = unsubscribe;
    reply.hijack();
    streams.add(s);
    req.raw.on('close', () => end(s));
    if (req.raw.destroyed) return end(s);
    reply.raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    reply.raw.write(`retry: 2000\nevent: hello\ndata: ${JSON.stringify({ now: o.ctx.now().toISOString() })}\n\n`);
    tell(s);
  });

  // ---- the browser app
  if (existsSync(indexPath)) {
    const index = readFileSync(indexPath);
    await app.register(fastifyStatic, { root: assetsDir, prefix: '/assets/', index: false, maxAge: 0 });
    const sendIndex = (_req: FastifyRequest, reply: FastifyReply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(index);
    app.get('/', sendIndex);
    app.setNotFoundHandler((req, reply) => {
      // The app's own routes (/rollouts/x, /clusters/y) load the page, which routes itself.
      if (req.method === 'GET' && !req.url.startsWith('/api/') && !req.url.startsWith('/assets/')) return sendIndex(req, reply);
      return reply.code(404).send({ error: { reason: 'NotFound', message: `no route ${req.method} ${req.url}` } });
    });
  } else {
    log.warn({ assetsDir }, 'dashboard assets are not built: run `npm run build`');
    app.get('/', async (_req, reply) => reply.code(503).type('text/plain; charset=utf-8').send(`The dashboard's browser app is not built: run \`npm run build\` (expected ${indexPath}).\n`));
  }

  await app.listen({ port: o.port, host: o.host ?? '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  const host = o.host && o.host !== '0.0.0.0' && o.host !== '::' ? o.host : '127.0.0.1';
  const url = `${o.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
  log.info({ url }, 'dashboard listening');
  return {
    url,
    port,
    hint: (what) => feed.hint(what),
    close: async () => {
      clearInterval(keepAlive);
      for (const s of [...streams]) end(s);
      await feed.close();
      await checkingTokens;
      await app.close();
    },
  };
}

function labelFilter(req: FastifyRequest): LabelFilter {
  const raw = (req.query as Record<string, string | string[] | undefined>).label;
  const list = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
  return list.filter((l) => l !== '').map((l) => {
    const i = l.indexOf('=');
    if (i <= 0) throw new ApiError(400, 'InvalidLabel', `label filter "${l}" must be key=value`);
    return [l.slice(0, i), l.slice(i + 1)] as const;
  });
}

function states(raw: string | undefined): ClusterState[] | undefined {
  if (!raw) return undefined;
  const list = raw.split(',');
  for (const s of list) if (!(clusterStates as readonly string[]).includes(s)) throw new ApiError(400, 'InvalidState', `state "${s}" is not one of ${clusterStates.join(', ')}`);
  return list as ClusterState[];
}

function paging(q: Record<string, string | undefined>): { offset: number; limit: number } {
  const num = (name: string, fallback: number) => {
    const raw = q[name];
    if (raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < 0) throw new ApiError(400, 'InvalidQuery', `"${name}" must be a non-negative integer`);
    return n;
  };
  return { offset: num('offset', 0), limit: Math.min(Math.max(1, num('limit', 50)), MAX_PAGE) };
}
