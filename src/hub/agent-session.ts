// One agent connection, as the hub sees it. Writes that must be durable
// before the hub answers (a hello's record, a report batch) go through the
// group committer (store/group-commit.ts): several connections' writes share
// one commit, and the answer (welcome, ack) goes out only after it. Jobs run
// and answers go out in submission order, so frames of one connection apply
// in the order they arrived and an ack always follows the commit it names.
// Lease renewals (heartbeats, any frame) only touch memory (store/clusters.ts).
import type { Logger } from 'pino';
import {
  closeCodes,
  encodeMessage,
  errorReply,
  parseMessage,
  ProtocolError,
  type HubMessage,
  type MessageOf,
  type Outgoing,
} from '../protocol/messages.ts';
import { matchesAny } from './credentials.ts';
import { deliverCurrentOverrides } from './rollout/override-delivery.ts';
import type { HubContext } from './hub-context.ts';
import type { LiveSession } from './session-registry.ts';

/** Who opened the connection, as established by the upgrade request. */
export type SessionIdentity = { kind: 'cluster'; clusterId: string } | { kind: 'registrant' };

export interface SessionTransport {
  send(text: string): void;
  close(code: number, reason: string): void;
}


export class AgentSession implements LiveSession {
  readonly #ctx: HubContext;
  readonly #identity: SessionIdentity;
  readonly #transport: SessionTransport;
  readonly #log: Logger;
  #helloDone = false;
  #closed = false;
  /** Set by any frame; the liveness timer clears it. */
  sawTraffic = true;

  constructor(ctx: HubContext, identity: SessionIdentity, transport: SessionTransport) {
    this.#ctx = ctx;
    this.#identity = identity;
    this.#transport = transport;
    this.#log = ctx.log.child({ session: identity.kind === 'cluster' ? identity.clusterId : 'registrant' });
  }

  get clusterId(): string | undefined {
    return this.#identity.kind === 'cluster' ? this.#identity.clusterId : undefined;
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

  handleFrame(raw: Buffer | string): void {
    this.sawTraffic = true;
    if (this.#closed) return;
    const parsed = parseMessage(raw, 'from-agent');
    if (!parsed.ok) {
      this.#refuse(parsed.error);
      return;
    }
    const m = parsed.message;
    try {
      switch (m.type) {
        case 'hello':
          this.#hello(m);
          return;
        case 'reports':
          this.#reports(m);
          return;
        case 'heartbeat':
          if (this.#helloDone && this.clusterId !== undefined) this.#ctx.clusters.touch(this.clusterId);
          else if (this.#identity.kind === 'cluster') this.#refuse(new ProtocolError('UnexpectedMessage', 'send hello before anything else'));
          return;
        case 'register':
          this.#register(m);
          return;
      }
    } catch (err) {
      this.#failed(err, m.type);
    }
  }

  /** A store failure: nothing was acknowledged, so the agent re-sends after reconnecting. */
  #failed(err: unknown, type: string): void {
    this.#log.error({ err, type }, 'failed to handle an agent message');
    this.deliver({ type: 'error', code: 'Internal', message: 'the hub failed to handle the message; reconnect and retry' });
    this.close(closeCodes.internal, 'internal error');
  }

  #refuse(error: ProtocolError): void {
    this.#log.warn({ reason: error.reason, path: error.path, err: error.message }, 'rejected a frame from an agent');
    this.deliver(errorReply(error));
    if (error.reason === 'UnsupportedVersion') this.close(closeCodes.unsupportedVersion, 'unsupported protocol version');
  }

  #refuseAndClose(code: string, message: string, closeCode: number): void {
    this.#log.warn({ code, err: message }, 'closing an agent connection');
    this.deliver({ type: 'error', code, message });
    this.close(closeCode, code);
  }

  #hello(m: MessageOf<'hello'>): void {
    const id = this.clusterId;
    if (id === undefined) {
      this.#refuseAndClose('Unauthenticated', 'hello needs a credential (Authorization: Bearer); register first with a bootstrap token', closeCodes.unauthenticated);
      return;
    }
    if (m.clusterId !== id) {
      this.#refuseAndClose('ClusterMismatch', `this credential belongs to cluster "${id}", not "${m.clusterId}"`, closeCodes.clusterMismatch);
      return;
    }
    if (this.#helloDone) {
      this.#refuse(new ProtocolError('UnexpectedMessage', 'hello was already sent on this connection'));
      return;
    }
    const cluster = this.#ctx.clusters.get(id);
    if (cluster?.status !== 'Accepted') {
      this.#refuseAndClose('Deregistered', `cluster "${id}" is not registered with this hub`, closeCodes.deregistered);
      return;
    }
    // Later frames (reports) are accepted now: their writes queue behind this one.
    this.#helloDone = true;
    this.#ctx.commits.submit(
      () => {
        if (this.#ctx.clusters.get(id)?.status !== 'Accepted') return { accepted: false, ackedSeq: 0 };
        this.#ctx.clusters.recordHello(id, m);
        this.#ctx.clusters.markCredentialUsed(id);
        return { accepted: true, ackedSeq: this.#ctx.reports.ackedSeq(id) };
      },
      (outcome) => {
        if (!outcome.ok) return this.#failed(outcome.error, 'hello');
        if (this.#closed) return;
        if (!outcome.value.accepted) {
          this.#refuseAndClose('Deregistered', `cluster "${id}" is not registered with this hub`, closeCodes.deregistered);
          return;
        }
        this.#welcome(id, m, outcome.value.ackedSeq);
      },
    );
  }

  /** After the hello is committed: this connection becomes the cluster's, and learns what the hub holds. */
  #welcome(id: string, m: MessageOf<'hello'>, ackedSeq: number): void {
    const previous = this.#ctx.sessions.attachAgent(id, this);
    previous?.close(closeCodes.superseded, 'superseded by a newer connection');
    if (m.outbox.firstSeq !== null && m.outbox.firstSeq - 1 > ackedSeq) {
      // The agent dropped rows this hub never stored: acknowledged by an
      // earlier hub database (restored from backup). They cannot come back.
      this.#log.warn({ ackedSeq, firstSeq: m.outbox.firstSeq }, 'reports between the hub\'s mark and the agent\'s outbox are lost');
    }
    this.#log.info({ agentVersion: m.agentVersion, ackedSeq, outbox: m.outbox, lastRevision: m.lastRevision }, 'agent connected');
    this.deliver({ type: 'welcome', ackedSeq, heartbeatMs: this.#ctx.heartbeatMs, leaseDurationMs: this.#ctx.leaseMs });
    const desired = this.#ctx.releases.latest(id);
    if (desired && desired.revision > m.lastRevision) this.deliver({ type: 'release', envelope: desired.envelope });
    deliverCurrentOverrides(this.#ctx, id);
    // Availability and inventory (overrides) changed: rollouts may move.
    this.#ctx.rolloutInputChanged();
  }

  #reports(m: MessageOf<'reports'>): void {
    const id = this.clusterId;
    if (id === undefined || !this.#helloDone) {
      this.#refuse(new ProtocolError('UnexpectedMessage', id === undefined ? 'reports need a credential; register first' : 'send hello before reports'));
      return;
    }
    this.#ctx.clusters.touch(id);
    // Durable before the ack: the agent deletes its copy on it.
    this.#ctx.commits.submit(
      () => this.#ctx.reports.ingest(id, m.afterSeq, m.reports),
      (outcome) => {
        if (!outcome.ok) return this.#failed(outcome.error, 'reports');
        const result = outcome.value;
        this.#log.debug({ ...result, afterSeq: m.afterSeq, count: m.reports.length }, 'reports received');
        this.deliver({ type: 'ack', uptoSeq: result.ackedSeq });
        if (result.applied > 0) this.#ctx.rolloutInputChanged();
      },
    );
  }

  #register(m: MessageOf<'register'>): void {
    if (this.#identity.kind !== 'registrant') {
      this.#refuse(new ProtocolError('UnexpectedMessage', 'this connection already authenticated; register is for agents without a credential'));
      return;
    }
    if (!matchesAny(m.bootstrapToken, this.#ctx.bootstrapTokens)) {
      this.#log.warn({ clusterId: m.clusterId }, 'registration with an unknown bootstrap token refused');
      this.deliver({ type: 'registration', status: 'rejected', reason: 'bootstrap token not recognised: ask the hub operator for a valid one' });
      this.close(closeCodes.unauthenticated, 'bad bootstrap token');
      return;
    }
    const cluster = this.#ctx.clusters.requestRegistration({ id: m.clusterId, labels: m.labels ?? {}, agentVersion: m.agentVersion, inventory: m.inventory });
    if (cluster.status === 'Pending') {
      this.#ctx.sessions.attachRegistrant(m.clusterId, this);
      this.#log.info({ clusterId: m.clusterId }, 'registration pending: waiting for an operator to accept');
      this.deliver({ type: 'registration', status: 'pending', reason: 'waiting for an operator to accept this cluster' });
    } else if (cluster.undeliveredCredential !== null) {
      this.#log.info({ clusterId: m.clusterId }, 'delivering the credential of an accepted cluster');
      this.deliver({ type: 'registration', status: 'accepted', credential: cluster.undeliveredCredential });
    } else {
      this.#log.warn({ clusterId: m.clusterId }, 'registration for a cluster id that already holds a credential refused');
      this.deliver({ type: 'registration', status: 'rejected', reason: `cluster "${m.clusterId}" is already registered; an operator must deregister it before it can register again` });
      this.close(closeCodes.alreadyRegistered, 'already registered');
    }
  }
}
