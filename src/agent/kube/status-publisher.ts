// Makes the journal's story visible with kubectl: each transition becomes an
// Event on the agent's status ConfigMap, and the ConfigMap carries the
// current attempt status (`kubectl -n fleetlet-system get cm fleetlet-status
// -o yaml`, `kubectl get events`), and the agent's standing with the hub
// (`hubStanding`: Registering, Registered or Revoked, with its reason). Best effort and in order: the journal is
// the record, so a failed publish is logged, never retried forever, and
// never blocks an upgrade.
import type { Logger } from 'pino';
import type { AttemptStatus } from '../../protocol/attempt.ts';
import type { HubStanding } from '../hub-standing.ts';
import type { TransitionRecord } from '../../store/attempt-repo.ts';
import type { ClusterClient } from './cluster-client.ts';
import { FIELD_MANAGER, MANAGED_BY_LABEL } from './object-ref.ts';

export const STATUS_CONFIGMAP = 'fleetlet-status';
/** The hub standing's keys have a field manager of their own, so an attempt's apply and a standing's apply never remove each other's keys. */
const HUB_STANDING_MANAGER = 'fleetlet-hub-standing';

const warningPhases = new Set(['RollingBack', 'RolledBack', 'Failed']);

export class StatusPublisher {
  private chain: Promise<void> = Promise.resolve();
  private readonly cluster: ClusterClient;
  private readonly namespace: string;
  private readonly logger: Logger;

  constructor(cluster: ClusterClient, namespace: string, logger: Logger) {
    this.cluster = cluster;
    this.namespace = namespace;
    this.logger = logger;
  }

  publish(status: AttemptStatus, t: TransitionRecord): void {
    this.chain = this.chain.then(() => this.send(status, t)).catch((err: unknown) => this.logger.warn({ err: (err as Error).message }, 'could not publish status to Kubernetes'));
  }

  publishHubStanding(standing: HubStanding): void {
    this.chain = this.chain.then(() => this.sendHubStanding(standing)).catch((err: unknown) => this.logger.warn({ err: (err as Error).message }, 'could not publish the hub standing to Kubernetes'));
  }

  /** Resolves when everything published so far has been sent (tests, shutdown). */
  idle(): Promise<void> {
    return this.chain;
  }

  private async send(status: AttemptStatus, t: TransitionRecord): Promise<void> {
    const cm = await this.cluster.apply({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: STATUS_CONFIGMAP, namespace: this.namespace, labels: { [MANAGED_BY_LABEL]: FIELD_MANAGER } },
      data: {
        upgradeStatus: status.upgradeStatus,
        phase: status.phase,
        release: `${status.release.name} ${status.release.version} (revision ${status.release.revision})`,
        'status.json': JSON.stringify(status, null, 2),
      },
    });
    await this.cluster.createEvent({
      namespace: this.namespace,
      involvedObject: { apiVersion: 'v1', kind: 'ConfigMap', name: STATUS_CONFIGMAP, namespace: this.namespace, uid: (cm.metadata as { uid?: string }).uid },
      type: warningPhases.has(t.phase) ? 'Warning' : 'Normal',
      reason: t.phase,
      message: `${status.release.name} ${status.release.version}${t.stage !== null ? ` stage ${t.stage}` : ''}: ${t.reason ?? t.phase}${t.message ? `: ${t.message}` : ''}`,
      at: new Date(t.at),
    });
  }

  private async sendHubStanding(standing: HubStanding): Promise<void> {
    const cm = await this.cluster.apply(
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: STATUS_CONFIGMAP, namespace: this.namespace },
        data: { hubStanding: standing.state, hubStandingReason: standing.reason, hubStandingSince: standing.since },
      },
      { fieldManager: HUB_STANDING_MANAGER },
    );
    await this.cluster.createEvent({
      namespace: this.namespace,
      involvedObject: { apiVersion: 'v1', kind: 'ConfigMap', name: STATUS_CONFIGMAP, namespace: this.namespace, uid: (cm.metadata as { uid?: string }).uid },
      type: standing.state === 'Revoked' ? 'Warning' : 'Normal',
      reason: `Hub${standing.state}`,
      message: standing.reason,
      at: new Date(standing.since),
    });
  }
}
