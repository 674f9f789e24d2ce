// The hub under attack and at enrolment scale (docs/security.md):
//   flood: one flooder sending malformed frames at a fixed rate (reconnecting
//     whenever the hub cuts it off) while honest simulated agents report:
//     honest report → ack latency, hub RSS growth, time to cut a flooding
//     connection off.
//   registration: N agents register with proof of possession (challenge,
//     register signed with a fresh Ed25519 key), an operator accepts each
//     through the API, and each says a proven hello: wall time and hub CPU
//     per phase.
// The hub runs alone in a child process (hub-process.ts).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { defaultBackoff } from '../src/lib/backoff.ts';
import { generateAgentKey, signChallenge, type AgentKeyPair } from '../src/protocol/agent-identity.ts';
import { AGENT_PATH, PROTOCOL_VERSION } from '../src/protocol/messages.ts';
import { freePort } from '../src/testbed/control-plane.ts';
import { seedClusters } from './hub-seed.ts';
import { BENCH_ADMIN_TOKEN, cpuPercent, launchHub } from './hub-process.ts';
import { SimFleet } from './sim-agent.ts';
import { heading, line, mib, ms, summarize } from './stats.ts';

export interface HubFloodOptions {
  honestAgents: number;
  /** Malformed frames per second the flooder sends. */
  floodRate: number;
  measureMs: number;
  reportIntervalMs: number;
  random: () => number;
}

export async function hubFloodBench(o: HubFloodOptions): Promise<void> {
  heading(`hub under a junk-frame flood: ${o.floodRate} malformed frames/s from one flooder while ${o.honestAgents} honest agents report every ~${o.reportIntervalMs} ms`);
  const dir = mkdtempSync(join(tmpdir(), 'fleetlet-bench-abuse-'));
  const dbPath = join(dir, 'hub.db');
  try {
    const agents = await seedClusters(dbPath, o.honestAgents, () => new Date());
    const port = await freePort();
    const hub = await launchHub({ dbPath, port, heartbeatMs: 10_000 });
    const baseUrl = `ws://127.0.0.1:${port}`;
    const fleet = new SimFleet({ baseUrl, agents, reportIntervalMs: o.reportIntervalMs, batchSize: 2, connectConcurrency: 200, backoff: defaultBackoff, random: o.random });
    fleet.start();
    await fleet.awaitWelcomed(o.honestAgents, 120_000);
    fleet.setReporting(true);
    await sleep(Math.min(5_000, o.measureMs / 4));

    // Without the flood: the honest baseline.
    fleet.latencies = [];
    fleet.measuring = true;
    await sleep(o.measureMs / 2);
    fleet.measuring = false;
    const calm = summarize(fleet.latencies);
    const before = await hub.stats();

    const flooder = new Flooder(`${baseUrl}${AGENT_PATH}`, o.floodRate);
    fleet.latencies = [];
    fleet.measuring = true;
    const windowStart = performance.now();
    flooder.start();
    await sleep(o.measureMs);
    flooder.stop();
    fleet.measuring = false;
    const windowMs = performance.now() - windowStart;
    const during = await hub.stats();
    const flood = summarize(fleet.latencies);
    const cutoffs = summarize(flooder.cutoffMs);

    line('honest report → ack p50 / p99 / max, no flood', `${ms(calm.p50)} / ${ms(calm.p99)} / ${ms(calm.max)} (${calm.n} batches)`);
    line('honest report → ack p50 / p99 / max, during the flood', `${ms(flood.p50)} / ${ms(flood.p99)} / ${ms(flood.max)} (${flood.n} batches)`);
    line('malformed frames sent', `${flooder.sent} in ${ms(windowMs)} = ${(flooder.sent / (windowMs / 1000)).toFixed(0)}/s over ${flooder.connections} connections`);
    line('flooding connection: first frame → cut off (1008) p50 / p99 / max', `${ms(cutoffs.p50)} / ${ms(cutoffs.p99)} / ${ms(cutoffs.max)} (${cutoffs.n} connections; close codes ${[...flooder.closeCodes].join(', ')})`);
    line('error replies the flooder received', `${flooder.replies} (${(flooder.replies / Math.max(1, flooder.sent) * 100).toFixed(2)} % of frames)`);
    line('hub RSS before → after the flood', `${mib(before.vmRss)} → ${mib(during.vmRss)} (${mib(during.vmRss - before.vmRss)} growth)`);
    line('hub CPU during the flood', `${cpuPercent(before, during).toFixed(0)} % of one core`);
    line('honest agents still connected', `${fleet.welcomedNow} of ${o.honestAgents} (hub errors ${fleet.hubErrors})`);
    await fleet.stop();
    await hub.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Sends malformed frames at a fixed rate; a new connection whenever the hub closes the current one. */
class Flooder {
  readonly #url: string;
  readonly #rate: number;
  #ws: WebSocket | undefined;
  #openedAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  sent = 0;
  replies = 0;
  connections = 0;
  cutoffMs: number[] = [];
  closeCodes = new Set<number>();

  constructor(url: string, rate: number) {
    this.#url = url;
    this.#rate = rate;
  }

  start(): void {
    this.#connect();
    const tickMs = 10;
    const perTick = Math.max(1, Math.round((this.#rate * tickMs) / 1000));
    let due = performance.now();
    this.#timer = setInterval(() => {
      // Catch up on missed ticks, so the rate holds when the loop is busy.
      const now = performance.now();
      while (due <= now) {
        due += tickMs;
        const ws = this.#ws;
        if (ws?.readyState !== WebSocket.OPEN) continue;
        for (let i = 0; i < perTick; i++) {
          ws.send(`{"type":"reports","protocolVersion":${PROTOCOL_VERSION},"junk":${this.sent}`);
          this.sent++;
        }
      }
    }, tickMs);
  }

  #connect(): void {
    if (this.#stopped) return;
    const ws = new WebSocket(this.#url);
    this.#ws = ws;
    this.connections++;
    ws.on('open', () => (this.#openedAt = performance.now()));
    ws.on('message', () => this.replies++);
    ws.on('error', () => undefined);
    ws.on('close', (code) => {
      this.closeCodes.add(code);
      if (this.#openedAt > 0) this.cutoffMs.push(performance.now() - this.#openedAt);
      this.#openedAt = 0;
      this.#connect();
    });
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#ws?.terminate();
  }
}

export interface RegistrationBenchOptions {
  agents: number;
  concurrency: number;
}

export async function registrationBench(o: RegistrationBenchOptions): Promise<void> {
  heading(`registration with proof of possession: ${o.agents} agents (challenge → signed register → operator accept → signed hello), ${o.concurrency} at a time`);
  const dir = mkdtempSync(join(tmpdir(), 'fleetlet-bench-register-'));
  try {
    const port = await freePort();
    const hub = await launchHub({ dbPath: join(dir, 'hub.db'), port, heartbeatMs: 10_000, maxPendingRegistrations: o.agents });
    const url = `ws://127.0.0.1:${port}${AGENT_PATH}`;
    const api = async (method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> => {
      const res = await fetch(`${hub.httpUrl}${path}`, { method, headers: { authorization: `Bearer ${BENCH_ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    const issued = await api('POST', '/api/v1/bootstrap-tokens', { maxUses: o.agents, ttlSeconds: 3600 });
    const token = issued.body.token as string;
    const t = performance.now();
    const ids = Array.from({ length: o.agents }, (_, i) => ({ id: `reg-${i}`, key: generateAgentKey() }));
    line('agent key pairs generated (in the simulator)', `${o.agents} in ${ms(performance.now() - t)}`);

    const phase = async (name: string, work: (a: { id: string; key: AgentKeyPair }) => Promise<boolean>): Promise<void> => {
      const before = await hub.stats();
      const start = performance.now();
      let ok = 0;
      let next = 0;
      await Promise.all(Array.from({ length: o.concurrency }, async () => {
        while (next < ids.length) {
          const a = ids[next++] as { id: string; key: AgentKeyPair };
          if (await work(a)) ok++;
        }
      }));
      const wall = performance.now() - start;
      const after = await hub.stats();
      line(name, `${ok} of ${o.agents} in ${ms(wall)} = ${(ok / (wall / 1000)).toFixed(0)}/s; hub CPU ${((after.cpuUserUs + after.cpuSystemUs - before.cpuUserUs - before.cpuSystemUs) / 1000 / o.agents).toFixed(2)} ms per agent, ${cpuPercent(before, after).toFixed(0)} % of one core; hub RSS ${mib(after.vmRss)}`);
    };

    await phase('register → pending', (a) => exchange(url, (nonce) => ({ type: 'register', bootstrapToken: token, clusterId: a.id, agentVersion: 'bench', publicKey: a.key.publicKey, proof: signChallenge(a.key.privateKey, 'register', nonce, a.id) }), (m) => m.type === 'registration' && m.status === 'pending'));
    await phase('operator accept (HTTP API)', async (a) => (await api('POST', `/api/v1/clusters/${a.id}/accept`)).status === 200);
    const outbox = { firstSeq: null, lastSeq: 0 };
    const inventory = { components: [], kubernetesVersion: 'v1.35.4', targetInfrastructure: 'bench', overrides: [] };
    await phase('proven hello → welcome', (a) => exchange(url, (nonce) => ({ type: 'hello', clusterId: a.id, agentVersion: 'bench', inventory, lastRevision: 0, outbox, proof: signChallenge(a.key.privateKey, 'hello', nonce, a.id) }), (m) => m.type === 'welcome'));
    await hub.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** One connection: waits for the challenge, sends what `opening` builds, resolves whether the first answer satisfies `ok`. */
function exchange(url: string, opening: (nonce: string) => Record<string, unknown>, ok: (m: { type?: string; status?: string }) => boolean): Promise<boolean> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { perMessageDeflate: true, handshakeTimeout: 30_000 });
    let done = false;
    const finish = (result: boolean): void => {
      if (done) return;
      done = true;
      resolve(result);
      ws.close();
    };
    ws.on('message', (data: Buffer) => {
      const m = JSON.parse(data.toString('utf8')) as { type?: string; status?: string; nonce?: string };
      if (m.type === 'challenge') ws.send(JSON.stringify({ ...opening(m.nonce ?? ''), protocolVersion: PROTOCOL_VERSION }));
      else finish(ok(m));
    });
    ws.on('error', () => finish(false));
    ws.on('close', () => finish(false));
  });
}
