// The agent's probe and metrics server, over real HTTP on a loopback port,
// with a real journal; only the Kubernetes API is a stub (its failure modes
// are what readiness must notice).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { get, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { startAgentEndpoints, type AgentEndpoints } from '../../src/agent/http/agent-endpoints.ts';
import { parseListenAddress } from '../../src/agent/http/health-server.ts';
import { planRelease } from '../../src/agent/upgrade/planner.ts';
import { verifyRelease } from '../../src/protocol/signing.ts';
import { Journal } from '../../src/store/journal.ts';
import { addonsRelease, testSigner } from '../support/releases.ts';
import { testLogger } from '../support/test-log.ts';

const logger = testLogger();

/** A stub API: answers, fails, or hangs, as the test says. */
function stubApi() {
  const state: { mode: 'ok' | 'down' | 'hang' } = { mode: 'ok' };
  return {
    state,
    serverVersion: () => (state.mode === 'ok' ? Promise.resolve('v1.35.0') : state.mode === 'down' ? Promise.reject(new Error('connect ECONNREFUSED')) : new Promise<string>(() => {})),
  };
}

/** One sample's value from Prometheus text, e.g. sample(body, 'x', { phase: 'Soaking' }). */
function sample(body: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of body.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

describe('agent HTTP endpoints', () => {
  let journal: Journal;
  let endpoints: AgentEndpoints;
  let base: string;
  let reconnects = 0;
  const api = stubApi();

  before(async () => {
    journal = Journal.open(join(mkdtempSync(join(tmpdir(), 'fleetlet-http-')), 'journal.db'), { durability: 'normal' });
    endpoints = await startAgentEndpoints({
      address: '127.0.0.1:0',
      journal,
      cluster: api,
      clusterId: 'unit',
      version: '9.9.9',
      logger,
      hub: { reconnects: () => reconnects, connected: () => reconnects % 2 === 0 },
      readinessTimeoutMs: 300,
    });
    base = `http://127.0.0.1:${endpoints.server.port}`;
  });
  after(async () => {
    await endpoints.close();
    journal.close();
  });

  const metrics = async () => {
    const res = await fetch(`${base}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    return res.text();
  };

  test('/healthz answers while the process lives; unknown paths and methods are refused', async () => {
    const res = await fetch(`${base}/healthz`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'ok\n');
    assert.equal((await fetch(`${base}/nope`)).status, 404);
    const post = await fetch(`${base}/healthz`, { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
  });

  test('/readyz is ready only while the journal and the Kubernetes API answer', async () => {
    const ok = await fetch(`${base}/readyz?verbose`);
    assert.equal(ok.status, 200);
    assert.match(await ok.text(), /\[\+\]journal ok\n\[\+\]kubernetes-api ok\nready/);

    api.state.mode = 'down';
    const down = await fetch(`${base}/readyz`);
    assert.equal(down.status, 503);
    assert.match(await down.text(), /\[-\]kubernetes-api failed: connect ECONNREFUSED/);

    // A hung API must not hang the probe: the check's deadline answers for it.
    api.state.mode = 'hang';
    const started = Date.now();
    const hung = await fetch(`${base}/readyz`);
    assert.equal(hung.status, 503);
    assert.match(await hung.text(), /kubernetes-api failed: kubernetes-api did not answer within 300 ms/);
    assert.ok(Date.now() - started < 2_000);
    api.state.mode = 'ok';
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
  });

  test('further readiness checks plug in (the hook for the self-upgrade hand-over)', async () => {
    let handedOver = false;
    endpoints.readiness.add({
      name: 'candidate-handover',
      check: async () => {
        if (!handedOver) throw new Error('waiting for the hand-over record');
      },
    });
    const waiting = await fetch(`${base}/readyz`);
    assert.equal(waiting.status, 503);
    assert.match(await waiting.text(), /\[-\]candidate-handover failed: waiting for the hand-over record/);
    handedOver = true;
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    assert.throws(() => endpoints.readiness.add({ name: 'candidate-handover', check: async () => {} }), /already registered/);
  });

  test('/metrics reads phase, last result, outbox and journal size from the journal; stage durations from transitions', async () => {
    let body = await metrics();
    assert.equal(sample(body, 'fleetlet_agent_info', { cluster_id: 'unit', version: '9.9.9' }), 1);
    assert.equal(sample(body, 'fleetlet_agent_attempt_phase', { phase: 'Pending' }), 0, 'no attempt yet');
    assert.equal(sample(body, 'fleetlet_agent_last_attempt_result', { result: 'Succeeded' }), undefined);
    assert.ok(sample(body, 'fleetlet_agent_journal_size_bytes')! > 0);
    assert.ok(!/fleetlet_agent_process_/.test(body), 'process metrics only when asked for');

    // An attempt, driven through the journal as the engine does it.
    const signer = testSigner();
    const envelope = signer.sign(addonsRelease('ns', 1, { dns: '1.0.0', proxy: '1.0.0', metrics: '1.0.0' }));
    const release = verifyRelease(envelope, [signer.publicKey], { now: () => new Date(), lastRevision: 0 });
    const stored = journal.releases.accept(release, envelope);
    const a = journal.attempts.create({ id: 'att-1', releaseId: stored.id, revision: 1, releaseName: release.name, releaseVersion: release.version, plan: planRelease(release, []) });
    journal.attempts.transition(a.id, { phase: 'Upgrading', stage: 0 });
    journal.attempts.stageStarted(a.id, 'dns', 0);
    journal.outbox.enqueue('attempt-transition', { n: 1 });
    journal.outbox.enqueue('attempt-transition', { n: 2 });
    body = await metrics();
    assert.equal(sample(body, 'fleetlet_agent_attempt_phase', { phase: 'Upgrading' }), 1);
    assert.equal(sample(body, 'fleetlet_agent_attempt_phase', { phase: 'Pending' }), 0);
    assert.equal(sample(body, 'fleetlet_agent_outbox_depth'), 2);
    assert.ok(sample(body, 'fleetlet_agent_outbox_oldest_report_age_seconds')! >= 0);

    journal.attempts.stageFinished(a.id, 'dns', 'RolledBack');
    const t = journal.attempts.transition(a.id, { phase: 'RollingBack', stage: 0, reason: 'ProgressDeadlineExceeded' });
    endpoints.metrics.onTransition(journal.attempts.get(a.id)!, t);
    const done = journal.attempts.transition(a.id, { phase: 'RolledBack', stage: 0, reason: 'ProgressDeadlineExceeded', finished: true });
    endpoints.metrics.onTransition(journal.attempts.get(a.id)!, done);
    endpoints.metrics.onTransition(journal.attempts.get(a.id)!, done); // a repeated notice counts once
    journal.outbox.ack(2);

    body = await metrics();
    assert.equal(sample(body, 'fleetlet_agent_attempt_phase', { phase: 'RolledBack' }), 1);
    assert.equal(sample(body, 'fleetlet_agent_last_attempt_result', { result: 'RolledBack', reason: 'ProgressDeadlineExceeded' }), 1);
    assert.equal(sample(body, 'fleetlet_agent_last_attempt_result', { result: 'Failed' }), 0);
    assert.ok(sample(body, 'fleetlet_agent_last_attempt_finished_timestamp_seconds')! > 1.7e9);
    assert.equal(sample(body, 'fleetlet_agent_stage_duration_seconds_count', { result: 'RolledBack' }), 1);
    assert.equal(sample(body, 'fleetlet_agent_attempts_finished_total', { result: 'RolledBack' }), 1);
    assert.equal(sample(body, 'fleetlet_agent_outbox_depth'), 0);
    assert.equal(sample(body, 'fleetlet_agent_outbox_oldest_report_age_seconds'), 0);
  });

  test('hub reconnects mirror the injected source as a counter; connected is a gauge', async () => {
    reconnects = 3;
    let body = await metrics();
    assert.equal(sample(body, 'fleetlet_agent_hub_reconnects_total'), 3);
    assert.equal(sample(body, 'fleetlet_agent_hub_connected'), 0);
    reconnects = 4;
    body = await metrics();
    assert.equal(sample(body, 'fleetlet_agent_hub_reconnects_total'), 4);
    assert.equal(sample(body, 'fleetlet_agent_hub_connected'), 1);
  });

  test('a journal that stops answering makes the agent unready and counts journal errors, while /metrics still answers', async () => {
    const before = sample(await metrics(), 'fleetlet_agent_journal_errors_total', { operation: 'readiness' }) ?? 0;
    assert.equal(before, 0);
    const dir = mkdtempSync(join(tmpdir(), 'fleetlet-http-broken-'));
    const broken = Journal.open(join(dir, 'journal.db'), { durability: 'normal' });
    const ep = await startAgentEndpoints({ address: '127.0.0.1:0', journal: broken, cluster: stubApi(), clusterId: 'unit', version: '1', logger });
    try {
      broken.close();
      const res = await fetch(`http://127.0.0.1:${ep.server.port}/readyz`);
      assert.equal(res.status, 503);
      assert.match(await res.text(), /\[-\]journal failed: journal .* is closed/);
      const body = await (await fetch(`http://127.0.0.1:${ep.server.port}/metrics`)).text();
      assert.equal(sample(body, 'fleetlet_agent_journal_errors_total', { operation: 'readiness' }), 1);
      assert.ok(sample(body, 'fleetlet_agent_journal_errors_total', { operation: 'outbox' })! >= 1, 'the scrape counted its own failed reads');
      assert.ok(Number.isNaN(sample(body, 'fleetlet_agent_outbox_depth')), 'unknown, not a made-up or stale value');
      assert.equal(sample(body, 'fleetlet_agent_attempt_phase', { phase: 'Pending' }), undefined, 'no phase when the journal cannot say');
    } finally {
      await ep.close();
    }
  });

  test('a journal write SQLite refuses is counted in fleetlet_agent_journal_errors_total{operation="write"}, inside a transaction or not, once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fleetlet-http-locked-'));
    const path = join(dir, 'journal.db');
    const journal = Journal.open(path, { durability: 'normal' });
    const ep = await startAgentEndpoints({ address: '127.0.0.1:0', journal, cluster: stubApi(), clusterId: 'unit', version: '1', logger });
    // Another process holds the write lock: the journal waits its busy timeout, then SQLite refuses the write.
    const other = new Database(path);
    try {
      // A new connection per scrape: a write blocked for the busy timeout stalls the event loop past the server's keep-alive, so a pooled socket may be gone.
      const scrape = async () => {
        const [res] = (await once(get({ host: '127.0.0.1', port: ep.server.port, path: '/metrics', agent: false }), 'response')) as [IncomingMessage];
        let text = '';
        for await (const chunk of res) text += String(chunk);
        return sample(text, 'fleetlet_agent_journal_errors_total', { operation: 'write' });
      };
      assert.equal(await scrape(), 0);
      other.exec('BEGIN IMMEDIATE');
      assert.throws(() => journal.transaction(() => journal.outbox.enqueue('inventory', {})), /database is locked/);
      other.exec('ROLLBACK');
      assert.equal(await scrape(), 1);
      assert.equal(await scrape(), 1, 'counted once, not per scrape');
      journal.transaction(() => journal.outbox.enqueue('inventory', {}));
      assert.equal(await scrape(), 1, 'a write that succeeds counts nothing');
      // Writes outside a transaction (the hub link's acknowledgement, a meta key, an accepted override) are counted too.
      other.exec('BEGIN IMMEDIATE');
      assert.throws(() => journal.outbox.ack(1), /database is locked/);
      assert.equal(await scrape(), 2);
      assert.throws(() => journal.recordHub('wss://hub.example/api/v1/agent'), /database is locked/);
      other.exec('ROLLBACK');
      assert.equal(await scrape(), 3);
      assert.equal(journal.outbox.ack(1), 1, 'the journal still works once the lock is gone');
      assert.equal(await scrape(), 3);
    } finally {
      other.close();
      await ep.close();
      journal.close();
    }
  });

  test('listen addresses', () => {
    assert.deepEqual(parseListenAddress(':8080'), { host: undefined, port: 8080 });
    assert.deepEqual(parseListenAddress('127.0.0.1:0'), { host: '127.0.0.1', port: 0 });
    assert.deepEqual(parseListenAddress('[::1]:9090'), { host: '::1', port: 9090 });
    for (const bad of ['8080', 'host:', ':99999', 'a:b:c']) assert.throws(() => parseListenAddress(bad), { name: 'InvalidListenAddress' });
  });

  test('close ends keep-alive connections and frees the port', async () => {
    const ep = await startAgentEndpoints({ address: '127.0.0.1:0', journal, cluster: stubApi(), clusterId: 'unit', version: '1', logger });
    const url = `http://127.0.0.1:${ep.server.port}/healthz`;
    assert.equal((await fetch(url)).status, 200); // leaves an idle keep-alive socket in fetch's pool
    const started = Date.now();
    await ep.close();
    assert.ok(Date.now() - started < 1_000, 'idle connections do not hold the close');
    await assert.rejects(fetch(url));
  });
});
