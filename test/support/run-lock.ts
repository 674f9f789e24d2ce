// Locks between the processes of a run, or of runs on one machine: a file
// created exclusively, holding its owner's pid. A lock whose process is gone
// is taken over, so a crashed holder never blocks the next one.
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** Waits for the lock file `path`; resolves with its release. */
export async function fileLock(path: string, timeoutMs = 30 * 60_000): Promise<() => Promise<void>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return async () => {
        if (readFileSync(path, 'utf8') === String(process.pid)) unlinkSync(path);
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number(readFileSync(path, { encoding: 'utf8', flag: 'r' }).trim());
      if (!alive(holder)) unlinkSync(path);
      else if (Date.now() > deadline) throw new Error(`${path} held by process ${holder} for ${timeoutMs / 60_000} minutes`);
      else await sleep(1000);
    }
  }
}

function alive(pid: number): boolean {
  if (!(pid > 0)) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * A lock between the test files of one run (parallel processes): tests that
 * use fixed names on the shared control plane, such as the manifests' own
 * namespaces, take turns. The file lives in the run's directory.
 */
export function runLock(name: string): Promise<() => Promise<void>> {
  const dir = process.env.FLEETLET_TEST_CP_DIR;
  if (!dir) throw new Error('FLEETLET_TEST_CP_DIR is not set: run tests through `npm test` (its global set-up makes the run directory)');
  return fileLock(join(dir, `lock-${name}`));
}
