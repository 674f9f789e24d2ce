// Sets of time as sorted, disjoint, half-open [start, end) intervals in epoch
// ms. Window policy reduces to three operations on them: allow windows
// union, a hub intersects, blackouts subtract.

export interface Interval {
  start: number;
  end: number;
}

/** Sorts and merges overlapping or touching intervals; drops empty ones. */
export function normalize(list: readonly Interval[]): Interval[] {
  const sorted = list.filter((i) => i.end > i.start).sort((a, b) => a.start - b.start);
  const out: Interval[] = [];
  for (const i of sorted) {
    const last = out[out.length - 1];
    if (last && i.start <= last.end) last.end = Math.max(last.end, i.end);
    else out.push({ start: i.start, end: i.end });
  }
  return out;
}

export function union(...sets: readonly Interval[][]): Interval[] {
  return normalize(sets.flat());
}

export function intersect(a: readonly Interval[], b: readonly Interval[]): Interval[] {
  const out: Interval[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const x = a[i] as Interval;
    const y = b[j] as Interval;
    const start = Math.max(x.start, y.start);
    const end = Math.min(x.end, y.end);
    if (end > start) out.push({ start, end });
    if (x.end < y.end) i++;
    else j++;
  }
  return out;
}

export function subtract(a: readonly Interval[], b: readonly Interval[]): Interval[] {
  const out: Interval[] = [];
  let j = 0;
  for (const x of a) {
    let start = x.start;
    while (j < b.length && (b[j] as Interval).end <= start) j++;
    let k = j;
    while (k < b.length && (b[k] as Interval).start < x.end) {
      const y = b[k] as Interval;
      if (y.start > start) out.push({ start, end: y.start });
      start = Math.max(start, y.end);
      k++;
    }
    if (start < x.end) out.push({ start, end: x.end });
  }
  return out;
}

export function clip(list: readonly Interval[], lo: number, hi: number): Interval[] {
  return intersect(list, [{ start: lo, end: hi }]);
}

/** The interval containing t, if any. */
export function containing(list: readonly Interval[], t: number): Interval | undefined {
  return list.find((i) => i.start <= t && t < i.end);
}
