import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backoffDelay } from '../../src/lib/backoff.ts';
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
