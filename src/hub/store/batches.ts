// Helpers for repository calls that take many items at once (a group
// commit's: group-commit.ts submitBatch), so each does a few statements for
// all of them rather than a few for each: on PostgreSQL every statement is a
// round trip.

/**
 * Splits items into rounds in which no key appears twice, each key's items
 * in their order (its first item in the first round, its second in the
 * second, …), keeping each item's position for the results.
 */
export function inRounds<T>(items: readonly T[], key: (item: T) => string): { item: T; at: number }[][] {
  const rounds: { item: T; at: number }[][] = [];
  const seen = new Map<string, number>();
  items.forEach((item, at) => {
    const k = key(item);
    const round = seen.get(k) ?? 0;
    seen.set(k, round + 1);
    (rounds[round] ??= []).push({ item, at });
  });
  return rounds;
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
