import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { durationMs, hubWindows, maintenancePolicy, parseDuration, validatePolicy, type PolicyIssue } from '../../src/protocol/policy.ts';
import { parsePolicyYaml, PolicyFileError } from '../../src/agent/gate/policy-loader.ts';
import { compilePolicy, windowState } from '../../src/agent/windows/index.ts';
import { generatePolicySchema, POLICY_SCHEMA_PATH } from '../../scripts/gen-policy-schema.ts';

const head = { apiVersion: 'fleetlet.io/v1', kind: 'MaintenancePolicy' } as const;

function issues(doc: unknown): PolicyIssue[] {
  const v = validatePolicy(doc);
  assert.equal(v.ok, false, 'expected the policy to be invalid');
  return v.ok ? [] : v.issues;
}
function issueAt(list: PolicyIssue[], path: string): PolicyIssue {
  const found = list.find((i) => i.path === path);
  assert.ok(found, `no issue at ${path}; got ${JSON.stringify(list.map((i) => `${i.path}: ${i.message}`))}`);
  return found;
}

describe('policy schema', () => {
  it('accepts the minimal policy and fills defaults', () => {
    const p = maintenancePolicy.parse(head);
    assert.equal(p.windows, undefined);
    assert.deepEqual(p.blackouts, []);
    assert.deepEqual(p.critical, { mayStartOutsideWindows: false, ignoreBlackouts: false });
    assert.deepEqual(p.checks.preflight, []);
    assert.deepEqual(p.checks.recheck, { initialBackoff: '30s', maxBackoff: '10m' });
    assert.deepEqual(p.consent, { leaseName: 'fleetlet-defer', namespace: 'fleetlet-system', maxDeferral: '72h' });
  });

  it('names the exact field of an invalid cron with node-cron\'s field error', () => {
    const list = issues({
      ...head,
      timeZone: 'UTC',
      windows: [
        { name: 'ok', cron: '0 22 * * *', duration: '4h' },
        { name: 'bad', cron: '61 22 * * *', duration: '4h' },
      ],
    });
    assert.equal(list.length, 1);
    const i = issueAt(list, 'windows[1].cron');
    assert.match(i.message, /minute field: 61 is a invalid expression for minute/);
    assert.deepEqual(i.keys, ['windows', 1, 'cron']);
  });

  it('reports a cron with the wrong number of fields', () => {
    assert.match(issueAt(issues({ ...head, timeZone: 'UTC', windows: [{ name: 'w', cron: '0 22 *', duration: '1h' }] }), 'windows[0].cron').message, /expected 5 or 6 fields/);
  });

  it('names invalid time zones, durations and unknown fields', () => {
    const list = issues({
      ...head,
      timeZone: 'Europe/Atlantis',
      windows: [{ name: 'w', cron: '0 1 * * *', duration: '1.5h', timezone: 'UTC' }],
      blackouts: [{ name: 'b', cron: '0 1 * * *', duration: '0s', timeZone: 'Mars/Base' }],
    });
    assert.match(issueAt(list, 'timeZone').message, /"Europe\/Atlantis" is not an IANA time zone/);
    assert.match(issueAt(list, 'windows[0].duration').message, /duration like 90m/);
    assert.match(issueAt(list, 'windows[0].timezone').message, /not a known field/);
    assert.match(issueAt(list, 'blackouts[0].duration').message, /longer than zero/);
    assert.match(issueAt(list, 'blackouts[0].timeZone').message, /Mars\/Base/);
  });

  it('requires a time zone on each entry or at the top level', () => {
    const list = issues({ ...head, windows: [{ name: 'w', cron: '0 1 * * *', duration: '1h' }] });
    assert.match(issueAt(list, 'windows[0].timeZone').message, /required here or as the top-level timeZone/);
    assert.equal(validatePolicy({ ...head, windows: [{ name: 'w', cron: '0 1 * * *', duration: '1h', timeZone: 'UTC' }] }).ok, true);
  });

  it('checks the two blackout forms', () => {
    const list = issues({
      ...head,
      timeZone: 'UTC',
      blackouts: [
        { name: 'both', from: '2026-12-20', to: '2026-12-21', cron: '0 0 * * *' },
        { name: 'half', from: '2026-12-20' },
        { name: 'neither' },
        { name: 'backwards', from: '2026-12-20', to: '2026-12-19' },
        { name: 'bad-date', from: '2026-02-30', to: '2026-03-01' },
      ],
    });
    assert.match(issueAt(list, 'blackouts[0].cron').message, /either from\/to or cron with duration\/until/);
    assert.match(issueAt(list, 'blackouts[1].to').message, /required/);
    assert.match(issueAt(list, 'blackouts[2]').message, /needs either from and to, or cron and duration/);
    assert.match(issueAt(list, 'blackouts[3].to').message, /not be before from/);
    assert.match(issueAt(list, 'blackouts[4].from').message, /"2026-02-30" is not a date/);
    assert.equal(validatePolicy({ ...head, timeZone: 'UTC', blackouts: [{ name: 'one-day', from: '2026-12-20', to: '2026-12-20' }] }).ok, true);
  });

  it('refuses duplicate names', () => {
    const list = issues({ ...head, timeZone: 'UTC', windows: [{ name: 'w', cron: '0 1 * * *', duration: '1h' }, { name: 'w', cron: '0 2 * * *', duration: '1h' }] });
    assert.match(issueAt(list, 'windows[1].name').message, /duplicate name "w"/);
  });

  it('validates custom check specs', () => {
    const list = issues({
      ...head,
      checks: {
        preflight: [
          { name: 'probe', type: 'http', url: 'http://app/ok', bodyMatches: '(' },
          { name: 'prom', type: 'prometheus', url: 'ftp://prom' },
          { name: 'db', type: 'kubernetesCondition', object: { apiVersion: 'v1', kind: 'Pod', name: 'x' } },
          { name: 'what', type: 'smtp' },
        ],
      },
    });
    assert.match(issueAt(list, 'checks.preflight[0].bodyMatches').message, /not a valid JavaScript regular expression/);
    issueAt(list, 'checks.preflight[1].url');
    assert.match(issueAt(list, 'checks.preflight[2].conditionType').message, /required/);
    issueAt(list, 'checks.preflight[3].type');
  });

  it('checks the recheck backoff and duplicate check names', () => {
    const list = issues({
      ...head,
      checks: {
        preflight: [{ name: 'probe', type: 'http', url: 'http://app/ok' }, { name: 'probe', type: 'http', url: 'http://app/other' }],
        recheck: { initialBackoff: '5m', maxBackoff: '1m' },
      },
    });
    assert.match(issueAt(list, 'checks.preflight[1].name').message, /duplicate name "probe"/);
    assert.match(issueAt(list, 'checks.recheck.maxBackoff').message, /not be shorter than initialBackoff/);
  });

  it('fills check defaults', () => {
    const p = maintenancePolicy.parse({ ...head, checks: { preflight: [{ name: 'p', type: 'http', url: 'https://app/ok' }, { name: 'a', type: 'prometheus', url: 'http://prom:9090' }] } });
    assert.deepEqual(p.checks.preflight[0], { name: 'p', type: 'http', url: 'https://app/ok', timeout: '10s', method: 'GET', expectStatus: [200] });
    assert.deepEqual(p.checks.preflight[1], { name: 'a', type: 'prometheus', url: 'http://prom:9090', timeout: '10s', query: 'ALERTS{alertstate="firing"}', alertFilter: '.*' });
  });

  it('validates hub windows with the same rules', () => {
    assert.equal(hubWindows.safeParse({ windows: [{ name: 'w', cron: '0 1 * * *', duration: '1h' }] }).success, false);
    assert.equal(hubWindows.safeParse({ timeZone: 'UTC', windows: [{ name: 'w', cron: '0 1 * * *', duration: '1h' }] }).success, true);
  });
});

describe('durations', () => {
  it('parses whole h/m/s units', () => {
    assert.equal(parseDuration('90m'), 90 * 60_000);
    assert.equal(parseDuration('4h'), 4 * 3_600_000);
    assert.equal(parseDuration('1h30m'), 90 * 60_000);
    assert.equal(parseDuration('1h2m3s'), 3_723_000);
    assert.equal(durationMs('45s'), 45_000);
  });
  it('refuses anything else', () => {
    for (const bad of ['', '1.5h', '1d', 'h', '30m1h', '10', ' 1h']) assert.equal(parseDuration(bad), undefined, bad);
    assert.throws(() => durationMs('soon'), RangeError);
  });
});

describe('policy YAML', () => {
  it('the example policy validates and is usable', () => {
    const text = readFileSync(new URL('../../manifests/examples/policy.yaml', import.meta.url), 'utf8');
    const p = parsePolicyYaml(text, 'manifests/examples/policy.yaml');
    assert.equal(p.windows?.length, 3);
    assert.ok(p.checks.preflight.some((c) => c.type === 'kubernetesCondition'));
    // Christmas Eve is frozen even on a weeknight; a Tuesday 23:00 Berlin in May is open.
    const c = compilePolicy(p);
    assert.equal(windowState(c, new Date('2026-12-22T22:00:00Z')).reason, 'Blackout');
    assert.equal(windowState(c, new Date('2026-05-05T21:00:00Z')).open, true);
  });

  it('errors carry the field path and the line', () => {
    const text = ['apiVersion: fleetlet.io/v1', 'kind: MaintenancePolicy', 'timeZone: UTC', 'windows:', '  - name: w', '    cron: "0 25 * * *"', '    duration: 1h', ''].join('\n');
    assert.throws(
      () => parsePolicyYaml(text, '/etc/fleetlet/policy.yaml'),
      (err: unknown) => {
        assert.ok(err instanceof PolicyFileError);
        assert.equal(err.issues[0]?.path, 'windows[0].cron');
        assert.equal(err.issues[0]?.line, 6);
        assert.match(err.message, /windows\[0\]\.cron \(line 6\): hour field: 25 is a invalid expression for hour/);
        assert.match(err.reason, /fix windows\[0\]\.cron in \/etc\/fleetlet\/policy\.yaml; until then the last valid policy stays in force/);
        return true;
      },
    );
  });

  it('reports YAML syntax errors, duplicate keys and empty files', () => {
    assert.throws(() => parsePolicyYaml('apiVersion: a\napiVersion: b\n'), /Map keys must be unique/);
    assert.throws(() => parsePolicyYaml('windows: [\n'), PolicyFileError);
    assert.throws(() => parsePolicyYaml(''), /the file is empty/);
    assert.throws(() => parsePolicyYaml('apiVersion: fleetlet.io/v2\nkind: MaintenancePolicy\n'), /apiVersion \(line 1\)/);
  });
});

describe('published JSON Schema', () => {
  it('the committed schema/policy.schema.json is up to date (regenerate with scripts/gen-policy-schema.ts)', () => {
    assert.equal(readFileSync(POLICY_SCHEMA_PATH, 'utf8'), generatePolicySchema());
  });

  it('describes the fields editors need', () => {
    const schema = JSON.parse(generatePolicySchema()) as { properties: Record<string, unknown>; additionalProperties: boolean; required: string[] };
    assert.deepEqual(Object.keys(schema.properties).sort(), ['apiVersion', 'blackouts', 'checks', 'consent', 'critical', 'kind', 'prePull', 'timeZone', 'windows']);
    assert.equal(schema.additionalProperties, false);
    assert.deepEqual(schema.required.sort(), ['apiVersion', 'kind']);
  });

  it('the example has the editor schema comment and parses as plain YAML too', () => {
    const text = readFileSync(new URL('../../manifests/examples/policy.yaml', import.meta.url), 'utf8');
    assert.match(text, /yaml-language-server: \$schema=\.\.\/\.\.\/schema\/policy\.schema\.json/);
    assert.equal(validatePolicy(parseYaml(text)).ok, true);
  });
});
