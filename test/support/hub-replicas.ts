// Hub replicas as real processes (`fleetlet hub --database postgres://…`)
// for the tests of several replicas on one PostgreSQL: start one, read its
// JSON log, call its API, and check what it stored for an agent against the
// agent's own outbox.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../src/testbed/control-plane.ts';
import { ADMIN_TOKEN, BOOTSTRAP_TOKEN } from './hub-fixture.ts';
import type { TestAgent } from './test-agent.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

export interface Replica {
  name: string;
  port: number;
  child: ChildProcess;
  /** JSON log lines so far. */
  lines: Record<string, unknown>[];
  /** What it wrote on stderr (a crash's stack trace). */
  stderr(): string;
  exited: Promise<void>;
}

/** `what` names the wait in the failure message; a function is asked only then (for a state that changes meanwhile). */
export async function until<T>(what: string | (() => string), fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === 'function' ? what() : what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export async function startReplica(name: string, database: string, keyFile: string): Promise<Replica> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [join(root, 'bin/fleetlet.ts'), 'hub', '--port', String(port), '--release-key', keyFile, '--heartbeat-ms', '1000', '--rollout-tick-ms', '200'],
    { env: { ...process.env, FLEETLET_HUB_DATABASE: database, FLEETLET_ADMIN_TOKEN: ADMIN_TOKEN, FLEETLET_BOOTSTRAP_TOKENS: BOOTSTRAP_TOKEN, LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const lines: Record<string, unknown>[] = [];
  let buffered = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not a log line
      }
    }
  });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await until(() => `replica ${name} to listen (stderr: ${stderr})`, () => lines.some((l) => l.msg === 'hub listening') || undefined, 90_000);
  return { name, port, child, lines, stderr: () => stderr, exited };
}

export async function stopReplicas(replicas: readonly Replica[]): Promise<void> {
  for (const r of replicas) {
    if (r.child.exitCode === null && r.child.signalCode === null) {
      r.child.kill('SIGTERM');
      await r.exited;
    }
  }
}

// Response bodies are JSON the tests read field by field.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function api(port: number, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/** Whether the replica drives rollouts, as its log says last. */
export const leading = (r: Replica): boolean => {
  const changes = r.lines.filter((l) => typeof l.leading === 'boolean');
  return changes.at(-1)?.leading === true;
};

/** Warnings and errors the replicas logged, last first, for a failure message. */
export function problems(replicas: readonly Replica[], n = 20): string {
  const logged = replicas.flatMap((r) => r.lines.filter((l) => Number(l.level) >= 40).map((l) => `${r.name}: ${JSON.stringify(l)}`)).slice(-n);
  const crashed = replicas.filter((r) => r.stderr() !== '').map((r) => `${r.name} stderr: ${r.stderr().slice(-4000)}`);
  return [...logged, ...crashed].join('\n');
}

/** The replica's last log lines (every level) and what it wrote on stderr: what a failure message needs to explain itself. */
export function logTail(r: Replica, n = 40): string {
  const logged = r.lines.slice(-n).map((l) => JSON.stringify(l));
  const err = r.stderr();
  return [`replica ${r.name}, last ${logged.length} log lines:`, ...logged, ...(err === '' ? [] : [`replica ${r.name} stderr: ${err.slice(-4000)}`])].join('\n');
}

/**
 * Fails unless the replica answered `status`; the failure carries the answer
 * and the replica's recent log (a 500 says only "see its log").
 */
export function assertStatus(res: { status: number; body: unknown }, status: number, r: Replica, what = 'the call'): void {
  if (res.status === status) return;
  assert.fail(`${what} through replica ${r.name} answered ${res.status}, expected ${status}: ${JSON.stringify(res.body)}\n${logTail(r)}`);
}

/**
 * Every report the agent put in its outbox (sequence 1..lastSeq) is stored
 * once and acknowledged, and its upgrade-completed events are counted once
 * (`telemetrySent` of them), as the hub at `port` reads them.
 */
export async function assertStoredOnce(port: number, id: string, lastSeq: number, telemetrySent: number): Promise<void> {
  const reports: number[] = [];
  for (let after = 0; ; ) {
    const page = (await api(port, 'GET', `/api/v1/clusters/${id}/reports?after=${after}&limit=1000`)).body;
    if (page.reports.length === 0) break;
    for (const r of page.reports as { seq: number; acknowledged: boolean }[]) {
      assert.ok(r.acknowledged, `${id} report ${r.seq} acknowledged`);
      reports.push(r.seq);
    }
    after = reports.at(-1) ?? 0;
  }
  assert.deepEqual(reports, Array.from({ length: lastSeq }, (_, i) => i + 1), `${id}: every report stored, once`);
  const telemetry: { id: number; seq: number }[] = [];
  for (let after = 0; ; ) {
    const page = (await api(port, 'GET', `/api/v1/telemetry?cluster=${id}&after=${after}&limit=1000`)).body.events as { id: number; seq: number }[];
    if (page.length === 0) break;
    telemetry.push(...page);
    after = page.at(-1)?.id ?? 0;
  }
  assert.equal(telemetry.length, telemetrySent, `${id}: every upgrade-completed counted once`);
  assert.equal(new Set(telemetry.map((t) => t.seq)).size, telemetry.length);
}

/**
 * Every agent reports success (an attempt-transition Succeeded) for each
 * release it receives, once, as an agent that applied it would. Returns the
 * stop.
 */
export function answerReleases(agents: () => Iterable<[string, TestAgent]>): () => void {
  const answered = new Set<string>();
  const timer = setInterval(() => {
    for (const [id, agent] of agents()) {
      for (const r of agent.releases) {
        const k = `${id}@${r.revision}`;
        if (answered.has(k)) continue;
        answered.add(k);
        agent.outbox.enqueue('attempt-transition', { attemptId: `${id}-r${r.revision}`, release: { name: r.name, version: r.version, revision: r.revision }, phase: 'Succeeded', stage: 0, reason: null, message: null, at: new Date().toISOString() });
        agent.link.flush();
      }
    }
  }, 50);
  return () => clearInterval(timer);
}
