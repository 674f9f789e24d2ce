// The hub-side rollout window: open or closed at an injected instant, and when it next opens.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileRolloutWindow } from '../../src/hub/rollout/rollout-window.ts';
import { rolloutWindow } from '../../src/protocol/rollout.ts';

const at = (s: string) => Date.parse(s);

describe('rollout window', () => {
  it('is open from each cron start for the duration, in the window\'s zone', () => {
    // Weeknights 22:00-02:00 Berlin time (UTC+1 in January).
    const w = compileRolloutWindow({ cron: '0 22 * * 1-5', duration: '4h', timeZone: 'Europe/Berlin' });
    // 2030-01-07 is a Monday.
    assert.deepEqual(w.stateAt(at('2030-01-07T20:59:59Z')), { open: false, nextOpeningAt: at('2030-01-07T21:00:00Z'), closesAt: null });
    assert.deepEqual(w.stateAt(at('2030-01-07T21:00:00Z')), { open: true, nextOpeningAt: null, closesAt: at('2030-01-08T01:00:00Z') });
    assert.equal(w.stateAt(at('2030-01-08T00:59:59Z')).open, true, 'still open past local midnight');
    assert.equal(w.stateAt(at('2030-01-08T01:00:00Z')).open, false, 'closed at the end (half-open)');
    // Friday night's window opens; Saturday has none: after Saturday 02:00 the next is Monday 22:00.
    assert.equal(w.stateAt(at('2030-01-11T23:00:00Z')).open, true);
    assert.equal(w.stateAt(at('2030-01-12T12:00:00Z')).nextOpeningAt, at('2030-01-14T21:00:00Z'));
  });

  it('follows daylight saving time: 22:00 local is 20:00 UTC in July', () => {
    const w = compileRolloutWindow({ cron: '0 22 * * *', duration: '1h', timeZone: 'Europe/Berlin' });
    assert.equal(w.stateAt(at('2030-07-01T20:30:00Z')).open, true);
    assert.equal(w.stateAt(at('2030-07-01T21:30:00Z')).open, false);
  });

  it('a window that never opens within a year (29 February on a Monday) has no next opening', () => {
    const w = compileRolloutWindow({ cron: '0 0 29 2 1', duration: '1h', timeZone: 'UTC' });
    assert.deepEqual(w.stateAt(at('2030-01-01T00:00:00Z')), { open: false, nextOpeningAt: null, closesAt: null });
  });

  it('the schema refuses day tokens the hub does not evaluate, bad zones and zero durations', () => {
    assert.equal(rolloutWindow.safeParse({ cron: '0 22 L * *', duration: '4h', timeZone: 'UTC' }).success, false);
    assert.equal(rolloutWindow.safeParse({ cron: '0 22 * * *', duration: '4h', timeZone: 'Mars/Olympus' }).success, false);
    assert.equal(rolloutWindow.safeParse({ cron: '0 22 * * *', duration: '0s', timeZone: 'UTC' }).success, false);
    assert.equal(rolloutWindow.safeParse({ cron: '0 22 * * 1-5', duration: '4h', timeZone: 'UTC' }).success, true);
  });
});
