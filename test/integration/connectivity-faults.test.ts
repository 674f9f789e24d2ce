// Intermittent connectivity between the agent runtime and the hub, with
// Toxiproxy in the middle: a partition, repeated resets, a half-open
// connection, a slow link that also drops, a hub restart and an agent restart
// with reports still in its outbox. In every run the cut comes right after the
// upgrade starts, the agent finishes the upgrade while cut off, and once the
// link heals the hub holds every report exactly once and in order.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { AGENT_PATH } from '../../src/protocol/messages.ts';
import type { OutboxRow } from '../../src/store/outbox.ts';
import { eventually, testNamespace, type TestNamespace } from '../support/cluster.ts';
import { waitFor } from '../support/events.ts';
import { BOOTSTRAP_TOKEN, startHubFixture, type HubFixture } from '../support/hub-fixture.ts';
import { assertDeliveredOnce, awaitDrained, releaseRequest, startRuntime, type RunningRuntime } from '../support/runtime-fixture.ts';
import { startToxiproxy, type Proxy, type Toxiproxy } from '../support/toxiproxy.ts';

interface Ctx {
  f: HubFixture;
  proxy: Proxy;
  /** The runtime in charge now (scenario f replaces it). */
  rt: RunningRuntime;
  start(journalPath?: string): Promise<RunningRuntime>;
  clusterId: string;
}

interface Fault {
  /** Cuts the agent off; resolves once the cut is in effect. */
  cut(ctx: Ctx): Promise<void>;
  /** Runs while cut off, after the cut (restart the agent, wait for resets...). */
  whileCut?(ctx: Ctx): Promise<void>;
  heal(ctx: Ctx): Promise<void>;
  /** Checks after the run (e.g. the half-open detector fired). */
  verify?(ctx: Ctx): void;
  /** Heartbeat period of hub and agent. Default 300 ms. */
  heartbeatMs?: number;
  /** Before the release is set (a slow link from the start). */
  setup?(ctx: Ctx): Promise<void>;
}

const both = ['upstream', 'downstream'] as const;

describe('intermittent connectivity between agent and hub (toxiproxy)', () => {
  let tp: Toxiproxy;
  before(async () => {
    tp = await startToxiproxy();
  });
  after(async () => {
    await tp?.stop();
  });

  async function run(name: string, fault: Fault): Promise<void> {
    const heartbeatMs = fault.heartbeatMs ?? 300;
    const f = await startHubFixture({ now: () => new Date(), heartbeatMs });
    const proxy = await tp.createProxy(`${name}-${randomBytes(3).toString('hex')}`, f.hub.port);
    const agentNs: TestNamespace = await testNamespace('agent');
    const addonsNs: TestNamespace = await testNamespace('addons');
    const clusterId = `${name}-${randomBytes(3).toString('hex')}`;
    // Set from the runtime's transition hook: was the agent cut off when its attempt finished?
    const state = { cutOff: false, finishedWhileCutOff: undefined as boolean | undefined, cutRequested: false };
    let cutting: Promise<void> | undefined;
    const runtimes: RunningRuntime[] = [];
    const ctx: Ctx = {
      f,
      proxy,
      clusterId,
      rt: undefined as unknown as RunningRuntime,
      async start(journalPath) {
        const rt = await startRuntime({
          clusterId,
          namespace: agentNs.name,
          hubUrl: proxy.url(AGENT_PATH),
          releaseKey: f.key.publicKey,
          bootstrapToken: BOOTSTRAP_TOKEN,
          heartbeatMs,
          ...(journalPath ? { journalPath } : {}),
          onTransition: (_a, t) => {
            // The first transition of the upgrade: cut the agent off now, while it works.
            if (!state.cutRequested) {
              state.cutRequested = true;
              cutting = fault.cut(ctx).then(() => void (state.cutOff = true));
            }
            if (['Succeeded', 'RolledBack', 'Failed'].includes(t.phase)) state.finishedWhileCutOff = state.cutOff;
          },
        });
        runtimes.push(rt);
        ctx.rt = rt;
        return rt;
      },
    };
    try {
      await fault.setup?.(ctx);
      const first = await ctx.start();
      await eventually('the registration request', async () => ((await f.api('GET', `/api/v1/clusters/${clusterId}`)).body.registration === 'Pending' ? true : undefined));
      assert.equal((await f.api('POST', `/api/v1/clusters/${clusterId}/accept`)).status, 200);
      await eventually('the agent to connect through the proxy', async () => (first.runtime.hubLink?.connected ? true : undefined));

      const put = await f.api('PUT', `/api/v1/clusters/${clusterId}/release`, releaseRequest(addonsNs.name, '1.1.0', { dns: '1.0.0', proxy: '1.0.0', metrics: '1.0.0' }, 2));
      assert.equal(put.status, 200, JSON.stringify(put.body));
      const revision = put.body.revision as number;

      await eventually('the upgrade to start and the cut to take effect', async () => (cutting ? true : undefined), 60_000, 20);
      await cutting;
      await fault.whileCut?.(ctx);
      const attempt = await ctx.rt.finished(revision);
      assert.equal(attempt.phase, 'Succeeded', `${attempt.reason}: ${attempt.message}`);
      assert.equal(state.finishedWhileCutOff, true, 'the agent finished its upgrade while cut off');

      const journal = ctx.rt.runtime.journal;
      const buffered: OutboxRow[] = journal.outbox.pending(0, 10_000);
      const finalSeq = journal.outbox.stats().lastSeq;
      assert.ok(buffered.some((r) => r.kind === 'upgrade-completed'), 'the outcome waited in the outbox');
      const hubNow = await f.api('GET', `/api/v1/clusters/${clusterId}`).catch(() => undefined);
      if (hubNow) assert.ok(hubNow.body.reports.ackedSeq < finalSeq, 'the hub had not heard the end while the agent was cut off');

      await fault.heal(ctx);
      await awaitDrained(f, ctx.rt, clusterId);
      await assertDeliveredOnce(f, ctx.rt, clusterId, attempt, buffered);
      const c = (await f.api('GET', `/api/v1/clusters/${clusterId}`)).body;
      assert.equal(c.upgrade.status, 'Succeeded');
      assert.equal(c.upgrade.attemptId, attempt.id);
      assert.deepEqual(c.upgrade.release, { name: 'edge-addons', version: '1.1.0', revision });
      assert.deepEqual(c.runningRelease, { name: 'edge-addons', version: '1.1.0' });
      assert.equal(c.connected, true);
      fault.verify?.(ctx);
    } finally {
      for (const rt of runtimes) await rt.stop();
      await proxy.remove();
      await f.close();
      await agentNs.dispose();
      await addonsNs.dispose();
    }
  }

  test('(a) partition during the upgrade: the proxy is disabled until the agent finished', () =>
    run('partition', {
      cut: ({ proxy }) => proxy.setEnabled(false),
      heal: ({ proxy }) => proxy.setEnabled(true),
    }));

  test('(b) connection resets, again and again, until the agent finished', async () => {
    let resets = 0;
    await run('resets', {
      async cut(ctx) {
        ctx.rt.runtime.hubLink?.on('disconnected', () => resets++);
        // Every connection is reset by the first bytes it carries: the session, its heartbeats, and each reconnect.
        await ctx.proxy.addToxic({ name: 'reset', type: 'reset_peer', stream: 'upstream', attributes: { timeout: 0 } });
      },
      async whileCut(ctx) {
        const link = ctx.rt.runtime.hubLink!;
        await waitFor(link, ['disconnected'], () => resets >= 4, 'four connections reset', 30_000);
      },
      heal: ({ proxy }) => proxy.removeToxic('reset'),
      verify(ctx) {
        assert.ok(resets >= 4, `${resets} resets`);
        assert.ok((ctx.rt.runtime.hubLink?.counters.reconnects ?? 0) >= 4);
      },
    });
  });

  test('(c) half-open connection: bytes stop, TCP stays up; heartbeats detect it and the link reconnects', () =>
    run('halfopen', {
      async cut({ proxy }) {
        for (const stream of both) await proxy.addToxic({ name: `blackhole-${stream}`, type: 'timeout', stream, attributes: { timeout: 0 } });
      },
      async whileCut(ctx) {
        const link = ctx.rt.runtime.hubLink!;
        await waitFor(link, ['disconnected'], () => link.counters.halfOpen >= 1, 'the link to give up on the silent connection', 10_000);
      },
      async heal({ proxy }) {
        for (const stream of both) await proxy.removeToxic(`blackhole-${stream}`);
      },
      verify(ctx) {
        assert.ok((ctx.rt.runtime.hubLink?.counters.halfOpen ?? 0) >= 1, 'the half-open connection was detected by heartbeats');
      },
    }));

  test('(d) a slow link (500 ms ± 100 ms each way) that also drops during the upgrade', () =>
    run('latency', {
      // Heartbeats must outlast a round trip: two silent periods (2 s) > RTT (≤ 1.2 s).
      heartbeatMs: 1000,
      async setup({ proxy }) {
        for (const stream of both) await proxy.addToxic({ name: `latency-${stream}`, type: 'latency', stream, attributes: { latency: 500, jitter: 100 } });
      },
      cut: ({ proxy }) => proxy.setEnabled(false),
      async heal({ proxy }) {
        assert.equal((await proxy.toxics()).length, 2, 'still slow after the drop');
        await proxy.setEnabled(true);
      },
    }));

  test('(e) hub restart mid-upgrade: closed, then started again on the same database and port', () =>
    run('hubrestart', {
      cut: ({ f }) => f.hub.close(),
      heal: ({ f }) => f.restart(),
    }));

  test('(f) agent restart while partitioned: a new runtime on the same journal resumes and sends the outbox', async () => {
    let outboxAtRestart = 0;
    await run('agentrestart', {
      cut: ({ proxy }) => proxy.setEnabled(false),
      async whileCut(ctx) {
        const old = ctx.rt;
        // Stop mid-upgrade, with transitions in the outbox the hub never acknowledged. The reports
        // written before the cut took effect may have been acknowledged already, so wait for one after it.
        await eventually('a report written while cut off', async () => (old.runtime.journal.outbox.stats().depth > 0 ? true : undefined), 60_000, 20);
        await old.stop();
        const journalPath = old.journalPath;
        const next = await ctx.start(journalPath);
        outboxAtRestart = next.runtime.journal.outbox.stats().depth;
        assert.ok(outboxAtRestart > 0, 'the new runtime starts with a non-empty outbox');
      },
      heal: ({ proxy }) => proxy.setEnabled(true),
      verify(ctx) {
        // The new runtime's link delivered what the old one left behind, and what it wrote itself.
        assert.ok((ctx.rt.runtime.hubLink?.counters.acked ?? 0) > outboxAtRestart, 'the restarted link sent the inherited outbox and its own reports');
        assert.equal(ctx.rt.runtime.hubLink?.counters.connects, 1, 'the restarted runtime connected once, after the heal');
      },
    });
    assert.ok(outboxAtRestart > 0);
  });
});
