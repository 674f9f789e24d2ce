// What an agent reports as its next maintenance window: computed from its own
// policy on an injected clock, and the same between edges so the hub link
// sends it only when it changes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { maintenancePolicy, type PolicyInput } from '../../src/protocol/policy.ts';
import { heartbeatMessage } from '../../src/protocol/messages.ts';
import { compilePolicy, maintenanceWindowReport } from '../../src/agent/windows/index.ts';

function policy(rest: Omit<PolicyInput, 'apiVersion' | 'kind'>) {
  return compilePolicy(maintenancePolicy.parse({ apiVersion: 'fleetlet.io/v1', kind: 'MaintenancePolicy', ...rest }));
}

describe('maintenanceWindowReport', () => {
  // Every day 02:00-04:00 UTC, with a blackout over 2030-01-03.
  const p = policy({
    timeZone: 'UTC',
    windows: [{ name: 'nightly', cron: '0 2 * * *', duration: '2h' }],
    blackouts: [{ name: 'freeze', from: '2030-01-03', to: '2030-01-03' }],
  });

  it('closed: names when the window next opens', () => {
    assert.deepEqual(maintenanceWindowReport(p, new Date('2030-01-01T12:00:00Z')), { open: false, opensAt: '2030-01-02T02:00:00.000Z', closesAt: null });
  });

  it('open: names when it closes', () => {
    assert.deepEqual(maintenanceWindowReport(p, new Date('2030-01-02T03:00:00Z')), { open: true, opensAt: null, closesAt: '2030-01-02T04:00:00.000Z' });
  });

  it('skips an opening that falls in a blackout', () => {
    assert.deepEqual(maintenanceWindowReport(p, new Date('2030-01-02T05:00:00Z')), { open: false, opensAt: '2030-01-04T02:00:00.000Z', closesAt: null });
  });

  it('is the same at every instant between two edges (sent only on change)', () => {
    const a = maintenanceWindowReport(p, new Date('2030-01-01T05:00:00Z'));
    const b = maintenanceWindowReport(p, new Date('2030-01-02T01:59:59Z'));
    assert.deepEqual(a, b);
    assert.notDeepEqual(b, maintenanceWindowReport(p, new Date('2030-01-02T02:00:00Z')));
  });

  it('always allowed: open with no closing', () => {
    assert.deepEqual(maintenanceWindowReport(policy({}), new Date('2030-01-01T00:00:00Z')), { open: true, opensAt: null, closesAt: null });
  });

  it('fits the heartbeat field, which older agents leave out', () => {
    const report = maintenanceWindowReport(p, new Date('2030-01-01T12:00:00Z'));
    assert.ok(heartbeatMessage.safeParse({ type: 'heartbeat', protocolVersion: 1, maintenanceWindow: report }).success);
    assert.ok(heartbeatMessage.safeParse({ type: 'heartbeat', protocolVersion: 1 }).success);
    assert.equal(heartbeatMessage.safeParse({ type: 'heartbeat', protocolVersion: 1, maintenanceWindow: { open: 'no' } }).success, false);
  });
});
