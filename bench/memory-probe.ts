// Loaded into an agent process with `node --import <this file>` by
// bench/agent-footprint.ts --probe: on SIGUSR2 it prints where the
// process's memory is (process.memoryUsage(), V8's heap spaces and code
// statistics) as one JSON line on stderr and, when FLEETLET_PROBE_DIR is
// set, writes a heap snapshot there. Never part of the image.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';

const mib = (b: number) => Math.round((b / 1048576) * 10) / 10;

/** Resident MiB by mapping (file and permissions, or [anon]/[heap]), the largest first: which parts of the node binary, which libraries. */
function largestMappings(): Record<string, number> {
  const by = new Map<string, number>();
  let key = '';
  for (const l of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const m = /^[0-9a-f]+-[0-9a-f]+ (\S+) \S+ \S+ \S+\s*(.*)$/.exec(l);
    if (m) key = `${m[1]} ${m[2] || '[anon]'}`;
    const r = /^Rss:\s+(\d+) kB/.exec(l);
    if (r) by.set(key, (by.get(key) ?? 0) + Number(r[1]) * 1024);
  }
  return Object.fromEntries([...by].sort((a, b) => b[1] - a[1]).slice(0, 10).map(([k, v]) => [k, mib(v)]));
}

// A full collection of the probe's own, after everything else is read: the used heap after it is
// the live heap, so growth in `heapUsedMiB` can be told apart as garbage or objects that live on.
// --expose-gc is set only then, never at load: a V8 flag changed before the bundle loads changes
// the flag hash V8 checks a code cache against, so the agent's compile cache was rejected and
// the bundle parsed (~17 MiB more C heap than the image's agent has), and the rejected entry rewritten.
const gc = () => {
  v8.setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as (o: { type: 'major'; execution: 'sync' }) => void)({ type: 'major', execution: 'sync' });
};

process.on('SIGUSR2', () => {
  const m = process.memoryUsage();
  const status = readFileSync('/proc/self/status', 'utf8');
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) * 1024;
  const rss = kib('VmRSS');
  const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().filter((s) => s.space_size > 0).map((s) => [s.space_name, { used: mib(s.space_used_size), size: mib(s.space_size) }]));
  const c = v8.getHeapCodeStatistics();
  const report = {
    probe: process.pid,
    rssMiB: mib(rss),
    // Anonymous memory (heaps, malloc) against pages of mapped files (the node binary, better-sqlite3's library).
    rssAnonMiB: mib(kib('RssAnon')),
    rssFileMiB: mib(kib('RssFile')),
    heapUsedMiB: mib(m.heapUsed),
    heapTotalMiB: mib(m.heapTotal),
    externalMiB: mib(m.external),
    arrayBuffersMiB: mib(m.arrayBuffers),
    code: { codeAndMetadataMiB: mib(c.code_and_metadata_size), bytecodeAndMetadataMiB: mib(c.bytecode_and_metadata_size), externalScriptSourceMiB: mib(c.external_script_source_size) },
    spaces,
    mappings: largestMappings(),
    liveHeapMiB: (() => {
      gc();
      return mib(process.memoryUsage().heapUsed);
    })(),
    ...(process.env.FLEETLET_PROBE_DIR ? { snapshot: v8.writeHeapSnapshot(join(process.env.FLEETLET_PROBE_DIR, `agent-${process.pid}.heapsnapshot`)) } : {}),
  };
  process.stderr.write(`${JSON.stringify(report)}\n`);
});
