// The hub and the agent runtime end to end on the real control plane:
// registration by double opt-in with the agent's key kept in a Secret, a
// release set on the hub and upgraded by the agent, the hub's aggregate and
// telemetry, cross-cluster access refused, releases from a compromised hub
// refused, and deregistration with uninstall.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { AgentMetrics } from '../../src/agent/http/metrics.ts';
import { STATUS_CONFIGMAP } from '../../src/agent/kube/status-publisher.ts';
import { agentKeyFingerprint, type AgentKeyPair } from '../../src/protocol/agent-identity.ts';
import { generateReleaseKey } from '../../src/protocol/signing.ts';
import { encodeMessage } from '../../src/protocol/messages.ts';
import type { KubeObject } from '../../src/protocol/release.ts';
import { eventually, testNamespace, type TestNamespace } from '../support/cluster.ts';
import { nextEvent } from '../support/events.ts';
import { BOOTSTRAP_TOKEN, startHubFixture, type HubFixture } from '../support/hub-fixture.ts';
import { connectRaw } from '../support/raw-agent.ts';
import { assertDeliveredOnce, awaitDrained, releaseRequest, startRuntime, storedReports, type RunningRuntime } from '../support/runtime-fixture.ts';
import { enrolAgent, type TestAgent } from '../support/test-agent.ts';

const CREDENTIAL_SECRET = 'fleetlet-hub-credential';
type Workload = KubeObject & { spec: { template: { spec: { containers: { image: string }[] } } } };

describe('hub ↔ agent runtime on the real control plane', () => {
  let f: HubFixture;
  let agentNs: TestNamespace;
  let addonsNs: TestNamespace;
  let rt: RunningRuntime | undefined;
  let other: TestAgent | undefined;
  const clusterId = `e2e-${randomBytes(3).toString('hex')}`;
  const otherId = `${clusterId}-b`;
  // Real time on both sides: the agent checks expiry against its own clock.
  const now = () => new Date();
  let journalPath = '';
  let agentKey: AgentKeyPair | undefined;

  const view = async (id = clusterId) => (await f.api('GET', `/api/v1/clusters/${id}`)).body;
  const read = (kind: string, name: string, apiVersion = 'apps/v1') => rtNow().runtime.cluster.read({ apiVersion, kind, name, namespace: addonsNs.name });
  const rtNow = (): RunningRuntime => {
    assert.ok(rt, 'the agent runtime is running');
    return rt;
  };

  before(async () => {
    f = await startHubFixture({ now, heartbeatMs: 300 });
    agentNs = await testNamespace('agent');
    addonsNs = await testNamespace('addons');
  });
  after(async () => {
    await other?.link.stop();
    await rt?.stop();
    await f.close();
    await agentNs.dispose();
    await addonsNs.dispose();
  });

  test('registers by double opt-in with a key it generated and keeps in a Secret in its namespace', async () => {
    rt = await startRuntime({ clusterId, namespace: agentNs.name, hubUrl: f.hub.url, releaseKey: f.key.publicKey, bootstrapToken: BOOTSTRAP_TOKEN, uninstallOnDeregister: true });
    journalPath = rt.journalPath;
    const pending = await eventually('the registration request', async () => {
      const c = await view();
      return c.registration === 'Pending' ? c : undefined;
    });
    assert.equal(rtNow().runtime.journal.recordedHub(), f.hub.url, 'recorded at start-up, before the hub acknowledged anything: fleetlet status shows the outbox');
    const identity = await rtNow().runtime.credentials.load();
    assert.ok(identity, 'the key was generated and stored on first start');
    assert.equal(identity.registered, false, 'not accepted yet');
    assert.equal(pending.key.fingerprint, agentKeyFingerprint(identity.key.publicKey), 'the hub holds the public half of the Secret\'s key');
    const accepted = await f.api('POST', `/api/v1/clusters/${clusterId}/accept`);
    assert.equal(accepted.status, 200);
    assert.equal(accepted.body.delivered, true, 'the waiting agent heard at once');

    const v = await eventually('the agent to connect with its key', async () => {
      const c = await view();
      return c.connected && c.registration === 'Accepted' ? c : undefined;
    });
    assert.equal(v.agentVersion, '0.1.0');
    const secret = await agentNs.core.readNamespacedSecret({ name: CREDENTIAL_SECRET, namespace: agentNs.name });
    assert.match(Buffer.from(secret.data?.['agent.key'] ?? '', 'base64').toString('utf8'), /BEGIN PRIVATE KEY/, 'the Secret holds the private key');
    assert.equal(secret.data?.credential, undefined, 'and no credential');
    const stored = await rtNow().runtime.credentials.load();
    assert.equal(stored?.registered, true, 'the acceptance is persisted');
    agentKey = stored?.key;
  });

  test('a release set on the hub is upgraded in stages; the aggregate goes InProgress then Succeeded', async () => {
    const put = await f.api('PUT', `/api/v1/clusters/${clusterId}/release`, releaseRequest(addonsNs.name, '1.1.0', { dns: '1.0.0', proxy: '1.0.0', metrics: '1.0.0' }));
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.equal(put.body.delivered, true);
    const revision = put.body.revision as number;

    // Every status change the hub shows, in the order it showed them.
    const seen: string[] = [];
    const done = rtNow().finished(revision);
    let finished = false;
    void done.then(() => (finished = true), () => (finished = true));
    const final = await eventually(
      'the hub to show the attempt Succeeded',
      async () => {
        const u = (await view()).upgrade;
        if (u && u.release.revision === revision && seen.at(-1) !== u.status) seen.push(u.status);
        return u?.release.revision === revision && u.status !== 'InProgress' && finished ? u : undefined;
      },
      120_000,
      50,
    );
    const attempt = await done;
    assert.equal(attempt.phase, 'Succeeded', `${attempt.reason}: ${attempt.message}`);
    assert.deepEqual(seen, ['InProgress', 'Succeeded'], 'the hub showed the upgrade in progress, then done');

    await awaitDrained(f, rtNow(), clusterId);
    const c = await view();
    assert.equal(c.upgrade.status, 'Succeeded');
    assert.equal(c.upgrade.phase, 'Succeeded');
    assert.equal(c.upgrade.attemptId, attempt.id);
    assert.deepEqual(c.upgrade.release, { name: 'edge-addons', version: '1.1.0', revision });
    assert.deepEqual(c.runningRelease, { name: 'edge-addons', version: '1.1.0' });
    assert.equal(c.desiredRelease.revision, revision);
    assert.ok(c.conditions.some((x: { type: string; status: string }) => x.type === 'Upgraded' && x.status === 'True'));
    assert.equal(final.attemptId, attempt.id);

    const telemetry = (await f.api('GET', `/api/v1/telemetry?cluster=${clusterId}`)).body.events;
    assert.equal(telemetry.length, 1, 'one upgrade-completed event');
    assert.equal(telemetry[0].event.cluster_id, clusterId);
    assert.equal(telemetry[0].event.result, 'Succeeded');
    assert.deepEqual(telemetry[0].event.release, { name: 'edge-addons', version: '1.1.0' });
    assert.equal(telemetry[0].event.attemptId, attempt.id);
    await assertDeliveredOnce(f, rtNow(), clusterId, attempt);

    const dns = (await read('Deployment', 'dns')) as Workload;
    assert.equal(dns.spec.template.spec.containers[0]?.image, 'registry.example/dns:1.0.0');
    const store = (await read('StatefulSet', 'metrics-store')) as Workload;
    assert.equal(store.spec.template.spec.containers[0]?.image, 'registry.example/metrics-store:1.0.0');
  });

  test('a restarted runtime reuses the key from the Secret without registering again', async () => {
    const before = await view();
    await rtNow().stop();
    rt = undefined;
    // No bootstrap token: a runtime that could not find its key would have no way in.
    rt = await startRuntime({ clusterId, namespace: agentNs.name, hubUrl: f.hub.url, releaseKey: f.key.publicKey, journalPath, uninstallOnDeregister: true });
    const after = await eventually('the restarted agent to reconnect', async () => {
      const c = await view();
      return c.connected && c.lastSeen !== null && Date.parse(c.lastSeen) > Date.parse(before.lastSeen) && rtNow().runtime.hubLink?.connected ? c : undefined;
    });
    assert.equal(after.requestedAt, before.requestedAt, 'no new registration request');
    assert.equal(after.acceptedAt, before.acceptedAt, 'no new acceptance');
    assert.equal((await rtNow().runtime.credentials.load())?.key.publicKey, agentKey?.publicKey, 'the same key');
    assert.equal(rtNow().runtime.hubLink?.counters.connects, 1, 'one connection, straight to hello');
  });

  test('the key of one cluster is refused for another, and nothing changes', async () => {
    other = await enrolAgent(f, otherId, { now });
    other.outbox.enqueue('attempt-transition', {
      attemptId: 'b-1',
      release: { name: 'edge-addons', version: '9.9.9', revision: 1 },
      phase: 'Upgrading',
      stage: 0,
      reason: null,
      message: null,
      at: now().toISOString(),
    });
    other.link.flush();
    await eventually('cluster B reports', async () => ((await view(otherId)).reports.ackedSeq === 1 ? true : undefined));
    const beforeA = await view();
    const beforeB = await view(otherId);
    const reportsB = await storedReports(f, otherId);

    // A's key signing a hello (and reports) claiming B: the proof does not verify with B's key.
    const inside = await connectRaw(f.hub.url, { key: agentKey, clusterId: otherId });
    assert.ok(inside.ok);
    inside.ws.send(
      encodeMessage({ type: 'hello', clusterId: otherId, agentVersion: 'evil', inventory: { components: [], kubernetesVersion: '', targetInfrastructure: '', overrides: [] }, lastRevision: 0, outbox: { firstSeq: 2, lastSeq: 2 }, proof: inside.prove('hello') }),
    );
    inside.ws.send(encodeMessage({ type: 'reports', afterSeq: 1, reports: [{ seq: 2, kind: 'attempt-transition', body: { forged: true }, createdAt: now().toISOString() }] }));
    const reply = await inside.next();
    assert.equal(reply.type, 'error');
    assert.equal(reply.type === 'error' && reply.code, 'BadProof');
    assert.equal((await inside.closed).code, 4001);

    const afterB = await view(otherId);
    assert.deepEqual(await storedReports(f, otherId), reportsB, 'B has no new report');
    assert.equal(afterB.agentVersion, beforeB.agentVersion);
    assert.deepEqual(afterB.upgrade, beforeB.upgrade);
    assert.equal(afterB.desiredRelease, beforeB.desiredRelease);
    const afterA = await view();
    assert.equal(afterA.reports.ackedSeq, beforeA.reports.ackedSeq);
    assert.equal(afterA.agentVersion, beforeA.agentVersion, 'A was not re-announced by the forged hello');
    assert.ok(rtNow().runtime.hubLink?.connected, 'the real agent of A is still connected');
    await other.link.stop();
    other = undefined;
  });

  for (const compromise of [
    { name: 'signed with a key the agent does not trust', reason: 'UnknownKey', hub: () => ({ releaseKey: generateReleaseKey().privateKey }) },
    // The right key, but a clock set back a month: every release it signs has already expired.
    { name: 'expired when it arrives', reason: 'Expired', hub: () => ({ now: () => new Date(Date.now() - 30 * 86_400_000) }) },
  ]) {
    test(`a release from a compromised hub ${compromise.name} is refused, reported, and nothing runs`, async () => {
      const r = rtNow();
      const journal = r.runtime.journal;
      const acceptedBefore = journal.releases.lastAcceptedRevision();
      const latestBefore = journal.attempts.latest();
      const dnsBefore = await read('Deployment', 'dns');
      const compromised = compromise.hub();
      const reconnected = nextEvent(r.runtime.hubLink!, 'welcome', () => true, 15_000);
      await f.restart(compromised);
      await reconnected;

      // Every refusal the agent records; a hub re-sends its stored (bad) desired release on each connect, so pick ours by revision.
      const refusals = () => journal.releases.refusals(1000).map((x) => ({ reason: x.reason, revision: x.revision ?? undefined }));
      const put = await f.api('PUT', `/api/v1/clusters/${clusterId}/release`, releaseRequest(addonsNs.name, '6.6.6', { dns: '6.6.6', proxy: '6.6.6', metrics: '6.6.6' }));
      assert.equal(put.status, 200, JSON.stringify(put.body));
      assert.equal(put.body.delivered, true);
      // An unverifiable envelope's revision is not trusted, so an UnknownKey refusal names none.
      const ours = (x: { reason: string; revision?: number | undefined }) => x.reason === compromise.reason && (x.revision === undefined || x.revision === put.body.revision);
      const refusal = await eventually('the agent to refuse the release', async () => refusals().find(ours), 15_000, 20);
      assert.equal(refusal.revision, compromise.reason === 'UnknownKey' ? undefined : put.body.revision);

      const c = await eventually('the hub to hear of the refusal', async () => {
        const v = await view();
        return v.lastRefusal && ours(v.lastRefusal) ? v : undefined;
      });
      assert.equal(c.lastRefusal.reason, compromise.reason);
      assert.ok(c.conditions.some((x: { type: string; status: string; reason: string }) => x.type === 'ReleaseAccepted' && x.status === 'False' && x.reason === compromise.reason));
      assert.equal(c.runningRelease.version, '1.1.0', 'the hub still sees the honest release running');

      assert.equal(journal.releases.lastAcceptedRevision(), acceptedBefore, 'the previous release stays in force');
      assert.equal(journal.attempts.current(), undefined, 'no attempt started');
      assert.equal(journal.attempts.latest()?.id, latestBefore?.id);
      const dnsAfter = await read('Deployment', 'dns');
      assert.equal(dnsAfter?.metadata.resourceVersion, dnsBefore?.metadata.resourceVersion, 'the cluster is unchanged');
      await awaitDrained(f, r, clusterId);
      const reported = (await storedReports(f, clusterId)).filter((x) => x.kind === 'release-refused');
      assert.equal(reported.filter((x) => ours(x.body as { reason: string; revision?: number })).length, 1, 'reported once');

      // The compromised hub comes back and re-sends its desired release: refused again, recorded and reported no more.
      const resent = nextEvent(r.runtime.hubLink!, 'release', () => true, 15_000);
      const again = nextEvent(r.runtime.hubLink!, 'welcome', () => true, 15_000);
      await f.restart(compromised);
      await again;
      await resent;
      await awaitDrained(f, r, clusterId);
      const reportedAgain = (await storedReports(f, clusterId)).filter((x) => x.kind === 'release-refused' && ours(x.body as { reason: string; revision?: number }));
      assert.equal(reportedAgain.length, 1, 'still reported once after the re-send');
      assert.equal(refusals().filter(ours).length, 1, 'recorded once in the journal');

      // The honest hub (its own key, real time) again.
      const back = nextEvent(r.runtime.hubLink!, 'welcome', () => true, 15_000);
      await f.restart();
      await back;
    });
  }

  test('a revoked agent stops connecting and says Revoked (Secret, status ConfigMap, Event, metrics) until a new bootstrap, then comes back with a new key', async () => {
    // A token that can change in place, as a file mounted from a Secret does.
    let token: string | undefined = BOOTSTRAP_TOKEN;
    await rtNow().stop();
    rt = await startRuntime({ clusterId, namespace: agentNs.name, hubUrl: f.hub.url, releaseKey: f.key.publicKey, journalPath, bootstrapToken: () => token, uninstallOnDeregister: true });
    await eventually('the agent to connect', async () => (rtNow().runtime.hubLink?.connected ? true : undefined));
    const oldKey = (await rtNow().runtime.credentials.load())?.key;
    assert.ok(oldKey);
    const standing = async () => (await agentNs.core.readNamespacedConfigMap({ name: STATUS_CONFIGMAP, namespace: agentNs.name })).data ?? {};
    await eventually('the status ConfigMap to say Registered', async () => ((await standing()).hubStanding === 'Registered' ? true : undefined));

    assert.equal((await f.api('POST', `/api/v1/clusters/${clusterId}/revoke`)).status, 200);
    const revoked = await eventually('the status ConfigMap to say Revoked', async () => {
      const d = await standing();
      return d.hubStanding === 'Revoked' ? d : undefined;
    });
    assert.match(revoked.hubStandingReason ?? '', /revoked/);
    assert.ok(revoked.upgradeStatus, 'the attempt status beside it is untouched');
    const events = await agentNs.core.listNamespacedEvent({ namespace: agentNs.name });
    assert.ok(events.items.some((e) => e.reason === 'HubRevoked' && e.type === 'Warning'), 'a Warning Event says so');
    const stored = await rtNow().runtime.credentials.load();
    assert.ok(stored?.revoked, 'the revocation is in the Secret');
    assert.equal(stored.registered, false);
    const metrics = new AgentMetrics({ journal: rtNow().runtime.journal, clusterId, version: '0.1.0', hubStanding: () => rtNow().runtime.hubStanding?.state });
    assert.match((await metrics.expose()).body, /^fleetlet_agent_hub_standing\{state="Revoked"\} 1$/m);

    // No knocking: a link retrying every 50-300 ms would have been back several times.
    await delay(1_500);
    assert.equal(rtNow().runtime.hubLink, undefined, 'no hub link while revoked');
    assert.equal((await view()).connected, false);
    // Nor after a restart with the token it was revoked under.
    await rtNow().stop();
    rt = await startRuntime({ clusterId, namespace: agentNs.name, hubUrl: f.hub.url, releaseKey: f.key.publicKey, journalPath, bootstrapToken: () => token, uninstallOnDeregister: true });
    await eventually('the restarted agent to know it is revoked', async () => (rtNow().runtime.hubStanding?.state === 'Revoked' ? true : undefined));
    await delay(500);
    assert.equal(rtNow().runtime.hubLink, undefined, 'a restart does not knock either');

    // A new bootstrap: the operator issues a token and it appears in the file.
    const issued = await f.api('POST', '/api/v1/bootstrap-tokens', { ttlSeconds: 600 });
    assert.equal(issued.status, 201, JSON.stringify(issued.body));
    token = issued.body.token as string;
    // Acting at the first conflict keeps the registrant's refusals under the hub's per-address throttle.
    const conflict = await eventually('the new key to reach the operator as a conflict', async () => {
      const c = await view();
      return c.keyConflicts.length > 0 ? c : undefined;
    }, 30_000, 20);
    const renewed = await rtNow().runtime.credentials.load();
    assert.ok(renewed && renewed.revoked === undefined, 'the revocation is cleared');
    assert.notEqual(renewed.key.publicKey, oldKey.publicKey, 'a new key: the revoked one may be what was stolen');
    assert.equal(conflict.keyConflicts[0].fingerprint, agentKeyFingerprint(renewed.key.publicKey));
    assert.equal(conflict.registration, 'Revoked', 'the old key stays revoked until the operator decides');
    const trusted = await f.api('POST', `/api/v1/clusters/${clusterId}/trust-key`, { fingerprint: agentKeyFingerprint(renewed.key.publicKey) });
    assert.equal(trusted.status, 200, JSON.stringify(trusted.body));
    await eventually('the agent to connect with its new key', async () => ((await view()).connected && rtNow().runtime.hubLink?.connected ? true : undefined));
    await eventually('the status ConfigMap to say Registered again', async () => ((await standing()).hubStanding === 'Registered' ? true : undefined));
    assert.equal(rtNow().runtime.hubStanding?.state, 'Registered');
    agentKey = renewed.key;
  });

  test('deregistration with uninstall configured removes what the agent installed', async () => {
    const r = rtNow();
    assert.ok((await r.runtime.journal.installed.all()).length === 3, 'three components installed');
    const deregistered = nextEvent(r.runtime.hubLink!, 'deregistered', () => true, 15_000);
    const del = await f.api('DELETE', `/api/v1/clusters/${clusterId}`);
    assert.equal(del.status, 200);
    await deregistered;

    const objects: [string, string, string][] = [
      ['apps/v1', 'Deployment', 'dns'],
      ['apps/v1', 'DaemonSet', 'proxy'],
      ['apps/v1', 'StatefulSet', 'metrics-store'],
      ['apps/v1', 'Deployment', 'metrics-api'],
      ['v1', 'ConfigMap', 'dns-config'],
      ['v1', 'Service', 'metrics'],
    ];
    await eventually('every installed object to be removed', async () => {
      for (const [apiVersion, kind, name] of objects) if (await read(kind, name, apiVersion)) return undefined;
      return true;
    });
    assert.deepEqual(r.runtime.journal.installed.all(), [], 'the journal records nothing installed');
    assert.equal((await r.runtime.credentials.load())?.registered, false, 'the agent knows it must register again');
    assert.equal((await f.api('GET', `/api/v1/clusters/${clusterId}`)).status, 404);
    const stale = await connectRaw(f.hub.url, { key: agentKey, clusterId });
    assert.ok(stale.ok);
    stale.ws.send(encodeMessage({ type: 'hello', clusterId, agentVersion: '0.1.0', inventory: { components: [], kubernetesVersion: '', targetInfrastructure: '', overrides: [] }, lastRevision: 0, outbox: { firstSeq: null, lastSeq: 0 }, proof: stale.prove('hello') }));
    assert.equal(((await stale.next()) as { code?: string }).code, 'Deregistered', 'the key no longer opens a session');
  });
});
