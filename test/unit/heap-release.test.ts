import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HeapRelease, heapGrewPastLimit, v8MajorGc } from '../../src/agent/process/heap-release.ts';

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

test('the watch asks for a collection once the used heap grew past the last collection by the limit, not before', () => {
  let used = 20;
  let collections = 0;
  const timers: (() => void)[] = [];
  let tick: (() => void) | undefined;
  let cleared = false;
  const release = new HeapRelease({
    gc: () => {
      collections++;
      used = 21; // what the collection left
    },
    usedHeap: () => used,
    growthBytes: 4,
    watchMs: 30_000,
    setTimer: (fn) => (timers.push(fn), {}),
    setRepeat: (fn, ms) => {
      assert.equal(ms, 30_000);
      tick = fn;
      return {};
    },
    clearRepeat: () => (cleared = true),
  });
  const stop = new AbortController();
  release.watch(stop.signal);
  tick!(); // first reading: the baseline (20)
  used = 23.9;
  tick!();
  assert.equal(timers.length, 0, 'grown 3.9 of 4: no collection yet');
  used = 24;
  tick!();
  assert.equal(timers.length, 1, 'grown 4: one collection requested');
  tick!();
  assert.equal(timers.length, 1, 'a second reading while one is pending joins it');
  timers[0]!();
  assert.equal(collections, 1);
  used = 24.5; // 3.5 past the collection's 21
  tick!();
  assert.equal(timers.length, 1, 'the baseline is what the collection left, not the first reading');
  used = 25;
  tick!();
  assert.equal(timers.length, 2);
  stop.abort();
  assert.ok(cleared, 'the watch stops with its signal');
});

test('heapGrewPastLimit is the whole rule', () => {
  assert.equal(heapGrewPastLimit(10, 6, 4), true);
  assert.equal(heapGrewPastLimit(9.99, 6, 4), false);
  assert.equal(heapGrewPastLimit(3, 6, 4), false, 'a heap that shrank never asks');
});
