// Releases reach the agent only signed, fresh and newer; every refusal is
// reported back through the outbox, once per release.
import * as k8s from '@kubernetes/client-node';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { mkdtempSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { Agent } from '../../src/agent/agent.ts';
import { defaultAdmission } from '../../src/agent/intake/admission.ts';
import { KubeClusterClient } from '../../src/agent/kube/cluster-client.ts';
import { HubLink } from '../../src/hub-link/hub-link.ts';
import { generateAgentKey } from '../../src/protocol/agent-identity.ts';
import { encodeMessage, parseMessage, type ReportEntry, type HubMessage, type Outgoing } from '../../src/protocol/messages.ts';
import { release as releaseSchema } from '../../src/protocol/release.ts';
import { signOverride } from '../../src/protocol/override.ts';
import { generateReleaseKey, signRelease } from '../../src/protocol/signing.ts';
import { Journal } from '../../src/store/journal.ts';
import { nextEvent, waitFor } from '../support/events.ts';
import { startHubFixture, testLogger, TestClock, type HubFixture } from '../support/hub-fixture.ts';
import { sampleRelease, sampleReleaseRequest } from '../support/releases.ts';
import { createTestAgent, drained, enrolAgent, type TestAgent } from '../support/test-agent.ts';

describe('releases from the reference hub', () => {
  let f: HubFixture | undefined;
  const agents: TestAgent[] = [];
  afterEach(async () => {
    await Promise.all(agents.splice(0).map((a) => a.link.stop()));
    await f?.close();
    f = undefined;
  });

  it('a release set over HTTP reaches the connected agent, and an offline agent on its next hello', async () => {
    f = await startHubFixture();
    const a = await enrolAgent(f, 'edge-r1');
    agents.push(a);
    const received = nextEvent(a.link, 'release');
    const put = await f.api('PUT', '/api/v1/clusters/edge-r1/release', sampleReleaseRequest('1.4.2'));
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.equal(put.body.revision, 1);
    assert.equal(put.body.delivered, true);
    await received;
    assert.equal(a.releases[0]?.version, '1.4.2');
    assert.equal(a.state.lastRevision, 1);

    const disconnected = nextEvent(a.link, 'disconnected');
    await a.link.stop();
    await disconnected;
    const offline = await f.api('PUT', '/api/v1/clusters/edge-r1/release', sampleReleaseRequest('1.5.0'));
    assert.equal(offline.body.revision, 2);
    assert.equal(offline.body.delivered, false);

    const again = createTestAgent({ url: f.hub.url, clusterId: 'edge-r1', releaseKey: f.key.publicKey, now: f.clock.now, key: a.state.key, registered: true, lastRevision: 1 });
    agents.push(again);
    const next = nextEvent(again.link, 'release');
    again.link.start();
    await next;
    assert.equal(again.releases[0]?.version, '1.5.0');
    assert.equal(again.refusals.length, 0, 'revision 1 is not re-sent to an agent that holds it');
    const desired = (await f.api('GET', '/api/v1/clusters/edge-r1')).body.desiredRelease;
    assert.equal(desired.revision, 2);
  });

  it('an invalid release request is refused with the field at fault and burns no revision', async () => {
    f = await startHubFixture();
    const a = await enrolAgent(f, 'edge-r2');
    agents.push(a);
    const bad = await f.api('PUT', '/api/v1/clusters/edge-r2/release', { ...sampleReleaseRequest(), version: 'latest' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.reason, 'InvalidRelease');
    assert.deepEqual(bad.body.error.details[0].path, ['version']);
    const ok = await f.api('PUT', '/api/v1/clusters/edge-r2/release', sampleReleaseRequest());
    assert.equal(ok.body.revision, 1);
  });

  it('a release signed with a key the agent does not trust is refused, and the hub learns why', async () => {
    f = await startHubFixture();
    const trusted = generateReleaseKey();
    const a = await enrolAgent(f, 'edge-r3', { releaseKey: trusted.publicKey });
    agents.push(a);
    const handled = nextEvent(a.link, 'release');
    await f.api('PUT', '/api/v1/clusters/edge-r3/release', sampleReleaseRequest());
    await handled;
    assert.equal(a.refusals.length, 1);
    assert.equal(a.releases.length, 0, 'nothing ran');
    await drained(a);
    const c = (await f.api('GET', '/api/v1/clusters/edge-r3')).body;
    assert.equal(c.lastRefusal.reason, 'UnknownKey');
    const cond = c.conditions.find((x: { type: string }) => x.type === 'ReleaseAccepted');
    assert.equal(cond?.status, 'False');
    assert.equal(cond?.reason, 'UnknownKey');
  });
});

/** The agent as it runs, minus the cluster: a refusal is decided before anything asks the API server. */
function doorAgent(key: ReturnType<typeof generateReleaseKey>, clock: TestClock, clusterId: string): { agent: Agent; journal: Journal } {
  const journal = Journal.open(join(mkdtempSync(join(tmpdir(), 'fleetlet-door-')), 'journal.db'), { durability: 'normal', now: clock.now });
  const nowhere = new k8s.KubeConfig();
  nowhere.loadFromOptions({ clusters: [{ name: 'none', server: 'https://127.0.0.1:9' }], users: [{ name: 'none' }], contexts: [{ name: 'none', cluster: 'none', user: 'none' }], currentContext: 'none' });
  const agent = new Agent({ journal, cluster: new KubeClusterClient(nowhere), logger: testLogger(), now: clock.now, clusterId, releaseKeys: [key.publicKey], admission: defaultAdmission });
  return { agent, journal };
}

/**
 * A man in the middle: a WebSocket server that speaks the protocol but holds
 * no key, and re-sends the same messages after every hello, as the hub does
 * with its desired release and stored overrides. The agent's link to it.
 */
async function replayingHub(agent: Agent, journal: Journal, clock: TestClock, onHello: () => Outgoing<HubMessage>[], onOverride?: () => void) {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise((resolve) => wss.once('listening', resolve));
  const received: ReportEntry[] = [];
  const hub = { received, hellos: 0 };
  wss.on('connection', (ws: WebSocket) => {
    ws.send(encodeMessage({ type: 'challenge', nonce: 'n'.repeat(43) }));
    ws.on('message', (data: Buffer) => {
      const m = parseMessage(data, 'from-agent');
      if (!m.ok) return;
      if (m.message.type === 'hello') {
        hub.hellos++;
        ws.send(encodeMessage({ type: 'welcome', ackedSeq: received.at(-1)?.seq ?? 0, heartbeatMs: 10_000, leaseDurationMs: 50_000 }));
        for (const message of onHello()) ws.send(encodeMessage(message));
      }
      if (m.message.type === 'reports') {
        received.push(...m.message.reports);
        ws.send(encodeMessage({ type: 'ack', uptoSeq: m.message.reports.at(-1)?.seq ?? 0 }));
      }
    });
  });
  const link = new HubLink({
    url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/api/v1/agent`,
    clusterId: 'edge-m',
    agentVersion: '0.1.0-test',
    agentKey: generateAgentKey(),
    registered: () => true,
    outbox: journal.outbox,
    lastRevision: () => agent.lastRevision(),
    inventory: () => agent.inventory(),
    onRelease: async (envelope) => {
      await agent.offer(envelope);
    },
    onOverride: async (envelope) => {
      agent.offerOverride(envelope);
      onOverride?.();
    },
    now: clock.now,
    random: () => 0.5,
    logger: testLogger(),
    heartbeatMs: 200,
    backoff: { baseMs: 20, capMs: 200 },
  });
  link.start();
  return {
    hub,
    link,
    dropAll: () => {
      for (const c of wss.clients) c.terminate();
    },
    close: async () => {
      await link.stop();
      journal.close();
      await new Promise((resolve) => wss.close(resolve));
    },
  };
}

describe('releases over a compromised link, through the agent\'s one door', () => {
  it('refuses forged, replayed, unsigned and expired releases, runs nothing, and reports each refusal once, however often they are re-sent', async () => {
    const key = generateReleaseKey();
    const clock = new TestClock();
    const good = signRelease(sampleRelease({ revision: 3, issuedAt: '2030-01-01T00:00:00.000Z', expiresAt: '2030-02-01T00:00:00.000Z' }), key.privateKey);
    const held = sampleRelease({ revision: 2, issuedAt: '2030-01-01T00:00:00.000Z', expiresAt: '2030-02-01T00:00:00.000Z' });
    const old = signRelease(held, key.privateKey);
    const stale = signRelease(sampleRelease({ revision: 9, issuedAt: '2029-01-01T00:00:00.000Z', expiresAt: '2029-02-01T00:00:00.000Z' }), key.privateKey);
    const forged = { ...good, payload: good.payload.replace('"revision":3', '"revision":4') };
    const unsigned = { payload: good.payload, signature: '', keyId: good.keyId };

    const { agent, journal } = doorAgent(key, clock, 'edge-m');
    journal.releases.accept(releaseSchema.parse(held), old);
    const { hub, link, dropAll, close } = await replayingHub(agent, journal, clock, () => [forged, old, unsigned, stale].map((envelope) => ({ type: 'release' as const, envelope })));
    const received = hub.received;
    try {
      await waitFor(link, ['acked'], () => received.length === 4, 'four refusal reports');
      // The hub drops the connection; on the next hello it re-sends the same four.
      const again = waitFor(link, ['release'], () => link.counters.releases === 8, 'the four releases re-sent', 10_000);
      dropAll();
      await again;
      assert.equal(hub.hellos, 2);
      assert.equal(journal.releases.lastAcceptedRevision(), 2, 'nothing was accepted');
      assert.equal(journal.attempts.latest(), undefined, 'nothing ran');
      assert.deepEqual(
        received.map((r) => [r.kind, (r.body as { reason: string }).reason]),
        [
          ['release-refused', 'BadSignature'],
          ['release-refused', 'Replayed'],
          ['release-refused', 'Unsigned'],
          ['release-refused', 'Expired'],
        ],
      );
      assert.equal((received[1]?.body as { revision?: number }).revision, 2, 'a verified revision is named');
      assert.equal((received[0]?.body as { revision?: number }).revision, undefined, 'an unverified one is not');
      assert.equal(journal.outbox.stats().lastSeq, 4, 'the re-sent releases were not reported again');
      assert.equal(journal.releases.refusals(100).length, 4, 'each refusal is in the journal once');
    } finally {
      await close();
    }
  });

  it('a re-sent refused override is reported once, through the same door as releases; an accepted one re-sent is no news', async () => {
    const key = generateReleaseKey();
    const clock = new TestClock();
    const doc = (revision: number, expiresAt = '2030-02-01T00:00:00.000Z') => ({
      apiVersion: 'fleetlet.io/v1' as const,
      kind: 'Override' as const,
      name: `fix-${revision}`,
      version: '0.9.1-hf1',
      revision,
      issuedAt: '2030-01-01T00:00:00.000Z',
      expiresAt,
      appliesTo: { releaseName: 'edge-addons', versions: ['1.0.0'] },
      component: 'metrics',
      images: { metrics: 'registry.example/metrics:0.9.1-hf1' },
    });
    const good = signOverride(doc(1), key.privateKey);
    const expired = signOverride(doc(2, '2030-01-01T12:00:00.000Z'), key.privateKey);
    const untrusted = signOverride(doc(3), generateReleaseKey().privateKey);
    const forged = { ...good, payload: good.payload.replace('hf1', 'hf2') };

    const { agent, journal } = doorAgent(key, clock, 'edge-o');
    let overridesHandled = 0;
    const handled = new EventEmitter();
    // The hub re-sends every stored override after each hello, as src/hub/rollout/override-delivery.ts does.
    const { hub, link, dropAll, close } = await replayingHub(
      agent,
      journal,
      clock,
      () => [good, expired, untrusted, forged].map((envelope) => ({ type: 'override' as const, envelope })),
      () => {
        overridesHandled++;
        handled.emit('override');
      },
    );
    const received = hub.received;
    try {
      await waitFor(link, ['acked'], () => received.length === 3, 'three refusal reports');
      const firstHello = overridesHandled;
      dropAll();
      await waitFor(handled, ['override'], () => overridesHandled >= firstHello + 4, 'the four overrides re-sent', 10_000);
      // A report enqueued for the second batch would be sent while connected: wait until the outbox is empty.
      await waitFor(link, ['acked', 'connected'], () => journal.outbox.stats().depth === 0, 'the outbox drained', 10_000);
      assert.equal(hub.hellos, 2);
      assert.deepEqual(
        received.filter((r) => r.kind === 'override-refused').map((r) => [(r.body as { name?: string }).name, (r.body as { reason: string }).reason]),
        [
          ['fix-2', 'Expired'],
          [undefined, 'UnknownKey'],
          [undefined, 'BadSignature'],
        ],
        'each refusal once, with the override named once its signature verified',
      );
      assert.equal((received[0]?.body as { revision?: number }).revision, 2);
      assert.deepEqual(journal.overrides.all().map((o) => o.name), ['fix-1'], 'the good one was accepted, and its re-sending reported nothing');
      assert.equal(journal.overrides.refusals(100).length, 3, 'each refusal is in the journal once');
      assert.equal(journal.outbox.stats().lastSeq, received.length, 'nothing else was enqueued');
    } finally {
      await close();
    }
  });
});
