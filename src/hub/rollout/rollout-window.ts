// The hub-side rollout window (cron start + duration in an IANA zone): is it
// open at an instant, and when does it next open. Computed from node-cron's
// parsed fields for an injected instant (node-cron's scheduler reads the real
// clock). The hub keeps its own small evaluator because hub code depends only
// on protocol and hub; the agent's full window engine (blackouts, L/W/# day
// tokens) stays on the agent, and the rollout schema refuses those tokens.
import { parse } from 'node-cron';
import { durationMs } from '../../protocol/policy.ts';
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
  const length = durationMs(w.duration);
  const fmt = new Intl.DateTimeFormat('en-US', { timeZone: w.timeZone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' });

  /** Local wall clock at an instant, encoded as if UTC. */
  const wall = (ms: number): number => {
    const p: Record<string, number> = {};
    for (const part of fmt.formatToParts(ms)) if (part.type !== 'literal') p[part.type] = Number(part.value);
    const hour = p.hour === 24 ? 0 : (p.hour ?? 0);
    return Date.UTC(p.year ?? 1970, (p.month ?? 1) - 1, p.day ?? 1, hour, p.minute ?? 0, p.second ?? 0) + (ms % 1000);
  };
  const offset = (ms: number): number => wall(ms) - ms;
  // Two steps settle the offset on every day but the hour of a DST change, where a skipped time lands an hour late: close enough for a window start.
  const toInstant = (wallMs: number): number => wallMs - offset(wallMs - offset(wallMs));

  const dayMatches = (dayWall: number): boolean => {
    const d = new Date(dayWall);
    return months.has(d.getUTCMonth() + 1) && dom.has(d.getUTCDate()) && dow.has(d.getUTCDay());
  };

  /** Start instants in [from, to), ascending. */
  function* starts(from: number, to: number): Generator<number> {
    const firstDay = Math.floor((wall(from) - DAY) / DAY) * DAY;
    const lastDay = Math.floor((wall(to) + DAY) / DAY) * DAY;
    for (let day = firstDay; day <= lastDay; day += DAY) {
      if (!dayMatches(day)) continue;
      // One offset for the whole day unless it changes within it.
      const steady = offset(day - offset(day)) === offset(day + DAY - offset(day));
      const off = offset(day + DAY / 2 - offset(day));
      for (const t of times) {
        const instant = steady ? day + t - off : toInstant(day + t);
        if (instant >= to) break;
        if (instant >= from) yield instant;
      }
    }
  }

  return {
    stateAt(now) {
      let lastStart: number | null = null;
      for (const s of starts(now - length + 1, now + 1)) lastStart = s;
      if (lastStart !== null) return { open: true, nextOpeningAt: null, closesAt: lastStart + length };
      const floor = Math.floor(now / MINUTE) * MINUTE;
      for (let from = floor; from < now + HORIZON_DAYS * DAY; from += 30 * DAY) {
        for (const s of starts(Math.max(from, now + 1), from + 30 * DAY)) return { open: false, nextOpeningAt: s, closesAt: null };
      }
      return { open: false, nextOpeningAt: null, closesAt: null };
    },
  };
}
