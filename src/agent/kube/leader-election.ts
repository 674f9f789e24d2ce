// Leader election on a coordination.k8s.io Lease, as client-go does it: the
// holder renews before the lease runs out; anyone may take a lease whose
// renewTime + leaseDurationSeconds has passed; writes are guarded by
// resourceVersion, so two candidates never both win. Only the leader acts;
// the others stand by (DaemonSet mode, or two agents during a self-upgrade).
import type { Logger } from 'pino';
import type { KubeObject } from '../../protocol/release.ts';
import { KubeApiError, type ClusterClient } from './cluster-client.ts';

export interface LeaderElectionOptions {
  cluster: ClusterClient;
  namespace: string;
  name?: string;
  identity: string;
  leaseDurationMs?: number;
  retryMs?: number;
  now: () => Date;
  sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  logger: Logger;
}

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

type Lease = KubeObject & { spec?: LeaseSpec };

/** MicroTime wants six fractional digits. */
const microTime = (d: Date) => d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

/** Longest wait between attempts while the Lease API keeps failing. */
const MAX_ERROR_BACKOFF_MS = 30_000;

export class LeaderElector {
  private readonly o: Required<Omit<LeaderElectionOptions, 'name'>> & { name: string };
  private failure: string | undefined;
  private failures = 0;

  constructor(options: LeaderElectionOptions) {
    this.o = { name: 'fleetlet-leader', leaseDurationMs: 15_000, retryMs: 2_000, ...options };
  }

  get identity(): string {
    return this.o.identity;
  }

  /**
   * Why this instance cannot take part in the election right now (the Lease
   * API answered with an error, e.g. a missing permission), or undefined.
   * Readiness reports it: an agent that can never lead must not look Ready.
   */
  problem(): string | undefined {
    return this.failure;
  }

  /** Tries to take or renew the lease; an API error is logged once, kept for readiness, and counts as "not leading". */
  private async attempt(): Promise<boolean> {
    try {
      const won = await this.tryAcquireOrRenew();
      if (this.failure) this.o.logger.info({ identity: this.o.identity }, 'leader election works again');
      this.failure = undefined;
      this.failures = 0;
      return won;
    } catch (err) {
      const message = this.describe(err);
      if (message !== this.failure) this.o.logger.error({ identity: this.o.identity, err: (err as Error).message }, message);
      this.failure = message;
      this.failures++;
      return false;
    }
  }

  private describe(err: unknown): string {
    const lease = `Lease ${this.o.namespace}/${this.o.name}`;
    if (err instanceof KubeApiError && err.status === 403) {
      return `cannot take part in leader election: ${err.message}; the agent's ServiceAccount needs get, update and patch on ${lease} and create on leases in ${this.o.namespace} (manifests/base/rbac-own-namespace.yaml)`;
    }
    if (err instanceof KubeApiError && err.status === 404 && /namespace/i.test(err.message)) {
      return `cannot take part in leader election: namespace ${this.o.namespace} does not exist (kubectl create namespace ${this.o.namespace})`;
    }
    return `cannot take part in leader election (${lease}): ${(err as Error).message}`;
  }

  /** The wait before the next attempt: the retry period, doubled per consecutive API error up to 30 s. */
  private retryDelay(): number {
    if (this.failures === 0) return this.o.retryMs;
    return Math.min(MAX_ERROR_BACKOFF_MS, this.o.retryMs * 2 ** Math.min(this.failures - 1, 10));
  }

  /** Who holds the lease now (undefined when free or expired). */
  async holder(): Promise<string | undefined> {
    const lease = await this.read();
    return lease && !this.expired(lease) ? lease.spec?.holderIdentity || undefined : undefined;
  }

  /**
   * Runs `lead` while this instance holds the lease; the signal handed to it
   * aborts as soon as leadership is lost (renewal failed past the lease).
   * Returns when `signal` aborts, releasing the lease so a successor takes
   * over at once instead of after the lease expires.
   */
  async run(signal: AbortSignal, lead: (leading: AbortSignal) => Promise<'stepDown' | void>, onStandby?: (holder: string | undefined) => Promise<void>): Promise<void> {
    while (!signal.aborted) {
      if (!(await this.attempt())) {
        await onStandby?.(await this.holder().catch(() => undefined));
        await this.o.sleep(this.retryDelay(), signal);
        continue;
      }
      this.o.logger.info({ identity: this.o.identity }, 'became leader');
      const leading = new AbortController();
      const stop = () => leading.abort();
      signal.addEventListener('abort', stop, { once: true });
      const renewing = this.renewLoop(leading);
      let outcome: 'stepDown' | void;
      try {
        outcome = await lead(leading.signal);
      } finally {
        leading.abort();
        signal.removeEventListener('abort', stop);
        await renewing;
      }
      if (signal.aborted || outcome === 'stepDown') await this.release().catch(() => {});
      if (outcome === 'stepDown') {
        // Give the successor a lease's time to take over before contending again.
        this.o.logger.info({ identity: this.o.identity }, 'stepped down');
        const until = this.o.now().getTime() + this.o.leaseDurationMs;
        while (!signal.aborted && this.o.now().getTime() < until) {
          await onStandby?.(await this.holder().catch(() => undefined));
          await this.o.sleep(this.o.retryMs, signal);
        }
      }
    }
  }

  private async renewLoop(leading: AbortController): Promise<void> {
    let lastRenew = this.o.now().getTime();
    while (!leading.signal.aborted) {
      await this.o.sleep(Math.max(200, Math.floor(this.o.leaseDurationMs / 3)), leading.signal);
      if (leading.signal.aborted) return;
      if (await this.attempt()) {
        lastRenew = this.o.now().getTime();
      } else if (this.o.now().getTime() - lastRenew > this.o.leaseDurationMs * 0.8) {
        // Stop acting before anyone else may take over.
        this.o.logger.warn({ identity: this.o.identity }, 'lost leadership');
        leading.abort();
      }
    }
  }

  async tryAcquireOrRenew(): Promise<boolean> {
    const now = this.o.now();
    const spec = (prev?: LeaseSpec): LeaseSpec => ({
      holderIdentity: this.o.identity,
      leaseDurationSeconds: Math.ceil(this.o.leaseDurationMs / 1000),
      acquireTime: prev?.holderIdentity === this.o.identity && prev.acquireTime ? prev.acquireTime : microTime(now),
      renewTime: microTime(now),
      leaseTransitions: (prev?.leaseTransitions ?? 0) + (prev?.holderIdentity === this.o.identity ? 0 : 1),
    });
    const lease = await this.read();
    try {
      if (!lease) {
        await this.o.cluster.create({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: this.o.name, namespace: this.o.namespace }, spec: spec() });
        return true;
      }
      const held = lease.spec?.holderIdentity;
      if (held && held !== this.o.identity && !this.expired(lease)) return false;
      await this.o.cluster.replace({ ...lease, spec: spec(lease.spec) });
      return true;
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 409) return false;
      throw err;
    }
  }

  private async release(): Promise<void> {
    const lease = await this.read();
    if (lease?.spec?.holderIdentity !== this.o.identity) return;
    await this.o.cluster.replace({ ...lease, spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1 } });
  }

  private read(): Promise<Lease | undefined> {
    return this.o.cluster.read({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', name: this.o.name, namespace: this.o.namespace }) as Promise<Lease | undefined>;
  }

  private expired(lease: Lease): boolean {
    const renew = Date.parse(lease.spec?.renewTime ?? '');
    if (Number.isNaN(renew)) return true;
    return renew + (lease.spec?.leaseDurationSeconds ?? 0) * 1000 < this.o.now().getTime();
  }
}
