// Occurrences of a node-cron expression in a time zone, computed from the
// parsed fields rather than by node-cron's scheduler: its getNextRun() reads
// the real clock, and windows need answers for an injected time, in both
// directions (a window that started up to `duration` ago is still open).
//
// The search walks local calendar days (pure arithmetic, months that cannot
// match are skipped whole) and touches Intl only on days that match; days
// without a DST change turn times into instants by plain subtraction, so a
// year ahead is a few hundred cheap steps, never minute by minute.
import { parse } from 'node-cron';
import type { Zone } from '../../lib/zone.ts';

const DAY = 86_400_000;

type DayToken = number | string;

export class CronSchedule {
  readonly expression: string;
  readonly zone: Zone;
  /** Seconds since local midnight, ascending. */
  readonly #times: number[];
  readonly #months: Set<number>;
  readonly #dom: DayToken[];
  readonly #dow: DayToken[];

  constructor(expression: string, zone: Zone) {
    this.expression = expression;
    this.zone = zone;
    const f = parse(expression);
    const times: number[] = [];
    for (const h of numbers(f.hour)) for (const m of numbers(f.minute)) for (const s of numbers(f.second)) times.push(h * 3600 + m * 60 + s);
    this.#times = [...new Set(times)].sort((a, b) => a - b);
    this.#months = new Set(numbers(f.month));
    this.#dom = f.dayOfMonth;
    this.#dow = f.dayOfWeek;
  }

  /**
   * Whether the cron may fire on a local date. Day of month AND day of week
   * must both match: that is node-cron's rule (Vixie cron ORs them), and the
   * policy promises node-cron syntax.
   */
  matchesDay(year: number, month: number, day: number): boolean {
    return this.#months.has(month) && matchesDayOfMonth(this.#dom, year, month, day) && matchesDayOfWeek(this.#dow, year, month, day);
  }

  /** Start instants s with fromMs <= s < toMs, ascending. */
  *between(fromMs: number, toMs: number): Generator<number> {
    if (toMs <= fromMs) return;
    // A local day can begin up to 14h before or 12h after its UTC namesake.
    const firstDay = Math.floor((fromMs - DAY) / DAY);
    const lastDay = Math.floor((toMs + DAY) / DAY);
    for (let dayNum = firstDay; dayNum <= lastDay; ) {
      const d = new Date(dayNum * DAY);
      const [y, m, dd] = [d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate()];
      if (!this.#months.has(m)) {
        dayNum = Date.UTC(y, m, 1) / DAY; // first day of the next month
        continue;
      }
      if (this.matchesDay(y, m, dd)) {
        for (const t of this.#instantsOn(dayNum * DAY, fromMs, toMs)) yield t;
      }
      dayNum++;
    }
  }

  /** First start at or after fromMs, searching no further than limitMs. */
  next(fromMs: number, limitMs: number): number | undefined {
    for (const t of this.between(fromMs, limitMs)) return t;
    return undefined;
  }

  /** Last start at or before atMs, searching no further back than limitMs. */
  prev(atMs: number, limitMs: number): number | undefined {
    const lastDay = Math.floor((atMs + DAY) / DAY);
    const firstDay = Math.floor((limitMs - DAY) / DAY);
    for (let dayNum = lastDay; dayNum >= firstDay; dayNum--) {
      const d = new Date(dayNum * DAY);
      const [y, m, dd] = [d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate()];
      if (!this.matchesDay(y, m, dd)) continue;
      let found: number | undefined;
      for (const t of this.#instantsOn(dayNum * DAY, limitMs, atMs + 1)) found = t;
      if (found !== undefined) return found;
    }
    return undefined;
  }

  /** Instants of this day's times that fall in [fromMs, toMs), ascending. */
  *#instantsOn(dayWallMs: number, fromMs: number, toMs: number): Generator<number> {
    const times = this.#times;
    const offset = this.zone.steadyOffsetOn(dayWallMs);
    if (offset !== undefined) {
      // No offset change near this day: instant = wall - offset, and the
      // first time to look at can be found by bisection.
      const firstSecond = Math.ceil((fromMs + offset - dayWallMs) / 1000);
      for (let i = lowerBound(times, firstSecond); i < times.length; i++) {
        const t = dayWallMs + (times[i] ?? 0) * 1000 - offset;
        if (t >= toMs) return;
        if (t >= fromMs) yield t;
      }
      return;
    }
    // A DST day: resolve every time through the zone (first occurrence of a
    // repeated time, jump instant for a skipped one). Several skipped times
    // resolve to the same instant; yield it once.
    let last: number | undefined;
    for (const s of times) {
      const t = this.zone.toInstant(dayWallMs + s * 1000);
      if (t >= toMs) return;
      if (t >= fromMs && t !== last) yield t;
      last = t;
    }
  }
}

function numbers(values: readonly (number | string)[]): number[] {
  return values.filter((v): v is number => typeof v === 'number');
}

function lowerBound(sorted: readonly number[], value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((sorted[mid] ?? 0) < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// The special day tokens below mirror node-cron 4's matcher (L, L-n, nW, LW
// for day of month; nL, n#k for day of week) so windows fire on the same days
// node-cron would.

function lastDayOfMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

function weekday(year: number, month: number, day: number): number {
  return new Date(Date.UTC(year, month - 1, day)).getUTCDay();
}

function nearestWeekday(year: number, month: number, target: number): number {
  const last = lastDayOfMonth(year, month);
  if (target < 1 || target > last) return -1;
  const wd = weekday(year, month, target);
  if (wd === 6) return target === 1 ? target + 2 : target - 1;
  if (wd === 0) return target === last ? target - 2 : target + 1;
  return target;
}

function matchesDayOfMonth(tokens: readonly DayToken[], year: number, month: number, day: number): boolean {
  for (const t of tokens) {
    if (t === day) return true;
    if (typeof t !== 'string') continue;
    if (t === 'L' && day === lastDayOfMonth(year, month)) return true;
    const w = /^(\d{1,2}|L)W$/.exec(t);
    if (w) {
      const target = w[1] === 'L' ? lastDayOfMonth(year, month) : Number(w[1]);
      if (nearestWeekday(year, month, target) === day) return true;
    }
    const off = /^L-(\d{1,2})$/.exec(t);
    if (off) {
      const target = lastDayOfMonth(year, month) - Number(off[1]);
      if (target >= 1 && target === day) return true;
    }
  }
  return false;
}

function matchesDayOfWeek(tokens: readonly DayToken[], year: number, month: number, day: number): boolean {
  const wd = weekday(year, month, day);
  for (const t of tokens) {
    if (t === wd) return true;
    if (typeof t !== 'string') continue;
    const nth = /^([0-7])#([1-5])$/.exec(t);
    if (nth) {
      if (Number(nth[1]) % 7 === wd && Math.floor((day - 1) / 7) + 1 === Number(nth[2])) return true;
      continue;
    }
    const last = /^([0-7])L$/i.exec(t);
    if (last && Number(last[1]) % 7 === wd && day + 7 > lastDayOfMonth(year, month)) return true;
  }
  return false;
}
