// A wait that a stop cuts short. It resolves (never rejects) when the signal
// aborts: the caller's loop checks the signal and winds down on its own terms.
import { setTimeout as delay } from 'node:timers/promises';

export async function sleep(ms: number, signal: AbortSignal): Promise<void> {
  await delay(ms, undefined, { signal }).catch(() => {});
}
