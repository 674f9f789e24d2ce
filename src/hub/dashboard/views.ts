// What each dashboard endpoint answers, assembled from the hub's
// repositories: counts and pages come from SQL (store/dashboard-repo.ts),
// rollout pictures from the same evaluation the status API uses.
import type { AttemptTransitionReport } from '../../protocol/reports.ts';
import type { RolloutView } from '../../protocol/rollout.ts';
import { ApiError } from '../api-error.ts';
import { clusterView } from '../cluster-view.ts';
import type { HubContext } from '../hub-context.ts';
import { rolloutStatus } from '../rollout/rollout-operations.ts';
import type { StoredSpec } from '../rollout/rollout-spec.ts';
import { compileRolloutWindow } from '../rollout/rollout-window.ts';
import type { ClusterState, DashboardRepo, LabelFilter } from '../store/dashboard-repo.ts';
import type { AttemptView, ClusterDetail, OverrideClustersPage, Overview, OverrideView, Page, RolloutDetail, RolloutSummary } from './api-types.ts';

/** How many transition reports a cluster page reads (its newest attempts). */
const TRANSITIONS_SHOWN = 400;
const TERMINAL = new Set(['Succeeded', 'RolledBack', 'Failed']);

export interface ViewDeps {
  ctx: HubContext;
  repo: DashboardRepo;
  rollouts: RolloutViews;
  /** The store's fingerprint for this request (DashboardRepo.fingerprint), computed once when first asked. */
  fingerprint(): Promise<string>;
}

export const cutoffOf = (ctx: HubContext): string => new Date(ctx.now().getTime() - ctx.leaseMs).toISOString();

/** How many rollouts' evaluations are kept (a 10,000-member rollout's is a few MB). */
const ROLLOUT_VIEWS_KEPT = 16;

/**
 * Rollout evaluations shared by every request while nothing the dashboard
 * shows has changed (the store's fingerprint), for at most `maxAgeMs` (soak
 * and deadline countdowns move with the clock alone). Evaluating a rollout
 * reads every member, so however many pages are open on a 10,000-cluster
 * rollout, and however often they refetch, the dashboard evaluates it at
 * most once per change and per `maxAgeMs`; the rollout ticker pays the same
 * evaluation on every tick anyway.
 */
export class RolloutViews {
  readonly #ctx: HubContext;
  readonly #maxAgeMs: number;
  readonly #views = new Map<string, { fingerprint: string; at: number; view: RolloutView }>();

  constructor(ctx: HubContext, maxAgeMs: number) {
    this.#ctx = ctx;
    this.#maxAgeMs = maxAgeMs;
  }

  /** The rollout's status with every member, as the status API computes it. */
  async get(name: string, fingerprint: string): Promise<RolloutView> {
    const now = this.#ctx.now().getTime();
    const hit = this.#views.get(name);
    if (hit && hit.fingerprint === fingerprint && now >= hit.at && now - hit.at < this.#maxAgeMs) return hit.view;
    const view = await rolloutStatus(this.#ctx, name, { clusters: 'all' });
    // Re-inserted, so the map's order is least recently computed first.
    this.#views.delete(name);
    this.#views.set(name, { fingerprint, at: now, view });
    for (const oldest of this.#views.keys()) {
      if (this.#views.size <= ROLLOUT_VIEWS_KEPT) break;
      this.#views.delete(oldest);
    }
    return view;
  }
}

function page<T>(r: { total: number; items: T[] }, offset: number, limit: number): Page<T> {
  return { total: r.total, offset, limit, items: r.items };
}

export function summarize(v: RolloutView): RolloutSummary {
  return { name: v.name, phase: v.phase, reason: v.reason, message: v.message, target: v.target, counts: v.counts, limits: v.limits, window: v.window, createdAt: v.createdAt, endedAt: v.endedAt };
}

/** The overview's numbers: SQL over indexes only. Its active rollouts come from /api/rollouts?active, so the counts never wait for a rollout's evaluation. */
export async function overview({ ctx, repo }: ViewDeps, filter: LabelFilter): Promise<Overview> {
  const cutoff = cutoffOf(ctx);
  const byState = await repo.countByState(cutoff, filter);
  const list = async (o: { states?: ClusterState[]; phase?: string; order: 'recent' | 'lastSeen' | 'id' }) => {
    // Lists by state are counted already (byState); only the phase list needs a count of its own.
    const total = o.states?.reduce((n, s) => n + byState[s], 0);
    return page(await repo.clusters({ cutoff, filter, offset: 0, limit: 10, ...o, ...(total !== undefined ? { total } : {}) }), 0, 10);
  };
  return {
    now: ctx.now().toISOString(),
    leaseMs: ctx.leaseMs,
    filter: filter.map(([k, v]) => [k, v]),
    total: Object.values(byState).reduce((a, b) => a + b, 0),
    byState,
    byRelease: await repo.countByRunningRelease(filter),
    waitingForWindow: await list({ phase: 'WaitingForWindow', order: 'recent' }),
    failures: await list({ states: ['Failed', 'RolledBack'], order: 'recent' }),
    offline: await list({ states: ['Unknown'], order: 'lastSeen' }),
    pending: await list({ states: ['PendingRegistration'], order: 'id' }),
    labels: await repo.labelPairs(40),
  };
}

export async function clusterPage({ ctx, repo }: ViewDeps, q: { filter: LabelFilter; states?: ClusterState[]; search?: string; offset: number; limit: number }) {
  return page(await repo.clusters({ cutoff: cutoffOf(ctx), ...q, order: 'id' }), q.offset, q.limit);
}

export async function clusterDetail({ ctx, repo }: ViewDeps, id: string): Promise<ClusterDetail> {
  const record = await ctx.clusters.get(id);
  if (!record) throw new ApiError(404, 'NotFound', `no cluster "${id}"`);
  const now = ctx.now();
  const cluster = await clusterView(ctx, record);
  const state = (await repo.cluster(id, cutoffOf(ctx)))?.state ?? 'NoRelease';
  // A report is normally received within a heartbeat of being written; one held longer waited in the agent's outbox.
  const heldAfterMs = 2 * ctx.heartbeatMs;
  const outbox = { heldReports: 0, longestHeldMs: 0, lastHeldAt: null as string | null, offlineNow: cluster.availability.status !== 'True' };
  const byAttempt = new Map<string, AttemptView>();
  for (const row of (await repo.transitions(id, TRANSITIONS_SHOWN)).reverse()) {
    const t = row.body as AttemptTransitionReport;
    const heldMs = Math.max(0, Date.parse(row.receivedAt) - Date.parse(row.createdAt));
    const held = heldMs > heldAfterMs;
    if (held) {
      outbox.heldReports++;
      outbox.longestHeldMs = Math.max(outbox.longestHeldMs, heldMs);
      outbox.lastHeldAt = row.receivedAt;
    }
    let a = byAttempt.get(t.attemptId);
    if (!a) {
      a = { attemptId: t.attemptId, release: t.release, startedAt: t.at, endedAt: null, phase: t.phase, durationMs: 0, transitions: [] };
      byAttempt.set(t.attemptId, a);
    }
    a.transitions.push({ phase: t.phase, stage: t.stage, reason: t.reason, message: t.message, at: t.at, receivedAt: row.receivedAt, heldMs: held ? heldMs : null });
    a.phase = t.phase;
    if (TERMINAL.has(t.phase)) a.endedAt = t.at;
    a.durationMs = Math.max(0, Date.parse(a.endedAt ?? now.toISOString()) - Date.parse(a.startedAt));
  }
  const attempts = [...byAttempt.values()].reverse();
  const latest = attempts[0]?.transitions.at(-1);
  const agent =
    latest && latest.phase === 'WaitingForWindow'
      ? { reason: latest.reason, message: latest.message, since: latest.at, nextOpensAt: /next window opens at (\S+?Z)/.exec(latest.message ?? '')?.[1] ?? null }
      : null;
  const rollouts = await repo.memberships(id);
  const hub: ClusterDetail['windows']['hub'] = [];
  for (const r of rollouts) {
    if (r.phase !== 'Progressing' && r.phase !== 'Paused') continue;
    const spec = (await ctx.rollouts.get(r.name))?.spec as StoredSpec | undefined;
    if (!spec?.window) continue;
    const s = compileRolloutWindow(spec.window).stateAt(now.getTime());
    hub.push({ rollout: r.name, cron: spec.window.cron, duration: spec.window.duration, until: spec.window.until, timeZone: spec.window.timeZone, open: s.open, nextOpeningAt: s.nextOpeningAt === null ? null : new Date(s.nextOpeningAt).toISOString() });
  }
  return { now: now.toISOString(), state, cluster, attempts, outbox, windows: { agent, reported: record.maintenanceWindow, hub }, rollouts };
}

/** Rollouts newest first; `active`: only those progressing or paused. */
export async function rolloutList({ ctx, rollouts, fingerprint }: ViewDeps, offset: number, limit: number, active = false): Promise<Page<RolloutSummary>> {
  const all = (await (active ? ctx.rollouts.active() : ctx.rollouts.list())).reverse();
  const items: RolloutSummary[] = [];
  for (const r of all.slice(offset, offset + limit)) items.push(summarize(await rollouts.get(r.name, await fingerprint())));
  return { total: all.length, offset, limit, items };
}

export async function rolloutDetail({ ctx, rollouts, fingerprint }: ViewDeps, name: string, q: { group?: string; status?: string; offset: number; limit: number }): Promise<RolloutDetail> {
  if (!(await ctx.rollouts.get(name))) throw new ApiError(404, 'NotFound', `no rollout "${name}"`);
  const full = await rollouts.get(name, await fingerprint());
  const { clusters = [], ...rollout } = full;
  const matching = clusters.filter((c) => (q.group === undefined || c.group === q.group) && (q.status === undefined || c.status === q.status));
  return {
    now: ctx.now().toISOString(),
    rollout,
    members: { total: matching.length, offset: q.offset, limit: q.limit, items: matching.slice(q.offset, q.offset + q.limit), group: q.group ?? null, status: q.status ?? null },
  };
}

export async function overrideList({ ctx, repo }: ViewDeps): Promise<OverrideView[]> {
  const usage = await repo.overrideUsage();
  const rollouts = await ctx.rollouts.list();
  const rolloutsOf = (name: string) =>
    rollouts.filter((r) => {
      const t = (r.spec as StoredSpec).target;
      return t.kind === 'Override' && t.override.name === name;
    }).map((r) => ({ name: r.name, phase: r.phase }));
  const views = new Map<string, OverrideView>();
  for (const d of await ctx.overrides.list()) {
    const def = d.definition;
    views.set(d.name, {
      name: d.name,
      version: def.version,
      component: def.component,
      description: def.description ?? null,
      appliesTo: def.appliesTo,
      images: def.images,
      withdrawn: d.withdrawn,
      defined: true,
      createdAt: d.createdAt,
      updatedAt: d.updatedAt,
      running: [],
      runningTotal: 0,
      rollouts: rolloutsOf(d.name),
    });
  }
  for (const u of usage) {
    let v = views.get(u.name);
    if (!v) {
      v = { name: u.name, version: null, component: u.component, description: null, appliesTo: null, images: {}, withdrawn: false, defined: false, createdAt: null, updatedAt: null, running: [], runningTotal: 0, rollouts: [] };
      views.set(u.name, v);
    }
    v.running.push(u);
    v.runningTotal += u.clusters;
  }
  return [...views.values()].sort((a, b) => a.name.localeCompare(b.name));
}

export async function overrideClusterPage({ repo }: ViewDeps, name: string, offset: number, limit: number): Promise<OverrideClustersPage> {
  return { name, ...page(await repo.overrideClusters(name, offset, limit), offset, limit) };
}
