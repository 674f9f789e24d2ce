// Windows that end at a wall-clock time (`until: "04:00"`), as kured,
// system-upgrade-controller and zincati keep them, and the refusal of
// 6-field cron expressions.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { z } from 'zod';
import { maintenancePolicy, type PolicyInput } from '../../src/protocol/policy.ts';
import { compilePolicy, windowState } from '../../src/agent/windows/index.ts';

function policy(rest: Omit<PolicyInput, 'apiVersion' | 'kind'>) {
  return compilePolicy(maintenancePolicy.parse({ apiVersion: 'fleetlet.io/v1', kind: 'MaintenancePolicy', ...rest }));
}
const closes = (p: ReturnType<typeof policy>, iso: string) => {
  const s = windowState(p, new Date(iso));
  assert.equal(s.open, true, `open at ${iso}: ${s.message}`);
  return s.closesAt?.toISOString();
};
const issues = (rest: Omit<PolicyInput, 'apiVersion' | 'kind'>): string[] => {
  const r = maintenancePolicy.safeParse({ apiVersion: 'fleetlet.io/v1', kind: 'MaintenancePolicy', ...rest });
  assert.equal(r.success, false, 'refused');
  return (r.error as z.ZodError).issues.map((i) => `${i.path.join('.')}: ${i.message}`);
};

describe('until: a wall-clock end', () => {
  const nightly = policy({ timeZone: 'Europe/Berlin', windows: [{ name: 'nights', cron: '0 22 * * *', until: '04:00' }] });
  const sixHours = policy({ timeZone: 'Europe/Berlin', windows: [{ name: 'nights', cron: '0 22 * * *', duration: '6h' }] });

  it('crosses midnight: 22:00 until 04:00 closes at 04:00 local the next day', () => {
    assert.equal(closes(nightly, '2026-01-09T23:30:00Z'), '2026-01-10T03:00:00.000Z'); // 04:00 CET
    assert.equal(windowState(nightly, new Date('2026-01-10T03:00:00Z')).open, false, 'the end is exclusive');
  });

  it('on the spring-forward night (2026-03-29) it still ends at 04:00 local, one hour shorter; a 6h duration ends at 05:00', () => {
    assert.equal(closes(nightly, '2026-03-28T23:00:00Z'), '2026-03-29T02:00:00.000Z'); // 04:00 CEST
    assert.equal(closes(sixHours, '2026-03-28T23:00:00Z'), '2026-03-29T03:00:00.000Z'); // 05:00 CEST
  });

  it('on the fall-back night (2026-10-25) it still ends at 04:00 local, one hour longer; a 6h duration ends at 03:00', () => {
    assert.equal(closes(nightly, '2026-10-24T23:00:00Z'), '2026-10-25T03:00:00.000Z'); // 04:00 CET
    assert.equal(closes(sixHours, '2026-10-24T23:00:00Z'), '2026-10-25T02:00:00.000Z'); // 03:00 CET
  });

  it('an end in the repeated hour is its first occurrence; an end in the skipped hour is the jump', () => {
    const repeated = policy({ timeZone: 'Europe/Berlin', windows: [{ name: 'w', cron: '0 22 * * *', until: '02:30' }] });
    assert.equal(closes(repeated, '2026-10-24T23:00:00Z'), '2026-10-25T00:30:00.000Z'); // 02:30 CEST, before the clocks go back
    assert.equal(windowState(repeated, new Date('2026-10-25T01:15:00Z')).open, false, 'not open again when 02:15 comes round a second time');
    assert.equal(closes(repeated, '2026-03-28T23:00:00Z'), '2026-03-29T01:00:00.000Z'); // 02:30 does not exist: 03:00 CEST
  });

  it('ends the same day when until is later than the start, after a full day when it equals it', () => {
    const office = policy({ timeZone: 'America/New_York', windows: [{ name: 'office', cron: '0 9 * * 1-5', until: '17:00' }] });
    assert.equal(closes(office, '2026-06-01T14:00:00Z'), '2026-06-01T21:00:00.000Z'); // Monday 17:00 EDT
    assert.equal(windowState(office, new Date('2026-06-01T21:00:00Z')).open, false);
    const day = policy({ timeZone: 'UTC', windows: [{ name: 'day', cron: '0 6 * * 1', until: '06:00' }] });
    assert.equal(closes(day, '2026-06-01T07:00:00Z'), '2026-06-02T06:00:00.000Z');
  });

  it('a window belongs to the day it starts: Friday 22:00 until 04:00 is open early Saturday, not Saturday night', () => {
    const friday = policy({ timeZone: 'Europe/Berlin', windows: [{ name: 'fri', cron: '0 22 * * 5', until: '04:00' }] });
    assert.equal(closes(friday, '2026-01-10T01:00:00Z'), '2026-01-10T03:00:00.000Z'); // Saturday 02:00 CET, from Friday
    assert.equal(windowState(friday, new Date('2026-01-10T22:00:00Z')).open, false); // Saturday 23:00
  });

  it('a recurring blackout may end at a wall-clock time too', () => {
    const p = policy({ timeZone: 'Europe/Berlin', blackouts: [{ name: 'business-hours', cron: '0 8 * * 1-5', until: '18:00' }] });
    const s = windowState(p, new Date('2026-03-30T15:59:00Z')); // Monday 17:59 CEST
    assert.equal(s.open, false);
    assert.equal(s.reason, 'Blackout');
    assert.equal(windowState(p, new Date('2026-03-30T16:00:00Z')).open, true); // 18:00 CEST
  });

  it('refuses a window with both ends, with neither, or with an end that is not HH:MM', () => {
    assert.deepEqual(issues({ timeZone: 'UTC', windows: [{ name: 'w', cron: '0 22 * * *', duration: '6h', until: '04:00' }] }), ['windows.0.until: give either duration (elapsed time) or until (wall-clock end), not both']);
    assert.deepEqual(issues({ timeZone: 'UTC', windows: [{ name: 'w', cron: '0 22 * * *' }] }), ['windows.0.duration: a window needs an end: duration (e.g. 6h) or until (e.g. "04:00")']);
    for (const bad of ['4:00', '24:00', '04:00:00', '4am']) {
      assert.deepEqual(issues({ timeZone: 'UTC', windows: [{ name: 'w', cron: '0 22 * * *', until: bad }] }), ['windows.0.until: must be a 24-hour wall-clock time like 04:00 or 23:30'], bad);
    }
  });
});

describe('6-field cron', () => {
  it('is refused with the 5-field form in the message, in windows and blackouts alike', () => {
    assert.deepEqual(issues({ timeZone: 'UTC', windows: [{ name: 'w', cron: '0 0 22 * * 1-5', duration: '4h' }] }), [
      'windows.0.cron: "0 0 22 * * 1-5" has 6 fields, which node-cron reads as seconds first; windows have minute resolution: write the 5 fields minute hour day-of-month month day-of-week, e.g. "0 22 * * 1-5" if the first field was seconds',
    ]);
    assert.match(issues({ timeZone: 'UTC', blackouts: [{ name: 'b', cron: '0 0 8 * * *', until: '18:00' }] })[0] ?? '', /blackouts\.0\.cron: .*e\.g\. "0 8 \* \* \*"/);
    // 5 fields still pass.
    assert.equal(policy({ timeZone: 'UTC', windows: [{ name: 'w', cron: '0 22 * * 1-5', duration: '4h' }] }).local.windows?.length, 1);
  });
});
