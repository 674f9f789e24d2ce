// Small helpers the benchmarks share: percentiles, formatting, and reading a
// process's resident memory from /proc (the figure `top` shows).
import { readFileSync } from 'node:fs';

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

export function summarize(samples: readonly number[]): { n: number; p50: number; p90: number; p99: number; max: number } {
  const s = [...samples].sort((a, b) => a - b);
  return { n: s.length, p50: percentile(s, 50), p90: percentile(s, 90), p99: percentile(s, 99), max: s.at(-1) ?? Number.NaN };
}

/** VmRSS of a process in bytes (Linux); undefined when /proc is unavailable. */
export function vmRssBytes(pid: number | 'self' = 'self'): number | undefined {
  return procStatusBytes(pid, 'VmRSS');
}

/** VmHWM (peak resident memory over the process's life) in bytes (Linux); undefined when /proc is unavailable. */
export function vmHwmBytes(pid: number | 'self' = 'self'): number | undefined {
  return procStatusBytes(pid, 'VmHWM');
}

function procStatusBytes(pid: number | 'self', field: 'VmRSS' | 'VmHWM'): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

export const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
export const kib = (bytes: number): string => `${(bytes / 1024).toFixed(1)} KiB`;
export const ms = (v: number): string => (Number.isFinite(v) ? `${v.toFixed(v < 10 ? 2 : 0)} ms` : 'n/a');

export function line(label: string, value: string): void {
  process.stdout.write(`  ${label.padEnd(44)} ${value}\n`);
}

export function heading(title: string): void {
  process.stdout.write(`\n== ${title}\n`);
}
