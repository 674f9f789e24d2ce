// One call that gives a running agent its probes and metrics: the metrics
// registry fed from the journal, readiness (journal + Kubernetes API), and
// the HTTP server exposing both. Shared by `fleetlet agent` and anything
// else that composes an agent (the runtime, tests).
import type { Logger } from 'pino';
import type { Journal } from '../../store/journal.ts';
import type { HubStandingState } from '../hub-standing.ts';
import type { ClusterClient } from '../kube/cluster-client.ts';
import { AgentMetrics } from './metrics.ts';
import { startHealthServer, type HealthServer } from './health-server.ts';
import { journalCheck, kubeApiCheck, Readiness } from './readiness.ts';

export interface AgentEndpointsOptions {
  /** Listen address, e.g. `:8080`. */
  address: string;
  journal: Journal;
  cluster: Pick<ClusterClient, 'serverVersion'>;
  clusterId: string;
  version: string;
  logger: Logger;
  now?: () => Date;
  /** The hub link's counters, when there is one. */
  hub?: { reconnects: () => number; connected: () => boolean; standing?: () => HubStandingState | undefined };
  processMetrics?: boolean;
  readinessTimeoutMs?: number;
}

export interface AgentEndpoints {
  metrics: AgentMetrics;
  /** Add further checks here (e.g. the self-upgrade candidate's hand-over check). */
  readiness: Readiness;
  server: HealthServer;
  close(): Promise<void>;
}

export async function startAgentEndpoints(o: AgentEndpointsOptions): Promise<AgentEndpoints> {
  const metrics = new AgentMetrics({
    journal: o.journal,
    clusterId: o.clusterId,
    version: o.version,
    ...(o.now ? { now: o.now } : {}),
    ...(o.hub ? { hubReconnects: o.hub.reconnects, hubConnected: o.hub.connected, ...(o.hub.standing ? { hubStanding: o.hub.standing } : {}) } : {}),
    ...(o.processMetrics ? { processMetrics: true } : {}),
  });
  const readiness = new Readiness([journalCheck(o.journal), kubeApiCheck(o.cluster)], {
    ...(o.readinessTimeoutMs ? { timeoutMs: o.readinessTimeoutMs } : {}),
    onFailure: (r) => {
      if (r.name === 'journal') metrics.journalError('readiness');
      o.logger.warn({ check: r.name, err: r.message }, 'readiness check failed');
    },
  });
  const server = await startHealthServer({ address: o.address, readiness, metrics, logger: o.logger });
  return { metrics, readiness, server, close: () => server.close() };
}
