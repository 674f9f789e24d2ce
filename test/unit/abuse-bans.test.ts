// The back-off that keeps an offender cut off for abuse out (src/hub/abuse-bans.ts),
// on an injected clock.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AbuseBans } from '../../src/hub/abuse-bans.ts';
import { TestClock } from '../support/hub-fixture.ts';

const addr = (address: string) => ({ kind: 'address' as const, address });

describe('abuse bans', () => {
  it('doubles the ban per offence up to the cap, and starts over after a quiet hour', () => {
    const clock = new TestClock();
    const bans = new AbuseBans(clock.now, { firstBanMs: 1_000, maxBanMs: 8_000, forgetAfterMs: 3_600_000 });
    assert.equal(bans.retryAfterMs(addr('10.0.0.1')), 0);
    assert.deepEqual([1, 2, 3, 4, 5].map(() => bans.ban(addr('10.0.0.1'))), [1_000, 2_000, 4_000, 8_000, 8_000]);
    assert.equal(bans.retryAfterMs(addr('10.0.0.1')), 8_000);
    clock.advance(7_999);
    assert.equal(bans.retryAfterMs(addr('10.0.0.1')), 1);
    clock.advance(1);
    assert.equal(bans.retryAfterMs(addr('10.0.0.1')), 0, 'the ban is over');
    clock.advance(3_600_000 - 1);
    assert.equal(bans.ban(addr('10.0.0.1')), 8_000, 'within the hour after its ban ended an offender keeps its history');
    clock.advance(8_000 + 3_600_000);
    assert.equal(bans.ban(addr('10.0.0.1')), 1_000, 'quiet for an hour: the next offence is a first one');
  });

  it('drops a banned address at accept once it was told why often enough, until its ban ends', () => {
    const clock = new TestClock();
    const bans = new AbuseBans(clock.now, { informedRefusals: 2 });
    assert.equal(bans.dropsAtAccept('10.0.0.1'), false, 'not banned');
    bans.ban(addr('10.0.0.1'));
    assert.equal(bans.dropsAtAccept('10.0.0.1'), false, 'banned, but not told yet');
    bans.refused(addr('10.0.0.1'));
    bans.refused(addr('10.0.0.1'));
    assert.equal(bans.dropsAtAccept('10.0.0.1'), true);
    assert.equal(bans.dropsAtAccept('10.0.0.2'), false);
    clock.advance(1_000);
    assert.equal(bans.dropsAtAccept('10.0.0.1'), false, 'the ban is over');
    bans.ban(addr('10.0.0.1'));
    assert.equal(bans.dropsAtAccept('10.0.0.1'), false, 'a new ban is told again first');
    assert.equal(bans.dropped, 1);
  });

  it('keeps addresses and clusters apart, and forgets the offender that offended longest ago first', () => {
    const clock = new TestClock();
    const bans = new AbuseBans(clock.now, { maxEntries: 2 });
    bans.ban(addr('edge-1'));
    assert.equal(bans.retryAfterMs({ kind: 'cluster', clusterId: 'edge-1' }), 0, 'a cluster named like a banned address is not banned');
    bans.ban({ kind: 'cluster', clusterId: 'edge-1' });
    bans.ban(addr('edge-1'));
    bans.ban(addr('10.0.0.9'));
    assert.equal(bans.size, 2);
    assert.equal(bans.retryAfterMs({ kind: 'cluster', clusterId: 'edge-1' }), 0, 'evicted: it offended longest ago');
    assert.equal(bans.retryAfterMs(addr('edge-1')), 2_000, 'offended again since, so kept (second offence)');
    assert.equal(bans.retryAfterMs(undefined), 0);
  });
});
