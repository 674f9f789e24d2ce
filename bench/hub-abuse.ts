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
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { defaultBackoff } from '../src/lib/backoff.ts';
import { generateAgentKey, signChallenge, type AgentKeyPair } from '../src/protocol/agent-identity.ts';
import { AGENT_PATH, PROTOCOL_VERSION } from '../src/protocol/messages.ts';
import { freePort } from '../src/testbed/control-plane.ts';
import { seedClusters } from './hub-seed.ts';
import { BENCH_ADMIN_TOKEN, cpuPercent, launchHub, type HubStats } from './hub-process.ts';
import { SimFleet } from './sim-agent.ts';
import { heading, line, mib, ms, summarize } from './stats.ts';

export interface HubFloodOptions {
  honestAgents: number;
  /** Malformed frames per second the flooder sends. */
  floodRate: number;
  /** Length of each window: honest agents alone, then with the flooder. */
  measureMs: number;
  reportIntervalMs: number;
  random: () => number;
}

/**
 * The flooder's own source address. Linux routes all of 127.0.0.0/8 to the
 * loopback, so the flooder is another host to the hub, as an attacker is:
 * what the hub does to the flooder's address must not fall on the honest
 * agents (127.0.0.1).
 */
const FLOODER_ADDRESS = '127.0.0.2';

export async function hubFloodBench(o: HubFloodOptions): Promise<void> {
  heading(`hub under a junk-frame flood: ${o.floodRate} malformed frames/s from one flooder (${FLOODER_ADDRESS}, reconnecting at once after every close or refusal) while ${o.honestAgents} honest agents report every ~${o.reportIntervalMs} ms`);
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
    // This process's own event loop: a report's latency is measured here, so a busy simulator would show as a slow hub.
    const loop = monitorEventLoopDelay({ resolution: 10 });

    // Window 1, as long as the flood's: the honest agents alone. Whatever the hub's RSS does here (sessions, SQLite's page cache, the heap settling) is not the flood's doing.
    // Each window starts right after a full collection in the hub, so both start from the same kind of heap.
    const calmStart = await hub.stats({ gc: true });
    fleet.latencies = [];
    fleet.measuring = true;
    loop.enable();
    await sleep(o.measureMs);
    fleet.measuring = false;
    loop.disable();
    const calmLoop = loopSummary(loop);
    const calm = summarize(fleet.latencies);
    const calmEnd = await hub.stats();
    const floodStart = await hub.stats({ gc: true });

    // Window 2: the same, with the flooder.
    loop.reset();
    const flooder = new Flooder(`${baseUrl}${AGENT_PATH}`, o.floodRate, FLOODER_ADDRESS);
    fleet.latencies = [];
    fleet.measuring = true;
    loop.enable();
    flooder.start();
    await sleep(o.measureMs);
    flooder.stop();
    fleet.measuring = false;
    loop.disable();
    const floodLoop = loopSummary(loop);
    const floodEnd = await hub.stats();
    const flood = summarize(fleet.latencies);
    const cutoffs = summarize(flooder.cutoffMs);
    const windowS = (floodEnd.uptimeMs - floodStart.uptimeMs) / 1000;

    const grew = (a: HubStats, b: HubStats): string =>
      `RSS ${mib(b.vmRss - a.vmRss)} (heap used ${mib(b.heapUsed - a.heapUsed)}, heap total ${mib(b.heapTotal - a.heapTotal)}, external ${mib(b.external - a.external)}, array buffers ${mib(b.arrayBuffers - a.arrayBuffers)})`;
    line('honest report → ack p50 / p99 / max, no flood', `${ms(calm.p50)} / ${ms(calm.p99)} / ${ms(calm.max)} (${calm.n} batches)`);
    line('honest report → ack p50 / p99 / max, flood', `${ms(flood.p50)} / ${ms(flood.p99)} / ${ms(flood.max)} (${flood.n} batches)`);
    line('simulator event-loop delay p99 / max', `no flood ${calmLoop}; flood ${floodLoop}`);
    line('hub RSS: no-flood window start → end', `${mib(calmStart.vmRss)} → ${mib(calmEnd.vmRss)}: ${grew(calmStart, calmEnd)}`);
    line('hub RSS: flood window start → end', `${mib(floodStart.vmRss)} → ${mib(floodEnd.vmRss)}: ${grew(floodStart, floodEnd)}`);
    line('hub RSS growth due to the flood', `${mib(floodEnd.vmRss - floodStart.vmRss - (calmEnd.vmRss - calmStart.vmRss))} (flood window minus no-flood window)`);
    line('hub CPU / event loop busy, no flood', `${cpuPercent(calmStart, calmEnd).toFixed(0)} % of one core / ${eluPercent(calmStart, calmEnd).toFixed(0)} %`);
    line('hub CPU / event loop busy, flood', `${cpuPercent(floodStart, floodEnd).toFixed(0)} % of one core / ${eluPercent(floodStart, floodEnd).toFixed(0)} %`);
    line('flood start → first cut-off', flooder.firstCutoffMs === undefined ? 'never cut off' : `${ms(flooder.firstCutoffMs)} (the hub's BudgetExceeded reached the flooder)`);
    line('flooding connection: open → cut off p50 / max', `${ms(cutoffs.p50)} / ${ms(cutoffs.max)} (${cutoffs.n} connections cut off)`);
    line('flooder connection attempts', `${flooder.attempts} = ${(flooder.attempts / windowS).toFixed(0)}/s: ${flooder.accepted} accepted (WebSocket open), ${flooder.refusedSummary()}, ${flooder.unansweredSummary()}`);
    line('malformed frames sent / error replies', `${flooder.sent} (${(flooder.sent / windowS).toFixed(0)}/s while connected) / ${flooder.replies}`);
    line('close codes the flooder saw', [...flooder.closeCodes].map(([code, n]) => `${code}×${n}`).join(', ') || 'none');
    // What the hub retains after a full collection, against the same before the flood: garbage the flood left is not retained.
    const retained = await hub.stats({ gc: true });
    line('hub heap used after a full GC: before → after the flood', `${mib(floodStart.heapUsed)} → ${mib(retained.heapUsed)} (${mib(retained.heapUsed - floodStart.heapUsed)}); RSS then ${mib(retained.vmRss)}`);
    line('honest agents still connected', `${fleet.welcomedNow} of ${o.honestAgents} (hub errors ${fleet.hubErrors}, refused upgrades ${fleet.rejected})`);
    await fleet.stop();
    await hub.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function loopSummary(h: ReturnType<typeof monitorEventLoopDelay>): string {
  return `${ms(h.percentile(99) / 1e6)} / ${ms(h.max / 1e6)}`;
}

/** The hub's event loop busy (not idle) between two samples, in % of the wall time: includes time blocked in synchronous calls (SQLite commits), which CPU time does not. */
function eluPercent(a: HubStats, b: HubStats): number {
  const active = b.eluActiveMs - a.eluActiveMs;
  const idle = b.eluIdleMs - a.eluIdleMs;
  return (active / Math.max(1e-9, active + idle)) * 100;
}

/**
 * Sends malformed frames at a fixed rate from its own source address, and
 * opens a new connection at once whenever the hub closes or refuses the
 * current one: an attacker that never backs off.
 */
class Flooder {
  readonly #url: string;
  readonly #rate: number;
  readonly #localAddress: string;
  #ws: WebSocket | undefined;
  #openedAt = 0;
  #startedAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  sent = 0;
  replies = 0;
  attempts = 0;
  /** Upgrades the hub took (the WebSocket opened). */
  accepted = 0;
  /** Upgrades the hub answered with an HTTP status instead, by status and reason. */
  readonly refused = new Map<string, number>();
  /** Attempts that ended without any answer: by error code (ECONNRESET: the hub closed it as it accepted it). */
  readonly unanswered = new Map<string, number>();
  /** Open → the hub's BudgetExceeded, per connection. */
  cutoffMs: number[] = [];
  /** Flood start → the first BudgetExceeded. */
  firstCutoffMs: number | undefined;
  /** How the accepted connections ended. */
  readonly closeCodes = new Map<number, number>();

  constructor(url: string, rate: number, localAddress: string) {
    this.#url = url;
    this.#rate = rate;
    this.#localAddress = localAddress;
  }

  unansweredSummary(): string {
    const total = [...this.unanswered.values()].reduce((a, b) => a + b, 0);
    return `${total} closed without an answer${total === 0 ? '' : ` (${[...this.unanswered].map(([k, n]) => `${k} ×${n}`).join(', ')})`}`;
  }

  refusedSummary(): string {
    const total = [...this.refused.values()].reduce((a, b) => a + b, 0);
    return `${total} refused${total === 0 ? '' : ` (${[...this.refused].map(([k, n]) => `${k} ×${n}`).join(', ')})`}`;
  }

  start(): void {
    this.#startedAt = performance.now();
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
    const ws = new WebSocket(this.#url, { localAddress: this.#localAddress });
    this.#ws = ws;
    this.attempts++;
    let answered = false;
    let opened = false;
    ws.on('open', () => {
      answered = true;
      opened = true;
      this.accepted++;
      this.#openedAt = performance.now();
    });
    ws.on('unexpected-response', (_req, res) => {
      answered = true;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        const reason = /"reason":"(\w+)"/.exec(body)?.[1] ?? '?';
        const key = `${res.statusCode ?? 0} ${reason}`;
        this.refused.set(key, (this.refused.get(key) ?? 0) + 1);
        ws.terminate();
      });
    });
    ws.on('message', (data: Buffer) => {
      this.replies++;
      if (data.includes('"BudgetExceeded"')) {
        const now = performance.now();
        this.firstCutoffMs ??= now - this.#startedAt;
        this.cutoffMs.push(now - this.#openedAt);
      }
    });
    let error = 'none';
    ws.on('error', (err: NodeJS.ErrnoException) => (error = err.code ?? err.message));
    ws.on('close', (code) => {
      if (!answered) this.unanswered.set(error, (this.unanswered.get(error) ?? 0) + 1);
      if (opened) this.closeCodes.set(code, (this.closeCodes.get(code) ?? 0) + 1);
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

    const totals = { wall: 0, hubCpuUs: 0 };
    const phase = async (name: string, work: (a: { id: string; key: AgentKeyPair }) => Promise<boolean>): Promise<void> => {
      const before = await hub.stats();
      const ownBefore = process.cpuUsage();
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
      const own = process.cpuUsage(ownBefore);
      const after = await hub.stats();
      const hubCpuUs = after.cpuUserUs + after.cpuSystemUs - before.cpuUserUs - before.cpuSystemUs;
      totals.wall += wall;
      totals.hubCpuUs += hubCpuUs;
      line(name, `${ok} of ${o.agents} in ${ms(wall)} = ${(ok / (wall / 1000)).toFixed(0)}/s; hub CPU ${(hubCpuUs / 1e6).toFixed(1)} s = ${(hubCpuUs / 1000 / o.agents).toFixed(2)} ms per agent, ${cpuPercent(before, after).toFixed(0)} % of one core; simulator CPU ${(((own.user + own.system) / 1000 / wall) * 100).toFixed(0)} % of one core; hub RSS ${mib(after.vmRss)}`);
    };

    await phase('register → pending', (a) => exchange(url, (nonce) => ({ type: 'register', bootstrapToken: token, clusterId: a.id, agentVersion: 'bench', publicKey: a.key.publicKey, proof: signChallenge(a.key.privateKey, 'register', nonce, a.id) }), (m) => m.type === 'registration' && m.status === 'pending'));
    await phase('operator accept (HTTP API)', async (a) => (await api('POST', `/api/v1/clusters/${a.id}/accept`)).status === 200);
    const outbox = { firstSeq: null, lastSeq: 0 };
    const inventory = { components: [], kubernetesVersion: 'v1.35.4', targetInfrastructure: 'bench', overrides: [] };
    await phase('proven hello → welcome', (a) => exchange(url, (nonce) => ({ type: 'hello', clusterId: a.id, agentVersion: 'bench', inventory, lastRevision: 0, outbox, proof: signChallenge(a.key.privateKey, 'hello', nonce, a.id) }), (m) => m.type === 'welcome'));
    line('all three phases', `${ms(totals.wall)} for ${o.agents} agents = ${(o.agents / (totals.wall / 1000)).toFixed(0)} agents/s; hub CPU ${(totals.hubCpuUs / 1e6).toFixed(1)} s = ${(totals.hubCpuUs / 1000 / o.agents).toFixed(2)} ms per agent`);
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
