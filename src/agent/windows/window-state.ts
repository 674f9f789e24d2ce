// Whether an upgrade may start at a given instant, and until when. Pure: the
// caller passes the time (the agent's clock), so windows keep working with the
// hub unreachable and tests can stand anywhere in the calendar.
//
// The effective allowed set is
//     (local windows ∩ hub windows) − local blackouts − hub blackouts
// where a critical release may, if local policy says so, replace "local
// windows" by all time (mayStartOutsideWindows) and drop local blackouts
// (ignoreBlackouts). Hub windows and hub blackouts always apply: a hub only
// narrows, and a hub that wants a critical release to go now simply sends no
// windows with it.
import type { HubWindows, Policy } from '../../protocol/policy.ts';
import { containing, intersect, subtract, union, type Interval } from './intervals.ts';
import { compileHubWindows, compilePolicy, isCompiledPolicy, isCompiledWindowSet, type CompiledPolicy, type CompiledWindowSet, type TimeSource } from './sources.ts';

const DAY = 86_400_000;

export interface WindowOptions {
  /** The release is marked critical (a fleet-wide fix). */
  critical?: boolean;
  /** Restrictions from the hub (last known if the hub is unreachable); absent: none. */
  hubWindows?: HubWindows | CompiledWindowSet | undefined;
  /** How far ahead to look for closings and openings; default 400 days. */
  maxHorizonMs?: number;
}

export type WindowReason =
  | 'InWindow'
  | 'AlwaysAllowed'
  | 'CriticalBypass'
  | 'Blackout'
  | 'HubBlackout'
  | 'NoWindows'
  | 'OutsideWindow'
  | 'HubRestricted';

export interface WindowState {
  open: boolean;
  reason: WindowReason;
  message: string;
  /** Names of the windows (open) or blackouts/windows (closed) behind the reason. */
  names: string[];
  /** Open: when the allowed time ends; absent when it does not end within the horizon. */
  closesAt?: Date;
  /** Closed: when allowed time next begins; absent when none within the horizon. */
  nextOpensAt?: Date;
}

export type FitDecision =
  | { fits: true; reason: WindowReason; message: string; closesAt?: Date }
  | {
      fits: false;
      reason: WindowReason | 'WindowTooShort';
      message: string;
      /** The earliest instant a stage of this length can start and finish inside allowed time. */
      nextStartAt?: Date;
    };

type PolicyLike = Policy | CompiledPolicy;

interface Timeline {
  hi: number;
  allowed: Interval[];
  localWindows: Map<string, Interval[]> | undefined;
  localBlackouts: Map<string, Interval[]>;
  hubWindows: Map<string, Interval[]> | undefined;
  hubBlackouts: Map<string, Interval[]>;
  bypassWindows: boolean;
  ignoreBlackouts: boolean;
}

const DEFAULT_HORIZON = 400 * DAY;

/** Whether an attempt may start at `at`, why, and until/from when. */
export function windowState(policy: PolicyLike, at: Date, opts: WindowOptions = {}): WindowState {
  const t = at.getTime();
  return searchHorizons(policy, t, opts, (tl, last) => {
    const run = containing(tl.allowed, t);
    if (run) {
      if (run.end >= tl.hi && !last) return undefined;
      return openState(tl, t, run.end >= tl.hi ? undefined : run.end);
    }
    const next = tl.allowed.find((i) => i.start > t);
    if (!next && !last) return undefined;
    return closedState(tl, t, next?.start);
  });
}

/** The earliest instant at or after `at` when an attempt may start; `at` itself when open now. */
export function nextOpening(policy: PolicyLike, at: Date, opts: WindowOptions = {}): Date | undefined {
  const s = windowState(policy, at, opts);
  return s.open ? new Date(at.getTime()) : s.nextOpensAt;
}

/**
 * Whether a stage estimated to take `estimatedMs` may start at `at`: only if
 * it can finish before allowed time ends (a window closing, or a blackout
 * beginning). Otherwise says when the next stretch of allowed time long
 * enough for it begins.
 */
export function fitsInWindow(policy: PolicyLike, at: Date, estimatedMs: number, opts: WindowOptions = {}): FitDecision {
  const t = at.getTime();
  return searchHorizons(policy, t, opts, (tl, last): FitDecision | undefined => {
    const run = containing(tl.allowed, t);
    // A run reaching the horizon may go on beyond it: look further before
    // saying when it closes. At the last horizon, what is known is all there is.
    if (run && run.end >= tl.hi && !last) return undefined;
    if (run && run.end - t >= estimatedMs) {
      const s = openState(tl, t, run.end >= tl.hi ? undefined : run.end);
      const left = s.closesAt ? `, ${formatMs(run.end - t)} before allowed time ends at ${iso(run.end)}` : '';
      return { fits: true, reason: s.reason, message: `stage needs ~${formatMs(estimatedMs)}${left}`, ...(s.closesAt ? { closesAt: s.closesAt } : {}) };
    }
    const later = tl.allowed.find((i) => i.start > t && i.end - i.start >= estimatedMs);
    if (!later && !last) return undefined;
    const nextStartAt = later ? new Date(later.start) : undefined;
    const when = nextStartAt ? `; next allowed time long enough starts at ${nextStartAt.toISOString()}` : '; no allowed time long enough within the horizon';
    if (run) {
      const why = closedState(tl, run.end, undefined);
      const cause = why.reason === 'Blackout' || why.reason === 'HubBlackout' ? ` when ${why.message}` : '';
      return {
        fits: false,
        reason: 'WindowTooShort',
        message: `stage needs ~${formatMs(estimatedMs)} but allowed time ends at ${iso(run.end)} (${formatMs(run.end - t)} left)${cause}${when}`,
        ...(nextStartAt ? { nextStartAt } : {}),
      };
    }
    const s = closedState(tl, t, undefined);
    return { fits: false, reason: s.reason, message: `${s.message}${when}`, ...(nextStartAt ? { nextStartAt } : {}) };
  });
}

/** Allowed time between two instants, e.g. to report the coming windows. */
export function allowedIntervals(policy: PolicyLike, from: Date, to: Date, opts: WindowOptions = {}): { start: Date; end: Date }[] {
  const tl = timeline(compiled(policy), hubSet(opts.hubWindows), from.getTime(), to.getTime(), opts.critical === true);
  return tl.allowed.map((i) => ({ start: new Date(i.start), end: new Date(i.end) }));
}

// ------------------------------------------------------------ internals

function compiled(p: PolicyLike): CompiledPolicy {
  return isCompiledPolicy(p) ? p : compilePolicy(p);
}

/**
 * Most questions are answered within days; widen the look-ahead only when
 * the answer lies beyond it (a window that never closes, a yearly window).
 */
function searchHorizons<T>(policy: PolicyLike, t: number, opts: WindowOptions, answer: (tl: Timeline, last: boolean) => T | undefined): T {
  const c = compiled(policy);
  const hub = hubSet(opts.hubWindows);
  const max = opts.maxHorizonMs ?? DEFAULT_HORIZON;
  const steps = [2 * DAY, 16 * DAY, 128 * DAY].filter((h) => h < max).concat(max);
  for (const [i, h] of steps.entries()) {
    const last = i === steps.length - 1;
    const result = answer(timeline(c, hub, t, t + h, opts.critical === true), last);
    if (result !== undefined) return result;
  }
  throw new Error('unreachable: the last horizon always answers');
}

function perSource(sources: readonly TimeSource[], lo: number, hi: number): Map<string, Interval[]> {
  return new Map(sources.map((s) => [s.name, s.intervals(lo, hi)]));
}

function hubSet(h: WindowOptions['hubWindows']): CompiledWindowSet | undefined {
  if (h === undefined) return undefined;
  return isCompiledWindowSet(h) ? h : compileHubWindows(h);
}

function timeline(c: CompiledPolicy, hub: CompiledWindowSet | undefined, lo: number, hi: number, critical: boolean): Timeline {
  const bypassWindows = critical && c.policy.critical.mayStartOutsideWindows;
  const ignoreBlackouts = critical && c.policy.critical.ignoreBlackouts;
  const all: Interval[] = [{ start: lo, end: hi }];

  const localWindows = c.local.windows ? perSource(c.local.windows, lo, hi) : undefined;
  const localBlackouts = perSource(c.local.blackouts, lo, hi);
  const hubWindows = hub?.windows ? perSource(hub.windows, lo, hi) : undefined;
  const hubBlackouts = hub ? perSource(hub.blackouts, lo, hi) : new Map<string, Interval[]>();

  const unionOfMap = (m: Map<string, Interval[]>) => union(...m.values());
  const localAllow = bypassWindows || !localWindows ? all : unionOfMap(localWindows);
  const hubAllow = hubWindows ? unionOfMap(hubWindows) : all;
  let allowed = intersect(localAllow, hubAllow);
  if (!ignoreBlackouts) allowed = subtract(allowed, unionOfMap(localBlackouts));
  allowed = subtract(allowed, unionOfMap(hubBlackouts));
  return { hi, allowed, localWindows, localBlackouts, hubWindows, hubBlackouts, bypassWindows, ignoreBlackouts };
}

function namesAt(sources: Map<string, Interval[]> | undefined, t: number): string[] {
  if (!sources) return [];
  return [...sources].filter(([, list]) => containing(list, t) !== undefined).map(([name]) => name);
}

function openState(tl: Timeline, t: number, closesAt: number | undefined): WindowState {
  const inWindows = namesAt(tl.localWindows, t);
  const ignored = tl.ignoreBlackouts ? namesAt(tl.localBlackouts, t) : [];
  const until = closesAt === undefined ? '' : ` until ${iso(closesAt)}`;
  const base = closesAt === undefined ? {} : { closesAt: new Date(closesAt) };
  if (ignored.length > 0) {
    return { open: true, reason: 'CriticalBypass', names: ignored, message: `critical release: blackout ${quote(ignored)} ignored as local policy allows${until}`, ...base };
  }
  if (tl.localWindows === undefined) {
    return { open: true, reason: 'AlwaysAllowed', names: [], message: `no allow windows configured: always allowed${until}`, ...base };
  }
  if (inWindows.length > 0) {
    return { open: true, reason: 'InWindow', names: inWindows, message: `in window ${quote(inWindows)}${until}`, ...base };
  }
  return { open: true, reason: 'CriticalBypass', names: [], message: `critical release: allowed outside windows as local policy allows${until}`, ...base };
}

function closedState(tl: Timeline, t: number, nextOpensAt: number | undefined): WindowState {
  const next = nextOpensAt === undefined ? '' : `; next opens at ${iso(nextOpensAt)}`;
  const base = nextOpensAt === undefined ? {} : { nextOpensAt: new Date(nextOpensAt) };
  const make = (reason: WindowReason, names: string[], message: string): WindowState => ({ open: false, reason, names, message: message + next, ...base });

  const blackouts = tl.ignoreBlackouts ? [] : namesAt(tl.localBlackouts, t);
  if (blackouts.length > 0) return make('Blackout', blackouts, `blackout ${quote(blackouts)} in force`);
  const hubBlackouts = namesAt(tl.hubBlackouts, t);
  if (hubBlackouts.length > 0) return make('HubBlackout', hubBlackouts, `hub blackout ${quote(hubBlackouts)} in force`);
  if (!tl.bypassWindows && tl.localWindows !== undefined) {
    if (tl.localWindows.size === 0) return make('NoWindows', [], 'the policy lists no allow windows (an empty list means never)');
    if (namesAt(tl.localWindows, t).length === 0) return make('OutsideWindow', [...tl.localWindows.keys()], 'outside every allow window');
  }
  if (tl.hubWindows !== undefined && namesAt(tl.hubWindows, t).length === 0) {
    return make('HubRestricted', [...tl.hubWindows.keys()], 'allowed locally but outside the hub\'s windows');
  }
  // Only reachable at the edge of the horizon; say so rather than guess.
  return make('OutsideWindow', [], 'no allowed time at this instant');
}

function quote(names: string[]): string {
  return names.map((n) => `"${n}"`).join(', ');
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** 5400000 → "1h30m"; for messages a person reads. */
export function formatMs(ms: number): string {
  const total = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const out = `${h > 0 ? `${h}h` : ''}${m > 0 ? `${m}m` : ''}${s > 0 && h === 0 ? `${s}s` : ''}`;
  return out === '' ? '0s' : out;
}

/** What the agent reports to the hub as its maintenance window (protocol `heartbeat.maintenanceWindow`). */
export interface MaintenanceWindowReport {
  open: boolean;
  opensAt: string | null;
  closesAt: string | null;
}

/**
 * The agent's next maintenance window under its own policy at `at`: open now
 * (until when), or when it next opens. Only edges, never `at` itself, so the
 * report stays the same between openings and closings and the hub link sends
 * it only when it changes. Hub windows are per release and left out: this is
 * the cluster's own calendar.
 */
export function maintenanceWindowReport(policy: PolicyLike, at: Date, opts: Pick<WindowOptions, 'maxHorizonMs'> = {}): MaintenanceWindowReport {
  const s = windowState(policy, at, opts);
  if (s.open) return { open: true, opensAt: null, closesAt: s.closesAt ? s.closesAt.toISOString() : null };
  return { open: false, opensAt: s.nextOpensAt ? s.nextOpensAt.toISOString() : null, closesAt: null };
}
