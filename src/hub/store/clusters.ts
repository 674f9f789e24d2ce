// Clusters as the hub knows them: registration state, credential, and the
// identity the agent last announced.
import type { Inventory } from '../../protocol/inventory.ts';
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

export class ClusterStore {
  readonly #db: HubDatabase;
  readonly #now: () => Date;

  constructor(db: HubDatabase, now: () => Date) {
    this.#db = db;
    this.#now = now;
  }

  get(id: string): ClusterRecord | undefined {
    const row = this.#db.prepare('SELECT * FROM clusters WHERE id = ?').get(id) as ClusterRow | undefined;
    return row && toRecord(row);
  }

  list(): ClusterRecord[] {
    return (this.#db.prepare('SELECT * FROM clusters ORDER BY id').all() as ClusterRow[]).map(toRecord);
  }

  ownerOfCredential(hash: string): ClusterRecord | undefined {
    const row = this.#db.prepare('SELECT * FROM clusters WHERE credential_hash = ?').get(hash) as ClusterRow | undefined;
    return row && toRecord(row);
  }

  /** Records a registration request; an existing cluster is returned unchanged. */
  requestRegistration(req: RegistrationRequest): ClusterRecord {
    const existing = this.get(req.id);
    if (existing) return existing;
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

  recordHello(id: string, hello: { agentVersion: string; inventory: Inventory; lastRevision: number }): void {
    const now = this.#now().toISOString();
    this.#db
      .prepare(
        `UPDATE clusters SET last_seen = ?, connected_at = ?, agent_version = ?, inventory = ?, kubernetes_version = ?,
           target_infrastructure = ?, agent_revision = MAX(agent_revision, ?) WHERE id = ?`,
      )
      .run(now, now, hello.agentVersion, JSON.stringify(hello.inventory), hello.inventory.kubernetesVersion, hello.inventory.targetInfrastructure, hello.lastRevision, id);
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

  /** Renews the lease. */
  touch(id: string): void {
    this.#db.prepare('UPDATE clusters SET last_seen = ? WHERE id = ?').run(this.#now().toISOString(), id);
  }

  /** Everything about the cluster goes (releases, reports, aggregate) except telemetry. */
  delete(id: string): boolean {
    return this.#db.prepare('DELETE FROM clusters WHERE id = ?').run(id).changes === 1;
  }
}
