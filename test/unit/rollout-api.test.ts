// Rollouts through the hub's real HTTP API and WebSocket: labels, a canary
// first, pause/resume, rollback, overrides delivered on hello, metrics, and
// the `fleetlet rollout` CLI against it.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { runRollout, type RolloutCommandIo } from '../../src/cli/rollout-command.ts';
import { encodeMessage } from '../../src/protocol/messages.ts';
import { verifyOverride } from '../../src/protocol/override.ts';
import { ADMIN_TOKEN, startHubFixture, type HubFixture } from '../support/hub-fixture.ts';
import { connectRaw } from '../support/raw-agent.ts';
import { sampleReleaseRequest } from '../support/releases.ts';
import { drained, enrolAgent, type TestAgent } from '../support/test-agent.ts';

async function eventually<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('rollouts over the hub API', () => {
  let f: HubFixture;
  let agents: TestAgent[];
  beforeEach(async () => {
    // Ticks every 50 ms, so a test that waits 300 ms has seen several.
    f = await startHubFixture({ rolloutTickMs: 50 });
    agents = [];
  });
  afterEach(async () => {
    await Promise.all(agents.map((a) => a.link.stop()));
    await f.close();
  });

  /** What `fleetlet rollout` needs, against this hub; every -f reads `file`. */
  function cliIo(file: unknown): { io: RolloutCommandIo; out: string[]; err: string[] } {
    const out: string[] = [];
    const err: string[] = [];
    const io: RolloutCommandIo = {
      fetch,
      out: (s) => out.push(s),
      err: (s) => err.push(s),
      sleep: (ms) => sleep(Math.min(ms, 20)),
      now: f.clock.now,
      tty: false,
      env: { FLEETLET_HUB_API: f.hub.httpUrl, FLEETLET_ADMIN_TOKEN: ADMIN_TOKEN },
      readFile: () => JSON.stringify(file),
    };
    return { io, out, err };
  }

  /** The agent's attempt on the last release it received reaching a phase. */
  function report(a: TestAgent, phase: 'Succeeded' | 'RolledBack'): void {
    const r = a.releases.at(-1);
    if (!r) throw new Error('no release received');
    a.outbox.enqueue('attempt-transition', { attemptId: `a-${r.revision}`, release: { name: r.name, version: r.version, revision: r.revision }, phase, stage: 0, reason: phase === 'Succeeded' ? null : 'HealthCheckFailed', message: null, at: f.clock.now().toISOString() });
    a.link.flush();
  }

  it('labels clusters, starts the canary first, pauses, resumes, finishes, rolls back, and shows it all in metrics', async () => {
    for (const id of ['edge-a', 'edge-b', 'edge-c']) agents.push(await enrolAgent(f, id));
    const [a, b, c] = agents as [TestAgent, TestAgent, TestAgent];
    assert.deepEqual((await f.api('PUT', '/api/v1/clusters/edge-a/labels', { labels: { ring: 'canary' } })).body, { clusterId: 'edge-a', labels: { ring: 'canary' } });
    assert.equal((await f.api('PUT', '/api/v1/clusters/edge-a/labels', { labels: { ring: 7 } })).body.error.reason, 'InvalidLabels');
    assert.equal((await f.api('PUT', '/api/v1/clusters/nope/labels', { labels: {} })).status, 404);
    assert.deepEqual((await f.api('GET', '/api/v1/clusters/edge-a')).body.labels, { ring: 'canary' });

    const spec = {
      name: 'addons-1-0',
      target: { kind: 'Release', release: sampleReleaseRequest('1.0.0') },
      groups: [{ name: 'canary', mandatory: true, selector: { matchLabels: { ring: 'canary' } } }],
      strategy: { type: 'Progressive', maxConcurrency: 1 },
    };
    const created = await f.api('POST', '/api/v1/rollouts', spec);
    assert.equal(created.status, 201);
    assert.equal(created.body.counts.Progressing, 1);
    assert.equal((await f.api('POST', '/api/v1/rollouts', spec)).body.error.reason, 'AlreadyExists');
    assert.equal((await f.api('POST', '/api/v1/rollouts', { name: 'bad' })).body.error.reason, 'InvalidRollout');
    await eventually('the canary to receive 1.0.0', () => (a.releases.length === 1 ? true : undefined));
    assert.equal(b.releases.length + c.releases.length, 0);

    report(a, 'Succeeded');
    // The report reaching the hub triggers a tick: b is next.
    await eventually('edge-b to receive 1.0.0', () => (b.releases.length === 1 ? true : undefined));
    const paused = await f.api('POST', '/api/v1/rollouts/addons-1-0/pause', { reason: 'checking dashboards' });
    assert.equal(paused.body.phase, 'Paused');
    report(b, 'Succeeded');
    await eventually('edge-b to count', async () => ((await f.api('GET', '/api/v1/rollouts/addons-1-0')).body.counts.Succeeded === 2 ? true : undefined));
    await sleep(300);
    assert.equal(c.releases.length, 0, 'nothing starts while paused');
    assert.equal((await f.api('POST', '/api/v1/rollouts/addons-1-0/resume')).body.phase, 'Progressing');
    await eventually('edge-c to receive 1.0.0', () => (c.releases.length === 1 ? true : undefined));
    report(c, 'Succeeded');
    const done = await eventually('the rollout to succeed', async () => {
      const s = (await f.api('GET', '/api/v1/rollouts/addons-1-0?clusters=all')).body;
      return s.phase === 'Succeeded' ? s : undefined;
    });
    assert.deepEqual(done.clusters.map((x: { clusterId: string; group: string; status: string }) => [x.clusterId, x.group, x.status]), [
      ['edge-a', 'canary', 'Succeeded'],
      ['edge-b', 'rest', 'Succeeded'],
      ['edge-c', 'rest', 'Succeeded'],
    ]);
    assert.equal((await f.api('GET', '/api/v1/rollouts')).body.rollouts.length, 1);
    assert.equal((await f.api('POST', '/api/v1/rollouts/addons-1-0/rollback', {})).body.error.reason, 'NothingToRollBack', 'nothing ran before 1.0.0');

    // 1.1.0 everywhere, then back.
    // A window that is always open (a start every minute, an hour long): the rollback must not inherit it.
    const alwaysOpen = { cron: '* * * * *', duration: '1h', timeZone: 'UTC' };
    assert.equal((await f.api('POST', '/api/v1/rollouts', { name: 'addons-1-1', target: { kind: 'Release', release: sampleReleaseRequest('1.1.0') }, strategy: { type: 'All', progressDeadline: '1h' }, window: alwaysOpen })).status, 201);
    await eventually('1.1.0 everywhere', () => (agents.every((x) => x.releases.length === 2) ? true : undefined));
    report(a, 'RolledBack');
    await eventually('the hub to see the failure', async () => ((await f.api('GET', '/api/v1/rollouts/addons-1-1')).body.counts.Failed === 1 ? true : undefined));
    const rolledBack = await f.api('POST', '/api/v1/rollouts/addons-1-1/rollback');
    assert.equal(rolledBack.status, 201);
    assert.equal(rolledBack.body.rollback.name, 'addons-1-1-rollback');
    assert.equal((await f.api('GET', '/api/v1/rollouts/addons-1-1')).body.window?.cron, alwaysOpen.cron);
    assert.equal(rolledBack.body.rollback.window, null, 'a rollback copies strategy and unknownClusters, not the window (fleetlet rollout rollback --help)');
    await eventually('1.0.0 again, as a newer revision', () => (agents.every((x) => x.releases.length === 3 && x.releases[2]?.version === '1.0.0' && x.releases[2].allowDowngrade) ? true : undefined));
    assert.equal((await f.api('GET', '/api/v1/rollouts/addons-1-1')).body.rolledBackBy, 'addons-1-1-rollback');

    const unauth = await fetch(`${f.hub.httpUrl}/metrics`);
    assert.equal(unauth.status, 401);
    const metrics = await (await fetch(`${f.hub.httpUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text();
    assert.match(metrics, /fleetlet_hub_rollout_clusters\{rollout="addons-1-0",status="Succeeded"\} 3/);
    assert.match(metrics, /fleetlet_hub_rollout_phase\{rollout="addons-1-1",phase="Cancelled",reason="RolledBack"\} 1/);
    assert.match(metrics, /fleetlet_hub_rollout_clusters\{rollout="addons-1-1",status="Failed"\} 1/);
    assert.match(metrics, /fleetlet_hub_cluster_upgrade_failed\{cluster="edge-a",release="edge-addons",version="1.1.0",reason="HealthCheckFailed"\} 1/);
    assert.match(metrics, /fleetlet_hub_clusters\{availability="True"\} 3/);
  });

  it('sends a connecting agent the overrides it should hold, after its welcome, and answers who runs a fix', async () => {
    const a = await enrolAgent(f, 'edge-o');
    agents.push(a);
    assert.equal((await f.api('POST', '/api/v1/rollouts', { name: 'base', target: { kind: 'Release', release: sampleReleaseRequest('1.0.0') }, strategy: { type: 'All' } })).status, 201);
    await eventually('1.0.0', () => (a.releases.length === 1 ? true : undefined));
    report(a, 'Succeeded');
    await eventually('base to succeed', async () => ((await f.api('GET', '/api/v1/rollouts/base')).body.phase === 'Succeeded' ? true : undefined));
    const fix = { name: 'cve-2030-1', version: '0.9.1-hf1', appliesTo: { releaseName: 'edge-addons', versions: ['1.0.0'] }, component: 'metrics', images: { metrics: 'registry.example/metrics:0.9.1-hf1' } };
    assert.equal((await f.api('POST', '/api/v1/rollouts', { name: 'hotfix', target: { kind: 'Override', override: fix }, strategy: { type: 'All', progressDeadline: '1h' } })).status, 201);
    assert.deepEqual((await f.api('GET', '/api/v1/overrides/cve-2030-1/clusters?state=missing')).body.clusters.map((c: { clusterId: string }) => c.clusterId), ['edge-o']);
    assert.equal((await f.api('GET', '/api/v1/overrides/cve-2030-1/clusters?state=sideways')).status, 400);
    assert.equal((await f.api('GET', '/api/v1/overrides/nope/clusters')).status, 404);
    assert.equal((await f.api('GET', '/api/v1/overrides')).body.overrides[0].name, 'cve-2030-1');

    // Reconnect by hand: welcome, then the override (the release is not resent: the agent holds it).
    await a.link.stop();
    const raw = await connectRaw(f.hub.url, { key: a.state.key, clusterId: 'edge-o' });
    assert.ok(raw.ok);
    raw.ws.send(encodeMessage({ type: 'hello', proof: raw.prove('hello'), clusterId: 'edge-o', agentVersion: '0.2.0', inventory: { components: [], kubernetesVersion: 'v1.35.4', targetInfrastructure: 'aws', overrides: [] }, lastRevision: a.state.lastRevision, outbox: { firstSeq: null, lastSeq: 1 } }));
    assert.equal((await raw.next()).type, 'welcome');
    const m = await raw.next();
    assert.equal(m.type, 'override');
    const o = verifyOverride((m as { envelope: unknown }).envelope, f.key.publicKey, { now: f.clock.now, lastRevision: () => 0 });
    assert.deepEqual([o.name, o.revision, o.component, o.images], ['cve-2030-1', 1, 'metrics', fix.images]);
    // It applies it and says so in its inventory: the hub lists it as running the fix.
    raw.ws.send(encodeMessage({ type: 'reports', afterSeq: 1, reports: [{ seq: 2, kind: 'inventory', body: { components: [], kubernetesVersion: 'v1.35.4', targetInfrastructure: 'aws', overrides: [{ name: 'cve-2030-1', component: 'metrics', version: '0.9.1-hf1' }] }, createdAt: f.clock.now().toISOString() }] }));
    assert.equal((await raw.next()).type, 'ack');
    assert.deepEqual((await f.api('GET', '/api/v1/overrides/cve-2030-1/clusters?state=running')).body.clusters.map((c: { clusterId: string }) => c.clusterId), ['edge-o']);
    await eventually('the hotfix rollout to succeed', async () => ((await f.api('GET', '/api/v1/rollouts/hotfix')).body.phase === 'Succeeded' ? true : undefined));
    raw.ws.close();
  });

  it('the CLI creates, shows, watches to the end and pauses rollouts', async () => {
    const a = await enrolAgent(f, 'edge-cli');
    agents.push(a);
    const { io, out, err } = cliIo({ name: 'cli', target: { kind: 'Release', release: sampleReleaseRequest('1.0.0') }, strategy: { type: 'All', progressDeadline: '1h' } });
    assert.equal(await runRollout(['create', '-f', 'rollout.yaml'], io), 0);
    assert.match(out.join(''), /Rollout: {3}cli {2}\(release edge-addons 1\.0\.0\)/);
    assert.match(out.join(''), /TOTAL {2}.*\[>{28}\]/);
    await eventually('1.0.0', () => (a.releases.length === 1 ? true : undefined));
    out.length = 0;
    const watching = runRollout(['status', 'cli', '--watch', '--interval', '10ms'], io);
    await sleep(100);
    report(a, 'Succeeded');
    assert.equal(await watching, 0, 'watch ends when the rollout succeeds');
    const lines = out.join('').trim().split('\n');
    assert.match(lines[0] ?? '', /cli Progressing: 0\/1 succeeded, 1 progressing/);
    assert.match(lines.at(-1) ?? '', /cli Succeeded \(AllSucceeded\): 1\/1 succeeded/);
    assert.ok(lines.length <= 3, 'one line per change, not per poll');
    assert.equal(await runRollout(['status', 'cli'], io), 0, 'a Succeeded rollout: finished as asked');
    assert.equal(await runRollout(['status', 'cli', '--bogus'], io), 2, 'an unknown flag is a usage error');
    assert.match(err.join(''), /unknown option '--bogus'/);
    assert.equal(await runRollout(['pause', 'cli'], io), 1);
    assert.match(err.join(''), /409 NotActive: rollout "cli" is Succeeded/);
    assert.equal(await runRollout(['status'], io), 2);
    assert.equal(await runRollout(['status', 'cli'], { ...io, env: {} }), 1, 'no token');
    const down = await runRollout(['list'], { ...io, env: { ...io.env, FLEETLET_HUB_API: 'http://127.0.0.1:1' } });
    assert.equal(down, 1);
    assert.match(err.join(''), /cannot reach the hub/);
  });
  it('rollout status --watch returns on Paused with exit code 3, and status says 3 for a Paused rollout', async () => {
    const a = await enrolAgent(f, 'edge-p');
    agents.push(a);
    const { io, out } = cliIo({ name: 'pausing', target: { kind: 'Release', release: sampleReleaseRequest('1.0.0') }, strategy: { type: 'All' } });
    assert.equal(await runRollout(['create', '-f', 'rollout.yaml'], io), 0);
    await eventually('1.0.0', () => (a.releases.length === 1 ? true : undefined));
    assert.equal(await runRollout(['status', 'pausing'], io), 0, 'Progressing: nothing wrong yet');
    const watching = runRollout(['status', 'pausing', '--watch', '--interval', '10ms'], io);
    await sleep(100);
    assert.equal(await runRollout(['pause', 'pausing', '--reason', 'checking'], io), 0, 'a pause that was made is a command finished as asked');
    assert.equal(await watching, 3, 'the watch returns once the rollout is Paused, with the code for "stopped short of success"');
    assert.match(out.join(''), /pausing Paused \(PausedByOperator\)/);
    assert.equal(await runRollout(['status', 'pausing'], io), 3);
    out.length = 0;
    assert.equal(await runRollout(['status', 'pausing', '--json'], io), 3);
    assert.equal(JSON.parse(out.join('')).phase, 'Paused');
  });
  it('rollout status exits 3 for Completed with failures and for Cancelled; rollout list --json lists every rollout', async () => {
    for (const id of ['edge-x', 'edge-y']) agents.push(await enrolAgent(f, id));
    const [x, y] = agents as [TestAgent, TestAgent];
    const mixed = cliIo({ name: 'mixed', target: { kind: 'Release', release: sampleReleaseRequest('1.0.0') }, selector: { clusterIds: ['edge-x', 'edge-y'] }, strategy: { type: 'All', maxFailures: 1 } });
    assert.equal(await runRollout(['create', '-f', 'rollout.yaml'], mixed.io), 0);
    await eventually('both clusters to receive 1.0.0', () => (x.releases.length === 1 && y.releases.length === 1 ? true : undefined));
    report(x, 'Succeeded');
    report(y, 'RolledBack');
    await eventually('mixed to complete', async () => ((await f.api('GET', '/api/v1/rollouts/mixed')).body.phase === 'Completed' ? true : undefined));
    assert.equal(await runRollout(['status', 'mixed'], mixed.io), 3, 'Completed with a failure (within maxFailures) stands short of success');

    const halted = cliIo({ name: 'halted', target: { kind: 'Release', release: sampleReleaseRequest('1.1.0') }, selector: { clusterIds: ['edge-x'] }, strategy: { type: 'All' } });
    assert.equal(await runRollout(['create', '-f', 'rollout.yaml'], halted.io), 0);
    assert.equal(await runRollout(['cancel', 'halted'], halted.io), 0, 'a cancel that was made is a command finished as asked');
    assert.equal(await runRollout(['status', 'halted'], halted.io), 3, 'Cancelled stands short of success');

    const { io, out } = cliIo({});
    assert.equal(await runRollout(['list', '--json'], io), 0);
    const listed = JSON.parse(out.join('')) as { name: string; phase: string; counts: { Succeeded: number; Failed: number; total: number } }[];
    assert.deepEqual(
      listed.map((r) => [r.name, r.phase, r.counts.Succeeded, r.counts.Failed, r.counts.total]).sort(),
      [
        ['halted', 'Cancelled', 0, 0, 1],
        ['mixed', 'Completed', 1, 1, 2],
      ],
    );
  });

  it('says which clusters run an override and since when, over the API and in `fleetlet rollout overrides`', async () => {
    const a = await enrolAgent(f, 'edge-s');
    agents.push(a);
    assert.equal((await f.api('POST', '/api/v1/rollouts', { name: 'base-s', target: { kind: 'Release', release: sampleReleaseRequest('1.0.0') }, strategy: { type: 'All' } })).status, 201);
    await eventually('1.0.0', () => (a.releases.length === 1 ? true : undefined));
    report(a, 'Succeeded');
    const fix = { name: 'cve-2031-7', version: '0.9.1-hf2', appliesTo: { releaseName: 'edge-addons', versions: ['1.0.0'] }, component: 'metrics', images: { metrics: 'registry.example/metrics:0.9.1-hf2' } };
    assert.equal((await f.api('POST', '/api/v1/rollouts', { name: 'fix-s', target: { kind: 'Override', override: fix }, strategy: { type: 'All', progressDeadline: '1h' } })).status, 201);
    const inventory = (listed: boolean) => ({ components: [], kubernetesVersion: 'v1.35.4', targetInfrastructure: 'aws', overrides: listed ? [{ name: fix.name, component: 'metrics', version: fix.version }] : [] });
    const send = async (listed: boolean) => {
      a.outbox.enqueue('inventory', inventory(listed));
      a.link.flush();
      await drained(a);
      f.clock.advance(3600_000);
    };
    const running = async () => (await f.api('GET', `/api/v1/overrides/${fix.name}/clusters?state=running`)).body.clusters as { clusterId: string; since: string | null }[];
    const first = f.clock.now().toISOString();
    await send(true);
    await send(true);
    assert.deepEqual(await running(), [{ clusterId: 'edge-s', runningRelease: { name: 'edge-addons', version: '1.0.0' }, reported: { component: 'metrics', version: '0.9.1-hf2' }, since: first }]);
    await send(false);
    assert.deepEqual(await running(), []);
    const again = f.clock.now().toISOString();
    await send(true);
    assert.equal((await running())[0]?.since, again, 'a break starts a new run');

    const { io, out } = cliIo({});
    assert.equal(await runRollout(['overrides', fix.name], io), 0);
    const text = out.join('');
    assert.match(text, /Override: {2}cve-2031-7 0\.9\.1-hf2 on metrics; applies to edge-addons 1\.0\.0/);
    assert.match(text, new RegExp(`RUNNING \\(1\\)\\n {2}edge-s +since ${again.replace(/\./g, '\\.')} +release edge-addons 1\\.0\\.0`));
    assert.match(text, /MISSING \(0\)/);
    out.length = 0;
    assert.equal(await runRollout(['overrides', '--json'], io), 0);
    const all = JSON.parse(out.join('')) as { override: { name: string }; running: { clusterId: string; since: string }[] }[];
    assert.deepEqual(all.map((r) => [r.override.name, r.running.map((c) => `${c.clusterId}@${c.since}`)]), [[fix.name, [`edge-s@${again}`]]]);
    assert.equal(await runRollout(['overrides', 'no-such-fix'], io), 1);
  });
});
