// Loaded into an agent process with `node --import <this file>` by
// bench/agent-footprint.ts --probe: on SIGUSR2 it prints where the
// process's memory is (process.memoryUsage(), V8's heap spaces and code
// statistics) as one JSON line on stderr and, when FLEETLET_PROBE_DIR is
// set, writes a heap snapshot there. Never part of the image.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import v8 from 'node:v8';

const mib = (b: number) => Math.round((b / 1048576) * 10) / 10;

process.on('SIGUSR2', () => {
  const m = process.memoryUsage();
  const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0) * 1024;
  const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().filter((s) => s.space_size > 0).map((s) => [s.space_name, { used: mib(s.space_used_size), size: mib(s.space_size) }]));
  const c = v8.getHeapCodeStatistics();
  const report = {
    probe: process.pid,
    rssMiB: mib(rss),
    heapUsedMiB: mib(m.heapUsed),
    heapTotalMiB: mib(m.heapTotal),
    externalMiB: mib(m.external),
    arrayBuffersMiB: mib(m.arrayBuffers),
    code: { codeAndMetadataMiB: mib(c.code_and_metadata_size), bytecodeAndMetadataMiB: mib(c.bytecode_and_metadata_size), externalScriptSourceMiB: mib(c.external_script_source_size) },
    spaces,
    ...(process.env.FLEETLET_PROBE_DIR ? { snapshot: v8.writeHeapSnapshot(join(process.env.FLEETLET_PROBE_DIR, `agent-${process.pid}.heapsnapshot`)) } : {}),
  };
  process.stderr.write(`${JSON.stringify(report)}\n`);
});
