// How the dashboard's pages learn of changes (src/hub/dashboard/change-feed.ts,
// src/hub/throttle.ts), on an injected clock: a change is looked at at once,
// a burst costs one look per coalescing interval and is never lost, a hint
// that changed nothing visible tells nobody, the sweep finds what no hint
// said (a lease running out), and a token hint checks open pages' tokens.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChangeFeed } from '../../src/hub/dashboard/change-feed.ts';
import { Throttle, type Timers } from '../../src/hub/throttle.ts';

/** Timers on a clock moved by hand; due callbacks run in order, and the promises they start settle before the clock moves on. */
class ManualTimers implements Timers {
  #t = 0;
  #seq = 0;
  #due: { at: number; seq: number; run: () => void }[] = [];
  now = (): number => this.#t;
  setTimeout = (run: () => void, ms: number): unknown => {
    const h = { at: this.#t + ms, seq: this.#seq++, run };
    this.#due.push(h);
    return h;
  };
  clearTimeout = (handle: unknown): void => {
    this.#due = this.#due.filter((h) => h !== handle);
  };
  async advance(ms: number): Promise<void> {
    const end = this.#t + ms;
    for (;;) {
      await settle();
      const next = this.#due.filter((h) => h.at <= end).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!next) break;
      this.#due = this.#due.filter((h) => h !== next);
      this.#t = next.at;
      next.run();
    }
    this.#t = end;
    await settle();
  }
}

const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
};

const fail = (err: unknown) => assert.fail(err as Error);

describe('Throttle', () => {
  it('runs the first request at once, and a burst of requests once per interval, the last one included', async () => {
    const timers = new ManualTimers();
    const starts: number[] = [];
    const t = new Throttle(() => void starts.push(timers.now()), 500, { timers, onError: fail });
    t.request();
    await timers.advance(0);
    assert.deepEqual(starts, [0], 'the first request is not delayed');
    // 1,000 requests, one every 5 ms, for 5 s.
    for (let i = 0; i < 1000; i++) {
      t.request();
      await timers.advance(5);
    }
    await timers.advance(1000);
    assert.ok(starts.length <= 5000 / 500 + 2, `at most one run per 500 ms: ${starts.length} runs`);
    for (let i = 1; i < starts.length; i++) assert.ok((starts[i] ?? 0) - (starts[i - 1] ?? 0) >= 500, `runs ${i - 1} and ${i} are 500 ms apart or more: ${starts.join(', ')}`);
    assert.ok((starts.at(-1) ?? 0) >= 5000, 'a request near the end of the burst still made a run after it');
    await t.close();
  });

  it('never runs twice at once: a request during a run makes one more run after it', async () => {
    const timers = new ManualTimers();
    let running = 0;
    let most = 0;
    let runs = 0;
    const gates: (() => void)[] = [];
    const t = new Throttle(
      async () => {
        running++;
        runs++;
        most = Math.max(most, running);
        await new Promise<void>((resolve) => gates.push(resolve));
        running--;
      },
      100,
      { timers, onError: fail },
    );
    t.request();
    await timers.advance(0);
    for (let i = 0; i < 10; i++) {
      t.request();
      await timers.advance(200);
    }
    assert.equal(runs, 1, 'the first run has not ended: nothing else started');
    gates.shift()?.();
    await timers.advance(200);
    assert.equal(runs, 2, 'the requests made while it ran made exactly one more run');
    gates.shift()?.();
    await timers.advance(1000);
    assert.equal(runs, 2);
    assert.equal(most, 1);
    await t.close();
  });

  it('reports a failed run and keeps working', async () => {
    const timers = new ManualTimers();
    const errors: unknown[] = [];
    let n = 0;
    const t = new Throttle(() => {
      if (++n === 1) throw new Error('the store is away');
    }, 100, { timers, onError: (err) => errors.push(err) });
    t.request();
    await timers.advance(0);
    t.request();
    await timers.advance(100);
    assert.equal(n, 2);
    assert.equal(errors.length, 1);
    await t.close();
  });
});

describe('ChangeFeed', () => {
  const feed = (timers: ManualTimers, store: { n: number; reads: number }, reauthorized: { n: number }) =>
    new ChangeFeed({
      fingerprint: async () => {
        store.reads++;
        return String(store.n);
      },
      reauthorize: () => void reauthorized.n++,
      coalesceMs: 500,
      sweepMs: 5000,
      timers,
      onError: fail,
    });

  it('reads nothing while no page listens', async () => {
    const timers = new ManualTimers();
    const store = { n: 0, reads: 0 };
    const f = feed(timers, store, { n: 0 });
    for (let i = 0; i < 100; i++) f.hint();
    await timers.advance(20_000);
    assert.equal(store.reads, 0);
    await f.close();
  });

  it('a change is told at once; a hint that changed nothing shown tells nobody', async () => {
    const timers = new ManualTimers();
    const store = { n: 0, reads: 0 };
    const f = feed(timers, store, { n: 0 });
    let told = 0;
    await f.subscribe(() => told++);
    store.n++;
    f.hint();
    await timers.advance(0);
    assert.equal(told, 1);
    await timers.advance(1000);
    f.hint();
    await timers.advance(0);
    assert.equal(told, 1, 'the fingerprint did not move');
    await f.close();
  });

  it('1,000 changes in 5 s are told a dozen times at most, the last one included', async () => {
    const timers = new ManualTimers();
    const store = { n: 0, reads: 0 };
    const f = feed(timers, store, { n: 0 });
    const told: number[] = [];
    await f.subscribe(() => told.push(timers.now()));
    for (let i = 0; i < 1000; i++) {
      store.n++;
      f.hint();
      await timers.advance(5);
    }
    const readsDuringBurst = store.reads;
    await timers.advance(600);
    assert.ok(told.length >= 2 && told.length <= 5000 / 500 + 2, `told ${told.length} times`);
    assert.ok(readsDuringBurst <= 5000 / 500 + 3, `the store was read ${readsDuringBurst} times during the burst`);
    // After the last change was told, nothing is left to tell.
    const after = told.length;
    await timers.advance(3000);
    f.hint();
    await timers.advance(600);
    assert.equal(told.length, after, 'the last change was already told');
    await f.close();
  });

  it('the sweep finds a change no hint announced (a lease running out), and checks open pages\' tokens', async () => {
    const timers = new ManualTimers();
    const store = { n: 0, reads: 0 };
    const reauthorized = { n: 0 };
    const f = feed(timers, store, reauthorized);
    let told = 0;
    await f.subscribe(() => told++);
    store.n++;
    await timers.advance(4900);
    assert.equal(told, 0);
    await timers.advance(200);
    assert.equal(told, 1, 'the sweep looked');
    assert.equal(reauthorized.n, 1, 'and had the tokens checked');
    f.hint({ tokens: true });
    await timers.advance(500);
    assert.equal(reauthorized.n, 2, 'a token hint checks the tokens at once');
    f.hint();
    await timers.advance(500);
    assert.equal(reauthorized.n, 2, 'other hints do not');
    await f.close();
  });

  it('a page that subscribes after a change is not told of it again; the last one to leave stops the looking', async () => {
    const timers = new ManualTimers();
    const store = { n: 5, reads: 0 };
    const f = feed(timers, store, { n: 0 });
    let told = 0;
    const leave = await f.subscribe(() => told++);
    f.hint();
    await timers.advance(600);
    assert.equal(told, 0, 'the baseline was read when it subscribed');
    leave();
    const reads = store.reads;
    store.n++;
    f.hint();
    await timers.advance(20_000);
    assert.equal(store.reads, reads, 'nobody listens: nothing is read');
    assert.equal(f.listeners, 0);
    await f.close();
  });
});
