// The agent as `fleetlet agent` runs it (createAgentRuntime: journal, Kubernetes
// client, agent loop, hub link, credential Secret) against the run's control
// plane, plus what the hub-link end-to-end and connectivity tests assert
// with: the hub's stored reports and an exactly-once, in-order comparison
// with the agent's journal.
import assert from 'node:assert/strict';
import type { KeyObject } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAgentRuntime, type AgentRuntime } from '../../src/cli/agent-runtime.ts';
import type { ReleaseInput } from '../../src/protocol/release.ts';
import type { AttemptRecord, TransitionRecord } from '../../src/store/attempt-repo.ts';
import type { OutboxRow } from '../../src/store/outbox.ts';
import { kubeConfig } from './cluster.ts';
import { waitFor } from './events.ts';
import { testLogger, type HubFixture } from './hub-fixture.ts';
import { addonsRelease, type AddonVersions } from './releases.ts';
import { asReleaseRequest } from '../../src/testbed/sample-releases.ts';
import type { StoredReport } from '../../src/hub/store/report-repo.ts';

export interface RuntimeEvents {
  transition: [attempt: AttemptRecord, transition: TransitionRecord];
}

export interface RunningRuntime {
  runtime: AgentRuntime;
  journalPath: string;
  /** Every transition the engine committed, after the commit. */
  events: EventEmitter<RuntimeEvents>;
  /** Resolves with the attempt for `revision` once it finished (reads the journal, then waits on transitions). */
  finished(revision: number, timeoutMs?: number): Promise<AttemptRecord>;
  /** Aborts the runtime and waits until it closed its hub link and journal. */
  stop(): Promise<void>;
}

export interface RuntimeOptions {
  clusterId: string;
  /** The agent's own namespace (credential Secret, status ConfigMap). */
  namespace: string;
  hubUrl: string;
  releaseKey: KeyObject;
  journalPath?: string;
  /** A function is read at every use, like a token file mounted from a Secret. */
  bootstrapToken?: string | (() => string | undefined);
  heartbeatMs?: number;
  uninstallOnDeregister?: boolean;
  onTransition?: (attempt: AttemptRecord, transition: TransitionRecord) => void;
}

export async function startRuntime(o: RuntimeOptions): Promise<RunningRuntime> {
  const journalPath = o.journalPath ?? join(mkdtempSync(join(tmpdir(), 'fleetlet-rt-')), 'journal.db');
  const events = new EventEmitter<RuntimeEvents>();
  const runtime = await createAgentRuntime({
    clusterId: o.clusterId,
    journalPath,
    kubeConfig: kubeConfig(),
    releaseKeys: [o.releaseKey],
    logger: testLogger(),
    namespace: o.namespace,
    pollMs: 200,
    hub: {
      url: o.hubUrl,
      bootstrapToken: o.bootstrapToken,
      heartbeatMs: o.heartbeatMs ?? 300,
      // Short reconnect delays: a healed link is back within a few hundred ms.
      backoff: { baseMs: 50, capMs: 300 },
      uninstallOnDeregister: o.uninstallOnDeregister ?? false,
      // A revoked agent looks for a new bootstrap token this often.
      revokedRecheckMs: 100,
    },
    agent: {
      idleMs: 200,
      onTransition: (a, t) => {
        o.onTransition?.(a, t);
        events.emit('transition', a, t);
      },
    },
  });
  const controller = new AbortController();
  // A stop mid-attempt rejects with the abort; that is the expected way out.
  const running = runtime.run(controller.signal).catch((err: unknown) => {
    if (!controller.signal.aborted) throw err;
  });
  const finishedAttempt = (revision: number) => runtime.journal.attempts.list(50).find((a) => a.revision === revision && a.finishedAt !== null);
  return {
    runtime,
    journalPath,
    events,
    async finished(revision, timeoutMs = 120_000) {
      await waitFor(events, ['transition'], () => finishedAttempt(revision) !== undefined, `the attempt for revision ${revision} to finish`, timeoutMs);
      return finishedAttempt(revision) as AttemptRecord;
    },
    async stop() {
      controller.abort();
      await running;
    },
  };
}

/** What an operator PUTs: the sample add-ons, with a soak on every component so an upgrade lasts a few seconds. */
export function releaseRequest(namespace: string, version: string, v: AddonVersions, soakSeconds = 1): Record<string, unknown> {
  const r: ReleaseInput = addonsRelease(namespace, 1, v);
  const request = asReleaseRequest(r);
  return {
    ...request,
    version,
    components: r.components.map((c) => ({ ...c, health: { ...(c.health ?? {}), soakSeconds } })),
  };
}


export async function storedReports(f: HubFixture, clusterId: string): Promise<StoredReport[]> {
  const all: StoredReport[] = [];
  for (;;) {
    const res = await f.api('GET', `/api/v1/clusters/${clusterId}/reports?after=${all.at(-1)?.seq ?? 0}&limit=1000`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const page = res.body.reports as StoredReport[];
    if (page.length === 0) return all;
    all.push(...page);
  }
}

/** Waits until the hub acknowledged everything the journal holds, so the outbox is empty. */
export async function awaitDrained(f: HubFixture, rt: RunningRuntime, clusterId: string, timeoutMs = 60_000): Promise<void> {
  const journal = rt.runtime.journal;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const link = rt.runtime.hubLink;
    const { depth, lastSeq } = journal.outbox.stats();
    if (depth === 0) {
      const view = await f.api('GET', `/api/v1/clusters/${clusterId}`);
      assert.equal(view.body.reports.ackedSeq, lastSeq, 'the hub acknowledged exactly what the agent wrote');
      return;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for the outbox to drain (depth ${depth}, last seq ${lastSeq})`);
    // Acks are the event that empties the outbox; a missing link (between leadership terms) is re-checked shortly.
    if (link) await waitFor(link, ['acked', 'welcome'], () => journal.outbox.stats().depth === 0, 'an acknowledgement', Math.max(1, Math.min(2_000, deadline - Date.now()))).catch(() => {});
    else await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Exactly once, in order: the hub holds seqs 1..lastSeq, each once, chained
 * and acknowledged; its attempt-transition reports are the journal's
 * transitions (Pending included) one for one; the
 * buffered rows arrived byte for byte; one upgrade-completed and one
 * telemetry event for the attempt.
 */
export async function assertDeliveredOnce(f: HubFixture, rt: RunningRuntime, clusterId: string, attempt: AttemptRecord, buffered: readonly OutboxRow[] = []): Promise<StoredReport[]> {
  const journal = rt.runtime.journal;
  const lastSeq = journal.outbox.stats().lastSeq;
  const stored = await storedReports(f, clusterId);
  const seqs = stored.map((r) => r.seq);
  assert.deepEqual(seqs, Array.from({ length: lastSeq }, (_, i) => i + 1), 'seqs 1..lastSeq: no gap, no duplicate, strictly increasing');
  stored.forEach((r, i) => {
    assert.equal(r.prevSeq, i === 0 ? 0 : stored[i - 1]?.seq, `report ${r.seq} chains to the one before`);
    assert.ok(r.acknowledged, `report ${r.seq} acknowledged`);
    assert.equal(r.problem, null, `report ${r.seq} aggregated`);
  });
  assert.equal(journal.outbox.stats().depth, 0, 'the outbox is empty');

  const transitions = journal.attempts.transitions(attempt.id);
  assert.equal(transitions[0]?.phase, 'Pending');
  const fromJournal = transitions.map((t) => ({ phase: t.phase, stage: t.stage, reason: t.reason, message: t.message, at: t.at }));
  const onHub = stored
    .filter((r) => r.kind === 'attempt-transition' && (r.body as { attemptId: string }).attemptId === attempt.id)
    .map((r) => {
      const b = r.body as { phase: string; stage: number | null; reason: string | null; message: string | null; at: string };
      return { phase: b.phase, stage: b.stage, reason: b.reason, message: b.message, at: b.at };
    });
  assert.deepEqual(onHub, fromJournal, 'the hub holds every journal transition once, in journal order');

  const byHub = new Map(stored.map((r) => [r.seq, r]));
  for (const row of buffered) {
    const got = byHub.get(row.seq);
    assert.ok(got, `buffered report ${row.seq} reached the hub`);
    assert.deepEqual({ kind: got.kind, body: got.body, createdAt: got.createdAt }, { kind: row.kind, body: row.body, createdAt: row.createdAt }, `report ${row.seq} arrived as written`);
  }

  const completed = stored.filter((r) => r.kind === 'upgrade-completed' && (r.body as { attemptId: string }).attemptId === attempt.id);
  assert.equal(completed.length, 1, 'one upgrade-completed report for the attempt');
  const telemetry = (await f.api('GET', `/api/v1/telemetry?cluster=${clusterId}&limit=1000`)).body.events as { event: { attemptId: string; result: string } }[];
  const events = telemetry.filter((e) => e.event.attemptId === attempt.id);
  assert.equal(events.length, 1, 'one telemetry event for the attempt');
  assert.equal(events[0]?.event.result, attempt.phase);
  return stored;
}
