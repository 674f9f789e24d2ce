// The operator API per source address: past its budget a client gets 429
// with Retry-After and a reason, before its token is looked at, and others
// are served; the budget refills.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ApiRateLimit } from '../../src/hub/api-rate-limit.ts';
import { startHubFixture, type HubFixture } from '../support/hub-fixture.ts';

describe('API rate limit', () => {
  let f: HubFixture;
  let monotonic = 0;
  beforeEach(async () => {
    monotonic = 0;
    f = await startHubFixture({ apiRateLimits: { perSecond: 2, burst: 5, monotonicMs: () => monotonic } });
  });
  afterEach(async () => {
    await f.close();
  });

  it('past the burst a client gets 429 with Retry-After and a reason, before its token is checked; the bucket refills', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await f.api('GET', '/api/v1/clusters')).status, 200, `request ${i + 1} of the burst`);
    const limited = await fetch(`${f.hub.httpUrl}/api/v1/clusters/edge-1/accept`, { method: 'POST', headers: { authorization: 'Bearer wrong' } });
    assert.equal(limited.status, 429, 'refused before the (wrong) token is looked at');
    assert.equal(limited.headers.get('retry-after'), '1');
    const body = (await limited.json()) as { error: { reason: string; message: string } };
    assert.equal(body.error.reason, 'RateLimited');
    assert.match(body.error.message, /more than 2 API requests per second from this address \(burst 5\)/);
    assert.equal((await fetch(`${f.hub.httpUrl}/healthz`)).status, 200, 'probes are not the API');
    const audit = await (async () => {
      monotonic += 500;
      return f.api('GET', '/api/v1/audit');
    })();
    assert.equal(audit.status, 200, 'half a second later one token is back');
    assert.deepEqual(audit.body.entries, [], 'the refused POST cost no audit row (nor a 401: its token was never looked at)');
    assert.equal((await f.api('GET', '/api/v1/clusters')).status, 429, 'and spent');
    monotonic += 10_000;
    assert.equal((await f.api('GET', '/api/v1/clusters')).status, 200, 'refilled');
  });
});

describe('ApiRateLimit', () => {
  it('keeps a bucket per address and forgets full ones before it holds more than maxAddresses', () => {
    let t = 0;
    const limit = new ApiRateLimit({ perSecond: 1, burst: 1, maxAddresses: 2, monotonicMs: () => t });
    assert.equal(limit.take('a'), 0);
    assert.equal(limit.take('a'), 1000, 'a waits a second');
    assert.equal(limit.take('b'), 0, 'b has its own bucket');
    t += 1_000;
    assert.equal(limit.take('c'), 0, 'a third address: the full ones were forgotten');
    assert.equal(limit.take('c'), 1000);
    assert.equal(limit.take('a'), 0, 'a was forgotten with a full bucket, so it starts full');
  });
});
