import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HeapRelease, v8MajorGc } from '../../src/agent/process/heap-release.ts';

test('attempts ending together cost one collection, run after the delay', () => {
  const timers: { fn: () => void; ms: number }[] = [];
  let collections = 0;
  const release = new HeapRelease({ gc: () => collections++, delayMs: 1500, setTimer: (fn, ms) => (timers.push({ fn, ms }), {}) });
  release.request();
  release.request();
  assert.equal(timers.length, 1);
  assert.equal(timers[0]!.ms, 1500);
  assert.equal(collections, 0, 'nothing runs before the timer fires');
  timers[0]!.fn();
  assert.equal(collections, 1);
  release.request();
  assert.equal(timers.length, 2, 'a request after the collection schedules a new one');
  timers[1]!.fn();
  assert.equal(collections, 2);
  assert.equal(release.runs, 2);
});

test("V8's full collection gives the old generation's freed pages back", async () => {
  const { getHeapSpaceStatistics } = await import('node:v8');
  const oldSpace = () => getHeapSpaceStatistics().find((s) => s.space_name === 'old_space')!.space_size;
  const gc = v8MajorGc();
  gc();
  const before = oldSpace();
  let garbage: object[] | undefined = [];
  for (let i = 0; i < 300_000; i++) garbage.push({ i, s: `x${i}` });
  garbage = undefined;
  const grown = oldSpace();
  assert.ok(grown > before + 4 * 1048576, `the old generation grew (${before} → ${grown} bytes)`);
  gc();
  assert.ok(oldSpace() < grown - 4 * 1048576, `committed ${grown} → ${oldSpace()} bytes after the collection`);
  assert.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined', 'the process\'s own global gets no gc');
});
