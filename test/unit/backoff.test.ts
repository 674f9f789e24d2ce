import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backoffDelay, delayAfterRefusal, MAX_RETRY_AFTER_MS, parseRetryAfter } from '../../src/lib/backoff.ts';
import { mulberry32 } from '../support/prng.ts';

const policy = { baseMs: 100, capMs: 5_000 };

describe('reconnect backoff', () => {
  it('grows exponentially: the top of the range doubles per attempt', () => {
    const almostOne = () => 0.999999;
    assert.deepEqual([0, 1, 2, 3, 4].map((a) => backoffDelay(a, policy, almostOne)), [99, 199, 399, 799, 1599]);
  });

  it('never exceeds the cap, even after very many attempts', () => {
    const almostOne = () => 0.999999;
    for (const attempt of [6, 10, 50, 1024, 1e6]) assert.ok(backoffDelay(attempt, policy, almostOne) <= policy.capMs);
    assert.equal(backoffDelay(1e6, policy, almostOne), 4_999);
  });

  it('uses full jitter: anywhere from 0 to the ceiling, decided by the injected random', () => {
    assert.equal(backoffDelay(5, policy, () => 0), 0);
    assert.equal(backoffDelay(5, policy, () => 0.5), 1_600);
    const random = mulberry32(42);
    const delays = Array.from({ length: 1000 }, () => backoffDelay(8, policy, random));
    assert.ok(delays.every((d) => d >= 0 && d < policy.capMs));
    assert.ok(new Set(delays).size > 800, 'delays spread out, so a fleet does not reconnect in lockstep');
    const mean = delays.reduce((a, b) => a + b, 0) / delays.length;
    assert.ok(mean > 2_000 && mean < 3_000, `mean ${mean} is near half the cap`);
  });
});

describe('the hub\'s retry-after', () => {
  it('waits at least what the hub said, plus up to a fifth more, never less than the backoff', () => {
    assert.equal(delayAfterRefusal(300, undefined, () => 0.5), 300);
    assert.equal(delayAfterRefusal(300, 0, () => 0.5), 300);
    assert.equal(delayAfterRefusal(300, 2_000, () => 0), 2_000);
    assert.equal(delayAfterRefusal(300, 2_000, () => 0.999999), 2_399);
    assert.equal(delayAfterRefusal(5_000, 2_000, () => 0), 5_000);
  });

  it('obeys at most an hour, so a bad hint cannot park an agent and its reports for a day', () => {
    assert.equal(delayAfterRefusal(0, 86_400_000, () => 0), MAX_RETRY_AFTER_MS);
    assert.equal(delayAfterRefusal(0, Number.POSITIVE_INFINITY, () => 0), 0);
  });

  it('reads delay-seconds and HTTP-dates, and nothing else', () => {
    const now = Date.parse('2026-12-01T12:00:00Z');
    assert.equal(parseRetryAfter('2', now), 2_000);
    assert.equal(parseRetryAfter(' 120 ', now), 120_000);
    assert.equal(parseRetryAfter('Tue, 01 Dec 2026 12:00:30 GMT', now), 30_000);
    assert.equal(parseRetryAfter('Tue, 01 Dec 2026 11:00:00 GMT', now), 0, 'a date in the past: retry now');
    for (const bad of [undefined, '', '-1', '1.5', 'soon', 'in 2 s']) assert.equal(parseRetryAfter(bad, now), undefined, String(bad));
  });
});
