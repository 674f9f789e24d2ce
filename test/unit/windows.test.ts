import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createTask } from 'node-cron';
import { hubWindows, maintenancePolicy, type PolicyInput } from '../../src/protocol/policy.ts';
import {
  allowedIntervals,
  compilePolicy,
  CronSchedule,
  estimateStageMs,
  fitsInWindow,
  nextOpening,
  windowState,
  Zone,
  type WindowOptions,
} from '../../src/agent/windows/index.ts';

const H = 3_600_000;
const MIN = 60_000;

function policy(rest: Omit<PolicyInput, 'apiVersion' | 'kind'>) {
  return compilePolicy(maintenancePolicy.parse({ apiVersion: 'fleetlet.io/v1', kind: 'MaintenancePolicy', ...rest }));
}
const at = (iso: string) => new Date(iso);
const hub = (h: unknown) => hubWindows.parse(h);

function starts(expr: string, tz: string, from: string, to: string): string[] {
  return [...new CronSchedule(expr, new Zone(tz)).between(Date.parse(from), Date.parse(to))].map((t) => new Date(t).toISOString());
}

describe('windows crossing midnight', () => {
  // Mon-Fri 22:00 Berlin for 4h; January is CET (UTC+1).
  const p = policy({ timeZone: 'Europe/Berlin', windows: [{ name: 'weeknights', cron: '0 22 * * 1-5', duration: '4h' }] });

  it('is open after midnight in a window that started the evening before', () => {
    const s = windowState(p, at('2026-01-10T00:30:00Z')); // Saturday 01:30 local, window from Friday 22:00
    assert.equal(s.open, true);
    assert.equal(s.reason, 'InWindow');
    assert.deepEqual(s.names, ['weeknights']);
    assert.equal(s.closesAt?.toISOString(), '2026-01-10T01:00:00.000Z');
  });

  it('closes at the end of the duration and reports the next opening after the weekend', () => {
    const s = windowState(p, at('2026-01-10T01:00:00Z'));
    assert.equal(s.open, false);
    assert.equal(s.reason, 'OutsideWindow');
    assert.equal(s.nextOpensAt?.toISOString(), '2026-01-12T21:00:00.000Z'); // Monday 22:00 CET
    assert.match(s.message, /next opens at 2026-01-12T21:00:00.000Z/);
  });

  it('opens exactly at the cron start', () => {
    assert.equal(windowState(p, at('2026-01-12T20:59:59.999Z')).open, false);
    assert.equal(windowState(p, at('2026-01-12T21:00:00Z')).open, true);
  });
});

describe('daylight saving: Europe/Berlin', () => {
  it('spring forward 2026-03-29: a start in the skipped hour fires at the jump (03:00 CEST)', () => {
    assert.deepEqual(starts('30 2 * * *', 'Europe/Berlin', '2026-03-28T00:00:00Z', '2026-03-31T00:00:00Z'), [
      '2026-03-28T01:30:00.000Z', // 02:30 CET
      '2026-03-29T01:00:00.000Z', // 02:30 does not exist: 03:00 CEST
      '2026-03-30T00:30:00.000Z', // 02:30 CEST
    ]);
    const p = policy({ windows: [{ name: 'early', cron: '30 2 * * *', duration: '1h', timeZone: 'Europe/Berlin' }] });
    const before = windowState(p, at('2026-03-29T00:59:00Z'));
    assert.equal(before.open, false);
    assert.equal(before.nextOpensAt?.toISOString(), '2026-03-29T01:00:00.000Z');
    const during = windowState(p, at('2026-03-29T01:30:00Z'));
    assert.equal(during.open, true);
    assert.equal(during.closesAt?.toISOString(), '2026-03-29T02:00:00.000Z');
  });

  it('spring forward: duration is elapsed real time across the jump', () => {
    // 01:30 CET + 2h real = 04:30 CEST on the wall.
    const p = policy({ windows: [{ name: 'w', cron: '30 1 * * *', duration: '2h', timeZone: 'Europe/Berlin' }] });
    const s = windowState(p, at('2026-03-29T01:15:00Z'));
    assert.equal(s.open, true);
    assert.equal(s.closesAt?.toISOString(), '2026-03-29T02:30:00.000Z');
  });

  it('fall back 2026-10-25: a repeated start time fires once, at its first occurrence', () => {
    assert.deepEqual(starts('30 2 * * *', 'Europe/Berlin', '2026-10-24T00:00:00Z', '2026-10-27T00:00:00Z'), [
      '2026-10-24T00:30:00.000Z',
      '2026-10-25T00:30:00.000Z', // 02:30 CEST; 02:30 CET (01:30Z) is not a second start
      '2026-10-26T01:30:00.000Z',
    ]);
    const p = policy({ windows: [{ name: 'w', cron: '30 2 * * *', duration: '1h', timeZone: 'Europe/Berlin' }] });
    const first = windowState(p, at('2026-10-25T01:00:00Z'));
    assert.equal(first.open, true);
    assert.equal(first.closesAt?.toISOString(), '2026-10-25T01:30:00.000Z');
    const repeat = windowState(p, at('2026-10-25T01:45:00Z')); // 02:45 CET, second pass of the hour
    assert.equal(repeat.open, false);
    assert.equal(repeat.nextOpensAt?.toISOString(), '2026-10-26T01:30:00.000Z');
  });

  it('fall back: a window spanning the repeated hour lasts its duration in real time', () => {
    // 01:00 CEST (23:00Z) + 3h = 02:00Z, which the wall shows as 03:00 CET.
    const p = policy({ windows: [{ name: 'w', cron: '0 1 * * *', duration: '3h', timeZone: 'Europe/Berlin' }] });
    const s = windowState(p, at('2026-10-25T01:30:00Z'));
    assert.equal(s.open, true);
    assert.equal(s.closesAt?.toISOString(), '2026-10-25T02:00:00.000Z');
  });
});

describe('daylight saving: America/New_York', () => {
  it('spring forward 2026-03-08: 02:30 does not exist and fires at 03:00 EDT', () => {
    assert.deepEqual(starts('30 2 * * *', 'America/New_York', '2026-03-07T00:00:00Z', '2026-03-10T00:00:00Z'), [
      '2026-03-07T07:30:00.000Z',
      '2026-03-08T07:00:00.000Z',
      '2026-03-09T06:30:00.000Z',
    ]);
  });

  it('spring forward: a midnight window keeps 4h of real time (closes at 05:00 EDT)', () => {
    const p = policy({ windows: [{ name: 'midnight', cron: '0 0 * * *', duration: '4h', timeZone: 'America/New_York' }] });
    const s = windowState(p, at('2026-03-08T06:00:00Z'));
    assert.equal(s.open, true);
    assert.equal(s.closesAt?.toISOString(), '2026-03-08T09:00:00.000Z');
  });

  it('fall back 2026-11-01: 01:30 fires once (EDT), not again an hour later (EST)', () => {
    const p = policy({ windows: [{ name: 'w', cron: '30 1 * * *', duration: '1h', timeZone: 'America/New_York' }] });
    const s1 = windowState(p, at('2026-11-01T05:45:00Z'));
    assert.equal(s1.open, true);
    assert.equal(s1.closesAt?.toISOString(), '2026-11-01T06:30:00.000Z');
    const s2 = windowState(p, at('2026-11-01T06:45:00Z')); // 01:45 EST
    assert.equal(s2.open, false);
    assert.equal(s2.nextOpensAt?.toISOString(), '2026-11-02T06:30:00.000Z');
  });
});

describe('several windows', () => {
  it('overlapping windows merge into one stretch', () => {
    const p = policy({
      timeZone: 'UTC',
      windows: [
        { name: 'a', cron: '0 22 * * *', duration: '2h' },
        { name: 'b', cron: '0 23 * * *', duration: '2h' },
      ],
    });
    const s = windowState(p, at('2026-05-05T22:30:00Z'));
    assert.equal(s.open, true);
    assert.deepEqual(s.names, ['a']);
    assert.equal(s.closesAt?.toISOString(), '2026-05-06T01:00:00.000Z');
    assert.deepEqual(windowState(p, at('2026-05-05T23:30:00Z')).names, ['a', 'b']);
  });

  it('disjoint windows combine as a union, across time zones', () => {
    const p = policy({
      windows: [
        { name: 'berlin-night', cron: '0 2 * * *', duration: '1h', timeZone: 'Europe/Berlin' },
        { name: 'ny-lunch', cron: '0 12 * * *', duration: '1h', timeZone: 'America/New_York' },
      ],
    });
    const list = allowedIntervals(p, at('2026-06-01T00:00:00Z'), at('2026-06-02T00:00:00Z')).map((i) => [i.start.toISOString(), i.end.toISOString()]);
    assert.deepEqual(list, [
      ['2026-06-01T00:00:00.000Z', '2026-06-01T01:00:00.000Z'],
      ['2026-06-01T16:00:00.000Z', '2026-06-01T17:00:00.000Z'],
    ]);
  });

  it('absent windows mean always allowed; an empty list means never', () => {
    const always = windowState(policy({}), at('2026-05-05T12:00:00Z'));
    assert.equal(always.open, true);
    assert.equal(always.reason, 'AlwaysAllowed');
    assert.equal(always.closesAt, undefined);
    const never = windowState(policy({ windows: [] }), at('2026-05-05T12:00:00Z'));
    assert.equal(never.open, false);
    assert.equal(never.reason, 'NoWindows');
    assert.equal(never.nextOpensAt, undefined);
  });
});

describe('blackouts', () => {
  const p = policy({
    timeZone: 'Europe/Berlin',
    windows: [{ name: 'nightly', cron: '0 22 * * *', duration: '4h' }],
    blackouts: [{ name: 'christmas', from: '2026-12-20', to: '2027-01-02' }],
  });

  it('a blackout wins over an open window', () => {
    const s = windowState(p, at('2026-12-24T22:00:00Z'));
    assert.equal(s.open, false);
    assert.equal(s.reason, 'Blackout');
    assert.deepEqual(s.names, ['christmas']);
  });

  it('a window is cut short where a blackout begins (the end date is inclusive)', () => {
    const s = windowState(p, at('2026-12-19T21:30:00Z')); // 22:30 CET on the 19th
    assert.equal(s.open, true);
    assert.equal(s.closesAt?.toISOString(), '2026-12-19T23:00:00.000Z'); // midnight into the 20th
  });

  it('the rest of a window reopens when the blackout ends mid-window', () => {
    // The window of Jan 2 runs 22:00 CET to 02:00; the blackout covers all of Jan 2.
    const s = windowState(p, at('2027-01-02T21:30:00Z'));
    assert.equal(s.open, false);
    assert.equal(s.nextOpensAt?.toISOString(), '2027-01-02T23:00:00.000Z');
  });

  it('recurring blackouts deny every occurrence', () => {
    const q = policy({ windows: [{ name: 'hourly', cron: '0 * * * *', duration: '1h', timeZone: 'UTC' }], blackouts: [{ name: 'friday-freeze', cron: '0 12 * * 5', duration: '60h', timeZone: 'UTC' }] });
    const s = windowState(q, at('2026-05-09T12:00:00Z')); // Saturday
    assert.equal(s.reason, 'Blackout');
    assert.equal(s.nextOpensAt?.toISOString(), '2026-05-11T00:00:00.000Z');
    assert.equal(windowState(q, at('2026-05-08T11:00:00Z')).closesAt?.toISOString(), '2026-05-08T12:00:00.000Z');
  });
});

describe('critical releases', () => {
  const base = {
    timeZone: 'UTC',
    windows: [{ name: 'nightly', cron: '0 1 * * *', duration: '2h' }],
    blackouts: [{ name: 'freeze', from: '2026-07-01', to: '2026-07-03' }],
  };
  const noon = at('2026-06-10T12:00:00Z');

  it('wait for a window unless local policy lets them start outside', () => {
    const strict = policy({ ...base, critical: { mayStartOutsideWindows: false } });
    const s = windowState(strict, noon, { critical: true });
    assert.equal(s.open, false);
    assert.equal(s.reason, 'OutsideWindow');

    const lenient = policy({ ...base, critical: { mayStartOutsideWindows: true } });
    const c = windowState(lenient, noon, { critical: true });
    assert.equal(c.open, true);
    assert.equal(c.reason, 'CriticalBypass');
    assert.equal(windowState(lenient, noon, { critical: false }).open, false, 'only critical releases bypass');
  });

  it('still respect blackouts unless ignoreBlackouts is set', () => {
    const inFreeze = at('2026-07-02T12:00:00Z');
    const lenient = policy({ ...base, critical: { mayStartOutsideWindows: true } });
    assert.equal(windowState(lenient, inFreeze, { critical: true }).reason, 'Blackout');
    const ignoring = policy({ ...base, critical: { mayStartOutsideWindows: true, ignoreBlackouts: true } });
    const s = windowState(ignoring, inFreeze, { critical: true });
    assert.equal(s.open, true);
    assert.equal(s.reason, 'CriticalBypass');
    assert.deepEqual(s.names, ['freeze']);
  });

  it('bypass only local policy: the hub window and the hub blackout still hold them (docs/maintenance-windows.md, rule 8)', () => {
    const bypassAll = policy({ ...base, critical: { mayStartOutsideWindows: true, ignoreBlackouts: true } });
    const hubWindow: WindowOptions = { critical: true, hubWindows: hub({ timeZone: 'UTC', windows: [{ name: 'rollout-x', cron: '0 20 * * *', duration: '2h' }] }) };
    assert.equal(windowState(bypassAll, noon, hubWindow).open, false, 'outside the hub window');
    assert.equal(windowState(bypassAll, at('2026-06-10T21:00:00Z'), hubWindow).open, true, 'inside the hub window, outside the local one');
    const hubFreeze: WindowOptions = { critical: true, hubWindows: hub({ timeZone: 'UTC', blackouts: [{ name: 'hub-freeze', from: '2026-06-10', to: '2026-06-10' }] }) };
    const s = windowState(bypassAll, noon, hubFreeze);
    assert.equal(s.open, false);
    assert.equal(s.reason, 'HubBlackout');
  });
});

describe('hub windows narrow, never widen', () => {
  const p = policy({ timeZone: 'UTC', windows: [{ name: 'local', cron: '0 22 * * *', duration: '4h' }] });
  const narrow: WindowOptions = { hubWindows: hub({ timeZone: 'UTC', windows: [{ name: 'hub', cron: '0 23 * * *', duration: '2h' }] }) };
  const wide: WindowOptions = { hubWindows: hub({ timeZone: 'UTC', windows: [{ name: 'hub', cron: '0 18 * * *', duration: '12h' }] }) };

  it('a narrower hub window shrinks the local one', () => {
    const s = windowState(p, at('2026-05-05T22:30:00Z'), narrow);
    assert.equal(s.open, false);
    assert.equal(s.reason, 'HubRestricted');
    assert.equal(s.nextOpensAt?.toISOString(), '2026-05-05T23:00:00.000Z');
    const s2 = windowState(p, at('2026-05-05T23:30:00Z'), narrow);
    assert.equal(s2.open, true);
    assert.equal(s2.closesAt?.toISOString(), '2026-05-06T01:00:00.000Z');
  });

  it('a wider hub window does not open anything local policy keeps closed', () => {
    const before = windowState(p, at('2026-05-05T20:00:00Z'), wide);
    assert.equal(before.open, false);
    assert.equal(before.reason, 'OutsideWindow');
    assert.equal(before.nextOpensAt?.toISOString(), '2026-05-05T22:00:00.000Z');
    assert.equal(windowState(p, at('2026-05-06T01:00:00Z'), wide).closesAt?.toISOString(), '2026-05-06T02:00:00.000Z');
    const never = policy({ windows: [] });
    assert.equal(windowState(never, at('2026-05-05T20:00:00Z'), wide).open, false);
  });

  it('hub blackouts apply; a hub cannot lift a local blackout by omitting it', () => {
    const always = policy({ timeZone: 'UTC', blackouts: [{ name: 'local-freeze', from: '2026-05-10', to: '2026-05-10' }] });
    const hb = { hubWindows: hub({ timeZone: 'UTC', blackouts: [{ name: 'fleet-freeze', from: '2026-05-05', to: '2026-05-06' }] }) };
    assert.equal(windowState(always, at('2026-05-05T12:00:00Z'), hb).reason, 'HubBlackout');
    assert.equal(windowState(always, at('2026-05-10T12:00:00Z'), hb).reason, 'Blackout');
    assert.equal(windowState(always, at('2026-05-08T12:00:00Z'), hb).open, true);
  });

  it('hub windows still apply to critical releases that bypass local windows', () => {
    const lenient = policy({ timeZone: 'UTC', windows: [{ name: 'local', cron: '0 22 * * *', duration: '4h' }], critical: { mayStartOutsideWindows: true } });
    const s = windowState(lenient, at('2026-05-05T12:00:00Z'), { critical: true, ...narrow });
    assert.equal(s.open, false);
    assert.equal(s.reason, 'HubRestricted');
    assert.equal(windowState(lenient, at('2026-05-05T23:30:00Z'), { critical: true, ...narrow }).open, true);
  });
});

describe('does a stage fit in the window', () => {
  const p = policy({
    timeZone: 'UTC',
    windows: [
      { name: 'weeknights', cron: '0 22 * * 1-5', duration: '4h' },
      { name: 'saturday', cron: '0 8 * * 6', duration: '8h' },
    ],
  });

  it('fits when it can finish before the window closes', () => {
    const d = fitsInWindow(p, at('2026-05-05T22:00:00Z'), 3 * H);
    assert.equal(d.fits, true);
    assert.equal(d.fits && d.closesAt?.toISOString(), '2026-05-06T02:00:00.000Z');
  });

  it('does not fit: waits for the next window long enough', () => {
    const d = fitsInWindow(p, at('2026-05-07T22:00:00Z'), 5 * H); // Thursday night, 4h windows
    assert.equal(d.fits, false);
    assert.equal(d.reason, 'WindowTooShort');
    assert.equal(!d.fits && d.nextStartAt?.toISOString(), '2026-05-09T08:00:00.000Z'); // the 8h Saturday window
    assert.match(d.message, /needs ~5h .* \(4h left\)/);
  });

  it('late in a window the remaining time decides, not the window length', () => {
    const d = fitsInWindow(p, at('2026-05-06T01:00:00Z'), 90 * MIN);
    assert.equal(d.fits, false);
    assert.equal(!d.fits && d.nextStartAt?.toISOString(), '2026-05-06T22:00:00.000Z');
  });

  it('does not fit when a blackout begins mid-stage', () => {
    const q = policy({
      timeZone: 'UTC',
      windows: [{ name: 'weeknights', cron: '0 22 * * 1-5', duration: '4h' }],
      blackouts: [{ name: 'weekend-freeze', cron: '0 0 * * 6', duration: '48h' }],
    });
    const d = fitsInWindow(q, at('2026-05-08T22:00:00Z'), 3 * H); // Friday night: only 2h before Saturday 00:00
    assert.equal(d.fits, false);
    assert.equal(d.reason, 'WindowTooShort');
    assert.match(d.message, /blackout "weekend-freeze"/);
    assert.equal(!d.fits && d.nextStartAt?.toISOString(), '2026-05-11T22:00:00.000Z');
    assert.equal(fitsInWindow(q, at('2026-05-08T22:00:00Z'), 2 * H).fits, true, 'exactly the time left fits');
  });

  it('outside every window: reports why and when a stage can start', () => {
    const d = fitsInWindow(p, at('2026-05-05T12:00:00Z'), H);
    assert.equal(d.fits, false);
    assert.equal(d.reason, 'OutsideWindow');
    assert.equal(!d.fits && d.nextStartAt?.toISOString(), '2026-05-05T22:00:00.000Z');
  });

  it('no allowed time long enough within the horizon: no start time', () => {
    const d = fitsInWindow(p, at('2026-05-05T12:00:00Z'), 9 * H);
    assert.equal(d.fits, false);
    assert.equal(!d.fits && d.nextStartAt, undefined);
  });
});

describe('next opening', () => {
  it('is now when open, the next start otherwise', () => {
    const p = policy({ timeZone: 'UTC', windows: [{ name: 'w', cron: '0 3 * * *', duration: '1h' }] });
    assert.equal(nextOpening(p, at('2026-05-05T03:30:00Z'))?.toISOString(), '2026-05-05T03:30:00.000Z');
    assert.equal(nextOpening(p, at('2026-05-05T04:00:00Z'))?.toISOString(), '2026-05-06T03:00:00.000Z');
  });

  it('searches far ahead quickly (a leap-day window is two years away)', () => {
    const p = policy({ timeZone: 'Europe/Berlin', windows: [{ name: 'leap', cron: '0 3 29 2 *', duration: '1h' }] });
    const t0 = performance.now();
    const n = nextOpening(p, at('2026-03-01T00:00:00Z'), { maxHorizonMs: 3 * 366 * 24 * H });
    const elapsed = performance.now() - t0;
    assert.equal(n?.toISOString(), '2028-02-29T02:00:00.000Z');
    assert.ok(elapsed < 250, `took ${elapsed}ms`);
  });

  it('a year of nightly windows with a weekly blackout is searched in milliseconds', () => {
    const p = policy({
      timeZone: 'Europe/Berlin',
      windows: [{ name: 'n', cron: '30 2 * * *', duration: '1h' }],
      blackouts: [{ name: 'f', cron: '0 12 * * 5', duration: '60h' }],
    });
    nextOpening(p, at('2026-01-01T00:00:00Z'), { maxHorizonMs: 366 * 24 * H }); // warm up
    const t0 = performance.now();
    const d = fitsInWindow(p, at('2026-01-01T00:00:00Z'), 2 * H); // never fits: searches the whole horizon
    const elapsed = performance.now() - t0;
    assert.equal(d.fits, false);
    assert.ok(elapsed < 100, `took ${elapsed}ms`);
  });

  it('stays undefined when nothing opens within the horizon', () => {
    const p = policy({ timeZone: 'UTC', windows: [{ name: 'leap', cron: '0 3 29 2 *', duration: '1h' }] });
    assert.equal(nextOpening(p, at('2026-03-01T00:00:00Z'), { maxHorizonMs: 30 * 24 * H }), undefined);
  });
});

describe('cron occurrences agree with node-cron', () => {
  const cases: [string, string][] = [
    ['0 22 * * 1-5', 'Europe/Berlin'],
    ['*/20 9-17 * * mon-fri', 'America/New_York'],
    ['0 0 L * *', 'UTC'],
    ['0 6 * * 5L', 'Asia/Kolkata'],
    ['30 4 * * 2#2', 'Australia/Sydney'],
    ['0 12 15W * *', 'UTC'],
    ['0 1 L-2 * *', 'Europe/Berlin'],
    ['0 0 1 * 1', 'UTC'], // node-cron ANDs day of month and day of week
  ];
  for (const [expr, tz] of cases) {
    it(`${expr} in ${tz}`, () => {
      // A span without DST changes in these zones, where both must agree minute for minute.
      const from = Date.parse('2026-05-01T00:00:00Z');
      const to = Date.parse('2026-07-01T00:00:00Z');
      const ours = new Set(new CronSchedule(expr, new Zone(tz)).between(from, to));
      const task = createTask(expr, () => undefined, { timezone: tz });
      try {
        const theirs = new Set<number>();
        for (let t = from; t < to; t += 10 * MIN) if (task.match(new Date(t))) theirs.add(t);
        assert.deepEqual([...ours].sort(), [...theirs].sort());
        assert.ok(ours.size > 0);
      } finally {
        void task.destroy();
      }
    });
  }

  it('prev finds the last start at or before an instant, across months', () => {
    const c = new CronSchedule('0 3 1 * *', new Zone('UTC'));
    assert.equal(new Date(c.prev(Date.parse('2026-05-15T00:00:00Z'), Date.parse('2026-01-01T00:00:00Z')) ?? 0).toISOString(), '2026-05-01T03:00:00.000Z');
    assert.equal(c.prev(Date.parse('2026-05-01T02:59:59Z'), Date.parse('2026-04-15T00:00:00Z')), undefined);
  });
});

describe('zone conversion', () => {
  it('resolves repeated and skipped wall times as documented', () => {
    const z = new Zone('Europe/Berlin');
    assert.equal(new Date(z.toInstant(Date.UTC(2026, 9, 25, 2, 30))).toISOString(), '2026-10-25T00:30:00.000Z');
    assert.equal(new Date(z.toInstant(Date.UTC(2026, 2, 29, 2, 30))).toISOString(), '2026-03-29T01:00:00.000Z');
    assert.equal(new Date(z.toInstant(Date.UTC(2026, 2, 29, 3, 0))).toISOString(), '2026-03-29T01:00:00.000Z');
    assert.equal(new Date(z.toInstant(Date.UTC(2026, 0, 1, 12, 0))).toISOString(), '2026-01-01T11:00:00.000Z');
  });
});

describe('estimateStageMs', () => {
  it('without history assumes the whole progress deadline plus soak', () => {
    assert.equal(estimateStageMs(600_000, [], { soakMs: 120_000 }), 720_000);
  });

  it('uses the p90 of past durations times 1.5', () => {
    const past = [60, 62, 64, 66, 68, 70, 72, 74, 76, 200].map((s) => s * 1000);
    // nearest-rank p90 of 10 samples is the 9th smallest: 76s.
    assert.equal(estimateStageMs(600_000, past), 114_000);
  });

  it('doubles the margin with fewer than three samples', () => {
    assert.equal(estimateStageMs(600_000, [100_000]), 300_000);
  });

  it('is capped by progress deadline plus soak and never below the soak', () => {
    assert.equal(estimateStageMs(600_000, [900_000, 900_000, 900_000], { soakMs: 60_000 }), 660_000);
    assert.equal(estimateStageMs(600_000, [1000, 1000, 1000], { soakMs: 60_000 }), 60_000);
  });

  it('ignores nonsense samples and only counts the most recent', () => {
    assert.equal(estimateStageMs(600_000, [Number.NaN, -5, 10_000, 10_000, 10_000]), 15_000);
    const old = Array.from({ length: 30 }, () => 500_000);
    const recent = Array.from({ length: 20 }, () => 20_000);
    assert.equal(estimateStageMs(600_000, [...old, ...recent]), 30_000);
  });
});
