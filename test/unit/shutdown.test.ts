// GracefulShutdown with an injected signal source: the stop order, the
// grace deadline, and what a second signal does.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { GracefulShutdown, type SignalSource } from '../../src/agent/process/shutdown.ts';
import { testLogger } from '../support/test-log.ts';

const logger = testLogger();
const signals = () => new EventEmitter() as EventEmitter & SignalSource;
const untilAborted = (signal: AbortSignal) => new Promise<void>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true }));

test('SIGTERM aborts the run, waits for it, closes newest first, and exits 0', async () => {
  const src = signals();
  const order: string[] = [];
  const s = new GracefulShutdown({ logger, signals: src, exit: () => order.push('exit') });
  s.onClose('journal', () => void order.push('journal'));
  s.onClose('http', async () => {
    await new Promise((r) => setTimeout(r, 20));
    order.push('http');
  });
  const code = s.run(async (signal) => {
    setTimeout(() => src.emit('SIGTERM', 'SIGTERM'), 10);
    // The step in flight finishes after the stop request; the run rejects as aborted runs do.
    await untilAborted(signal).catch(async (err: unknown) => {
      await new Promise((r) => setTimeout(r, 30));
      order.push('step finished');
      throw err;
    });
  });
  assert.equal(await code, 0);
  assert.deepEqual(order, ['step finished', 'http', 'journal']);
  assert.equal(src.listenerCount('SIGTERM'), 0, 'handlers removed');
  assert.equal(src.listenerCount('SIGINT'), 0);
});

test('a run that ends by itself exits 0 without a signal; one that fails exits 1, still closing', async () => {
  const closed: string[] = [];
  const ok = new GracefulShutdown({ logger, signals: signals(), exit: () => {} });
  assert.equal(await ok.run(async () => {}), 0);

  const failing = new GracefulShutdown({ logger, signals: signals(), exit: () => {} });
  failing.onClose('journal', () => void closed.push('journal'));
  assert.equal(
    await failing.run(async () => {
      throw new Error('journal is corrupt');
    }),
    1,
  );
  assert.deepEqual(closed, ['journal']);
});

test('a step that does not finish within the grace period: stop anyway, exit 1, close everything', async () => {
  const closed: string[] = [];
  const exits: number[] = [];
  const s = new GracefulShutdown({ logger, signals: signals(), graceMs: 50, closeMs: 20, exit: (c) => exits.push(c) });
  s.onClose('stuck', () => new Promise<void>(() => {}));
  s.onClose('journal', () => void closed.push('journal'));
  const started = Date.now();
  const code = await s.run(async () => {
    s.stop('test');
    await new Promise<void>(() => {}); // ignores its signal
  });
  assert.equal(code, 1);
  assert.deepEqual(closed, ['journal'], 'a closer that hangs does not keep the others from closing');
  assert.ok(Date.now() - started < 1_000);
  // The unref'd fallback exit fires only if something keeps the process alive; here the test does.
  await new Promise((r) => setTimeout(r, 40));
  assert.deepEqual(exits, [1]);
});

test('a second signal exits at once with 130', async () => {
  const src = signals();
  const exits: number[] = [];
  const s = new GracefulShutdown({ logger, signals: src, graceMs: 200, exit: (c) => exits.push(c) });
  const code = s.run(async () => {
    src.emit('SIGINT', 'SIGINT');
    src.emit('SIGINT', 'SIGINT');
    await new Promise<void>(() => {});
  });
  assert.deepEqual(exits, [130]);
  assert.equal(await code, 1, 'and without a real exit, the grace deadline still ends the run');
});
