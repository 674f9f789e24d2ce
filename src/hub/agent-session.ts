// One agent connection, as the hub sees it. The hub's first frame is a
// challenge; the agent answers with a register (bootstrap token, its public
// key, a signature over the challenge) or a hello (a signature with the key
// the cluster registered), so a connection speaks for a cluster only once it
// proved it holds that cluster's key (docs/security.md). A bearer
// credential from before keys still authenticates at the upgrade until its
// agent binds a key.
//
// Writes that must be durable before the hub answers (a registration, a
// hello's record, a report batch) go through the group committer
// (store/group-commit.ts): several connections' writes share one commit, and
// the answer goes out only after it. Jobs run and answers go out in
// submission order, so frames of one connection apply in the order they
// arrived and an ack always follows the commit it names. Lease renewals
// (heartbeats, pings, any frame) only touch memory (store/cluster-repo.ts).
// The store is asynchronous, so a connection's frames are handled one after
// another (#turn): a frame's reads finish, and its write is submitted,
// before the next frame is looked at.
//
// Every connection has a budget (connection-budget.ts): past it the hub
// closes with 1008, logs once, reads nothing more from the peer, and bans
// the offender for a growing back-off (abuse-bans.ts).
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { agentKeyFingerprint, verifyChallenge } from '../protocol/agent-identity.ts';
import {
  closeCodes,
  encodeMessage,
  errorReply,
  parseMessage,
  ProtocolError,
  type HubMessage,
  type MessageOf,
  type Outgoing,
  type RegistrationRefusal,
} from '../protocol/messages.ts';
import type { Offender } from './abuse-bans.ts';
import { ConnectionBudget, type BudgetVerdict } from './connection-budget.ts';
import { deliverCurrentOverrides } from './rollout/override-delivery.ts';
import type { HubContext } from './hub-context.ts';
import type { HelloOutcome } from './store/cluster-repo.ts';
import type { CommitOutcome } from './store/group-commit.ts';
import { DatabaseConflict, DatabaseUnavailable } from './store/sql.ts';
import type { LiveSession } from './session-registry.ts';

/** Who opened the connection, as established by the upgrade request: a legacy bearer credential names its cluster; anyone else must prove a key. */
export type SessionIdentity = { kind: 'cluster'; clusterId: string } | { kind: 'anonymous' };

export interface SessionTransport {
  send(text: string): void;
  close(code: number, reason: string): void;
  /** After a cut-off: read nothing more from the peer, and drop it soon even if it never answers the close. */
  stopReading?(): void;
}

type RegisterOutcome =
  | { status: 'pending'; created: boolean }
  | { status: 'accepted' }
  | { status: 'rejected'; code: RegistrationRefusal; reason: string; close: number };

export class AgentSession implements LiveSession {
  readonly #ctx: HubContext;
  readonly #transport: SessionTransport;
  readonly #remote: string | undefined;
  readonly #budget: ConnectionBudget;
  readonly #nonce = randomBytes(32).toString('base64url');
  #log: Logger;
  /** The cluster this connection speaks for, once authenticated (bearer or proof). */
  #clusterId: string | undefined;
  /** Set by a register this connection sent (only one is allowed). */
  #registered = false;
  #helloDone = false;
  #closed = false;
  /** A refusal was logged already: one line per connection, not one per frame. */
  #loggedRefusal = false;
  /** Set by any frame; the liveness timer clears it. */
  sawTraffic = true;
  /** The frame being handled; the next waits for it. */
  #turn: Promise<void> = Promise.resolve();

  constructor(ctx: HubContext, identity: SessionIdentity, transport: SessionTransport, remoteAddress?: string) {
    this.#ctx = ctx;
    this.#transport = transport;
    this.#remote = remoteAddress;
    this.#budget = new ConnectionBudget(ctx.budgets);
    this.#clusterId = identity.kind === 'cluster' ? identity.clusterId : undefined;
    this.#log = ctx.log.child({ session: this.#clusterId ?? 'anonymous', remote: remoteAddress });
  }

  get clusterId(): string | undefined {
    return this.#clusterId;
  }

  /** Sends the challenge; a bearer connection is bound to its cluster at once, so revoking the cluster ends it even before its hello. */
  start(): void {
    if (this.#clusterId !== undefined) this.#ctx.sessions.bind(this.#clusterId, this);
    this.deliver({ type: 'challenge', nonce: this.#nonce });
  }

  deliver(message: Outgoing<HubMessage>): void {
    if (this.#closed) return;
    this.#transport.send(encodeMessage(message));
  }

  close(code: number, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#ctx.sessions.detach(this);
    this.#transport.close(code, reason);
  }

  /** The transport closed under us. */
  closed(): void {
    this.#closed = true;
    this.#ctx.sessions.detach(this);
  }

  /** A WebSocket ping or pong: traffic, so it renews the lease like any frame (docs/hub-api.md). */
  pinged(): void {
    this.sawTraffic = true;
    if (this.#helloDone && this.#clusterId !== undefined) this.#ctx.clusters.touch(this.#clusterId);
  }

  handleFrame(raw: Buffer | string): void {
    this.sawTraffic = true;
    if (this.#closed) return;
    const size = typeof raw === 'string' ? Buffer.byteLength(raw) : raw.length;
    const admitted = this.#budget.frame(size, this.#clusterId !== undefined);
    if (!admitted.ok) return this.#cutOff(admitted);
    const parsed = parseMessage(raw, 'from-agent');
    if (!parsed.ok) {
      this.#refuse(parsed.error);
      return;
    }
    const m = parsed.message;
    this.#turn = this.#turn.then(async () => {
      if (this.#closed) return;
      try {
        switch (m.type) {
          case 'hello':
            await this.#hello(m);
            return;
          case 'reports':
            this.#reports(m);
            return;
          case 'heartbeat':
            if (this.#helloDone && this.#clusterId !== undefined) {
              this.#ctx.clusters.touch(this.#clusterId);
              // Sent only when it changed (older agents never send it): a write per change, not per heartbeat.
              if (m.maintenanceWindow && (await this.#ctx.clusters.setMaintenanceWindow(this.#clusterId, m.maintenanceWindow))) this.#ctx.fleetChanged();
            } else this.#refuse(new ProtocolError('UnexpectedMessage', 'send hello (or register) before anything else'));
            return;
          case 'register':
            await this.#register(m);
            return;
        }
      } catch (err) {
        this.#failed(err, m.type);
      }
    });
  }

  /** Resolves once every frame received so far was handled (its write submitted): for tests. */
  settled(): Promise<void> {
    return this.#turn;
  }

  /**
   * This replica cannot serve the agent now (it cannot reach its database,
   * or it missed changes it cannot replay): the agent is told, and closed
   * with "try again later"; it reconnects, and the Service sends it to a
   * replica that can, or here once this one can. Nothing unacknowledged is
   * lost: it re-sends.
   */
  sendAway(message: string, closeReason = 'hub database unavailable'): void {
    this.deliver({ type: 'error', code: 'Unavailable', message });
    this.close(closeCodes.unavailable, closeReason);
  }

  /** A store failure: nothing was acknowledged, so the agent re-sends after reconnecting. */
  #failed(err: unknown, type: string): void {
    if (err instanceof DatabaseUnavailable) {
      this.#log.warn({ err: err.message, type }, 'the database is unreachable: sending the agent away');
      this.sendAway(`this hub replica cannot reach its database: reconnect (${err.message})`);
      return;
    }
    if (err instanceof DatabaseConflict) {
      // Aborted by the database again and again (the group committer retried it): nothing was written; the agent re-sends after reconnecting.
      this.#log.warn({ err: err.message, type }, 'the database kept aborting this write for conflicts with other transactions: sending the agent away to retry');
      this.sendAway(`the hub database aborted this write for a conflict with another one: reconnect and retry (${err.message})`, 'hub database conflict');
      return;
    }
    this.#log.error({ err, type }, 'failed to handle an agent message');
    this.deliver({ type: 'error', code: 'Internal', message: 'the hub failed to handle the message; reconnect and retry' });
    this.close(closeCodes.internal, 'internal error');
  }

  #refuse(error: ProtocolError): void {
    if (!this.#loggedRefusal) {
      this.#loggedRefusal = true;
      this.#log.warn({ reason: error.reason, path: error.path, err: error.message }, 'rejected a frame from an agent (further refusals on this connection are not logged)');
    }
    this.deliver(errorReply(error));
    if (error.reason === 'UnsupportedVersion') return this.close(closeCodes.unsupportedVersion, 'unsupported protocol version');
    const verdict: BudgetVerdict = error.reason === 'TooDeep' ? { ok: false, budget: 'depth', message: error.message } : this.#budget.refused();
    if (!verdict.ok) this.#cutOff(verdict);
  }

  #cutOff(verdict: Exclude<BudgetVerdict, { ok: true }>): void {
    // Charged to the cluster once its key is proven (its NAT neighbours keep their address), to the address before (abuse-bans.ts).
    const offender: Offender | undefined =
      this.#helloDone && this.#clusterId !== undefined ? { kind: 'cluster', clusterId: this.#clusterId } : this.#remote !== undefined ? { kind: 'address', address: this.#remote } : undefined;
    const bannedMs = offender === undefined ? 0 : this.#ctx.bans.ban(offender);
    const seconds = Math.ceil(bannedMs / 1000);
    this.#log.warn(
      { budget: verdict.budget, badFrames: this.#budget.badFrames, clusterId: this.#clusterId, banned: offender?.kind, bannedMs },
      `closing an agent connection over its budget: ${verdict.message}`,
    );
    const banned = offender === undefined ? '' : offender.kind === 'cluster' ? `; this cluster may reconnect in ${seconds} s` : `; this address may reconnect in ${seconds} s`;
    this.deliver({ type: 'error', code: 'BudgetExceeded', message: `${verdict.message}: the hub closes this connection${banned}`, ...(offender === undefined ? {} : { retryAfterMs: bannedMs }) });
    this.close(closeCodes.policyViolation, `budget exceeded: ${verdict.budget}`);
    this.#transport.stopReading?.();
  }

  /** The cluster was cut off for abuse and its back-off has not passed: refused after its proof, before anything is written. */
  #banned(clusterId: string): boolean {
    const wait = this.#ctx.bans.retryAfterMs({ kind: 'cluster', clusterId });
    if (wait === 0) return false;
    this.#refuseAndClose('Banned', `cluster "${clusterId}" was cut off for exceeding its connection budget: retry in ${Math.ceil(wait / 1000)} s`, closeCodes.throttled, wait);
    return true;
  }

  /** `retryAfterMs`: how long this agent will be refused anyway, so it need not try sooner. */
  #refuseAndClose(code: string, message: string, closeCode: number, retryAfterMs?: number): void {
    this.#log.warn({ code, err: message }, 'closing an agent connection');
    this.deliver({ type: 'error', code, message, ...(retryAfterMs === undefined ? {} : { retryAfterMs: Math.ceil(retryAfterMs) }) });
    this.close(closeCode, code);
  }

  /** The address failed too often: refused without looking at what it sent. */
  #throttled(): boolean {
    const wait = this.#ctx.throttle.retryAfterMs(this.#remote);
    if (wait === 0) return false;
    this.#refuseAndClose('Throttled', `too many failed attempts from this address: retry in ${Math.ceil(wait / 1000)} s`, closeCodes.throttled, wait);
    return true;
  }

  async #hello(m: MessageOf<'hello'>): Promise<void> {
    if (this.#helloDone) {
      this.#refuse(new ProtocolError('UnexpectedMessage', 'hello was already sent on this connection'));
      return;
    }
    let bindKey: string | undefined;
    /** The key the hello is taken under: the one its proof verified with, or for a legacy credential the cluster's now. */
    let provenKey: string | null = null;
    if (this.#clusterId !== undefined) {
      // A legacy bearer credential authenticated the upgrade.
      const id = this.#clusterId;
      if (m.clusterId !== id) {
        this.#refuseAndClose('ClusterMismatch', `this credential belongs to cluster "${id}", not "${m.clusterId}"`, closeCodes.clusterMismatch);
        return;
      }
      if (m.publicKey !== undefined && m.proof !== undefined) {
        if (!verifyChallenge(m.publicKey, m.proof, 'hello', this.#nonce, id)) {
          this.#ctx.throttle.fail(this.#remote);
          this.#refuseAndClose('BadProof', 'the hello\'s proof does not verify with the key it names: sign this connection\'s challenge', closeCodes.unauthenticated);
          return;
        }
        bindKey = m.publicKey;
      }
      if (this.#banned(id)) return;
      // The credential proved the cluster, not a key: the hello holds for whichever key the cluster has now.
      provenKey = bindKey ?? (await this.#ctx.clusters.get(id))?.publicKey ?? null;
    } else {
      if (this.#registered) {
        this.#refuse(new ProtocolError('UnexpectedMessage', 'this connection registered; reconnect to say hello'));
        return;
      }
      if (this.#throttled()) return;
      const cluster = await this.#ctx.clusters.get(m.clusterId);
      const refusal = ((): [string, string, number] | undefined => {
        if (!cluster) return ['Deregistered', `cluster "${m.clusterId}" is not registered with this hub: register with a bootstrap token`, closeCodes.deregistered];
        if (cluster.status === 'Revoked') return ['Revoked', `cluster "${m.clusterId}" was revoked by an operator: it needs a new bootstrap`, closeCodes.revoked];
        if (cluster.publicKey === null) return ['Unauthenticated', `cluster "${m.clusterId}" authenticates with its bearer credential until it binds a key`, closeCodes.unauthenticated];
        if (m.proof === undefined) return ['ProofRequired', 'hello needs a proof: sign this connection\'s challenge with the cluster\'s key', closeCodes.unauthenticated];
        if (!verifyChallenge(cluster.publicKey, m.proof, 'hello', this.#nonce, m.clusterId)) return ['BadProof', `the proof does not verify with cluster "${m.clusterId}"'s key`, closeCodes.unauthenticated];
        if (cluster.status !== 'Accepted') return ['NotAccepted', `cluster "${m.clusterId}" is pending: an operator must accept it`, closeCodes.unauthenticated];
        return undefined;
      })();
      if (refusal) {
        if (refusal[0] !== 'NotAccepted' && refusal[0] !== 'Revoked') this.#ctx.throttle.fail(this.#remote);
        this.#refuseAndClose(...refusal);
        return;
      }
      if (this.#banned(m.clusterId)) return;
      provenKey = cluster?.publicKey ?? null;
      this.#clusterId = m.clusterId;
      this.#log = this.#ctx.log.child({ session: m.clusterId, remote: this.#remote });
      this.#ctx.sessions.bind(m.clusterId, this);
    }
    const id = this.#clusterId;
    // Later frames (reports) are accepted now: their writes queue behind this one.
    this.#helloDone = true;
    const answer = (outcome: CommitOutcome<HelloOutcome>): void => {
      if (!outcome.ok) return this.#failed(outcome.error, 'hello');
      if (this.#closed) return;
      if (!outcome.value.accepted) {
        this.#refuseAndClose('Deregistered', `cluster "${id}" is not registered with this hub under this key`, closeCodes.deregistered);
        return;
      }
      if (bindKey !== undefined) this.#log.info({ fingerprint: agentKeyFingerprint(bindKey) }, 'agent bound its key; its bearer credential no longer authenticates');
      this.#welcome(id, m, outcome.value.ackedSeq, outcome.value.epoch).catch((err: unknown) => this.#failed(err, 'hello'));
    };
    if (bindKey === undefined) {
      // The key the proof was checked with; the hello is taken only if the cluster still trusts it when it commits,
      // shared with the group's other hellos (ClusterRepo.helloMany).
      this.#ctx.commits.submitBatch(this.#ctx.clusters.helloMany, { id, publicKey: provenKey, hello: m }, answer, id);
      return;
    }
    // A legacy credential binding its key: rare, a job of its own.
    this.#ctx.commits.submit(
      async (): Promise<HelloOutcome> => {
        const now = await this.#ctx.clusters.get(id);
        // The right may have ended since the frame arrived (deregistered, revoked, another key trusted).
        if (now?.status !== 'Accepted' || !(await this.#ctx.clusters.bindKey(id, bindKey))) return { accepted: false };
        const [taken] = await this.#ctx.clusters.helloMany([{ id, publicKey: bindKey, hello: m }]);
        return taken ?? { accepted: false };
      },
      answer,
      id,
    );
  }

  /** After the hello is committed: this connection becomes the cluster's, and learns what the hub holds. */
  async #welcome(id: string, m: MessageOf<'hello'>, ackedSeq: number, epoch: number): Promise<void> {
    const superseded = this.#ctx.sessions.attachAgent(id, this, epoch);
    superseded?.close(closeCodes.superseded, 'superseded by a newer connection');
    // A newer connection of this agent was welcomed first (here or on another replica): this one is the old one.
    if (superseded === this) return;
    if (m.outbox.firstSeq !== null && m.outbox.firstSeq - 1 > ackedSeq) {
      // The agent dropped rows this hub never stored: acknowledged by an
      // earlier hub database (restored from backup). They cannot come back.
      this.#log.warn({ ackedSeq, firstSeq: m.outbox.firstSeq }, 'reports between the hub\'s mark and the agent\'s outbox are lost');
    }
    this.#log.info({ agentVersion: m.agentVersion, ackedSeq, outbox: m.outbox, lastRevision: m.lastRevision }, 'agent connected');
    this.deliver({ type: 'welcome', ackedSeq, heartbeatMs: this.#ctx.heartbeatMs, leaseDurationMs: this.#ctx.leaseMs });
    // An older connection of this agent on another replica ends too.
    await this.#ctx.bus.publish({ t: 'hello', c: id, e: epoch });
    const desired = await this.#ctx.releases.latest(id);
    if (desired && desired.revision > m.lastRevision) this.deliver({ type: 'release', envelope: desired.envelope });
    await deliverCurrentOverrides(this.#ctx, id);
    // Availability and inventory (overrides) changed: rollouts may move, the dashboard shows them.
    this.#ctx.rolloutInputChanged();
    this.#ctx.fleetChanged();
  }

  #reports(m: MessageOf<'reports'>): void {
    const id = this.#clusterId;
    if (id === undefined || !this.#helloDone) {
      this.#refuse(new ProtocolError('UnexpectedMessage', id === undefined ? 'reports need an authenticated hello first' : 'send hello before reports'));
      return;
    }
    this.#ctx.clusters.touch(id);
    // Durable before the ack: the agent deletes its copy on it.
    // Shared with the other batches of its group: one ingest for all of them (group-commit.ts).
    this.#ctx.commits.submitBatch(
      this.#ctx.reports.ingestMany,
      { clusterId: id, afterSeq: m.afterSeq, reports: m.reports },
      (outcome) => {
        if (!outcome.ok) return this.#failed(outcome.error, 'reports');
        const result = outcome.value;
        this.#log.debug({ ...result, afterSeq: m.afterSeq, count: m.reports.length }, 'reports received');
        if (result.expectedAfterSeq !== undefined) {
          this.#log.warn({ afterSeq: m.afterSeq, expectedAfterSeq: result.expectedAfterSeq }, 'a report batch followed a report the hub does not hold: asked the agent to resume from its mark');
          this.deliver({ type: 'ack', uptoSeq: result.ackedSeq, expectedAfterSeq: result.expectedAfterSeq });
        } else {
          this.deliver({ type: 'ack', uptoSeq: result.ackedSeq });
        }
        if (result.applied > 0) {
          this.#ctx.rolloutInputChanged();
          this.#ctx.fleetChanged();
        }
      },
      id,
    );
  }

  async #register(m: MessageOf<'register'>): Promise<void> {
    if (this.#clusterId !== undefined || this.#registered) {
      this.#refuse(new ProtocolError('UnexpectedMessage', this.#registered ? 'register was already sent on this connection' : 'this connection already authenticated; register is for agents without a key on the hub'));
      return;
    }
    this.#registered = true;
    if (this.#throttled()) return;
    const reject = (code: RegistrationRefusal, reason: string, close: number, failure = true): void => {
      if (failure) this.#ctx.throttle.fail(this.#remote);
      this.#log.warn({ clusterId: m.clusterId, code }, `registration refused: ${reason}`);
      this.deliver({ type: 'registration', status: 'rejected', code, reason });
      this.close(close, code);
    };
    const token = await this.#ctx.bootstrapTokens.check(m.bootstrapToken);
    if (!token.ok) {
      const why = { Unknown: 'not recognised', Expired: 'expired', Revoked: 'revoked', UsedUp: 'used up (its use limit is reached)' }[token.reason];
      return reject('BadBootstrapToken', `bootstrap token ${why}: ask the hub operator for a valid one`, closeCodes.unauthenticated);
    }
    if (m.publicKey === undefined || m.proof === undefined) {
      return reject('ProofRequired', 'registration needs the agent\'s public key and a signature over the challenge: upgrade the agent', closeCodes.unauthenticated);
    }
    if (!verifyChallenge(m.publicKey, m.proof, 'register', this.#nonce, m.clusterId)) {
      return reject('BadProof', 'the proof does not verify with the public key sent: sign this connection\'s challenge', closeCodes.unauthenticated);
    }
    const publicKey = m.publicKey;
    const fingerprint = agentKeyFingerprint(publicKey);
    this.#ctx.commits.submit(
      async (): Promise<RegisterOutcome> => {
        const cluster = await this.#ctx.clusters.get(m.clusterId);
        if (!cluster) {
          if ((await this.#ctx.clusters.countPending()) >= this.#ctx.maxPendingRegistrations) {
            return { status: 'rejected', code: 'TooManyPending', reason: 'the hub holds too many pending registrations: ask the operator to accept or remove some', close: closeCodes.throttled };
          }
          if (!(await this.#ctx.bootstrapTokens.use(token.id))) return { status: 'rejected', code: 'BadBootstrapToken', reason: 'bootstrap token used up (its use limit is reached): ask the hub operator for a valid one', close: closeCodes.unauthenticated };
          await this.#ctx.clusters.requestRegistration({ id: m.clusterId, labels: m.labels ?? {}, agentVersion: m.agentVersion, inventory: m.inventory, publicKey });
          return { status: 'pending', created: true };
        }
        if (cluster.publicKey !== publicKey) {
          await this.#ctx.clusters.recordKeyConflict(m.clusterId, publicKey, this.#remote);
          const held = cluster.publicKey === null ? 'a bearer credential from before keys' : `key ${agentKeyFingerprint(cluster.publicKey)}`;
          return {
            status: 'rejected',
            code: 'KeyConflict',
            reason: `cluster "${m.clusterId}" is registered with ${held}, not ${fingerprint}: an operator must trust this key or deregister the cluster`,
            close: closeCodes.keyConflict,
          };
        }
        if (cluster.status === 'Revoked') return { status: 'rejected', code: 'Revoked', reason: `cluster "${m.clusterId}" was revoked by an operator: it needs a new bootstrap`, close: closeCodes.revoked };
        return cluster.status === 'Accepted' ? { status: 'accepted' } : { status: 'pending', created: false };
      },
      (outcome) => {
        if (!outcome.ok) return this.#failed(outcome.error, 'register');
        const r = outcome.value;
        // A new pending registration, or a key conflict recorded: both show on the dashboard (committed, whether or not the connection is still open).
        if ((r.status === 'pending' && r.created) || (r.status === 'rejected' && r.code === 'KeyConflict')) this.#ctx.fleetChanged();
        if (this.#closed) return;
        if (r.status === 'rejected') return reject(r.code, r.reason, r.close, r.code !== 'TooManyPending' && r.code !== 'Revoked');
        if (r.status === 'accepted') {
          this.#log.info({ clusterId: m.clusterId, fingerprint }, 'registrant holds the key of an accepted cluster: told to connect');
          this.#ctx.sessions.bind(m.clusterId, this);
          this.deliver({ type: 'registration', status: 'accepted' });
          return;
        }
        this.#ctx.sessions.attachRegistrant(m.clusterId, this);
        if (r.created) this.#log.info({ clusterId: m.clusterId, fingerprint }, 'registration pending: waiting for an operator to accept');
        this.deliver({ type: 'registration', status: 'pending', reason: 'waiting for an operator to accept this cluster' });
      },
      m.clusterId,
    );
  }
}
