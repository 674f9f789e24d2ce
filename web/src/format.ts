// How times, durations and states read on the page.

export function ago(iso: string | null, now: number): string {
  if (iso === null) return 'never';
  return `${duration(now - Date.parse(iso))} ago`;
}

export function until(iso: string | null, now: number): string {
  if (iso === null) return '—';
  const ms = Date.parse(iso) - now;
  return ms <= 0 ? 'now' : `in ${duration(ms)}`;
}

export function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

export function time(iso: string | null): string {
  if (iso === null) return '—';
  const d = new Date(iso);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

export function release(name: string | null, version: string | null): string {
  if (version === null) return 'none yet';
  return name ? `${name} ${version}` : version;
}

export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
