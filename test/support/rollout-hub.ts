// The hub's rollout machinery on a real hub database, without sockets:
// clusters enrolled straight into the store, simulated agents that report
// through the same ingest path a WebSocket uses, an injected clock, and a
// restart that reopens the same file.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHubContext, type HubContext } from '../../src/hub/hub-context.ts';
import { openHubDatabase, type HubDatabase } from '../../src/hub/store/database.ts';
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
  db: HubDatabase;
  ctx: HubContext;
  readonly seq = new Map<string, number>();
  /** Messages "delivered" to connected clusters (every enrolled cluster counts as connected unless disconnected). */
  readonly delivered = new Map<string, Outgoing<HubMessage>[]>();
  readonly disconnected = new Set<string>();

  constructor() {
    this.db = openHubDatabase(this.dbPath);
    this.ctx = this.#context();
  }

  #context(): HubContext {
    const ctx = createHubContext({ db: this.db, now: this.clock.now, log: testLogger(), heartbeatMs: HEARTBEAT_MS, graceMultiplier: 5, bootstrapTokens: [], releaseKey: this.key.privateKey });
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
  restart(): void {
    this.db.close();
    this.db = openHubDatabase(this.dbPath);
    this.ctx = this.#context();
  }

  close(): void {
    this.db.close();
    rmSync(this.dir, { recursive: true, force: true });
  }

  enrol(ids: readonly string[], labels: (id: string, i: number) => Record<string, string> = () => ({}), inventory?: Inventory): void {
    this.db.transaction(() => {
      ids.forEach((id, i) => {
        this.ctx.clusters.requestRegistration({ id, labels: labels(id, i), agentVersion: '0.1.0', inventory, publicKey: storedPublicKey(id) });
        this.ctx.clusters.accept(id);
        this.ctx.clusters.recordHello(id, { agentVersion: '0.1.0', inventory: inventory ?? { components: [], kubernetesVersion: 'v1.35.4', targetInfrastructure: 'aws', overrides: [] }, lastRevision: 0 });
        this.seq.set(id, 0);
      });
    })();
  }

  /** Heartbeats from every connected cluster. */
  heartbeat(): void {
    this.db.transaction(() => {
      for (const id of this.seq.keys()) if (!this.disconnected.has(id)) this.ctx.clusters.touch(id);
    })();
  }

  report(id: string, kind: string, body: unknown): void {
    const prev = this.seq.get(id) ?? 0;
    this.ctx.reports.ingest(id, prev, [{ seq: prev + 1, kind, body, createdAt: this.clock.now().toISOString() }]);
    this.seq.set(id, prev + 1);
  }

  /** The agent's attempt on its newest desired release reaching `phase`. */
  attempt(id: string, phase: AttemptPhase, reason: string | null = null): void {
    const d = this.ctx.releases.latest(id);
    if (!d) throw new Error(`${id} has no desired release`);
    this.report(id, 'attempt-transition', {
      attemptId: `${id}-r${d.revision}`,
      release: { name: d.name, version: d.version, revision: d.revision },
      phase,
      stage: 0,
      reason,
      message: reason === null ? null : `${reason} on ${id}`,
      at: this.clock.now().toISOString(),
    });
  }

  inventory(id: string, overrides: InventoryOverride[]): void {
    this.report(id, 'inventory', { components: [], kubernetesVersion: 'v1.35.4', targetInfrastructure: 'aws', overrides });
  }

  /** Revision of the newest desired release per cluster (0: none). */
  revisions(ids: readonly string[]): Map<string, number> {
    return new Map(ids.map((id) => [id, this.ctx.releases.latest(id)?.revision ?? 0]));
  }
}

export const ids = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(5, '0')}`);
