import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { checkReport, httpCheckSpec, type CheckSpec } from '../../src/protocol/policy.ts';
import { allPassed, checksCondition, checksFromSpecs, httpProbeCheck, recheckDelayMs, runChecks, type Check } from '../../src/agent/checks/index.ts';

/** A clock that advances one second per reading, so start and end times are distinct and predictable. */
function steppingClock(startIso = '2026-05-05T12:00:00.000Z'): () => Date {
  let t = Date.parse(startIso);
  return () => new Date((t += 1000) - 1000);
}

function check(name: string, run: Check['run'], timeoutMs = 1000): Check {
  return { name, timeoutMs, run };
}

describe('runChecks', () => {
  it('reports each result with start and end times from the injected clock', async () => {
    const reports = await runChecks(
      [check('ok', () => Promise.resolve({ result: 'pass', message: 'fine' })), check('nope', () => Promise.resolve({ result: 'fail', message: 'db not ready' }))],
      { now: steppingClock() },
    );
    assert.deepEqual(reports.map((r) => [r.name, r.result, r.message]), [
      ['ok', 'pass', 'fine'],
      ['nope', 'fail', 'db not ready'],
    ]);
    for (const r of reports) {
      assert.ok(checkReport.safeParse(r).success, 'reports match the protocol schema');
      assert.ok(Date.parse(r.finishedAt) > Date.parse(r.startedAt));
    }
    assert.equal(allPassed(reports), false);
  });

  it('a timeout is an error that says so, and the check sees its signal abort', async () => {
    let sawAbort = false;
    const slow = check(
      'slow',
      (signal) =>
        new Promise((resolve) => {
          signal.addEventListener('abort', () => {
            sawAbort = true;
            resolve({ result: 'pass', message: 'too late' });
          });
        }),
      30,
    );
    const [r] = await runChecks([slow], { now: () => new Date() });
    assert.equal(r?.result, 'error');
    assert.equal(r?.message, 'timed out after 30ms');
    assert.equal(sawAbort, true);
  });

  it('a check that ignores its signal is abandoned at the timeout', async () => {
    const stubborn = check('stubborn', () => new Promise(() => undefined), 20);
    const t0 = Date.now();
    const [r] = await runChecks([stubborn], { now: () => new Date() });
    assert.equal(r?.result, 'error');
    assert.match(r?.message ?? '', /timed out after 20ms/);
    assert.ok(Date.now() - t0 < 1000);
  });

  it('a check that throws (synchronously or not) or answers nonsense is an error with the message', async () => {
    const reports = await runChecks(
      [
        check('sync-throw', () => {
          throw new Error('kubeconfig missing');
        }),
        check('reject', () => Promise.reject(new TypeError('bad url'))),
        check('nonsense', () => Promise.resolve({ result: 'maybe', message: 1 } as never)),
      ],
      { now: () => new Date() },
    );
    assert.deepEqual(reports.map((r) => [r.result, r.message]), [
      ['error', 'threw: kubeconfig missing'],
      ['error', 'threw: bad url'],
      ['error', 'check returned an invalid result: {"result":"maybe","message":1}'],
    ]);
  });

  it('runs checks concurrently', async () => {
    // Each check waits for the other to have started: run one after the other, both would time out.
    let startedA!: () => void;
    let startedB!: () => void;
    const a = new Promise<void>((r) => (startedA = r));
    const b = new Promise<void>((r) => (startedB = r));
    const reports = await runChecks(
      [
        check('a', async () => {
          startedA();
          await b;
          return { result: 'pass', message: 'a' };
        }, 500),
        check('b', async () => {
          startedB();
          await a;
          return { result: 'pass', message: 'b' };
        }, 500),
      ],
      { now: () => new Date() },
    );
    assert.deepEqual(reports.map((r) => r.result), ['pass', 'pass']);
    assert.equal(allPassed(reports), true);
  });

  it('shutdown aborts running checks; an already aborted signal runs nothing', async () => {
    const ac = new AbortController();
    let ran = false;
    const pending = runChecks([check('long', () => new Promise(() => undefined), 10_000)], { signal: ac.signal, now: () => new Date() });
    ac.abort(new Error('agent shutting down'));
    const [r] = await pending;
    assert.equal(r?.result, 'error');
    assert.equal(r?.message, 'aborted: agent shutting down');

    const [r2] = await runChecks(
      [
        check('never', () => {
          ran = true;
          return Promise.resolve({ result: 'pass', message: '' });
        }),
      ],
      { signal: ac.signal, now: () => new Date() },
    );
    assert.equal(r2?.result, 'error');
    assert.match(r2?.message ?? '', /^not run: agent shutting down/);
    assert.equal(ran, false);
  });

  it('caps long messages', async () => {
    const [r] = await runChecks([check('chatty', () => Promise.resolve({ result: 'fail', message: 'x'.repeat(5000) }))], { now: () => new Date() });
    assert.equal(r?.message.length, 1024);
  });
});

describe('checksCondition', () => {
  const now = () => new Date('2026-05-05T12:00:00Z');
  const rep = (name: string, result: 'pass' | 'fail' | 'error', message: string) => ({ name, result, message, startedAt: now().toISOString(), finishedAt: now().toISOString() });

  it('is True when every check passed or none is configured', () => {
    assert.equal(checksCondition('PreflightPassed', [rep('a', 'pass', 'ok')], now).status, 'True');
    assert.equal(checksCondition('PreflightPassed', [], now).reason, 'NoChecks');
  });

  it('is False naming the blocking checks', () => {
    const c = checksCondition('PreflightPassed', [rep('a', 'pass', 'ok'), rep('db', 'fail', 'not ready'), rep('prom', 'error', 'timed out after 10000ms')], now);
    assert.equal(c.status, 'False');
    assert.equal(c.reason, 'ChecksFailed');
    assert.equal(c.message, 'db fail: not ready; prom error: timed out after 10000ms');
    assert.equal(c.lastTransitionTime, '2026-05-05T12:00:00.000Z');
    assert.equal(checksCondition('X', [rep('prom', 'error', 'x')], now).reason, 'ChecksErrored');
  });
});

describe('recheckDelayMs', () => {
  const recheck = { initialBackoff: '1s', maxBackoff: '1m' };

  it('grows exponentially from the policy\'s initialBackoff up to maxBackoff (random at its maximum)', () => {
    const top = () => 0.999999;
    const delays = [0, 1, 2, 3, 4, 5, 6, 7, 50].map((n) => recheckDelayMs(n, recheck, top));
    assert.deepEqual(delays, [999, 1999, 3999, 7999, 15999, 31999, 59999, 59999, 59999]);
  });

  it('draws uniformly below the ceiling (full jitter)', () => {
    assert.equal(recheckDelayMs(3, recheck, () => 0), 0);
    assert.equal(recheckDelayMs(3, recheck, () => 0.5), 4000);
  });

  it('stays within bounds with the real random source', () => {
    for (let i = 0; i < 200; i++) {
      const d = recheckDelayMs(i % 10, recheck);
      assert.ok(d >= 0 && d < Math.min(60_000, 1000 * 2 ** (i % 10)));
    }
  });
});

describe('HTTP probe against a real server', () => {
  let server: Server;
  let base: string;
  before(async () => {
    server = createServer((req, res) => {
      if (req.url === '/ok') res.writeHead(200, { 'content-type': 'application/json' }).end('{"safe": true}');
      else if (req.url === '/busy') res.writeHead(503).end('{"safe": false}');
      else if (req.url === '/unsafe') res.writeHead(200).end('{"safe": false}');
      else if (req.url === '/slow') setTimeout(() => res.writeHead(200).end('late'), 2000).unref();
      else if (req.url === '/headers') res.writeHead(req.headers['x-token'] === 's3cret' ? 204 : 401).end();
      else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const probe = (input: Record<string, unknown>) => httpProbeCheck(httpCheckSpec.parse({ name: 'probe', type: 'http', ...input }));
  const runOne = async (c: Check) => (await runChecks([c], { now: () => new Date() }))[0];

  it('passes on the expected status and a matching body', async () => {
    const r = await runOne(probe({ url: `${base}/ok`, bodyMatches: '"safe":\\s*true' }));
    assert.equal(r?.result, 'pass', r?.message);
    assert.match(r?.message ?? '', /answered 200 and the body matches/);
  });

  it('fails on an unexpected status', async () => {
    const r = await runOne(probe({ url: `${base}/busy` }));
    assert.equal(r?.result, 'fail');
    assert.match(r?.message ?? '', /answered 503, expected 200/);
    assert.equal((await runOne(probe({ url: `${base}/busy`, expectStatus: [200, 503] })))?.result, 'pass');
  });

  it('fails when the body does not match, quoting the body', async () => {
    const r = await runOne(probe({ url: `${base}/unsafe`, bodyMatches: '"safe":\\s*true' }));
    assert.equal(r?.result, 'fail');
    assert.match(r?.message ?? '', /body does not match .*safe\\": false/);
  });

  it('sends configured headers', async () => {
    assert.equal((await runOne(probe({ url: `${base}/headers`, expectStatus: [204], headers: { 'x-token': 's3cret' } })))?.result, 'pass');
    assert.equal((await runOne(probe({ url: `${base}/headers`, expectStatus: [204] })))?.result, 'fail');
  });

  it('times out as an error using the spec timeout', async () => {
    const c = probe({ url: `${base}/slow`, timeout: '1s' });
    assert.equal(c.timeoutMs, 1000);
    const r = await runOne({ ...c, timeoutMs: 50 });
    assert.equal(r?.result, 'error');
    assert.match(r?.message ?? '', /timed out after 50ms/);
  });

  it('a refused connection is an error naming the cause', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const r = await runOne(probe({ url: `http://127.0.0.1:${port}/ok` }));
    assert.equal(r?.result, 'error');
    assert.match(r?.message ?? '', /ECONNREFUSED/);
  });
});

describe('checksFromSpecs', () => {
  const specs: CheckSpec[] = [
    httpCheckSpec.parse({ name: 'web', type: 'http', url: 'http://127.0.0.1:1/x', timeout: '3s' }),
    { name: 'db', type: 'kubernetesCondition', timeout: '5s', object: { apiVersion: 'v1', kind: 'Pod', name: 'db-0', namespace: 'db' }, conditionType: 'Ready', status: 'True' },
  ];

  it('builds HTTP probes and uses injected factories for the rest', async () => {
    const seen: string[] = [];
    const checks = checksFromSpecs(specs, {
      kubernetesCondition: (s) => ({ name: s.name, timeoutMs: 1, run: () => (seen.push(s.object.name), Promise.resolve({ result: 'pass', message: 'Ready=True' })) }),
    });
    assert.deepEqual(checks.map((c) => [c.name, c.timeoutMs]), [['web', 3000], ['db', 1]]);
    const [, db] = await runChecks(checks, { now: () => new Date() });
    assert.equal(db?.result, 'pass');
    assert.deepEqual(seen, ['db-0']);
  });

  it('a check type without a factory blocks with an error instead of being skipped', async () => {
    const [, db] = await runChecks(checksFromSpecs(specs), { now: () => new Date() });
    assert.equal(db?.result, 'error');
    assert.match(db?.message ?? '', /kubernetesCondition are not supported/);
  });
});
