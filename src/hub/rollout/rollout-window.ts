// The hub-side rollout window (a cron start, ending after a duration or at a
// wall-clock time, in an IANA zone): is it open at an instant, and when does
// it next open. Computed from node-cron's parsed fields for an injected
// instant (node-cron's scheduler reads the real clock). The hub keeps its own
// small evaluator because hub code depends only on protocol, hub and lib (the
// zone arithmetic is lib's, shared with the agent); the agent's full window
// engine (blackouts, L/W/# day tokens) stays on the agent, and the rollout
// schema refuses those tokens.
import { parse } from 'node-cron';
import { Zone } from '../../lib/zone.ts';
import { durationMs, parseWallClock } from '../../protocol/policy.ts';
import type { RolloutWindow } from '../../protocol/rollout.ts';
import type { WindowState } from './plan-wave.ts';

const MINUTE = 60_000;
const DAY = 86_400_000;
/** How far ahead nextOpening looks; a window that never opens within a year is shown as never. */
const HORIZON_DAYS = 366;

export interface CompiledWindow {
  stateAt(nowMs: number): WindowState & { closesAt: number | null };
}

export function compileRolloutWindow(w: RolloutWindow): CompiledWindow {
  const f = parse(w.cron);
  const months = new Set(f.month);
  const dom = new Set(f.dayOfMonth.filter((t): t is number => typeof t === 'number'));
  const dow = new Set(f.dayOfWeek.filter((t): t is number => typeof t === 'number').map((d) => d % 7));
  const times: number[] = [];
  for (const h of f.hour) for (const m of f.minute) for (const s of f.second) times.push(((h * 60 + m) * 60 + s) * 1000);
  times.sort((a, b) => a - b);
  const zone = new Zone(w.timeZone);
  const until = w.until === undefined ? undefined : parseWallClock(w.until);
  const length = w.duration === undefined ? undefined : durationMs(w.duration);
  if (length === undefined && until === undefined) throw new RangeError('a rollout window needs a duration or an until; validate it first');
  /** When a window that opened at s closes: after the duration, or the first time the local clock reads until. */
  const end = (s: number): number => (length !== undefined ? s + length : zone.nextWallClock(s, until ?? 0));
  // A wall-clock end lies at most a day (and the hour a DST change adds) after the start.
  const longest = length ?? DAY + 3_600_000;

  const dayMatches = (dayWall: number): boolean => {
    const d = new Date(dayWall);
    return months.has(d.getUTCMonth() + 1) && dom.has(d.getUTCDate()) && dow.has(d.getUTCDay());
  };

  /** Start instants in [from, to), ascending. */
  function* starts(from: number, to: number): Generator<number> {
    const firstDay = Math.floor((zone.wallMs(from) - DAY) / DAY) * DAY;
    const lastDay = Math.floor((zone.wallMs(to) + DAY) / DAY) * DAY;
    for (let day = firstDay; day <= lastDay; day += DAY) {
      if (!dayMatches(day)) continue;
      // One offset for the whole day unless it changes within it.
      const steady = zone.steadyOffsetOn(day);
      for (const t of times) {
        const instant = steady !== undefined ? day + t - steady : zone.toInstant(day + t);
        if (instant >= to) break;
        if (instant >= from) yield instant;
      }
    }
  }

  return {
    stateAt(now) {
      let closesAt: number | null = null;
      for (const s of starts(now - longest + 1, now + 1)) {
        const e = end(s);
        if (e > now && (closesAt === null || e > closesAt)) closesAt = e;
      }
      if (closesAt !== null) return { open: true, nextOpeningAt: null, closesAt };
      const floor = Math.floor(now / MINUTE) * MINUTE;
      for (let from = floor; from < now + HORIZON_DAYS * DAY; from += 30 * DAY) {
        for (const s of starts(Math.max(from, now + 1), from + 30 * DAY)) return { open: false, nextOpeningAt: s, closesAt: null };
      }
      return { open: false, nextOpeningAt: null, closesAt: null };
    },
  };
}
