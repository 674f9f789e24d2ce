// CPU time of every process on the machine, from /proc, so a benchmark can
// say where the machine's cores went during its window: the hub replicas,
// the simulated agents, PostgreSQL's processes, and anything else running
// (on a shared 2-core machine, other work takes its share too).
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

export interface ProcessCpu {
  /** user + system, ms, since the process started. */
  cpuMs: number;
  ppid: number;
  name: string;
}

/** Every process now, by pid (one that exits while read is skipped). */
export function processCpu(): Map<number, ProcessCpu> {
  const all = new Map<number, ProcessCpu>();
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue;
    }
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    // Fields after the command's closing parenthesis: state ppid … utime (14th) stime (15th).
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    all.set(pid, { cpuMs: ((Number(f[11]) + Number(f[12])) / CLOCK_TICKS) * 1000, ppid: Number(f[1]), name });
  }
  return all;
}

/** The machine's busy and total CPU time (ms, all cores) from /proc/stat. */
export function machineCpu(): { busyMs: number; totalMs: number } {
  const f = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busyMs: ((total - idle) / CLOCK_TICKS) * 1000, totalMs: (total / CLOCK_TICKS) * 1000 };
}

/** The pid of a PostgreSQL server started in dataDir (its postmaster.pid). */
export function postmasterPid(dataDir: string): number {
  return Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
}

/** CPU used between two snapshots (% of one core) by the processes `which` picks; a process that exited meanwhile is not counted. */
export function cpuPercentOf(a: Map<number, ProcessCpu>, b: Map<number, ProcessCpu>, windowMs: number, which: (pid: number, p: ProcessCpu) => boolean): number {
  let used = 0;
  for (const [pid, p] of b) if (which(pid, p)) used += p.cpuMs - (a.get(pid)?.cpuMs ?? 0);
  return (used / windowMs) * 100;
}

/** The processes that used the most CPU between two snapshots and are not `excluded`: "name pid N %". */
export function topOthers(a: Map<number, ProcessCpu>, b: Map<number, ProcessCpu>, windowMs: number, excluded: (pid: number, p: ProcessCpu) => boolean, n = 5): string[] {
  return [...b]
    .filter(([pid, p]) => !excluded(pid, p))
    .map(([pid, p]) => ({ pid, name: p.name, pct: ((p.cpuMs - (a.get(pid)?.cpuMs ?? p.cpuMs)) / windowMs) * 100 }))
    .filter((x) => x.pct >= 1)
    .sort((x, y) => y.pct - x.pct)
    .slice(0, n)
    .map((x) => `${x.name} ${x.pid} ${x.pct.toFixed(0)} %`);
}
