// Clusters as the hub knows them: registration state, the agent's public
// key (never a secret: docs/security.md), and the identity the agent last
// announced.
//
// Lease renewals (lastSeen, and connectedAt on hello) live in memory and are
// written to the database by flushLeases(), all dirty clusters in one
// transaction, rows updated in cluster-id order so replicas flushing
// overlapping clusters lock them in the same order and cannot deadlock
// (startHub calls it every second and on close). A flush only
// moves a lease forward (GREATEST), so replicas sharing one database never
// set a cluster's lastSeen back to an older renewal of their own. A heartbeat
// used to be an fsync'd commit of its own, and the hub manages only ~900
// commits/s (synchronous=FULL). Losing the last second of renewals in a crash is harmless:
// availability is a lease of graceMultiplier × heartbeatMs (50 s by default),
// so a restored lastSeen at most a second old can only make a cluster turn
// Unknown a second early if it never reconnects, and a live agent reconnects
// and renews with its hello. Nothing is acknowledged on the strength of a
// lastSeen. Every read (get, list, rollouts' members) sees the newer of the
// in-memory value and the stored one.
import type { Inventory } from '../../protocol/inventory.ts';
import type { MaintenanceWindow } from '../../protocol/messages.ts';
import { byRounds, chunked, placeholders } from './batches.ts';
import type { Sql, SqlValue } from './sql.ts';

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
  /** When the agent's policy next lets an upgrade start, as it last reported; null until it reports one (older agents never do). */
  maintenanceWindow: MaintenanceWindow | null;
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
  maintenance_window: string | null;
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
    maintenanceWindow: r.maintenance_window === null || r.maintenance_window === undefined ? null : (JSON.parse(r.maintenance_window) as MaintenanceWindow),
  };
}

export interface RegistrationRequest {
  id: string;
  labels: Record<string, string>;
  agentVersion: string;
  inventory: Inventory | undefined;
  publicKey: string;
}

/** Renewals per statement when flushing on PostgreSQL (3 parameters each). */
const LEASE_CHUNK = 1000;
/** Rows per locking statement (one parameter each). */
const LOCK_CHUNK = 1000;

/** Hellos per statement (about 11 parameters each). */
const HELLO_CHUNK = 500;

/** A hello from an agent that proved it holds publicKey (agent-session.ts), for helloMany. */
export interface ProvenHello {
  id: string;
  publicKey: string | null;
  hello: { agentVersion: string; inventory: Inventory; lastRevision: number };
}

/** What a hello left: taken, with the connection's epoch and the cluster's acknowledged mark; or refused (the right ended meanwhile). */
export type HelloOutcome = { accepted: false } | { accepted: true; epoch: number; ackedSeq: number };

/** A lease renewal not yet written to the database. */
export interface Lease {
  lastSeen: string;
  /** Set when the renewal was a hello; null keeps the stored value. */
  connectedAt: string | null;
}

export class ClusterRepo {
  readonly #sql: Sql;
  readonly #now: () => Date;
  /** Renewals since the last flush, by cluster id. */
  #leases = new Map<string, Lease>();
  /**
   * Hellos' leases written so far: a connection's lease reaching the store
   * may turn an Unknown cluster back into a live one, which the dashboard
   * shows (startHub tells it when this moves; plain renewals do not).
   */
  connectionsWritten = 0;

  constructor(sql: Sql, now: () => Date) {
    this.#sql = sql;
    this.#now = now;
  }

  #withLease(r: ClusterRecord): ClusterRecord {
    const l = this.#leases.get(r.id);
    if (l === undefined) return r;
    // Another replica may have stored a newer renewal (the agent moved there).
    if (r.lastSeen === null || l.lastSeen > r.lastSeen) r.lastSeen = l.lastSeen;
    if (l.connectedAt !== null && (r.connectedAt === null || l.connectedAt > r.connectedAt)) r.connectedAt = l.connectedAt;
    return r;
  }

  async get(id: string): Promise<ClusterRecord | undefined> {
    const row = await this.#sql.get<ClusterRow>('SELECT * FROM clusters WHERE id = ?', [id]);
    return row && this.#withLease(toRecord(row));
  }

  async list(): Promise<ClusterRecord[]> {
    return (await this.#sql.all<ClusterRow>('SELECT * FROM clusters ORDER BY id')).map((r) => this.#withLease(toRecord(r)));
  }

  async ownerOfCredential(hash: string): Promise<ClusterRecord | undefined> {
    const row = await this.#sql.get<ClusterRow>('SELECT * FROM clusters WHERE credential_hash = ?', [hash]);
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
   * Writes every renewal since the last flush; returns how many clusters it
   * wrote. On failure the renewals stay in memory for the next try, and so
   * does a renewal whose row was locked (PostgreSQL).
   */
  async flushLeases(): Promise<number> {
    if (this.#leases.size === 0) return 0;
    const dirty = this.#leases;
    this.#leases = new Map();
    try {
      // Row locks in one order (by cluster id) on every replica: two replicas
      // flushing overlapping clusters in renewal order locked them in
      // opposite orders and PostgreSQL aborted one flush as a deadlock (40P01).
      const ordered = [...dirty].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0));
      const written = this.#sql.dialect.name === 'postgres' ? await this.#flushPostgres(ordered) : await this.#flushSqlite(ordered);
      const skipped = ordered.map(([id]) => id).filter((id) => !written.has(id));
      this.connectionsWritten += ordered.filter(([id, l]) => written.has(id) && l.connectedAt !== null).length;
      // A row not written was locked (keep its renewal) or is gone (drop it).
      const existing = new Set<string>();
      for (let i = 0; i < skipped.length; i += LEASE_CHUNK) {
        const chunk = skipped.slice(i, i + LEASE_CHUNK);
        for (const r of await this.#sql.all<{ id: string }>(`SELECT id FROM clusters WHERE id IN (${chunk.map(() => '?').join(', ')})`, chunk)) existing.add(r.id);
      }
      for (const id of skipped) {
        const l = dirty.get(id);
        if (l === undefined || !existing.has(id)) continue;
        const newer = this.#leases.get(id);
        if (newer === undefined) this.#leases.set(id, l);
        else if (newer.connectedAt === null && l.connectedAt !== null) newer.connectedAt = l.connectedAt;
      }
      return written.size;
    } catch (err) {
      // Renewals that came in meanwhile are newer: keep them over the failed ones.
      for (const [id, l] of dirty) {
        const newer = this.#leases.get(id);
        if (newer === undefined) this.#leases.set(id, l);
        else if (newer.connectedAt === null && l.connectedAt !== null) newer.connectedAt = l.connectedAt;
      }
      throw err;
    }
  }

  /** SQLite: one UPDATE per renewal (a function call each), in one transaction (one commit). */
  async #flushSqlite(ordered: readonly [string, Lease][]): Promise<Set<string>> {
    const d = this.#sql.dialect;
    const written = new Set<string>();
    await this.#sql.transaction(async () => {
      for (const [id, l] of ordered) {
        const changed = await this.#sql.run(`UPDATE clusters SET last_seen = ${d.greatest('last_seen', '?')}, connected_at = ${d.greatest('connected_at', 'COALESCE(?, connected_at)')} WHERE id = ?`, [
          l.lastSeen,
          l.connectedAt,
          id,
        ]);
        if (changed === 1) written.add(id);
      }
    });
    return written;
  }

  /**
   * PostgreSQL: one statement per chunk of renewals, each its own short
   * transaction. A statement per renewal in one transaction (as on SQLite)
   * held the rows it had written for as many round trips as there were
   * renewals, hundreds a second with thousands of agents per replica, and the
   * group commit ingesting those same clusters' reports (an agent that
   * reports also renews) waited for it: acks took seconds while the replicas
   * idled. A row another transaction holds is skipped (SKIP LOCKED: a flush
   * never waits, so it never joins a lock cycle either) and its renewal kept
   * for the next flush, a second later.
   */
  async #flushPostgres(ordered: readonly [string, Lease][]): Promise<Set<string>> {
    const d = this.#sql.dialect;
    const written = new Set<string>();
    for (let i = 0; i < ordered.length; i += LEASE_CHUNK) {
      const chunk = ordered.slice(i, i + LEASE_CHUNK);
      const rows = await this.#sql.all<{ id: string }>(
        `WITH v (id, last_seen, connected_at) AS (VALUES ${chunk.map(() => '(?::text, ?::text, ?::text)').join(', ')}),
              free AS (SELECT id FROM clusters WHERE id IN (SELECT id FROM v) ORDER BY id${d.idOrder}${d.forUpdate} SKIP LOCKED)
         UPDATE clusters c SET last_seen = GREATEST(c.last_seen, v.last_seen), connected_at = GREATEST(c.connected_at, COALESCE(v.connected_at, c.connected_at))
         FROM v WHERE c.id = v.id AND c.id IN (SELECT id FROM free) RETURNING c.id`,
        chunk.flatMap(([id, l]) => [id, l.lastSeen, l.connectedAt]),
      );
      for (const r of rows) written.add(r.id);
    }
    return written;
  }

  /**
   * Locks these clusters' rows until the transaction ends, in id order, in
   * one statement per 1,000: what a group commit does before its jobs run, so
   * that every replica's groups take rows in one order (group-commit.ts).
   * SQLite has one writer and locks nothing.
   */
  async lockRows(ids: readonly string[]): Promise<void> {
    const d = this.#sql.dialect;
    if (d.forUpdate === '') return;
    for (let i = 0; i < ids.length; i += LOCK_CHUNK) {
      const chunk = ids.slice(i, i + LOCK_CHUNK);
      await this.#sql.all(`SELECT id FROM clusters WHERE id IN (${chunk.map(() => '?').join(', ')}) ORDER BY id${d.idOrder}${d.forUpdate}`, chunk);
    }
  }

  /** Records a registration request; an existing cluster is returned unchanged (two replicas registering one id at once store one row). */
  async requestRegistration(req: RegistrationRequest): Promise<ClusterRecord> {
    const created = await this.#sql.run(
      `INSERT INTO clusters (id, status, labels, requested_at, agent_version, inventory, kubernetes_version, target_infrastructure, public_key)
       VALUES (?, 'Pending', ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
      [
        req.id,
        JSON.stringify(req.labels),
        this.#now().toISOString(),
        req.agentVersion,
        req.inventory ? JSON.stringify(req.inventory) : null,
        req.inventory?.kubernetesVersion ?? null,
        req.inventory?.targetInfrastructure ?? null,
        req.publicKey,
      ],
    );
    if (created === 1) this.#leases.delete(req.id);
    return (await this.get(req.id)) as ClusterRecord;
  }

  async countPending(): Promise<number> {
    return (await this.#sql.get<{ n: number }>("SELECT count(*) AS n FROM clusters WHERE status = 'Pending'"))?.n ?? 0;
  }

  /** Pending → Accepted: the key it registered with is trusted from now on. False when the cluster is not pending. */
  async accept(id: string): Promise<boolean> {
    return (await this.#sql.run("UPDATE clusters SET status = 'Accepted', accepted_at = ? WHERE id = ? AND status = 'Pending'", [this.#now().toISOString(), id])) === 1;
  }

  /**
   * A bearer credential's hash, as hubs before keys issued them: for
   * databases and benchmarks that hold such clusters (docs/security.md, migration).
   */
  async setLegacyCredential(id: string, credentialHash: string): Promise<void> {
    await this.#sql.run('UPDATE clusters SET credential_hash = ? WHERE id = ?', [credentialHash, id]);
  }

  /** A legacy-credential agent proved a key on its hello: the key replaces the credential. False if a key is already bound. */
  async bindKey(id: string, publicKey: string): Promise<boolean> {
    return (await this.#sql.run('UPDATE clusters SET public_key = ?, credential_hash = NULL WHERE id = ? AND public_key IS NULL', [publicKey, id])) === 1;
  }

  /** The operator trusts this key for the cluster (a conflict resolved, a rotation): any other key, credential and revocation go. */
  trustKey(id: string, publicKey: string): Promise<boolean> {
    return this.#sql.transaction(async () => {
      const changed = (await this.#sql.run('UPDATE clusters SET public_key = ?, credential_hash = NULL, revoked_at = NULL WHERE id = ?', [publicKey, id])) === 1;
      await this.#sql.run('DELETE FROM cluster_key_conflicts WHERE cluster_id = ? AND public_key = ?', [id, publicKey]);
      return changed;
    });
  }

  /** The cluster's key (or legacy credential) stops authenticating it; the record and its history stay. */
  async revoke(id: string): Promise<boolean> {
    return (await this.#sql.run('UPDATE clusters SET revoked_at = ?, credential_hash = NULL WHERE id = ? AND revoked_at IS NULL', [this.#now().toISOString(), id])) === 1;
  }

  /** Keeps at most MAX_KEY_CONFLICTS keys per cluster, so registrants cycling keys cannot grow the table. */
  async recordKeyConflict(id: string, publicKey: string, remoteAddress: string | undefined): Promise<void> {
    const now = this.#now().toISOString();
    const known = await this.#sql.get<{ n: number; mine: number | null }>(
      'SELECT count(*) AS n, sum(CASE WHEN public_key = ? THEN 1 ELSE 0 END) AS mine FROM cluster_key_conflicts WHERE cluster_id = ?',
      [publicKey, id],
    );
    if (known !== undefined && known.n >= MAX_KEY_CONFLICTS && !known.mine) return;
    await this.#sql.run(
      `INSERT INTO cluster_key_conflicts (cluster_id, public_key, first_seen, last_seen, remote_address) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (cluster_id, public_key) DO UPDATE SET last_seen = excluded.last_seen, attempts = cluster_key_conflicts.attempts + 1, remote_address = excluded.remote_address`,
      [id, publicKey, now, now, remoteAddress ?? null],
    );
  }

  async keyConflicts(id: string): Promise<KeyConflict[]> {
    const rows = await this.#sql.all<{ public_key: string; first_seen: string; last_seen: string; attempts: number; remote_address: string | null }>(
      'SELECT public_key, first_seen, last_seen, attempts, remote_address FROM cluster_key_conflicts WHERE cluster_id = ? ORDER BY first_seen, public_key',
      [id],
    );
    return rows.map((r) => ({ publicKey: r.public_key, firstSeen: r.first_seen, lastSeen: r.last_seen, attempts: r.attempts, remoteAddress: r.remote_address }));
  }

  /**
   * recordHello() for many agents at once (a group commit's hellos:
   * group-commit.ts submitBatch), with one locking read and one UPDATE for
   * all of them, for agents that proved `publicKey`: a hello is taken only
   * while its cluster is still Accepted under that key (deregistered,
   * revoked or another key trusted since the frame arrived: not accepted).
   * Results in the order of `hellos`; a cluster's hellos in their order.
   */
  readonly helloMany = async (hellos: readonly ProvenHello[]): Promise<HelloOutcome[]> => {
    if (!this.#sql.inTransaction) return this.#sql.transaction(() => this.helloMany(hellos));
    return byRounds(hellos, (h) => h.id, (round) => this.#helloRound(round));
  };

  /** Hellos of distinct clusters, in the caller's transaction. */
  async #helloRound(hellos: readonly ProvenHello[]): Promise<HelloOutcome[]> {
    const sql = this.#sql;
    const d = sql.dialect;
    const current = new Map<string, { status: string; revoked_at: string | null; public_key: string | null; acked_seq: number }>();
    for (const chunk of chunked(hellos.map((h) => h.id), HELLO_CHUNK)) {
      // In id order, as every lock the group takes (group-commit.ts).
      const rows = await sql.all<{ id: string; status: string; revoked_at: string | null; public_key: string | null; acked_seq: number }>(
        `SELECT id, status, revoked_at, public_key, acked_seq FROM clusters WHERE id IN (${placeholders(chunk)}) ORDER BY id${d.idOrder}${d.forUpdate}`,
        chunk,
      );
      for (const r of rows) current.set(r.id, r);
    }
    const taken = hellos.filter((h) => {
      const c = current.get(h.id);
      return c !== undefined && c.status === 'Accepted' && c.revoked_at === null && c.public_key === h.publicKey;
    });
    const epochs = new Map<string, number>();
    for (const chunk of chunked(taken, HELLO_CHUNK)) {
      const byId = (value: (h: ProvenHello) => SqlValue, cast = ''): { text: string; params: SqlValue[] } => ({
        text: `CASE id ${chunk.map(() => (cast === '' ? 'WHEN ? THEN ?' : `WHEN ? THEN CAST(? AS ${cast})`)).join(' ')} END`,
        params: chunk.flatMap((h) => [h.id, value(h)]),
      });
      const set = [
        ['agent_version', byId((h) => h.hello.agentVersion)],
        ['inventory', byId((h) => JSON.stringify(h.hello.inventory))],
        ['kubernetes_version', byId((h) => h.hello.inventory.kubernetesVersion)],
        ['target_infrastructure', byId((h) => h.hello.inventory.targetInfrastructure)],
      ] as const;
      const revision = byId((h) => h.hello.lastRevision, 'BIGINT');
      const rows = await sql.all<{ id: string; connection_epoch: number | string }>(
        `UPDATE clusters SET ${set.map(([column, v]) => `${column} = ${v.text}`).join(', ')},
           agent_revision = ${d.greatest('agent_revision', revision.text)}, connection_epoch = connection_epoch + 1
         WHERE id IN (${placeholders(chunk)}) RETURNING id, connection_epoch`,
        [...set.flatMap(([, v]) => v.params), ...revision.params, ...chunk.map((h) => h.id)],
      );
      for (const r of rows) epochs.set(r.id, Number(r.connection_epoch));
    }
    const now = this.#now().toISOString();
    return hellos.map((h) => {
      const epoch = epochs.get(h.id);
      if (epoch === undefined) return { accepted: false };
      this.#leases.set(h.id, { lastSeen: now, connectedAt: now });
      return { accepted: true, epoch, ackedSeq: current.get(h.id)?.acked_seq ?? 0 };
    });
  }

  /**
   * What the agent announced (written now) and a lease renewal that starts a
   * connection (in memory, see flushLeases). Returns the connection's epoch:
   * one more than any hello of this cluster committed before, on any replica
   * (the row lock orders them), so a newer connection always has the larger one.
   */
  async recordHello(id: string, hello: { agentVersion: string; inventory: Inventory; lastRevision: number }): Promise<number> {
    const row = await this.#sql.get<{ connection_epoch: number | string }>(
      `UPDATE clusters SET agent_version = ?, inventory = ?, kubernetes_version = ?, target_infrastructure = ?,
         agent_revision = ${this.#sql.dialect.greatest('agent_revision', '?')}, connection_epoch = connection_epoch + 1 WHERE id = ?
       RETURNING connection_epoch`,
      [hello.agentVersion, JSON.stringify(hello.inventory), hello.inventory.kubernetesVersion, hello.inventory.targetInfrastructure, hello.lastRevision, id],
    );
    const now = this.#now().toISOString();
    this.#leases.set(id, { lastSeen: now, connectedAt: now });
    return row === undefined ? 0 : Number(row.connection_epoch);
  }

  async updateInventory(id: string, inventory: Inventory): Promise<void> {
    await this.#sql.run('UPDATE clusters SET inventory = ?, kubernetes_version = ?, target_infrastructure = ? WHERE id = ?', [
      JSON.stringify(inventory),
      inventory.kubernetesVersion,
      inventory.targetInfrastructure,
      id,
    ]);
  }

  /** Replaces the cluster's labels (rollouts select by them); false for an unknown cluster. */
  async setLabels(id: string, labels: Record<string, string>): Promise<boolean> {
    return (await this.#sql.run('UPDATE clusters SET labels = ? WHERE id = ?', [JSON.stringify(labels), id])) === 1;
  }

  /**
   * Stores the maintenance window the agent reported. Agents send it only
   * when it changed, so each call is a real change (the WHERE skips a repeat
   * after a reconnect); false when nothing changed or the cluster is unknown.
   */
  async setMaintenanceWindow(id: string, window: MaintenanceWindow): Promise<boolean> {
    const json = JSON.stringify({ open: window.open, opensAt: window.opensAt, closesAt: window.closesAt });
    return (await this.#sql.run('UPDATE clusters SET maintenance_window = ? WHERE id = ? AND (maintenance_window IS NULL OR maintenance_window <> ?)', [json, id, json])) === 1;
  }

  /** Renews the lease, in memory: flushLeases() writes it. */
  touch(id: string): void {
    const lastSeen = this.#now().toISOString();
    const l = this.#leases.get(id);
    if (l === undefined) this.#leases.set(id, { lastSeen, connectedAt: null });
    else l.lastSeen = lastSeen;
  }

  /** Everything about the cluster goes (releases, reports, aggregate) except telemetry. */
  async delete(id: string): Promise<boolean> {
    this.#leases.delete(id);
    return (await this.#sql.run('DELETE FROM clusters WHERE id = ?', [id])) === 1;
  }
}
