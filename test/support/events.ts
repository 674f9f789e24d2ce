// Waiting on events instead of sleeping. The timeout only bounds a failing
// test; passing tests never wait on it.
import type { EventEmitter } from 'node:events';

/** Resolves when `check()` holds, re-checking whenever the emitter emits one of `events`. */
export function waitFor(emitter: EventEmitter, events: readonly string[], check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    if (check()) {
      resolve();
      return;
    }
    const listener = (): void => {
      if (check()) {
        cleanup();
        resolve();
      }
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      for (const e of events) emitter.off(e, listener);
    };
    for (const e of events) emitter.on(e, listener);
  });
}

/** The arguments of the next `event` for which `predicate` holds. Subscribe before causing it. */
export function nextEvent<T extends unknown[] = unknown[]>(emitter: EventEmitter, event: string, predicate: (...args: T) => boolean = () => true, timeoutMs = 10_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const listener = (...args: unknown[]): void => {
      if (predicate(...(args as T))) {
        clearTimeout(timer);
        emitter.off(event, listener);
        resolve(args as T);
      }
    };
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for "${event}"`));
    }, timeoutMs);
    emitter.on(event, listener);
  });
}
