// Wall-clock arithmetic in an IANA zone using only Intl, so windows follow the
// zone database shipped with the runtime and need no extra dependency. Shared:
// the agent's window engine and the hub's rollout window read time alike.
//
// "Wall ms" below means a local date-time encoded as if it were UTC
// (Date.UTC(y, m-1, d, h, mi, s)); it is a label, not an instant.

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const WEEK = 7 * DAY;

export interface WallParts {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

export class Zone {
  readonly name: string;
  readonly #fmt: Intl.DateTimeFormat;

  constructor(name: string) {
    this.name = name;
    // Throws RangeError for an unknown zone; the policy schema has already refused those.
    this.#fmt = new Intl.DateTimeFormat('en-US', {
      timeZone: name,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
  }

  parts(instantMs: number): WallParts {
    const out: WallParts = { year: 0, month: 0, day: 0, hour: 0, minute: 0, second: 0 };
    for (const p of this.#fmt.formatToParts(instantMs)) {
      if (p.type === 'year' || p.type === 'month' || p.type === 'day' || p.type === 'hour' || p.type === 'minute' || p.type === 'second') {
        out[p.type] = Number(p.value);
      }
    }
    // Some ICU versions print midnight as 24 even with h23.
    if (out.hour === 24) out.hour = 0;
    return out;
  }

  /** The local wall clock at an instant, as wall ms (millisecond part kept). */
  wallMs(instantMs: number): number {
    const p = this.parts(instantMs);
    const whole = Math.floor(instantMs / 1000) * 1000;
    return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second) + (instantMs - whole);
  }

  /** UTC offset in ms at an instant (wall - instant). */
  offsetMs(instantMs: number): number {
    return this.wallMs(instantMs) - instantMs;
  }

  /**
   * The instant a wall-clock time names. Daylight-saving choices:
   * - a time that occurs twice (clocks go back) resolves to the FIRST
   *   occurrence, so a cron start fires once, as Vixie cron does;
   * - a time that does not exist (clocks go forward) resolves to the first
   *   valid instant after it, i.e. the moment of the jump (02:30 on a
   *   02:00→03:00 day becomes 03:00 local).
   * Assumes at most one offset change within a day either side, which holds
   * for every zone in the IANA database.
   */
  toInstant(wallMs: number): number {
    const before = this.offsetMs(wallMs - DAY);
    const after = this.offsetMs(wallMs + DAY);
    let best: number | undefined;
    for (const off of before === after ? [before] : [before, after]) {
      const candidate = wallMs - off;
      if (this.wallMs(candidate) === wallMs && (best === undefined || candidate < best)) best = candidate;
    }
    if (best !== undefined) return best;
    // In a gap: wall(x) jumps past wallMs at the transition; find it by bisection.
    let lo = Math.min(wallMs - before, wallMs - after);
    let hi = Math.max(wallMs - before, wallMs - after);
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (this.wallMs(mid) >= wallMs) hi = mid;
      else lo = mid;
    }
    return hi;
  }

  /**
   * The first instant after `startMs` at which the local clock reads
   * `msOfDay` (ms after local midnight): the same local day when that is
   * later than the start's time of day, else the next one. So "22:00 until
   * 04:00" ends at 04:00 local on a DST night too; a repeated time ends at
   * its first occurrence, a skipped one at the jump (toInstant).
   */
  nextWallClock(startMs: number, msOfDay: number): number {
    const wall = this.wallMs(startMs);
    const dayWall = Math.floor(wall / DAY) * DAY;
    return this.toInstant(dayWall + msOfDay + (msOfDay <= wall - dayWall ? DAY : 0));
  }

  /**
   * The offset to turn wall times on the local day starting at dayWallMs into
   * instants by subtraction, or undefined when the offset may change during
   * that day (the caller then resolves each time through toInstant).
   *
   * Intl is the slow part of window arithmetic, so offsets are sampled once
   * per week and memoised on this Zone: when the samples before and after a
   * day agree, no transition happens in between. That assumes no zone
   * changes its offset and back within two weeks; the shortest such pair in
   * the IANA data (Morocco's Ramadan suspension) lasts about a month.
   */
  steadyOffsetOn(dayWallMs: number): number | undefined {
    // Offsets lie within -12h..+14h, so these instants bracket the local day.
    const first = Math.floor((dayWallMs - 15 * HOUR) / WEEK);
    const last = Math.floor((dayWallMs + DAY + 13 * HOUR) / WEEK) + 1;
    const offset = this.#weekSample(first);
    return this.#weekSample(last) === offset ? offset : undefined;
  }

  readonly #samples = new Map<number, number>();

  #weekSample(week: number): number {
    let o = this.#samples.get(week);
    if (o === undefined) this.#samples.set(week, (o = this.offsetMs(week * WEEK)));
    return o;
  }
}
