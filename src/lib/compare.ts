// Ordering of names (components, overrides) in code-unit order.
// String#localeCompare would load ICU's collation data into the agent
// (about 3 MiB resident, docs/footprint.md) for names that are RFC 1123
// labels (a-z, 0-9, "-"), on which both orders agree.

/** Sort comparator: UTF-16 code-unit order, as `<` compares strings. */
export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
