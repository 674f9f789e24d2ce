// The operator API on Fastify: requests are validated against the zod
// schemas of src/protocol/hub-api.ts (a refusal names the field at fault),
// Fastify's limits and timeouts are the hub's, and the OpenAPI document is
// generated from the routes, served, and committed current in docs/.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { generateOpenApi, OPENAPI_PATH } from '../../scripts/gen-openapi.ts';
import { createHttpApi, HTTP_TIMEOUTS, MAX_BODY_BYTES } from '../../src/hub/http-api.ts';
import type { HubContext } from '../../src/hub/hub-context.ts';
import { ADMIN_TOKEN, startHubFixture, type HubFixture } from '../support/hub-fixture.ts';

/** Every log line the hub writes, parsed. */
function capturedLog(): { logger: pino.Logger; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const logger = pino({ level: 'info' }, { write: (c: string) => void chunks.push(c) });
  return { logger, lines: () => chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

type Operation = { 'x-fleetlet-role'?: string; requestBody?: { required: boolean }; responses: Record<string, unknown>; security?: unknown[] };
type OpenApi = { openapi: string; paths: Record<string, Record<string, Operation>>; components: { schemas: Record<string, unknown> } };

describe('operator API validation', () => {
  let f: HubFixture;
  let log: ReturnType<typeof capturedLog>;
  beforeEach(async () => {
    log = capturedLog();
    f = await startHubFixture({ logger: log.logger });
  });
  afterEach(async () => {
    await f.close();
  });

  it('refuses a body that does not match its schema with the route\'s reason, the field in the message and the zod issues in details; audited', async () => {
    const cases: [string, string, unknown, string, RegExp, string[]][] = [
      ['POST', '/api/v1/operator-tokens', { name: 'x', role: 'root' }, 'InvalidRequest', /^send \{"name".*: role: Invalid option/, ['role']],
      ['POST', '/api/v1/operator-tokens', { name: 'x', role: 'viewer', admin: true }, 'InvalidRequest', /body: Unrecognized key: "admin"/, []],
      ['POST', '/api/v1/bootstrap-tokens', { ttlSeconds: 5 }, 'InvalidRequest', /ttlSeconds: Too small/, ['ttlSeconds']],
      ['PUT', '/api/v1/clusters/edge-1/labels', { labels: { ring: 7 } }, 'InvalidLabels', /labels\.ring: Invalid input: expected string/, ['labels', 'ring']],
      ['PUT', '/api/v1/clusters/edge-1/release', { name: 'edge-addons' }, 'InvalidRelease', /the release request is invalid: version: .*; components: /, ['version']],
      ['POST', '/api/v1/rollouts', { name: 'r', target: { kind: 'Release', release: { name: 'a', version: '1' } }, strategy: { type: 'All', maxConcurrency: 2 } }, 'InvalidRollout', /strategy\.maxConcurrency: applies to Progressive only/, ['strategy', 'maxConcurrency']],
      ['POST', '/api/v1/rollouts/r/rollback', { strategy: { type: 'Sideways' } }, 'InvalidRollback', /strategy\.type: Invalid option/, ['strategy', 'type']],
      ['POST', '/api/v1/rollouts/r/pause', { reason: 7 }, 'InvalidRequest', /the pause request is invalid: reason: /, ['reason']],
      ['POST', '/api/v1/clusters/edge-1/trust-key', {}, 'InvalidRequest', /keyConflicts: fingerprint: /, ['fingerprint']],
    ];
    for (const [method, path, body, reason, message, fieldPath] of cases) {
      const res = await f.api(method, path, body);
      assert.equal(res.status, 400, `${method} ${path}`);
      assert.equal(res.body.error.reason, reason, `${method} ${path}`);
      assert.match(res.body.error.message, message, `${method} ${path}`);
      assert.deepEqual(res.body.error.details[0].path, fieldPath, `${method} ${path}: details are the zod issues`);
    }
    const audit = (await f.api('GET', '/api/v1/audit')).body.entries as { method: string; path: string; status: number }[];
    assert.deepEqual(audit.map((e) => `${e.method} ${e.path} ${e.status}`), cases.map(([method, path]) => `${method} ${path} 400`), 'every refused change is audited');
  });

  it('refuses a bad query or path parameter naming it, and bodies that are not JSON or too large', async () => {
    const query = await f.api('GET', '/api/v1/audit?after=-1');
    assert.deepEqual([query.status, query.body.error.reason], [400, 'InvalidQuery']);
    assert.match(query.body.error.message, /^the query is invalid: after: /);
    const choice = await f.api('GET', '/api/v1/rollouts/r?clusters=some');
    assert.deepEqual([choice.status, choice.body.error.reason], [400, 'InvalidQuery']);
    assert.match(choice.body.error.message, /clusters: Invalid option: expected one of "all"\|"failed"/);
    const path = await f.api('GET', '/api/v1/clusters/Edge_1');
    assert.deepEqual([path.status, path.body.error.reason], [400, 'InvalidPath']);
    assert.match(path.body.error.message, /^the path is invalid: id: must be a lowercase DNS subdomain/);
    assert.equal((await f.api('GET', '/api/v1/audit?limit=5000')).status, 200, 'a limit past 1000 is lowered, not refused');

    const post = (body: string, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
      fetch(`${f.hub.httpUrl}/api/v1/operator-tokens`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...headers }, body });
    const notJson = await post('{"name": ');
    assert.deepEqual([notJson.status, ((await notJson.json()) as { error: { reason: string } }).error.reason], [400, 'NotJson']);
    const poisoned = await post('{"name": "x", "role": "viewer", "__proto__": {"role": "admin"}}');
    assert.equal(poisoned.status, 400, 'a prototype key is refused by the parser');
    const anyType = await post('{"name": "curl", "role": "viewer"}', { 'content-type': 'application/x-www-form-urlencoded' });
    assert.equal(anyType.status, 201, 'a body is JSON whatever its Content-Type says (curl -d)');
    const tooLarge = await post(`"${'x'.repeat(MAX_BODY_BYTES)}"`);
    assert.equal(tooLarge.status, 413);
    assert.equal(((await tooLarge.json()) as { error: { reason: string } }).error.reason, 'TooLarge');
    const empty = await f.api('POST', '/api/v1/bootstrap-tokens');
    assert.equal(empty.status, 201, 'an optional body may be left out');
  });

  it('answers unknown routes 404 and wrong methods 405 in the API\'s error shape, after the token is checked', async () => {
    const anonymous = await fetch(`${f.hub.httpUrl}/api/v1/no-such-thing`);
    assert.equal(anonymous.status, 401, 'an anonymous caller learns nothing of the routes');
    const missing = await f.api('GET', '/api/v1/no-such-thing');
    assert.deepEqual([missing.status, missing.body.error.reason, missing.body.error.message], [404, 'NotFound', 'no route /api/v1/no-such-thing']);
    const method = await f.api('PATCH', '/api/v1/rollouts');
    assert.deepEqual([method.status, method.body.error.reason, method.body.error.message], [405, 'MethodNotAllowed', 'PATCH is not allowed here; use GET, POST']);
  });

  it('checks every answer against its schema before it leaves: one that does not match is a 500, logged with the field', async () => {
    // What a hub bug (or a row written by hand) would produce: labels that are not strings.
    const db = new Database(f.dbPath);
    db.prepare(`INSERT INTO clusters (id, status, labels, requested_at) VALUES ('edge-odd', 'Pending', '{"ring": 7}', '2030-01-01T00:00:00.000Z')`).run();
    db.close();
    const res = await f.api('GET', '/api/v1/clusters/edge-odd');
    assert.deepEqual([res.status, res.body.error.reason], [500, 'Internal']);
    const failed = log.lines().find((l) => l.msg === 'API request failed');
    assert.match(JSON.stringify(failed?.err ?? {}), /labels/, 'the log names the field at fault');
  });

  it('serves the OpenAPI 3 document generated from the routes, to a viewer', async () => {
    assert.equal((await fetch(`${f.hub.httpUrl}/api/v1/openapi.json`)).status, 401);
    const served = await f.api('GET', '/api/v1/openapi.json');
    assert.equal(served.status, 200);
    assert.deepEqual(served.body, JSON.parse(await generateOpenApi()));
  });
});

describe('the OpenAPI document', () => {
  it('docs/openapi.json is current (npm run gen:openapi rewrites it)', async () => {
    assert.equal(readFileSync(OPENAPI_PATH, 'utf8'), await generateOpenApi(), 'docs/openapi.json is stale: run npm run gen:openapi');
  });

  it('documents every route with its role, schemas and error shape', async () => {
    const doc = JSON.parse(await generateOpenApi()) as OpenApi;
    assert.match(doc.openapi, /^3\./);
    const ops = Object.entries(doc.paths).flatMap(([path, item]) => Object.entries(item).map(([method, op]) => ({ route: `${method.toUpperCase()} ${path}`, op })));
    assert.equal(ops.length, 34);
    const role = (route: string) => ops.find((o) => o.route === route)?.op['x-fleetlet-role'];
    assert.equal(role('GET /api/v1/clusters'), 'viewer');
    assert.equal(role('PUT /api/v1/clusters/{id}/release'), 'operator');
    assert.equal(role('POST /api/v1/operator-tokens'), 'admin');
    for (const { route, op } of ops.filter((o) => o.route.includes(' /api/v1/'))) {
      assert.ok(op['x-fleetlet-role'], `${route} names its role`);
      assert.deepEqual(op.responses['4XX'], { description: 'Default Response', content: { 'application/json': { schema: { $ref: '#/components/schemas/ApiError' } } } }, `${route} documents its errors`);
    }
    for (const { route, op } of ops.filter((o) => o.route.includes(' /api/v1/'))) {
      const ok = (op.responses['200'] ?? op.responses['201']) as { content?: { 'application/json'?: { schema?: Record<string, unknown> } } } | undefined;
      const schema = ok?.content?.['application/json']?.schema ?? {};
      assert.ok(['$ref', 'type', 'properties', 'anyOf', 'oneOf'].some((k) => k in schema), `${route} describes its answer: ${JSON.stringify(schema)}`);
    }
    const ref = (route: string, status = '200') => JSON.stringify(ops.find((o) => o.route === route)?.op.responses[status]);
    assert.match(ref('GET /api/v1/clusters/{id}'), /#\/components\/schemas\/ClusterView"/);
    assert.match(ref('GET /api/v1/rollouts/{name}'), /#\/components\/schemas\/RolloutView"/);
    assert.match(ref('POST /api/v1/rollouts', '201'), /#\/components\/schemas\/RolloutView"/);
    assert.match(ref('GET /api/v1/overrides/{name}'), /#\/components\/schemas\/OverrideDefinition"/);
    assert.match(ref('GET /api/v1/telemetry'), /#\/components\/schemas\/TelemetryEvent"/);
    assert.match(ref('GET /api/v1/clusters/{id}/reports'), /#\/components\/schemas\/StoredReport"/);
    assert.deepEqual(Object.keys(doc.components.schemas).filter((name) => !JSON.stringify(doc.paths).includes(`#/components/schemas/${name}"`) && !JSON.stringify(doc.components.schemas).includes(`#/components/schemas/${name}"`)), [], 'no component nothing refers to');
    assert.deepEqual(ops.find((o) => o.route === 'GET /healthz')?.op.security, [], 'probes need no token');
    assert.equal(ops.find((o) => o.route === 'POST /api/v1/rollouts')?.op.requestBody?.required, true);
    assert.equal(ops.find((o) => o.route === 'POST /api/v1/rollouts/{name}/pause')?.op.requestBody?.required, false, 'an optional body is not required');
    assert.ok(doc.components.schemas.RolloutRequestInput, 'the rollout request is a shared component');
  });

  it('the server is Fastify\'s, with the hub\'s body limit and timeouts, built without a hub', async () => {
    const noHub = new Proxy({} as HubContext, {
      get: () => {
        throw new Error('no handler runs here');
      },
    });
    const app = await createHttpApi(noHub, pino({ level: 'silent' }));
    try {
      assert.equal(app.initialConfig.bodyLimit, MAX_BODY_BYTES);
      assert.equal(app.server.headersTimeout, HTTP_TIMEOUTS.headersTimeout);
      assert.equal(app.server.requestTimeout, HTTP_TIMEOUTS.requestTimeout);
      assert.equal(app.server.keepAliveTimeout, HTTP_TIMEOUTS.keepAliveTimeout);
      assert.equal(app.server.timeout, 0, 'no idle-socket timeout: it would cut agents\' WebSockets');
    } finally {
      await app.close();
    }
  });
});
