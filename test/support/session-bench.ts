// Agent sessions on a real hub database without sockets: frames go straight
// into AgentSession, answers are recorded, and the group committer's
// "next event-loop turn" is a queue the test runs by hand (tick()), so a
// test decides exactly when the shared commit happens. The clock is injected.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { AgentSession } from '../../src/hub/agent-session.ts';
import { createHubContext, type HubContext } from '../../src/hub/hub-context.ts';
import { openSqlite } from '../../src/hub/store/database.ts';
import type { SqliteSql } from '../../src/hub/store/sqlite-sql.ts';
import { PROTOCOL_VERSION, parseMessage, type HubMessage, type ReportEntry } from '../../src/protocol/messages.ts';
import { generateReleaseKey } from '../../src/protocol/signing.ts';
import { storedPublicKey, TestClock, testLogger } from './hub-fixture.ts';

export const HEARTBEAT_MS = 10_000;
export const LEASE_MS = 5 * HEARTBEAT_MS;

export interface FakeAgent {
  id: string;
  session: AgentSession;
  /** Everything the hub sent this connection, parsed. */
  sent: HubMessage[];
  closed: { code: number; reason: string } | null;
  /** Called as each message is sent, before it is recorded. */
  onSend?: (m: HubMessage) => void;
  frame(m: Record<string, unknown>): void;
  hello(lastSeq?: number): void;
  heartbeat(): void;
  reports(afterSeq: number, reports: readonly ReportEntry[]): void;
  acks(): number[];
}

export class SessionBench {
  // tmpfs when there is one: WAL works there and these tests are about ordering, not about the disk.
  readonly dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'fleetlet-sessions-'));
  readonly dbPath = join(this.dir, 'hub.db');
  readonly clock = new TestClock();
  db!: SqliteSql;
  ctx!: HubContext;
  /** Flushes the group committer asked to run "on the next turn". */
  readonly scheduled: (() => void)[] = [];

  private constructor() {}

  static async open(o: { maxBatch?: number } = {}): Promise<SessionBench> {
    const b = new SessionBench();
    b.db = openSqlite(b.dbPath);
    b.ctx = await createHubContext({
      db: b.db,
      now: b.clock.now,
      log: testLogger(),
      heartbeatMs: HEARTBEAT_MS,
      graceMultiplier: 5,
      bootstrapTokens: [],
      releaseKey: generateReleaseKey().privateKey,
      groupCommit: { maxBatch: o.maxBatch ?? 10_000, schedule: (run) => void b.scheduled.push(run) },
    });
    return b;
  }

  /**
   * Frames sent so far are handled (sessions read the store before they
   * submit a write): everything they do runs in microtasks on SQLite, so one
   * turn of the event loop sees it done.
   */
  async settle(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  /** The next event-loop turn, as far as the group committer is concerned: queued writes commit and their answers go out. */
  async tick(): Promise<void> {
    await this.settle();
    for (const run of this.scheduled.splice(0)) run();
    await this.ctx.commits.flush();
    await this.settle();
  }

  async enrol(...ids: string[]): Promise<void> {
    for (const id of ids) {
      await this.ctx.clusters.requestRegistration({ id, labels: {}, agentVersion: '0.1.0', inventory: undefined, publicKey: storedPublicKey(id) });
      await this.ctx.clusters.accept(id);
    }
  }

  /** A second connection to the file: it sees only what was committed. */
  reader(): Database.Database {
    return new Database(this.dbPath, { readonly: true });
  }

  connect(id: string): FakeAgent {
    const agent: FakeAgent = {
      id,
      sent: [],
      closed: null,
      session: undefined as unknown as AgentSession,
      frame: (m) => agent.session.handleFrame(JSON.stringify({ protocolVersion: PROTOCOL_VERSION, ...m })),
      hello: (lastSeq = 0) =>
        agent.frame({
          type: 'hello',
          clusterId: id,
          agentVersion: '0.1.0',
          inventory: { components: [], kubernetesVersion: 'v1.35.4', targetInfrastructure: 'aws', overrides: [] },
          lastRevision: 0,
          outbox: { firstSeq: null, lastSeq },
        }),
      heartbeat: () => agent.frame({ type: 'heartbeat', sentAt: this.clock.now().toISOString() }),
      reports: (afterSeq, reports) => agent.frame({ type: 'reports', afterSeq, reports }),
      acks: () => agent.sent.flatMap((m) => (m.type === 'ack' ? [m.uptoSeq] : [])),
    };
    agent.session = new AgentSession(this.ctx, { kind: 'cluster', clusterId: id }, {
      send: (text) => {
        const m = parseMessage(text, 'from-hub');
        if (!m.ok) throw m.error;
        agent.onSend?.(m.message);
        agent.sent.push(m.message);
      },
      close: (code, reason) => {
        agent.closed = { code, reason };
      },
    });
    return agent;
  }

  async close(): Promise<void> {
    await this.db.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Reports seq from..to as attempt transitions. */
export function entries(from: number, to: number, clusterId = 'edge'): ReportEntry[] {
  const out: ReportEntry[] = [];
  for (let seq = from; seq <= to; seq++) {
    out.push({
      seq,
      kind: 'attempt-transition',
      createdAt: '2030-01-01T00:00:00.000Z',
      body: { attemptId: `${clusterId}-a${seq}`, release: { name: 'edge-addons', version: '1.4.2', revision: 1 }, phase: 'Upgrading', stage: 0, reason: null, message: `step ${seq}`, at: '2030-01-01T00:00:00.000Z' },
    });
  }
  return out;
}
