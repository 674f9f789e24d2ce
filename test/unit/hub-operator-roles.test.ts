// Operator tokens with roles, checked in one place (auth/operator-auth.ts),
// and the audit table of every mutating call.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { roleAllows } from '../../src/hub/auth/operator-auth.ts';
import { startHubFixture, type HubFixture } from '../support/hub-fixture.ts';

describe('operator roles and the audit table', () => {
  let f: HubFixture;
  beforeEach(async () => {
    f = await startHubFixture();
  });
  afterEach(async () => {
    await f.close();
  });

  it('roles are ordered viewer < operator < admin', () => {
    assert.equal(roleAllows('admin', 'operator'), true);
    assert.equal(roleAllows('operator', 'operator'), true);
    assert.equal(roleAllows('viewer', 'operator'), false);
    assert.equal(roleAllows('operator', 'admin'), false);
  });

  it('a viewer reads, an operator acts on clusters, only an admin manages tokens; every change is audited', async () => {
    const viewer = await f.api('POST', '/api/v1/operator-tokens', { name: 'dashboards', role: 'viewer' });
    assert.equal(viewer.status, 201);
    const operator = (await f.api('POST', '/api/v1/operator-tokens', { name: 'oncall', role: 'operator' })).body;
    assert.equal((await f.api('POST', '/api/v1/operator-tokens', { name: 'x', role: 'root' })).status, 400);
    const v: string = viewer.body.token;
    const o: string = operator.token;

    assert.equal((await f.api('GET', '/api/v1/clusters', undefined, v)).status, 200);
    const denied = await f.api('POST', '/api/v1/clusters/edge-1/accept', undefined, v);
    assert.equal(denied.status, 403);
    assert.match(denied.body.error.message, /needs the operator role; token "dashboards" has viewer/);
    assert.equal((await f.api('POST', '/api/v1/clusters/edge-1/accept', undefined, o)).status, 404, 'an operator may accept (there is no such cluster)');
    assert.equal((await f.api('POST', '/api/v1/bootstrap-tokens', {}, o)).status, 403, 'bootstrap tokens are the admin\'s');
    assert.equal((await f.api('GET', '/api/v1/operator-tokens', undefined, o)).status, 403);
    const metrics = await fetch(`${f.hub.httpUrl}/metrics`, { headers: { authorization: `Bearer ${v}` } });
    assert.equal(metrics.status, 200, 'a viewer may scrape');

    const listed = (await f.api('GET', '/api/v1/operator-tokens')).body.tokens as Record<string, unknown>[];
    assert.deepEqual(listed.map((t) => [t.name, t.role, t.createdBy]), [['dashboards', 'viewer', 'admin (configured)'], ['oncall', 'operator', 'admin (configured)']]);
    assert.ok(listed.every((t) => !('token' in t)), 'a listing never shows a token');
    assert.equal(readFileSync(f.dbPath).toString('latin1').includes(o.slice(0, 12)), false, 'the token is not stored');

    assert.equal((await f.api('DELETE', `/api/v1/operator-tokens/${operator.id}`)).status, 200);
    assert.equal((await f.api('GET', '/api/v1/clusters', undefined, o)).status, 401, 'a revoked token stops working at once');
    assert.equal((await f.api('POST', '/api/v1/clusters/edge-1/accept', undefined, 'not-a-token')).status, 401);

    const audit = (await f.api('GET', '/api/v1/audit')).body.entries as { actor: string; role: string | null; method: string; path: string; status: number }[];
    assert.deepEqual(
      audit.map((e) => [e.actor, e.method, e.path, e.status]),
      [
        ['admin (configured)', 'POST', '/api/v1/operator-tokens', 201],
        ['admin (configured)', 'POST', '/api/v1/operator-tokens', 201],
        ['admin (configured)', 'POST', '/api/v1/operator-tokens', 400],
        ['dashboards', 'POST', '/api/v1/clusters/edge-1/accept', 403],
        ['oncall', 'POST', '/api/v1/clusters/edge-1/accept', 404],
        ['oncall', 'POST', '/api/v1/bootstrap-tokens', 403],
        ['admin (configured)', 'DELETE', `/api/v1/operator-tokens/${operator.id}`, 200],
        ['anonymous', 'POST', '/api/v1/clusters/edge-1/accept', 401],
      ],
      'every mutating call, allowed or refused, and nothing that only read',
    );
    assert.equal((await f.api('GET', '/api/v1/audit', undefined, v)).status, 403);
  });
});
