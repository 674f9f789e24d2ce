// A lock between the test files of one run (they run in parallel processes):
// tests that use fixed names on the shared control plane, such as the
// manifests' own namespaces, take turns. A file created exclusively in the
// run's directory; gone with the run, so a crashed holder never outlives it.
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** Waits for the lock called `name`; resolves with its release. */
export async function runLock(name: string, timeoutMs = 30 * 60_000): Promise<() => Promise<void>> {
  const dir = process.env.FLEETLET_TEST_CP_DIR;
  if (!dir) throw new Error('FLEETLET_TEST_CP_DIR is not set: run tests through `npm test` (its global set-up makes the run directory)');
  const path = join(dir, `lock-${name}`);
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
      if (Date.now() > deadline) throw new Error(`${path} held by process ${readFileSync(path, 'utf8')} for ${timeoutMs / 60_000} minutes`);
      await sleep(1000);
    }
  }
}
