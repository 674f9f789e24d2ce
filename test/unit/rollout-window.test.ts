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

  it('until ends at the wall-clock time, crossing midnight, on DST nights too (a duration does not)', () => {
    const nightly = compileRolloutWindow({ cron: '0 22 * * *', until: '04:00', timeZone: 'Europe/Berlin' });
    const sixHours = compileRolloutWindow({ cron: '0 22 * * *', duration: '6h', timeZone: 'Europe/Berlin' });
    // An ordinary January night: 22:00 CET until 04:00 CET.
    assert.deepEqual(nightly.stateAt(at('2030-01-07T23:30:00Z')), { open: true, nextOpeningAt: null, closesAt: at('2030-01-08T03:00:00Z') });
    assert.equal(nightly.stateAt(at('2030-01-08T03:00:00Z')).open, false, 'the end is exclusive');
    assert.equal(nightly.stateAt(at('2030-01-08T03:00:00Z')).nextOpeningAt, at('2030-01-08T21:00:00Z'));
    // Spring forward (2030-03-31, 02:00 CET -> 03:00 CEST): 04:00 CEST, a five-hour night; six hours end at 05:00 CEST.
    assert.equal(nightly.stateAt(at('2030-03-30T23:00:00Z')).closesAt, at('2030-03-31T02:00:00Z'));
    assert.equal(nightly.stateAt(at('2030-03-31T02:00:00Z')).open, false, 'closed at 04:00 local');
    assert.equal(sixHours.stateAt(at('2030-03-30T23:00:00Z')).closesAt, at('2030-03-31T03:00:00Z'));
    // Fall back (2030-10-27, 03:00 CEST -> 02:00 CET): 04:00 CET, a seven-hour night; six hours end at 03:00 CET.
    assert.equal(nightly.stateAt(at('2030-10-27T02:30:00Z')).open, true, '03:30 CET is still inside');
    assert.equal(nightly.stateAt(at('2030-10-26T23:00:00Z')).closesAt, at('2030-10-27T03:00:00Z'));
    assert.equal(sixHours.stateAt(at('2030-10-26T23:00:00Z')).closesAt, at('2030-10-27T02:00:00Z'));
  });

  it('until later than the start ends the same day; the window belongs to the day it starts', () => {
    const office = compileRolloutWindow({ cron: '0 9 * * 1-5', until: '17:00', timeZone: 'America/New_York' });
    // 2030-01-07 is a Monday: 09:00-17:00 EST.
    assert.equal(office.stateAt(at('2030-01-07T21:59:00Z')).closesAt, at('2030-01-07T22:00:00Z'));
    assert.equal(office.stateAt(at('2030-01-07T22:00:00Z')).open, false);
    const friday = compileRolloutWindow({ cron: '0 22 * * 5', until: '04:00', timeZone: 'UTC' });
    assert.equal(friday.stateAt(at('2030-01-12T03:59:00Z')).open, true, 'Saturday 03:59 belongs to Friday night');
    assert.equal(friday.stateAt(at('2030-01-12T22:30:00Z')).open, false, 'Saturday night is not a window');
  });

  it('the schema takes exactly one of duration and until', () => {
    assert.equal(rolloutWindow.safeParse({ cron: '0 22 * * *', until: '04:00', timeZone: 'UTC' }).success, true);
    const both = rolloutWindow.safeParse({ cron: '0 22 * * *', duration: '6h', until: '04:00', timeZone: 'UTC' });
    assert.deepEqual(both.error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`), ['until: give either duration (elapsed time) or until (wall-clock end), not both']);
    const neither = rolloutWindow.safeParse({ cron: '0 22 * * *', timeZone: 'UTC' });
    assert.deepEqual(neither.error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`), ['duration: a window needs an end: duration (e.g. 6h) or until (e.g. "04:00")']);
    assert.equal(rolloutWindow.safeParse({ cron: '0 22 * * *', until: '4am', timeZone: 'UTC' }).success, false);
  });

  it('the schema refuses day tokens the hub does not evaluate, bad zones and zero durations', () => {
    assert.equal(rolloutWindow.safeParse({ cron: '0 22 L * *', duration: '4h', timeZone: 'UTC' }).success, false);
    assert.equal(rolloutWindow.safeParse({ cron: '0 22 * * *', duration: '4h', timeZone: 'Mars/Olympus' }).success, false);
    assert.equal(rolloutWindow.safeParse({ cron: '0 22 * * *', duration: '0s', timeZone: 'UTC' }).success, false);
    assert.equal(rolloutWindow.safeParse({ cron: '0 22 * * 1-5', duration: '4h', timeZone: 'UTC' }).success, true);
  });
});
