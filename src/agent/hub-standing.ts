// Whether this agent may speak to the hub, and what it does when it may not.
// An operator who revokes a cluster means its key is no longer trusted
// (perhaps stolen): the agent stops reconnecting at once (knocking again
// would only feed the hub's throttle), records the revocation in its Secret
// so a restart does not knock either, says so in its status ConfigMap and
// metrics, and waits for a new bootstrap: a bootstrap token other than the
// one it was revoked under (a token file updated in place, or a restart with
// a new one), or its Secret deleted. Then it registers again with a new key,
// which an operator trusts or accepts (docs/security.md). Upgrades from the
// releases it already holds go on meanwhile: only the hub link waits.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { sleep } from '../lib/sleep.ts';
import { generateAgentKey } from '../protocol/agent-identity.ts';
import type { AgentIdentity, CredentialStore } from './kube/credential-secret.ts';

export const hubStandingStates = ['Registering', 'Registered', 'Revoked'] as const;
export type HubStandingState = (typeof hubStandingStates)[number];

export interface HubStanding {
  state: HubStandingState;
  reason: string;
  since: string;
}

/** What a leader does with the identity in its Secret and the bootstrap token it holds now. */
export type StandingDecision = 'connect' | 'wait' | 'rebootstrap';

/** sha256 of a bootstrap token, so the Secret can tell a new token from the old one without holding either. */
export function bootstrapDigest(token: string | undefined): string | null {
  return token ? `sha256:${createHash('sha256').update(token).digest('base64url')}` : null;
}

export function decideStanding(identity: AgentIdentity, bootstrapToken: string | undefined): StandingDecision {
  if (!identity.revoked) return 'connect';
  const digest = bootstrapDigest(bootstrapToken);
  return digest !== null && digest !== identity.revoked.bootstrapDigest ? 'rebootstrap' : 'wait';
}

export interface HubStandingOptions {
  credentials: CredentialStore;
  /** Read again on every decision: a token file mounted from a Secret changes in place. */
  bootstrapToken: () => string | undefined;
  /** Runs the hub link with this identity until the signal aborts or the hub revokes the cluster (then resolves with the reason). */
  connect: (identity: AgentIdentity, signal: AbortSignal) => Promise<{ revoked?: string }>;
  onStanding?: (standing: HubStanding) => void;
  now: () => Date;
  logger: Logger;
  /** How often a revoked agent looks for a new bootstrap token (default 30 s). */
  recheckMs?: number;
}

/** One per leadership term: keeps the hub link up while the agent may speak to the hub, and waits while it may not. */
export class HubStandingSupervisor {
  readonly #o: HubStandingOptions;
  #standing: HubStanding | undefined;

  constructor(options: HubStandingOptions) {
    this.#o = options;
  }

  /** The latest standing (undefined before the Secret was read). */
  get standing(): HubStanding | undefined {
    return this.#standing;
  }

  /** The link registered or connected with the key: tell the status ConfigMap and metrics. */
  registered(): void {
    this.#set('Registered', 'an operator accepted this cluster\'s key');
  }

  async run(signal: AbortSignal): Promise<void> {
    const log = this.#o.logger;
    while (!signal.aborted) {
      let identity: AgentIdentity;
      try {
        identity = await this.#o.credentials.loadOrCreate();
      } catch (err) {
        // Without its key the agent still upgrades from what it holds; the next leadership term tries again.
        log.error({ err }, 'cannot read or create this agent\'s key in its Secret: no hub link this leadership term');
        return;
      }
      const decision = decideStanding(identity, this.#o.bootstrapToken());
      if (decision === 'wait') {
        const r = identity.revoked;
        if (this.#standing?.state !== 'Revoked') {
          log.error({ revokedAt: r?.at, reason: r?.reason }, 'this cluster was revoked on the hub: waiting for a new bootstrap token (or a deleted Secret) before registering again with a new key');
        }
        this.#set('Revoked', r?.reason ?? 'revoked by an operator', r?.at);
        await sleep(this.#o.recheckMs ?? 30_000, signal);
        continue;
      }
      if (decision === 'rebootstrap') {
        // The revoked key may be what was stolen: the new registration proves a new one.
        identity = { key: generateAgentKey(), registered: false, legacyCredential: undefined };
        await this.#o.credentials.save(identity);
        log.warn('a new bootstrap token after the revocation: registering again with a new key');
      }
      this.#set(identity.registered ? 'Registered' : 'Registering', identity.registered ? 'an operator accepted this cluster\'s key' : 'waiting for an operator to accept this cluster\'s key');
      const { revoked } = await this.#o.connect(identity, signal);
      if (revoked === undefined) return;
      const at = this.#o.now().toISOString();
      identity.revoked = { at, reason: revoked, bootstrapDigest: bootstrapDigest(this.#o.bootstrapToken()) };
      identity.registered = false;
      identity.legacyCredential = undefined;
      try {
        await this.#o.credentials.save(identity);
      } catch (err) {
        // Still stopped for this term; a restart would knock once more, and be refused again.
        log.error({ err }, 'cannot record the revocation in the agent\'s Secret');
      }
    }
  }

  #set(state: HubStandingState, reason: string, since?: string): void {
    if (this.#standing?.state === state && this.#standing.reason === reason) return;
    this.#standing = { state, reason, since: since ?? this.#o.now().toISOString() };
    this.#o.onStanding?.(this.#standing);
  }
}
