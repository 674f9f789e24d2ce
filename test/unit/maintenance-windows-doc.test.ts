// Executes the policies in docs/maintenance-windows.md: each one marked
// `<!-- test: id -->` is parsed as the agent would parse it and checked
// against what the page says it does; the kured and system-upgrade-controller
// translations against kured's own window rule (timewindow.Contains) at every
// half hour across both DST changes.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import YAML from 'yaml';
import { compilePolicy, windowState, Zone } from '../../src/agent/windows/index.ts';
import { maintenancePolicy } from '../../src/protocol/policy.ts';

const doc = readFileSync(new URL('../../docs/maintenance-windows.md', import.meta.url), 'utf8');
const examples = new Map<string, ReturnType<typeof compilePolicy>>();
for (const m of doc.matchAll(/```yaml\n([\s\S]*?)```\n<!-- test: ([a-z-]+) -->/g)) {
  examples.set(m[2] ?? '', compilePolicy(maintenancePolicy.parse(YAML.parse(m[1] ?? ''))));
}
const example = (id: string) => {
  const p = examples.get(id);
  if (!p) throw new Error(`docs/maintenance-windows.md has no policy marked "test: ${id}"`);
  return p;
};
const open = (id: string, iso: string) => windowState(example(id), new Date(iso)).open;

const DAY = 86_400_000;
const HALF_HOUR = 1_800_000;

/**
 * kured's pkg/timewindow Contains, which system-upgrade-controller uses too:
 * the instant's own weekday must be listed; start and end are that day's
 * times (the end second included), and an end earlier than the start wraps
 * to the day before or after in instants (Go's time.Add of 24h).
 */
function kuredContains(days: Set<number>, start: string, end: string, zone: Zone, t: number): boolean {
  const p = zone.parts(t);
  if (!days.has(new Date(Date.UTC(p.year, p.month - 1, p.day)).getUTCDay())) return false;
  const [sh, sm] = start.split(':').map(Number) as [number, number];
  const [eh, em] = end.split(':').map(Number) as [number, number];
  let s = zone.toInstant(Date.UTC(p.year, p.month - 1, p.day, sh, sm));
  let e = zone.toInstant(Date.UTC(p.year, p.month - 1, p.day, eh, em)) + 999;
  if (sh * 60 + sm > eh * 60 + em) {
    if (t < e) s -= DAY;
    else e += DAY;
  }
  return t >= s && t <= e;
}

/** Compares at 7 and 37 minutes past every hour (never on a boundary, where kured's end second differs on purpose). */
function agreesWithKured(id: string, days: number[], start: string, end: string, tz: string, ranges: [string, string][]): number {
  const zone = new Zone(tz);
  const set = new Set(days);
  let checked = 0;
  for (const [from, to] of ranges) {
    for (let t = Date.parse(from) + 7 * 60_000; t < Date.parse(to); t += HALF_HOUR) {
      const want = kuredContains(set, start, end, zone, t);
      assert.equal(windowState(example(id), new Date(t)).open, want, `${id} at ${new Date(t).toISOString()}: kured says ${want ? 'open' : 'closed'}`);
      checked++;
    }
  }
  return checked;
}

describe('docs/maintenance-windows.md', () => {
  it('has the policies it promises, each one valid', () => {
    assert.deepEqual([...examples.keys()].sort(), ['blackouts', 'kured-default', 'kured-exact', 'locksmith', 'suc', 'weeknights-until', 'zincati']);
  });

  it('weeknights until 04:00: crosses midnight, keeps 04:00 local on both DST nights, belongs to the day it starts', () => {
    const closes = (iso: string) => windowState(example('weeknights-until'), new Date(iso)).closesAt?.toISOString();
    assert.equal(closes('2026-01-12T22:00:00Z'), '2026-01-13T03:00:00.000Z'); // Monday night, CET
    assert.equal(closes('2026-03-27T22:00:00Z'), '2026-03-28T03:00:00.000Z'); // Friday night before the change
    assert.equal(open('weeknights-until', '2026-01-10T01:00:00Z'), true, 'Saturday 02:00 belongs to Friday night');
    assert.equal(open('weeknights-until', '2026-01-12T01:00:00Z'), false, 'Monday 02:00: Sunday night is not a weeknight');
    assert.equal(open('weeknights-until', '2026-01-13T03:00:00Z'), false, 'the end is exclusive');
  });

  it('the DST table: until keeps 04:00 local, where a 6h duration would not', () => {
    const nights = compilePolicy(maintenancePolicy.parse({ apiVersion: 'fleetlet.io/v1', kind: 'MaintenancePolicy', timeZone: 'Europe/Berlin', windows: [{ name: 'n', cron: '0 22 * * *', until: '04:00' }] }));
    const sixHours = compilePolicy(maintenancePolicy.parse({ apiVersion: 'fleetlet.io/v1', kind: 'MaintenancePolicy', timeZone: 'Europe/Berlin', windows: [{ name: 'n', cron: '0 22 * * *', duration: '6h' }] }));
    const closes = (p: typeof nights, iso: string) => windowState(p, new Date(iso)).closesAt?.toISOString();
    assert.deepEqual([closes(nights, '2026-03-28T22:00:00Z'), closes(sixHours, '2026-03-28T22:00:00Z')], ['2026-03-29T02:00:00.000Z', '2026-03-29T03:00:00.000Z']);
    assert.deepEqual([closes(nights, '2026-10-24T22:00:00Z'), closes(sixHours, '2026-10-24T22:00:00Z')], ['2026-10-25T03:00:00.000Z', '2026-10-25T02:00:00.000Z']);
    assert.match(doc, /\| spring forward \(2026-03-29\) \| 04:00 CEST \(5 h\) \| 05:00 CEST \|/);
    assert.match(doc, /\| fall back \(2026-10-25\) \| 04:00 CET \(7 h\) \| 03:00 CET \|/);
  });

  const dstWeeks = (year: number): [string, string][] => [
    [`${year}-01-05T00:00:00Z`, `${year}-01-19T00:00:00Z`],
    [`${year}-03-05T00:00:00Z`, `${year}-04-02T00:00:00Z`],
    [`${year}-10-20T00:00:00Z`, `${year}-11-10T00:00:00Z`],
  ];

  it("kured-exact: open exactly when kured's mon-fri 22:00-04:00 Europe/Berlin is, across both DST changes", () => {
    assert.ok(agreesWithKured('kured-exact', [1, 2, 3, 4, 5], '22:00', '04:00', 'Europe/Berlin', dstWeeks(2026)) > 3000);
  });

  it("suc: open exactly when system-upgrade-controller's weekend 01:00-05:00 America/New_York is, across both DST changes", () => {
    assert.ok(agreesWithKured('suc', [0, 6], '01:00', '05:00', 'America/New_York', dstWeeks(2026)) > 3000);
  });

  it('kured-default: no windows, always allowed', () => {
    const s = windowState(example('kured-default'), new Date('2026-06-03T13:37:00Z'));
    assert.deepEqual([s.open, s.reason], [true, 'AlwaysAllowed']);
  });

  it('locksmith and zincati: a start and a length, in the node zone', () => {
    assert.equal(open('locksmith', '2026-06-04T02:30:00Z'), true); // Thursday 04:30 CEST
    assert.equal(open('locksmith', '2026-06-04T03:00:00Z'), false); // 05:00
    assert.equal(open('locksmith', '2026-06-05T02:30:00Z'), false); // Friday
    assert.equal(open('zincati', '2026-06-07T03:45:00Z'), true); // Saturday 22:45 CDT
    assert.equal(open('zincati', '2026-06-07T04:30:00Z'), false); // 23:30
    assert.equal(open('zincati', '2026-06-08T03:45:00Z'), true); // Sunday 22:45
  });

  it('blackouts: business hours end at 18:00 local on a DST day too; a date range covers the last day', () => {
    assert.equal(open('blackouts', '2026-03-30T15:59:00Z'), false); // Monday 17:59 CEST, the day after the change
    assert.equal(open('blackouts', '2026-03-30T16:00:00Z'), true); // 18:00 CEST
    assert.equal(open('blackouts', '2026-03-30T05:59:00Z'), true); // 07:59
    assert.equal(windowState(example('blackouts'), new Date('2026-12-26T20:00:00Z')).reason, 'Blackout'); // Saturday the 26th, inclusive
  });
});
