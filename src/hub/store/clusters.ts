// Clusters as the hub knows them: registration state, credential, and the
// identity the agent last announced.
//
// Lease renewals (lastSeen, and connectedAt on hello) live in memory and are
// written to the database by flushLeases(), all dirty clusters in one
// transaction (startHub calls it every second and on close). A heartbeat
// used to be an fsync'd commit of its own, and the hub manages only ~900
// commits/s (synchronous=FULL). Losing the last second of renewals in a crash is harmless:
// availability is a lease of graceMultiplier × heartbeatMs (50 s by default),
// so a restored lastSeen at most a second old can only make a cluster turn
// Unknown a second early if it never reconnects, and a live agent reconnects
// and renews with its hello. Nothing is acknowledged on the strength of a
// lastSeen. Every read (get, list, rollouts' members) sees the in-memory value.
import type { Inventory } from '../../protocol/inventory.ts';
import type { Statement } from 'better-sqlite3';
import type { HubDatabase } from './database.ts';

export type RegistrationState = 'Pending' | 'Accepted';

export interface ClusterRecord {
  id: string;
  status: RegistrationState;
  labels: Record<string, string>;
  requestedAt: string;
  acceptedAt: string | null;
  lastSeen: string | null;
  connectedAt: string | null;
  agentVersion: string | null;
  inventory: Inventory | null;
  kubernetesVersion: string | null;
  targetInfrastructure: string | null;
  agentRevision: number;
  ackedSeq: number;
  hasCredential: boolean;
  undeliveredCredential: string | null;
}

interface ClusterRow {
  id: string;
  status: RegistrationState;
  labels: string;
  credential_hash: string | null;
  undelivered_credential: string | null;
  requested_at: string;
  accepted_at: string | null;
  last_seen: string | null;
  connected_at: string | null;
  agent_version: string | null;
  inventory: string | null;
  kubernetes_version: string | null;
  target_infrastructure: string | null;
  agent_revision: number;
  acked_seq: number;
}

function toRecord(r: ClusterRow): ClusterRecord {
  return {
    id: r.id,
    status: r.status,
    labels: JSON.parse(r.labels) as Record<string, string>,
    requestedAt: r.requested_at,
    acceptedAt: r.accepted_at,
    lastSeen: r.last_seen,
    connectedAt: r.connected_at,
    agentVersion: r.agent_version,
    inventory: r.inventory === null ? null : (JSON.parse(r.inventory) as Inventory),
    kubernetesVersion: r.kubernetes_version,
    targetInfrastructure: r.target_infrastructure,
    agentRevision: r.agent_revision,
    ackedSeq: r.acked_seq,
    hasCredential: r.credential_hash !== null,
    undeliveredCredential: r.undelivered_credential,
  };
}

export interface RegistrationRequest {
  id: string;
  labels: Record<string, string>;
  agentVersion: string;
  inventory: Inventory | undefined;
}

/** A lease renewal not yet written to the database. */
export interface Lease {
  lastSeen: string;
  /** Set when the renewal was a hello; null keeps the stored value. */
  connectedAt: string | null;
}

export class ClusterStore {
  readonly #db: HubDatabase;
  readonly #now: () => Date;
  readonly #get: Statement;
  readonly #hello: Statement;
  readonly #writeLease: Statement;
  readonly #flush: (leases: ReadonlyMap<string, Lease>) => void;
  /** Renewals since the last flush, by cluster id. */
  #leases = new Map<string, Lease>();

  constructor(db: HubDatabase, now: () => Date) {
    this.#db = db;
    this.#now = now;
    this.#get = db.prepare('SELECT * FROM clusters WHERE id = ?');
    this.#hello = db.prepare(
      `UPDATE clusters SET agent_version = ?, inventory = ?, kubernetes_version = ?, target_infrastructure = ?,
         agent_revision = MAX(agent_revision, ?) WHERE id = ?`,
    );
    this.#writeLease = db.prepare('UPDATE clusters SET last_seen = ?, connected_at = COALESCE(?, connected_at) WHERE id = ?');
    this.#flush = db.transaction((leases: ReadonlyMap<string, Lease>) => {
      for (const [id, l] of leases) this.#writeLease.run(l.lastSeen, l.connectedAt, id);
    });
  }

  #withLease(r: ClusterRecord): ClusterRecord {
    const l = this.#leases.get(r.id);
    if (l === undefined) return r;
    r.lastSeen = l.lastSeen;
    if (l.connectedAt !== null) r.connectedAt = l.connectedAt;
    return r;
  }

  get(id: string): ClusterRecord | undefined {
    const row = this.#get.get(id) as ClusterRow | undefined;
    return row && this.#withLease(toRecord(row));
  }

  list(): ClusterRecord[] {
    return (this.#db.prepare('SELECT * FROM clusters ORDER BY id').all() as ClusterRow[]).map((r) => this.#withLease(toRecord(r)));
  }

  ownerOfCredential(hash: string): ClusterRecord | undefined {
    const row = this.#db.prepare('SELECT * FROM clusters WHERE credential_hash = ?').get(hash) as ClusterRow | undefined;
    return row && this.#withLease(toRecord(row));
  }

  /** The renewal of the cluster's lease not yet flushed, if any (for readers that query the table themselves). */
  pendingLease(id: string): Lease | undefined {
    return this.#leases.get(id);
  }

  /** Clusters whose lease renewal waits for the next flush. */
  get dirtyLeases(): number {
    return this.#leases.size;
  }

  /**
   * Writes every renewal since the last flush in one transaction; returns how
   * many clusters it wrote. On failure the renewals stay in memory for the next try.
   */
  flushLeases(): number {
    if (this.#leases.size === 0) return 0;
    const dirty = this.#leases;
    this.#leases = new Map();
    try {
      this.#flush(dirty);
    } catch (err) {
      // Renewals that came in meanwhile are newer: keep them over the failed ones.
      for (const [id, l] of dirty) {
        const newer = this.#leases.get(id);
        if (newer === undefined) this.#leases.set(id, l);
        else if (newer.connectedAt === null && l.connectedAt !== null) newer.connectedAt = l.connectedAt;
      }
      throw err;
    }
    return dirty.size;
  }

  /** Records a registration request; an existing cluster is returned unchanged. */
  requestRegistration(req: RegistrationRequest): ClusterRecord {
    const existing = this.get(req.id);
    if (existing) return existing;
    this.#leases.delete(req.id);
    this.#db
      .prepare(
        `INSERT INTO clusters (id, status, labels, requested_at, agent_version, inventory, kubernetes_version, target_infrastructure)
         VALUES (?, 'Pending', ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        req.id,
        JSON.stringify(req.labels),
        this.#now().toISOString(),
        req.agentVersion,
        req.inventory ? JSON.stringify(req.inventory) : null,
        req.inventory?.kubernetesVersion ?? null,
        req.inventory?.targetInfrastructure ?? null,
      );
    return this.get(req.id) as ClusterRecord;
  }

  /** Pending → Accepted with a fresh credential; false when the cluster is not pending. */
  accept(id: string, credential: string, credentialHash: string): boolean {
    const res = this.#db
      .prepare(
        `UPDATE clusters SET status = 'Accepted', accepted_at = ?, credential_hash = ?, undelivered_credential = ?
         WHERE id = ? AND status = 'Pending'`,
      )
      .run(this.#now().toISOString(), credentialHash, credential, id);
    return res.changes === 1;
  }

  /** The agent authenticated with its credential, so it holds it: the hub forgets the plain text. */
  markCredentialUsed(id: string): void {
    this.#db.prepare('UPDATE clusters SET undelivered_credential = NULL WHERE id = ? AND undelivered_credential IS NOT NULL').run(id);
  }

  /** What the agent announced (written now) and a lease renewal that starts a connection (in memory, see flushLeases). */
  recordHello(id: string, hello: { agentVersion: string; inventory: Inventory; lastRevision: number }): void {
    this.#hello.run(hello.agentVersion, JSON.stringify(hello.inventory), hello.inventory.kubernetesVersion, hello.inventory.targetInfrastructure, hello.lastRevision, id);
    const now = this.#now().toISOString();
    this.#leases.set(id, { lastSeen: now, connectedAt: now });
  }

  updateInventory(id: string, inventory: Inventory): void {
    this.#db
      .prepare('UPDATE clusters SET inventory = ?, kubernetes_version = ?, target_infrastructure = ? WHERE id = ?')
      .run(JSON.stringify(inventory), inventory.kubernetesVersion, inventory.targetInfrastructure, id);
  }

  /** Replaces the cluster's labels (rollouts select by them); false for an unknown cluster. */
  setLabels(id: string, labels: Record<string, string>): boolean {
    return this.#db.prepare('UPDATE clusters SET labels = ? WHERE id = ?').run(JSON.stringify(labels), id).changes === 1;
  }

  /** Renews the lease, in memory: flushLeases() writes it. */
  touch(id: string): void {
    const lastSeen = this.#now().toISOString();
    const l = this.#leases.get(id);
    if (l === undefined) this.#leases.set(id, { lastSeen, connectedAt: null });
    else l.lastSeen = lastSeen;
  }

  /** Everything about the cluster goes (releases, reports, aggregate) except telemetry. */
  delete(id: string): boolean {
    this.#leases.delete(id);
    return this.#db.prepare('DELETE FROM clusters WHERE id = ?').run(id).changes === 1;
  }
}
