// Turns policy entries (allow windows, blackouts, hub windows) into sources
// of time intervals. Compiling once per policy keeps Intl formatters and
// parsed cron fields out of the per-call path.
import { durationMs, parseCalendarPoint, parseWallClock, type AllowWindow, type Blackout, type CalendarPoint, type HubWindows, type Policy } from '../../protocol/policy.ts';
import { CronSchedule } from './cron-schedule.ts';
import { clip, type Interval } from './intervals.ts';
import { Zone } from '../../lib/zone.ts';

export interface TimeSource {
  readonly name: string;
  /** The source's time inside [lo, hi), merged and clipped. */
  intervals(lo: number, hi: number): Interval[];
}

/** When an entry that started at an instant ends, and the longest that can be. */
export interface EntryEnd {
  end(startMs: number): number;
  maxLengthMs: number;
}

/** A duration of elapsed real time: a DST change neither stretches nor shrinks it. */
export function elapsedEnd(lengthMs: number): EntryEnd {
  return { end: (s) => s + lengthMs, maxLengthMs: lengthMs };
}

/**
 * A wall-clock end: the first time after the start that the local clock reads
 * `until` (Zone.nextWallClock), so "22:00 until 04:00" ends at 04:00 local on
 * a DST night too.
 */
export function wallClockEnd(untilMsOfDay: number, zone: Zone): EntryEnd {
  return {
    end: (s) => zone.nextWallClock(s, untilMsOfDay),
    // A day and the hour a DST change can add.
    maxLengthMs: 86_400_000 + 3_600_000,
  };
}

/** A cron start plus an end (elapsed or wall-clock). */
export function cronSource(name: string, schedule: CronSchedule, ends: EntryEnd): TimeSource {
  return {
    name,
    intervals(lo, hi) {
      // Look behind by the longest an entry lasts: one that started before lo may still be open at lo.
      const out: Interval[] = [];
      for (const s of schedule.between(lo - ends.maxLengthMs + 1, hi)) {
        const last = out[out.length - 1];
        const end = ends.end(s);
        if (end <= s) continue;
        if (last && s <= last.end) last.end = Math.max(last.end, end);
        else out.push({ start: s, end });
      }
      return clip(out, lo, hi);
    },
  };
}

/** A fixed calendar range, e.g. a holiday freeze. */
export function rangeSource(name: string, start: number, end: number): TimeSource {
  return { name, intervals: (lo, hi) => clip([{ start, end }], lo, hi) };
}

export interface CompiledWindowSet {
  readonly compiled: true;
  /** undefined: no allow windows configured (always allowed); []: never allowed. */
  windows: TimeSource[] | undefined;
  blackouts: TimeSource[];
}

export interface CompiledPolicy {
  readonly policy: Policy;
  readonly local: CompiledWindowSet;
}

export function isCompiledPolicy(p: Policy | CompiledPolicy): p is CompiledPolicy {
  return 'local' in p && 'policy' in p;
}

export function isCompiledWindowSet(h: HubWindows | CompiledWindowSet): h is CompiledWindowSet {
  return 'compiled' in h && h.compiled === true;
}

export function compilePolicy(policy: Policy): CompiledPolicy {
  return { policy, local: compileWindowSet(policy) };
}

export function compileHubWindows(hub: HubWindows): CompiledWindowSet {
  return compileWindowSet(hub);
}

function compileWindowSet(set: { timeZone?: string | undefined; windows?: AllowWindow[] | undefined; blackouts: Blackout[] }): CompiledWindowSet {
  // One Zone per name within this policy: formatters are costly to build.
  const zones = new Map<string, Zone>();
  const zoneOf = (name: string | undefined): Zone => {
    const z = name ?? set.timeZone;
    if (z === undefined) throw new RangeError('a window or blackout has no time zone; validate the policy first');
    let zone = zones.get(z);
    if (!zone) zones.set(z, (zone = new Zone(z)));
    return zone;
  };
  const endOf = (e: { name: string; duration?: string | undefined; until?: string | undefined }, zone: Zone): EntryEnd => {
    if (e.duration !== undefined) return elapsedEnd(durationMs(e.duration));
    const until = e.until === undefined ? undefined : parseWallClock(e.until);
    if (until === undefined) throw new RangeError(`"${e.name}" has neither a duration nor a valid until; validate the policy first`);
    return wallClockEnd(until, zone);
  };
  const windows = set.windows?.map((w) => {
    const zone = zoneOf(w.timeZone);
    return cronSource(w.name, new CronSchedule(w.cron, zone), endOf(w, zone));
  });
  const blackouts = set.blackouts.map((b): TimeSource => {
    const zone = zoneOf(b.timeZone);
    if (b.cron !== undefined) return cronSource(b.name, new CronSchedule(b.cron, zone), endOf(b, zone));
    const from = b.from === undefined ? undefined : parseCalendarPoint(b.from);
    const to = b.to === undefined ? undefined : parseCalendarPoint(b.to);
    if (!from || !to) throw new RangeError(`blackout "${b.name}" has neither a valid from/to nor cron/duration; validate the policy first`);
    return rangeSource(b.name, pointToInstant(from, zone, false), pointToInstant(to, zone, true));
  });
  return { compiled: true, windows, blackouts };
}

/** A date-only end is inclusive, so it ends at the next local midnight. */
function pointToInstant(p: CalendarPoint, zone: Zone, isEnd: boolean): number {
  if (p.kind === 'absolute') return p.ms;
  if (p.kind === 'date') return zone.toInstant(Date.UTC(p.year, p.month - 1, p.day + (isEnd ? 1 : 0)));
  return zone.toInstant(Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second));
}
