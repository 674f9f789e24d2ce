// The journal's filesystem has room: every state is written before its action,
// so a full disk would stop the agent halfway, possibly unable to record a
// rollback. Better to refuse to start a stage.
import { statfs as fsStatfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Check } from '../checks/check.ts';

export type Statfs = (path: string) => Promise<{ bavail: number | bigint; bsize: number | bigint }>;

const MiB = 1024 * 1024;

export function journalDiskCheck(journalPath: string, minFreeMiB: number, statfs: Statfs = fsStatfs, timeoutMs = 5_000): Check {
  return {
    name: 'journal-disk',
    timeoutMs,
    async run() {
      if (journalPath === ':memory:') return { result: 'pass', message: 'the journal is in memory' };
      const dir = dirname(journalPath);
      let free: number;
      try {
        const s = await statfs(dir);
        free = Number(s.bavail) * Number(s.bsize);
      } catch (err) {
        return { result: 'error', message: `cannot read free space of ${dir}: ${(err as Error).message}` };
      }
      const text = `${(free / MiB).toFixed(0)} MiB free on the journal's filesystem (${dir}); policy needs ${minFreeMiB} MiB`;
      return free < minFreeMiB * MiB ? { result: 'fail', message: text } : { result: 'pass', message: text };
    },
  };
}
