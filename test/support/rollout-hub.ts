// The hub's rollout machinery on a real hub database, without sockets:
// clusters enrolled straight into the store, simulated agents that report
// through the same ingest path a WebSocket uses, an injected clock, and a
// restart that reopens the same file.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHubContext, type HubContext } from '../../src/hub/hub-context.ts';
import { openSqlite } from '../../src/hub/store/database.ts';
import type { SqliteSql } from '../../src/hub/store/sqlite-sql.ts';
import type { AttemptPhase } from '../../src/protocol/attempt.ts';
import type { Inventory, InventoryOverride } from '../../src/protocol/inventory.ts';
import type { HubMessage, Outgoing } from '../../src/protocol/messages.ts';
import { generateReleaseKey, type ReleaseKeyPair } from '../../src/protocol/signing.ts';
import { storedPublicKey, TestClock, testLogger } from './hub-fixture.ts';

export const HEARTBEAT_MS = 10_000;
export const LEASE_MS = 5 * HEARTBEAT_MS;

export class RolloutHub {
  // tmpfs when there is one: these tests restart the hub, they do not pull the plug, and fsync on a busy disk would dominate them.
  readonly dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'fleetlet-rollout-'));
  readonly dbPath = join(this.dir, 'hub.db');
  readonly clock = new TestClock();
  readonly key: ReleaseKeyPair = generateReleaseKey();
  db!: SqliteSql;
  ctx!: HubContext;
  readonly seq = new Map<string, number>();
  /** Messages "delivered" to connected clusters (every enrolled cluster counts as connected unless disconnected). */
  readonly delivered = new Map<string, Outgoing<HubMessage>[]>();
  readonly disconnected = new Set<string>();

  private constructor() {}

  static async open(): Promise<RolloutHub> {
    const h = new RolloutHub();
    h.db = openSqlite(h.dbPath);
    h.ctx = await h.#context();
    return h;
  }

  async #context(): Promise<HubContext> {
    const ctx = await createHubContext({ db: this.db, now: this.clock.now, log: testLogger(), heartbeatMs: HEARTBEAT_MS, graceMultiplier: 5, bootstrapTokens: [], releaseKey: this.key.privateKey });
    // Every enrolled, connected cluster gets a recording session.
    const sessions = ctx.sessions;
    const origAgent = sessions.agent.bind(sessions);
    sessions.agent = (id: string) =>
      origAgent(id) ??
      (this.disconnected.has(id) || !this.seq.has(id)
        ? undefined
        : {
            deliver: (m: Outgoing<HubMessage>) => {
              const list = this.delivered.get(id) ?? [];
              list.push(m);
              this.delivered.set(id, list);
            },
            close: () => undefined,
          });
    return ctx;
  }

  /** Closes the database and opens it again: what a hub restart leaves. */
  async restart(): Promise<void> {
    await this.db.close();
    this.db = openSqlite(this.dbPath);
    this.ctx = await this.#context();
  }

  async close(): Promise<void> {
    await this.db.close();
    rmSync(this.dir, { recursive: true, force: true });
  }

  async enrol(ids: readonly string[], labels: (id: string, i: number) => Record<string, string> = () => ({}), inventory?: Inventory): Promise<void> {
    await this.db.transaction(async () => {
      for (const [i, id] of ids.entries()) {
        await this.ctx.clusters.requestRegistration({ id, labels: labels(id, i), agentVersion: '0.1.0', inventory, publicKey: storedPublicKey(id) });
        await this.ctx.clusters.accept(id);
        await this.ctx.clusters.recordHello(id, { agentVersion: '0.1.0', inventory: inventory ?? { components: [], kubernetesVersion: 'v1.35.4', targetInfrastructure: 'aws', overrides: [] }, lastRevision: 0 });
        this.seq.set(id, 0);
      }
    });
  }

  /** Heartbeats from every connected cluster (in memory, as the hub keeps them). */
  async heartbeat(): Promise<void> {
    for (const id of this.seq.keys()) if (!this.disconnected.has(id)) this.ctx.clusters.touch(id);
  }

  async report(id: string, kind: string, body: unknown): Promise<void> {
    const prev = this.seq.get(id) ?? 0;
    await this.ctx.reports.ingest(id, prev, [{ seq: prev + 1, kind, body, createdAt: this.clock.now().toISOString() }]);
    this.seq.set(id, prev + 1);
  }

  /** The agent's attempt on its newest desired release reaching `phase`. */
  async attempt(id: string, phase: AttemptPhase, reason: string | null = null): Promise<void> {
    const d = await this.ctx.releases.latest(id);
    if (!d) throw new Error(`${id} has no desired release`);
    await this.report(id, 'attempt-transition', {
      attemptId: `${id}-r${d.revision}`,
      release: { name: d.name, version: d.version, revision: d.revision },
      phase,
      stage: 0,
      reason,
      message: reason === null ? null : `${reason} on ${id}`,
      at: this.clock.now().toISOString(),
    });
  }

  async inventory(id: string, overrides: InventoryOverride[]): Promise<void> {
    await this.report(id, 'inventory', { components: [], kubernetesVersion: 'v1.35.4', targetInfrastructure: 'aws', overrides });
  }

  /** Revision of the newest desired release per cluster (0: none). */
  async revisions(ids: readonly string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const id of ids) out.set(id, (await this.ctx.releases.latest(id))?.revision ?? 0);
    return out;
  }
}

export const ids = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(5, '0')}`);
