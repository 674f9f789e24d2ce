// Readiness of a hub replica, from probes of its database
// (src/hub/database-health.ts): not ready after two failed probes in a row,
// ready again after one that succeeds; a probe that never answers counts as
// failed once its time is up. Also the classification of PostgreSQL
// failures into "the database cannot be reached" and everything else.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DatabaseHealth } from '../../src/hub/database-health.ts';
import { isConnectionFailure } from '../../src/hub/store/postgres-sql.ts';
import { DatabaseUnavailable } from '../../src/hub/store/sql.ts';
import { testLogger } from '../support/hub-fixture.ts';

function monitor(answers: ('ok' | 'fail' | 'hang')[]) {
  let t = Date.parse('2026-12-01T00:00:00Z');
  const changes: boolean[] = [];
  const health = new DatabaseHealth({
    probe: async (timeoutMs) => {
      const a = answers.shift() ?? 'ok';
      if (a === 'fail') throw new DatabaseUnavailable('connect ECONNREFUSED 127.0.0.1:5432');
      if (a === 'hang') {
        await new Promise((_resolve, reject) => setTimeout(() => reject(new DatabaseUnavailable(`no answer within ${timeoutMs} ms`)), timeoutMs));
      }
    },
    timeoutMs: 20,
    now: () => new Date((t += 1000)),
    log: testLogger(),
  });
  health.onChange((ready) => changes.push(ready));
  return { health, changes };
}

describe('hub database health', () => {
  it('turns not ready after two failed probes in a row, with the reason, and ready again after one success', async () => {
    const { health, changes } = monitor(['fail', 'ok', 'fail', 'hang', 'fail', 'ok']);
    assert.equal(await health.check(), true, 'one failure is not enough');
    assert.equal(await health.check(), true);
    assert.equal(await health.check(), true, 'a success in between starts the count again');
    assert.equal(await health.check(), false, 'a probe that does not answer in time fails');
    assert.match(health.reason ?? '', /cannot reach its database since 2026-12-01T00:00:0\d.000Z \(no answer within 20 ms\)/);
    assert.equal(await health.check(), false);
    assert.match(health.reason ?? '', /ECONNREFUSED/, 'the reason is the latest failure');
    assert.equal(await health.check(), true);
    assert.equal(health.reason, undefined);
    assert.deepEqual(changes, [false, true]);
  });

  it('runs one probe at a time', async () => {
    let running = 0;
    let most = 0;
    const health = new DatabaseHealth({
      probe: async () => {
        most = Math.max(most, ++running);
        await new Promise((resolve) => setTimeout(resolve, 5));
        running--;
      },
      now: () => new Date(),
      log: testLogger(),
    });
    await Promise.all([health.check(), health.check(), health.check()]);
    assert.equal(most, 1);
  });

  it('tells a connection failure from a statement the database refused', () => {
    const coded = (code: string, message = 'x') => Object.assign(new Error(message), { code });
    for (const e of [coded('ECONNREFUSED'), coded('ECONNRESET'), coded('57P01', 'terminating connection due to administrator command'), coded('57P03', 'the database system is starting up'), coded('08006'), new Error('Connection terminated unexpectedly'), new Error('Query read timeout'), new Error('timeout exceeded when trying to connect'), new DatabaseUnavailable('gone')]) {
      assert.equal(isConnectionFailure(e), true, e.message);
    }
    for (const e of [coded('23505', 'duplicate key value violates unique constraint'), coded('40001', 'could not serialize access'), coded('42P01', 'relation does not exist'), new TypeError('x is undefined'), 'a string']) {
      assert.equal(isConnectionFailure(e), false, String(e));
    }
  });
});
