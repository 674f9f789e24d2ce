// Two hub replicas (`fleetlet hub --database postgres://…`, real processes)
// on one private PostgreSQL, behind a round-robin "Service". Agents are
// spread over both and stream reports the whole time. Acceptance, a release
// push and a deregistration made through one replica reach agents connected
// to the other; `connected` is fleet-wide. Then the replica driving the
// rollout is killed (SIGKILL) mid-rollout and mid-stream: the survivor takes
// the rollout over and finishes it with one release per cluster, the killed
// replica's agents reconnect to the survivor, and every report is stored and
// counted exactly once.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AGENT_PATH } from '../../src/protocol/messages.ts';
import { exportPrivateKeyPem, generateReleaseKey } from '../../src/protocol/signing.ts';
import { startPostgres, type PrivatePostgres } from '../../src/testbed/postgres.ts';
import { nextEvent } from '../support/events.ts';
import { answerReleases, api, assertStoredOnce, leading, problems, startReplica, stopReplicas, until, type Replica } from '../support/hub-replicas.ts';
import { startServiceBalancer, type ServiceBalancer } from '../support/service-balancer.ts';
import { sampleReleaseRequest } from '../support/releases.ts';
import { createTestAgent, type TestAgent } from '../support/test-agent.ts';

describe('hub replicas on one PostgreSQL', () => {
  let pg: PrivatePostgres;
  let dir: string;
  const replicas: Replica[] = [];
  let service: ServiceBalancer | undefined;
  const agents = new Map<string, TestAgent>();

  before(async () => {
    pg = await startPostgres();
    dir = mkdtempSync(join(tmpdir(), 'fleetlet-replicas-'));
  });

  after(async () => {
    await Promise.all([...agents.values()].map((a) => a.link.stop()));
    await service?.close();
    await stopReplicas(replicas);
    await pg?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('delivers across replicas, and survives the rollout driver killed mid-rollout with no report lost or counted twice', { timeout: 300_000 }, async () => {
    const database = await pg.createDatabase('hub');
    const key = generateReleaseKey();
    const keyFile = join(dir, 'release.pem');
    writeFileSync(keyFile, exportPrivateKeyPem(key.privateKey), { mode: 0o600 });
    // Started together: the schema is migrated once.
    replicas.push(...(await Promise.all([startReplica('a', database, keyFile), startReplica('b', database, keyFile)])));
    const [a, b] = replicas as [Replica, Replica];
    service = await startServiceBalancer([a.port, b.port]);
    await until('one replica to drive rollouts', () => (leading(a) !== leading(b)) || undefined);

    // ---- enrol: registrations land on both replicas; every acceptance goes through replica a.
    const ids = ['edge-0', 'edge-1', 'edge-2', 'edge-3', 'edge-4', 'edge-5', 'edge-x'];
    /** Reports each agent put in its outbox: upgrade-completed events (telemetry) and attempt transitions. */
    const telemetrySent = new Map<string, number>();
    for (const id of ids) {
      const agent = createTestAgent({ url: service.url(AGENT_PATH), clusterId: id, releaseKey: key.publicKey, now: () => new Date(), link: { heartbeatMs: 300 } });
      agents.set(id, agent);
      telemetrySent.set(id, 0);
      const pending = nextEvent(agent.link, 'registration', (r: { status: string }) => r.status === 'pending');
      agent.link.start();
      await pending;
    }
    assert.deepEqual(new Set(service.picks), new Set([a.port, b.port]), 'registrants on both replicas');
    for (const id of ids) {
      const welcomed = nextEvent(agents.get(id)?.link as TestAgent['link'], 'welcome', () => true, 15_000);
      assert.equal((await api(a.port, 'POST', `/api/v1/clusters/${id}/accept`)).status, 200);
      await welcomed;
    }
    // Which replica holds each agent now (its hello connection is the latest pick for it).
    const holder = async (id: string): Promise<Replica | undefined> => {
      for (const r of replicas) if (r.lines.some((l) => l.msg === 'agent connected' && l.session === id)) return r;
      return undefined;
    };
    const onB = await until('an agent connected to replica b', async () => {
      for (const id of ids) if ((await holder(id)) === b) return id;
      return undefined;
    });
    // connected is fleet-wide: replica a reports b's agent connected.
    await until(`replica a to see ${onB} connected`, async () => (await api(a.port, 'GET', `/api/v1/clusters/${onB}`)).body.connected === true || undefined, 10_000);

    // ---- report streams: every agent keeps reporting until told to stop.
    let streaming = true;
    const stream = (async () => {
      let n = 0;
      while (streaming) {
        for (const [id, agent] of agents) {
          // A steady stream, not a flood: an agent whose hub lags (a loaded machine) waits until its outbox is short again.
          if (id === 'edge-x' || agent.outbox.stats().depth > 10) continue;
          const count = (telemetrySent.get(id) ?? 0) + 1;
          telemetrySent.set(id, count);
          agent.outbox.enqueue('upgrade-completed', { cluster_id: id, target_infrastructure: 'aws', release: { name: 'edge-addons', version: '1.0.0' }, result: 'Succeeded', durationMs: count, attemptId: `${id}-t${count}`, completedAt: new Date().toISOString() });
          agent.link.flush();
        }
        n++;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      return n;
    })();

    // ---- a release pushed through the replica that does not hold the agent, then a deregistration likewise.
    const x = agents.get('edge-x') as TestAgent;
    const xHolder = (await holder('edge-x')) as Replica;
    const other = xHolder === a ? b : a;
    const put = await api(other.port, 'PUT', '/api/v1/clusters/edge-x/release', sampleReleaseRequest('9.9.9'));
    assert.equal(put.status, 200);
    await until('edge-x to receive the release pushed through the other replica', () => x.releases.some((r) => r.version === '9.9.9') || undefined, 2000);
    assert.equal((await api(other.port, 'DELETE', '/api/v1/clusters/edge-x')).status, 200);
    await until('edge-x to be told it was deregistered, through the other replica', () => x.deregistrations.length === 1 || undefined, 2000);

    // ---- the rollout: one cluster at a time; each agent reports success when its release arrives.
    const fleet = ids.filter((id) => id !== 'edge-x');
    const stopAnswering = answerReleases(() => fleet.map((id) => [id, agents.get(id) as TestAgent]));
    try {
      const created = await api(b.port, 'POST', '/api/v1/rollouts', {
        name: 'ha',
        target: { kind: 'Release', release: sampleReleaseRequest('2.0.0') },
        selector: { clusterIds: fleet },
        strategy: { type: 'Progressive', maxConcurrency: 1, progressDeadline: '10m' },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      let seen: unknown;
      await until('two clusters of the rollout to succeed', async () => {
        seen = (await api(a.port, 'GET', '/api/v1/rollouts/ha?clusters=all')).body;
        return (seen as { counts: { Succeeded: number } }).counts.Succeeded >= 2 || undefined;
      }, 90_000).catch((err: unknown) => {
        throw new Error(`${(err as Error).message}: ${JSON.stringify(seen)}; agents: ${JSON.stringify(fleet.map((id) => [id, (agents.get(id) as TestAgent).releases.map((r) => r.revision), (agents.get(id) as TestAgent).outbox.stats(), (agents.get(id) as TestAgent).link.connected]))}\n${problems(replicas)}`);
      });

      // ---- kill -9 the replica driving rollouts, mid-rollout and mid-stream.
      const driver = leading(a) ? a : b;
      const survivor = driver === a ? b : a;
      driver.child.kill('SIGKILL');
      await driver.exited;
      await until('the survivor to take the rollout over', () => leading(survivor) || undefined, 5_000);
      let last: unknown;
      const done = await until('the rollout to finish on the survivor', async () => {
        const s = (await api(survivor.port, 'GET', '/api/v1/rollouts/ha?clusters=all')).body;
        last = s;
        return s.phase === 'Succeeded' ? s : undefined;
      }, 120_000).catch((err: unknown) => {
        throw new Error(`${(err as Error).message}: ${JSON.stringify(last)}; agents: ${JSON.stringify(fleet.map((id) => [id, (agents.get(id) as TestAgent).releases.map((r) => r.revision), (agents.get(id) as TestAgent).outbox.stats(), (agents.get(id) as TestAgent).link.connected]))}`);
      });
      assert.equal(done.counts.Succeeded, fleet.length);
      // No step taken twice: each cluster got exactly one release from the rollout.
      for (const id of fleet) {
        const versions = (agents.get(id) as TestAgent).releases.filter((r) => r.version === '2.0.0').map((r) => r.revision);
        assert.equal(new Set(versions).size, 1, `${id} was sent one 2.0.0 revision (${versions.join(',')})`);
      }
      // Every agent is back, on the survivor.
      for (const id of fleet) {
        await until(`${id} connected again`, async () => (await api(survivor.port, 'GET', `/api/v1/clusters/${id}`)).body.connected === true || undefined);
      }

      // ---- the streams stop; every report is stored once and counted once.
      streaming = false;
      assert.ok((await stream) > 5, 'the streams ran across the kill');
      for (const id of fleet) {
        const agent = agents.get(id) as TestAgent;
        await until(`${id}'s outbox to drain`, () => agent.outbox.stats().depth === 0 || undefined, 30_000);
        await assertStoredOnce(survivor.port, id, agent.outbox.stats().lastSeq, telemetrySent.get(id) ?? 0);
      }
    } finally {
      stopAnswering();
      streaming = false;
    }
  });
});
