// Clusters as the hub knows them: registration state, the agent's public
// key (never a secret: docs/security.md), and the identity the agent last
// announced.
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

/** Revoked: an operator withdrew the cluster's key; its agent is refused until an operator trusts a key again. */
export type RegistrationState = 'Pending' | 'Accepted' | 'Revoked';

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
  /** The agent's Ed25519 public key (base64url); null only for a cluster registered before keys (legacy credential). */
  publicKey: string | null;
  /** A bearer credential from before keys is still valid for it (docs/security.md, migration). */
  hasLegacyCredential: boolean;
  revokedAt: string | null;
}

const MAX_KEY_CONFLICTS = 16;

/** A registrant that proved a key other than the cluster's. */
export interface KeyConflict {
  publicKey: string;
  firstSeen: string;
  lastSeen: string;
  attempts: number;
  remoteAddress: string | null;
}

interface ClusterRow {
  id: string;
  status: 'Pending' | 'Accepted';
  labels: string;
  credential_hash: string | null;
  public_key: string | null;
  revoked_at: string | null;
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
    status: r.revoked_at !== null ? 'Revoked' : r.status,
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
    publicKey: r.public_key,
    hasLegacyCredential: r.credential_hash !== null,
    revokedAt: r.revoked_at,
  };
}

export interface RegistrationRequest {
  id: string;
  labels: Record<string, string>;
  agentVersion: string;
  inventory: Inventory | undefined;
  publicKey: string;
}

/** A lease renewal not yet written to the database. */
export interface Lease {
  lastSeen: string;
  /** Set when the renewal was a hello; null keeps the stored value. */
  connectedAt: string | null;
}

export class ClusterRepo {
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
        `INSERT INTO clusters (id, status, labels, requested_at, agent_version, inventory, kubernetes_version, target_infrastructure, public_key)
         VALUES (?, 'Pending', ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        req.id,
        JSON.stringify(req.labels),
        this.#now().toISOString(),
        req.agentVersion,
        req.inventory ? JSON.stringify(req.inventory) : null,
        req.inventory?.kubernetesVersion ?? null,
        req.inventory?.targetInfrastructure ?? null,
        req.publicKey,
      );
    return this.get(req.id) as ClusterRecord;
  }

  countPending(): number {
    return (this.#db.prepare("SELECT count(*) AS n FROM clusters WHERE status = 'Pending'").get() as { n: number }).n;
  }

  /** Pending → Accepted: the key it registered with is trusted from now on. False when the cluster is not pending. */
  accept(id: string): boolean {
    return this.#db.prepare("UPDATE clusters SET status = 'Accepted', accepted_at = ? WHERE id = ? AND status = 'Pending'").run(this.#now().toISOString(), id).changes === 1;
  }

  /**
   * A bearer credential's hash, as hubs before keys issued them: for
   * databases and benchmarks that hold such clusters (docs/security.md, migration).
   */
  setLegacyCredential(id: string, credentialHash: string): void {
    this.#db.prepare('UPDATE clusters SET credential_hash = ? WHERE id = ?').run(credentialHash, id);
  }

  /** A legacy-credential agent proved a key on its hello: the key replaces the credential. False if a key is already bound. */
  bindKey(id: string, publicKey: string): boolean {
    return this.#db.prepare('UPDATE clusters SET public_key = ?, credential_hash = NULL WHERE id = ? AND public_key IS NULL').run(publicKey, id).changes === 1;
  }

  /** The operator trusts this key for the cluster (a conflict resolved, a rotation): any other key, credential and revocation go. */
  trustKey(id: string, publicKey: string): boolean {
    return this.#db.transaction(() => {
      const changed = this.#db.prepare('UPDATE clusters SET public_key = ?, credential_hash = NULL, revoked_at = NULL WHERE id = ?').run(publicKey, id).changes === 1;
      this.#db.prepare('DELETE FROM cluster_key_conflicts WHERE cluster_id = ? AND public_key = ?').run(id, publicKey);
      return changed;
    })();
  }

  /** The cluster's key (or legacy credential) stops authenticating it; the record and its history stay. */
  revoke(id: string): boolean {
    return this.#db.prepare('UPDATE clusters SET revoked_at = ?, credential_hash = NULL WHERE id = ? AND revoked_at IS NULL').run(this.#now().toISOString(), id).changes === 1;
  }

  /** Keeps at most MAX_KEY_CONFLICTS keys per cluster, so registrants cycling keys cannot grow the table. */
  recordKeyConflict(id: string, publicKey: string, remoteAddress: string | undefined): void {
    const now = this.#now().toISOString();
    const known = this.#db.prepare('SELECT count(*) AS n, sum(public_key = ?) AS mine FROM cluster_key_conflicts WHERE cluster_id = ?').get(publicKey, id) as { n: number; mine: number | null };
    if (known.n >= MAX_KEY_CONFLICTS && !known.mine) return;
    this.#db
      .prepare(
        `INSERT INTO cluster_key_conflicts (cluster_id, public_key, first_seen, last_seen, remote_address) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (cluster_id, public_key) DO UPDATE SET last_seen = excluded.last_seen, attempts = attempts + 1, remote_address = excluded.remote_address`,
      )
      .run(id, publicKey, now, now, remoteAddress ?? null);
  }

  keyConflicts(id: string): KeyConflict[] {
    const rows = this.#db
      .prepare('SELECT public_key, first_seen, last_seen, attempts, remote_address FROM cluster_key_conflicts WHERE cluster_id = ? ORDER BY first_seen, public_key')
      .all(id) as { public_key: string; first_seen: string; last_seen: string; attempts: number; remote_address: string | null }[];
    return rows.map((r) => ({ publicKey: r.public_key, firstSeen: r.first_seen, lastSeen: r.last_seen, attempts: r.attempts, remoteAddress: r.remote_address }));
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
