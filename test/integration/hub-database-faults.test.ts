// Two hub replicas (real processes) on one private PostgreSQL, each reaching
// it through a Toxiproxy of its own, behind a round-robin "Service"; agents
// with real journals stream reports the whole time. Two faults:
// - PostgreSQL stops and starts again: both replicas turn NotReady (/readyz
//   503 with the reason), the API answers 503 DatabaseUnavailable, every
//   agent is sent away with 1013 (try again later) and kept out until the
//   database is back; then both recover by themselves and the agents return.
// - The replica driving rollouts is cut off from PostgreSQL (a partition:
//   Toxiproxy drops every byte both ways): it alone turns NotReady, sends its
//   agents away, and steps down; the other takes the rollouts over and runs
//   one to the end; healed, the cut-off replica is ready again by itself.
// After each, every report in every agent's journal is stored once and its
// telemetry counted once. Before them, a replica whose listening connection
// is ended (pg_terminate_backend) while another publishes a release replays
// what it missed: the release reaches its agent without a reconnect.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { AGENT_PATH, closeCodes } from '../../src/protocol/messages.ts';
import { exportPrivateKeyPem, generateReleaseKey } from '../../src/protocol/signing.ts';
import { Journal } from '../../src/store/journal.ts';
import { startPostgres, type PrivatePostgres } from '../../src/testbed/postgres.ts';
import { nextEvent } from '../support/events.ts';
import { answerReleases, api, assertStatus, assertStoredOnce, leading, problems, startReplica, stopReplicas, until, type Replica } from '../support/hub-replicas.ts';
import { sampleReleaseRequest } from '../support/releases.ts';
import { startServiceBalancer, type ServiceBalancer } from '../support/service-balancer.ts';
import { createTestAgent, type TestAgent } from '../support/test-agent.ts';
import { startToxiproxy, type Proxy, type Toxiproxy } from '../support/toxiproxy.ts';

interface Fleet {
  agent: TestAgent;
  journal: Journal;
  /** upgrade-completed reports put in the journal. */
  telemetrySent: number;
  /** Close codes the agent saw, with the time. */
  closes: { code: number; at: number }[];
}

const ids = ['edge-0', 'edge-1', 'edge-2', 'edge-3'];

describe('hub replicas when PostgreSQL goes away', () => {
  let postgres: PrivatePostgres;
  let toxiproxy: Toxiproxy;
  let dir: string;
  const proxies = new Map<string, Proxy>();
  const replicas: Replica[] = [];
  let service: ServiceBalancer | undefined;
  const fleet = new Map<string, Fleet>();
  let key: ReturnType<typeof generateReleaseKey>;
  let database: string;
  let streaming = false;
  let stream: Promise<void> | undefined;

  const readyz = async (r: Replica): Promise<{ status: number; body: { status: string; reason?: string; message?: string } }> => {
    const res = await fetch(`http://127.0.0.1:${r.port}/readyz`).catch((err: unknown) => {
      throw new Error(`replica ${r.name} does not answer: ${(err as Error).message}\n${problems(replicas)}`);
    });
    return { status: res.status, body: (await res.json()) as { status: string; reason?: string; message?: string } };
  };
  const holder = (id: string): Replica | undefined => {
    // The replica whose log shows the agent's latest welcome.
    let best: { r: Replica; time: number } | undefined;
    for (const r of replicas) {
      for (const l of r.lines) if (l.msg === 'agent connected' && l.session === id && (best === undefined || Number(l.time) >= best.time)) best = { r, time: Number(l.time) };
    }
    return best?.r;
  };
  const allConnected = (): boolean => [...fleet.values()].every((f) => f.agent.link.connected);
  const state = (): string => JSON.stringify([...fleet].map(([id, f]) => [id, f.agent.link.connected, f.journal.outbox.stats(), f.closes.map((c) => c.code)]));

  /** Stops the report streams, waits for every journal to drain, and checks what the hub stored against it. */
  async function drainAndCount(port: number): Promise<void> {
    streaming = false;
    await stream;
    for (const [id, f] of fleet) {
      await until(() => `${id}'s journal to drain: ${state()}`, () => f.journal.outbox.stats().depth === 0 || undefined, 60_000);
      await assertStoredOnce(port, id, f.journal.outbox.stats().lastSeq, f.telemetrySent);
    }
  }

  function startStreams(): void {
    streaming = true;
    stream = (async () => {
      let n = 0;
      while (streaming) {
        for (const [id, f] of fleet) {
          // A steady stream, not a flood: while the hub cannot take reports, the journal holds at most a few more.
          if (f.journal.outbox.stats().depth > 10) continue;
          f.telemetrySent++;
          f.journal.outbox.enqueue('upgrade-completed', { cluster_id: id, target_infrastructure: 'aws', release: { name: 'edge-addons', version: '1.0.0' }, result: 'Succeeded', durationMs: n, attemptId: `${id}-t${f.telemetrySent}`, completedAt: new Date().toISOString() });
          f.agent.link.flush();
        }
        n++;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
  }

  before(async () => {
    postgres = await startPostgres();
    toxiproxy = await startToxiproxy();
    dir = mkdtempSync(join(tmpdir(), 'fleetlet-db-faults-'));
    database = await postgres.createDatabase('hub');
    key = generateReleaseKey();
    const keyFile = join(dir, 'release.pem');
    writeFileSync(keyFile, exportPrivateKeyPem(key.privateKey), { mode: 0o600 });
    for (const name of ['a', 'b']) {
      const proxy = await toxiproxy.createProxy(`pg-${name}`, postgres.port);
      proxies.set(name, proxy);
    }
    const via = (name: string): string => database.replace(`:${postgres.port}/`, `:${proxies.get(name)?.port}/`);
    replicas.push(...(await Promise.all([startReplica('a', via('a'), keyFile), startReplica('b', via('b'), keyFile)])));
    const [a, b] = replicas as [Replica, Replica];
    service = await startServiceBalancer([a.port, b.port]);
    await until('one replica to drive rollouts', () => (leading(a) !== leading(b)) || undefined);
    for (const [i, id] of ids.entries()) {
      // Each agent opens two connections (register, then hello): one extra connection in between spreads the hellos over both replicas.
      if (i % 2 === 1) await fetch(`http://127.0.0.1:${service.port}/livez`);
      const journal = Journal.open(join(dir, `${id}.journal`), { durability: 'normal' });
      const agent = createTestAgent({ url: service.url(AGENT_PATH), clusterId: id, releaseKey: key.publicKey, now: () => new Date(), outbox: journal.outbox, link: { heartbeatMs: 300 } });
      const f: Fleet = { agent, journal, telemetrySent: 0, closes: [] };
      agent.link.on('disconnected', (d: { code: number }) => f.closes.push({ code: d.code, at: Date.now() }));
      fleet.set(id, f);
      const pending = nextEvent(agent.link, 'registration', (r: { status: string }) => r.status === 'pending');
      agent.link.start();
      await pending;
      const welcomed = nextEvent(agent.link, 'welcome', () => true, 15_000);
      assertStatus(await api(a.port, 'POST', `/api/v1/clusters/${id}/accept`), 200, a, `accepting ${id}`);
      await welcomed;
    }
  });

  after(async () => {
    streaming = false;
    await stream;
    await Promise.all([...fleet.values()].map((f) => f.agent.link.stop()));
    for (const f of fleet.values()) f.journal.close();
    await service?.close();
    await stopReplicas(replicas);
    await toxiproxy?.stop();
    await postgres?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a replica whose listening connection was ended replays what it missed', { timeout: 120_000 }, async () => {
    const [a, b] = replicas as [Replica, Replica];
    // An agent of its own, connected straight to replica a, with heartbeats far apart: it has no reason to reconnect.
    const journal = Journal.open(join(dir, 'edge-r.journal'), { durability: 'normal' });
    const agent = createTestAgent({ url: `ws://127.0.0.1:${a.port}${AGENT_PATH}`, clusterId: 'edge-r', releaseKey: key.publicKey, now: () => new Date(), outbox: journal.outbox, link: { heartbeatMs: 5_000 } });
    const closes: number[] = [];
    agent.link.on('disconnected', (d: { code: number }) => closes.push(d.code));
    const admin = new pg.Client({ connectionString: database });
    await admin.connect();
    try {
      const pending = nextEvent(agent.link, 'registration', (r: { status: string }) => r.status === 'pending');
      agent.link.start();
      await pending;
      const welcomed = nextEvent(agent.link, 'welcome', () => true, 15_000);
      assertStatus(await api(b.port, 'POST', '/api/v1/clusters/edge-r/accept'), 200, b, 'accepting edge-r');
      await welcomed;
      closes.length = 0;
      const replays = a.lines.filter((l) => l.msg === 'listening to other replicas again; replayed the events missed meanwhile').length;

      // Replica a is frozen while its listening connection is ended and replica b sets the agent's release: a cannot hear it.
      a.child.kill('SIGSTOP');
      try {
        const ended = await admin.query<{ ok: boolean }>('SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1', [`fleetlet-hub listen ${a.child.pid}@${hostname()}`]);
        assert.deepEqual(ended.rows, [{ ok: true }], 'replica a has one listening connection, and it was ended');
        const put = await api(b.port, 'PUT', '/api/v1/clusters/edge-r/release', sampleReleaseRequest('7.0.0'));
        assertStatus(put, 200, b, 'a release for edge-r');
      } finally {
        a.child.kill('SIGCONT');
      }
      await until(() => `replica a to replay what it missed\n${problems(replicas)}`, () => a.lines.filter((l) => l.msg === 'listening to other replicas again; replayed the events missed meanwhile').length > replays || undefined, 20_000);
      const replay = a.lines.filter((l) => l.msg === 'listening to other replicas again; replayed the events missed meanwhile').at(-1);
      assert.ok(Number(replay?.replayed) >= 1, JSON.stringify(replay));
      await until('the release to reach the agent on replica a', () => agent.releases.some((r) => r.version === '7.0.0') || undefined, 5_000);
      assert.deepEqual(closes, [], 'the agent never reconnected: the release came through the replay');
    } finally {
      await agent.link.stop();
      journal.close();
      await admin.end();
    }
  });

  it('PostgreSQL stopped and started under both replicas: NotReady and 503 meanwhile, agents sent away and back, no report lost or counted twice', { timeout: 240_000 }, async () => {
    const [a, b] = replicas as [Replica, Replica];
    await until(() => `agents on both replicas: ${ids.map((id) => holder(id)?.name).join(',')}`, () => (ids.some((id) => holder(id) === a) && ids.some((id) => holder(id) === b)) || undefined);
    startStreams();
    await until('reports flowing', async () => (await api(b.port, 'GET', '/api/v1/clusters/edge-0/reports?after=0&limit=1')).body.reports.length > 0 || undefined);

    const stoppedAt = Date.now();
    await postgres.stopServer();
    for (const r of replicas) {
      const down = await until(`replica ${r.name} to say it is not ready`, async () => {
        const res = await readyz(r);
        return res.status === 503 ? res : undefined;
      }, 20_000);
      assert.equal(down.body.reason, 'DatabaseUnavailable');
      assert.match(down.body.message ?? '', /cannot reach its database/);
      // A write is refused with the reason, not failed with 500.
      const put = await api(r.port, 'PUT', '/api/v1/clusters/edge-0/release', sampleReleaseRequest('5.0.0'));
      assertStatus(put, 503, r, 'a release while the database is down');
      assert.equal(put.body.error.reason, 'DatabaseUnavailable');
      // Liveness stays: restarting the replica would not bring the database back.
      assert.equal((await fetch(`http://127.0.0.1:${r.port}/livez`)).status, 200);
    }
    // Every agent was sent away with "try again later", and none is let back in while the database is down.
    await until(() => `every agent sent away with 1013: ${state()}`, () => [...fleet.values()].every((f) => f.closes.some((c) => c.at >= stoppedAt && c.code === closeCodes.unavailable)) || undefined, 20_000);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.ok(![...fleet.values()].some((f) => f.agent.link.connected), `no agent connected while the database is down: ${state()}`);

    await postgres.startServer();
    for (const r of replicas) await until(`replica ${r.name} ready again by itself`, async () => (await readyz(r)).status === 200 || undefined, 30_000);
    await until(() => `every agent back: ${state()}`, () => allConnected() || undefined, 30_000);
    // Both replicas listen again: a release set through one reaches every agent, on either.
    const put = await api(a.port, 'PUT', '/api/v1/clusters/edge-1/release', sampleReleaseRequest('5.0.1'));
    assertStatus(put, 200, a, 'a release after the restart');
    const put2 = await api(b.port, 'PUT', '/api/v1/clusters/edge-2/release', sampleReleaseRequest('5.0.2'));
    assertStatus(put2, 200, b, 'a release after the restart');
    await until('the releases to arrive after the restart', () => (fleet.get('edge-1')?.agent.releases.some((r) => r.version === '5.0.1') && fleet.get('edge-2')?.agent.releases.some((r) => r.version === '5.0.2')) || undefined, 5_000);
    // Reports kept flowing after the restart, then all of them are accounted for.
    const mark = [...fleet.values()].map((f) => f.telemetrySent);
    await until('more reports after the restart', () => [...fleet.values()].every((f, i) => f.telemetrySent > (mark[i] ?? 0) + 3) || undefined);
    await drainAndCount(a.port).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\n${problems(replicas)}`);
    });
  });

  it('the rollout driver cut off from PostgreSQL (Toxiproxy): it turns NotReady and sends its agents away, the other takes over, and it recovers by itself', { timeout: 300_000 }, async () => {
    const [a, b] = replicas as [Replica, Replica];
    const driver = await until('a replica driving rollouts', () => (leading(a) ? a : leading(b) ? b : undefined), 20_000);
    const other = driver === a ? b : a;
    const proxy = proxies.get(driver.name) as Proxy;
    await until(() => `every agent connected: ${state()}`, () => allConnected() || undefined, 30_000);
    const onDriver = ids.filter((id) => holder(id) === driver);
    startStreams();

    // ---- the partition: every byte between the driver and PostgreSQL is dropped, both ways, on every connection.
    const cutAt = Date.now();
    const driverLines = driver.lines.length;
    await proxy.addToxic({ name: 'cut-up', type: 'timeout', stream: 'upstream', attributes: { timeout: 0 } });
    await proxy.addToxic({ name: 'cut-down', type: 'timeout', stream: 'downstream', attributes: { timeout: 0 } });
    const down = await until(`replica ${driver.name} to say it is not ready`, async () => {
      const res = await readyz(driver);
      return res.status === 503 ? res : undefined;
    }, 20_000);
    assert.equal(down.body.reason, 'DatabaseUnavailable');
    assert.match(down.body.message ?? '', /cannot reach its database/);
    assert.equal((await readyz(other)).status, 200, 'the other replica stays ready');
    const refused = await api(driver.port, 'POST', '/api/v1/clusters/edge-0/accept');
    assertStatus(refused, 503, driver, 'an accept while cut off');
    assert.equal(refused.body.error.reason, 'DatabaseUnavailable');

    // The other replica takes the rollouts, and every agent is connected again: to it, since the cut-off one refuses them.
    await until(() => `replica ${other.name} to drive rollouts\n${problems(replicas)}`, () => leading(other) || undefined, 30_000);
    assert.equal(leading(driver), false);
    await until(() => `the cut-off replica's agents sent away with 1013 (${onDriver.join(', ')}): ${state()}`, () => onDriver.every((id) => fleet.get(id)?.closes.some((c) => c.at >= cutAt && c.code === closeCodes.unavailable)) || undefined, 20_000);
    await until(() => `every agent connected again: ${state()}`, () => allConnected() || undefined, 30_000);
    assert.ok(!driver.lines.slice(driverLines).some((l) => l.msg === 'agent connected'), 'the cut-off replica lets no agent in');

    // ---- a rollout, created through and driven by the replica that can reach the database.
    const stopAnswering = answerReleases(() => [...fleet].map(([id, f]) => [id, f.agent]));
    try {
      const created = await api(other.port, 'POST', '/api/v1/rollouts', {
        name: 'cut',
        target: { kind: 'Release', release: sampleReleaseRequest('3.0.0') },
        selector: { clusterIds: ids },
        strategy: { type: 'Progressive', maxConcurrency: 2, progressDeadline: '10m' },
      });
      assertStatus(created, 201, other, 'creating the rollout');
      let last: unknown;
      await until('the rollout to finish while the driver is cut off', async () => {
        last = (await api(other.port, 'GET', '/api/v1/rollouts/cut')).body;
        return (last as { phase: string }).phase === 'Succeeded' || undefined;
      }, 120_000).catch((err: unknown) => {
        throw new Error(`${(err as Error).message}: ${JSON.stringify(last)}; ${state()}\n${problems(replicas)}`);
      });
      for (const [id, f] of fleet) {
        const revisions = f.agent.releases.filter((r) => r.version === '3.0.0').map((r) => r.revision);
        assert.equal(revisions.length, 1, `${id} was sent one 3.0.0 release (${revisions.join(',')})`);
      }
    } finally {
      stopAnswering();
    }

    // ---- healed: the cut-off replica is ready again by itself and serves writes.
    await proxy.removeToxic('cut-up');
    await proxy.removeToxic('cut-down');
    await until(`replica ${driver.name} ready again by itself`, async () => (await readyz(driver)).status === 200 || undefined, 40_000);
    const put = await api(driver.port, 'PUT', '/api/v1/clusters/edge-3/release', sampleReleaseRequest('3.0.1'));
    assertStatus(put, 200, driver, 'a release through the healed replica');
    await until('a release set through the healed replica to arrive', () => fleet.get('edge-3')?.agent.releases.some((r) => r.version === '3.0.1') || undefined, 5_000);
    await drainAndCount(other.port).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\n${problems(replicas)}`);
    });
  });
});
