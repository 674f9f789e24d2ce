// `fleetlet token` against a real hub: operator tokens by role and bootstrap
// tokens, created (text shown once), listed (never their text) and revoked.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { runToken } from '../../src/cli/token-command.ts';
import type { HubClientIo } from '../../src/cli/hub-client.ts';
import { ADMIN_TOKEN, startHubFixture, type HubFixture } from '../support/hub-fixture.ts';

describe('fleetlet token', () => {
  let f: HubFixture;
  beforeEach(async () => {
    f = await startHubFixture();
  });
  afterEach(async () => {
    await f.close();
  });

  const cli = async (argv: string[], token: string | undefined = ADMIN_TOKEN): Promise<{ code: number; out: string; err: string }> => {
    const out: string[] = [];
    const err: string[] = [];
    const io: HubClientIo = { out: (s) => out.push(s), err: (s) => err.push(s), env: { FLEETLET_HUB_API: f.hub.httpUrl, ...(token ? { FLEETLET_ADMIN_TOKEN: token } : {}) }, fetch: globalThis.fetch };
    const code = await runToken(argv, io);
    return { code, out: out.join(''), err: err.join('') };
  };

  it('creates a viewer token that reads but cannot accept, lists it without its text, and revokes it', async () => {
    const created = await cli(['create', '--name', 'dashboards', '--role', 'viewer']);
    assert.equal(created.code, 0, created.err);
    const text = created.out.trim();
    assert.ok(text.length >= 43, 'the token text, once, on stdout');
    assert.match(created.err, /created viewer token \S+ for "dashboards"/);

    assert.equal((await f.api('GET', '/api/v1/clusters', undefined, text)).status, 200, 'a viewer reads');
    assert.equal((await f.api('POST', '/api/v1/clusters/x/accept', undefined, text)).status, 403, 'a viewer does not accept');

    const listed = await cli(['list', '--json']);
    assert.equal(listed.code, 0, listed.err);
    const tokens = JSON.parse(listed.out) as { id: string; name: string; role: string }[];
    const mine = tokens.find((t) => t.name === 'dashboards');
    assert.ok(mine && mine.role === 'viewer');
    assert.ok(!listed.out.includes(text), 'a list never shows a token\'s text');

    const revoked = await cli(['revoke', mine.id]);
    assert.equal(revoked.code, 0, revoked.err);
    assert.equal((await f.api('GET', '/api/v1/clusters', undefined, text)).status, 401, 'revoked: it stops working at once');
    const again = await cli(['revoke', mine.id]);
    assert.equal(again.code, 1);
    assert.match(again.err, /AlreadyRevoked/);
  });

  it('issues a bootstrap token with a use limit, shows its uses, and revokes it', async () => {
    const issued = await cli(['bootstrap', '--max-uses', '2', '--ttl-seconds', '600', '--description', 'store rollout']);
    assert.equal(issued.code, 0, issued.err);
    assert.match(issued.err, /2 use\(s\)/);
    const listed = await cli(['bootstrap-list']);
    assert.match(listed.out, /api\s+0\/2\s+\S+\s+active\s+store rollout/);
    assert.ok(!listed.out.includes(issued.out.trim()));
    const id = (JSON.parse((await cli(['bootstrap-list', '--json'])).out) as { id: string; description: string | null }[]).find((t) => t.description === 'store rollout')?.id;
    assert.ok(id);
    assert.equal((await cli(['bootstrap-revoke', id])).code, 0);
    assert.match((await cli(['bootstrap-list'])).out, /revoked/);
  });

  it('names what is wrong: no token, a wrong role, a token without the admin role', async () => {
    const none = await cli(['list'], '');
    assert.equal(none.code, 1);
    assert.match(none.err, /FLEETLET_ADMIN_TOKEN/);
    const role = await cli(['create', '--name', 'x', '--role', 'root']);
    assert.equal(role.code, 2);
    assert.match(role.err, /must be one of viewer, operator, admin/);
    const operator = (await cli(['create', '--name', 'ci', '--role', 'operator'])).out.trim();
    const refused = await cli(['bootstrap'], operator);
    assert.equal(refused.code, 1);
    assert.match(refused.err, /403/);
  });
});
