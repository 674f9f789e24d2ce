// Built-in and custom check runners on their own: the journal's disk, the
// Prometheus alert check against a real HTTP server speaking the Prometheus
// query API, and the pre-pull DaemonSet's shape.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { prometheusQueryCheck } from '../../src/agent/checks/index.ts';
import { journalDiskCheck, prePullDaemonSet, stageImages, type StageContext } from '../../src/agent/preflight/index.ts';
import { planRelease } from '../../src/agent/upgrade/planner.ts';
import { prometheusCheckSpec } from '../../src/protocol/policy.ts';
import { release as releaseSchema } from '../../src/protocol/release.ts';
import type { AttemptRecord } from '../../src/store/attempt-repo.ts';
import { addonsRelease } from '../support/releases.ts';

const signal = () => new AbortController().signal;

describe('journal-disk check', () => {
  it('passes with room, fails below the threshold, errors when statfs fails', async () => {
    const fs = (bavail: number) => () => Promise.resolve({ bavail: BigInt(bavail), bsize: BigInt(4096) });
    assert.equal((await journalDiskCheck('/var/lib/fleetlet/journal.db', 64, fs(64 * 256)).run(signal())).result, 'pass');
    const low = await journalDiskCheck('/var/lib/fleetlet/journal.db', 64, fs(63 * 256)).run(signal());
    assert.equal(low.result, 'fail');
    assert.equal(low.message, "63 MiB free on the journal's filesystem (/var/lib/fleetlet); policy needs 64 MiB");
    const broken = await journalDiskCheck('/x/journal.db', 64, () => Promise.reject(new Error('ENOENT'))).run(signal());
    assert.equal(broken.result, 'error');
  });

  it('reads the real filesystem by default', async () => {
    const r = await journalDiskCheck(`${process.cwd()}/journal.db`, 0).run(signal());
    assert.equal(r.result, 'pass');
    assert.match(r.message, /MiB free/);
  });
});

describe('prometheus check against a Prometheus-speaking HTTP server', () => {
  let server: Server;
  let base: string;
  const queries: string[] = [];
  let answer: { status: number; body: unknown } = { status: 200, body: {} };
  before(async () => {
    server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname !== '/api/v1/query') {
        res.writeHead(404).end();
        return;
      }
      queries.push(url.searchParams.get('query') ?? '');
      res.writeHead(answer.status, { 'content-type': 'application/json' }).end(JSON.stringify(answer.body));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  const vector = (...alerts: string[]) => ({
    status: 'success',
    data: { resultType: 'vector', result: alerts.map((a) => ({ metric: { __name__: 'ALERTS', alertname: a, alertstate: 'firing' }, value: [1767225600, '1'] })) },
  });
  const spec = (extra: object = {}) => prometheusCheckSpec.parse({ name: 'alerts', type: 'prometheus', url: `${base}/`, ...extra });

  it('queries firing ALERTS by default and passes when none fire', async () => {
    answer = { status: 200, body: vector() };
    const r = await prometheusQueryCheck(spec()).run(signal());
    assert.equal(r.result, 'pass');
    assert.equal(queries.at(-1), 'ALERTS{alertstate="firing"}');
  });

  it('fails naming the firing alerts that match the filter, ignoring the rest', async () => {
    answer = { status: 200, body: vector('Watchdog', 'KubeNodeNotReady', 'TargetDown', 'KubeNodeNotReady') };
    const r = await prometheusQueryCheck(spec({ alertFilter: '^(?!Watchdog$).*', query: 'ALERTS{alertstate="firing",severity="critical"}' })).run(signal());
    assert.equal(r.result, 'fail');
    assert.equal(r.message, '2 alert(s) firing that block upgrades (filter /^(?!Watchdog$).*/): KubeNodeNotReady, TargetDown');
    assert.equal(queries.at(-1), 'ALERTS{alertstate="firing",severity="critical"}');
    answer = { status: 200, body: vector('Watchdog') };
    assert.equal((await prometheusQueryCheck(spec({ alertFilter: '^(?!Watchdog$).*' })).run(signal())).result, 'pass');
  });

  it('a query error or an unreachable server is an error, not a pass', async () => {
    answer = { status: 400, body: { status: 'error', errorType: 'bad_data', error: 'parse error at char 7' } };
    const bad = await prometheusQueryCheck(spec({ query: 'ALERTS{' })).run(signal());
    assert.equal(bad.result, 'error');
    assert.match(bad.message, /failed \(400\): bad_data parse error at char 7/);
    const away = await prometheusQueryCheck(prometheusCheckSpec.parse({ name: 'alerts', type: 'prometheus', url: 'http://127.0.0.1:9' })).run(signal());
    assert.equal(away.result, 'error');
    assert.match(away.message, /did not answer/);
  });
});

describe('image pre-pull DaemonSet', () => {
  it('pulls each new image of the stage in an init container running true', () => {
    const release = releaseSchema.parse(addonsRelease('apps', 2, { dns: '1.1.0', proxy: '1.1.0', metrics: '1.1.0' }));
    const attempt = { id: 'a1', plan: planRelease(release, []) } as AttemptRecord;
    const ctx: StageContext = { attempt, release, stage: 0, now: new Date() };
    assert.deepEqual(stageImages(ctx), ['registry.example/dns:1.1.0', 'registry.example/proxy:1.1.0']);
    const ds = prePullDaemonSet(ctx, stageImages(ctx), { cluster: undefined as never, namespace: 'fleetlet-system' }) as never as {
      metadata: { namespace: string };
      spec: { template: { spec: { initContainers: { image: string; command: string[] }[]; tolerations: unknown[] } } };
    };
    assert.equal(ds.metadata.namespace, 'fleetlet-system');
    assert.deepEqual(ds.spec.template.spec.initContainers.map((c) => [c.image, c.command]), [
      ['registry.example/dns:1.1.0', ['true']],
      ['registry.example/proxy:1.1.0', ['true']],
    ]);
    assert.deepEqual(ds.spec.template.spec.tolerations, [{ operator: 'Exists' }]);
  });
});
