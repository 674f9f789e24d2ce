// Helpers for repository calls that take many items at once (a group
// commit's: group-commit.ts submitBatch), so each does a few statements for
// all of them rather than a few for each: on PostgreSQL every statement is a
// round trip.

/**
 * Runs `round` over items in rounds in which no key appears twice, each
 * key's items in their order (its first item in the first round, its second
 * in the second, …), one round after another; the results come back in the
 * order of `items`. A round is what one set of multi-row statements can
 * take: a second item for the same cluster must see what the first wrote.
 */
export async function byRounds<T, R>(items: readonly T[], key: (item: T) => string, round: (items: T[]) => Promise<R[]>): Promise<R[]> {
  const rounds: { item: T; at: number }[][] = [];
  const seen = new Map<string, number>();
  items.forEach((item, at) => {
    const k = key(item);
    const n = seen.get(k) ?? 0;
    seen.set(k, n + 1);
    (rounds[n] ??= []).push({ item, at });
  });
  const results: R[] = [];
  for (const r of rounds) {
    const done = await round(r.map((x) => x.item));
    r.forEach((x, i) => (results[x.at] = done[i] as R));
  }
  return results;
}

/** Consecutive slices of at most `size` items: statements stay under either backend's limit on parameters. */
export function chunked<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** `?, ?, …`, one per value. */
export function placeholders(values: readonly unknown[]): string {
  return values.map(() => '?').join(', ');
}
