// Composition root of a running agent: journal, Kubernetes client, agent
// loop and (when a hub is configured) the hub link, wired together. Used by
// `fleetlet agent` and by `fleetlet demo`; tests build the same pieces
// directly when they need a different mix.
import { randomInt, type KeyObject } from 'node:crypto';
import type * as k8s from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { Agent, type AgentDeps } from '../agent/agent.ts';
import { defaultAdmission, type AdmissionPolicy } from '../agent/admission.ts';
import { KubeClusterClient } from '../agent/kube/cluster-client.ts';
import { secretCredentialStore, type CredentialStore } from '../agent/kube/credential-secret.ts';
import { StatusPublisher } from '../agent/kube/status-publisher.ts';
import { attemptStatus } from '../agent/attempt-status.ts';
import { uninstallAll } from '../agent/stage-actions.ts';
import { HubLink } from '../hub-link/hub-link.ts';
import type { Inventory } from '../protocol/inventory.ts';
import { Journal } from '../store/journal.ts';
import { detectInfrastructure } from './infrastructure.ts';

export const AGENT_VERSION = process.env.FLEETLET_AGENT_VERSION ?? '0.1.0';

export interface RuntimeConfig {
  clusterId: string;
  journalPath: string;
  kubeConfig: k8s.KubeConfig;
  releaseKeys: readonly KeyObject[];
  logger: Logger;
  /** The agent's own namespace: credential Secret, events. */
  namespace: string;
  admission?: AdmissionPolicy;
  pollMs?: number;
  hub?: { url: string; bootstrapToken?: string | undefined; heartbeatMs?: number; uninstallOnDeregister?: boolean; tls?: { ca?: string; rejectUnauthorized?: boolean } };
  agent?: Partial<AgentDeps>;
  now?: () => Date;
}

export interface AgentRuntime {
  agent: Agent;
  journal: Journal;
  cluster: KubeClusterClient;
  hubLink: HubLink | undefined;
  credentials: CredentialStore;
  publisher: StatusPublisher;
  /** Runs until the signal aborts; closes the hub link and the journal on the way out. */
  run(signal: AbortSignal): Promise<void>;
}

export async function createAgentRuntime(cfg: RuntimeConfig): Promise<AgentRuntime> {
  const now = cfg.now ?? (() => new Date());
  const journal = Journal.open(cfg.journalPath, { now });
  const cluster = new KubeClusterClient(cfg.kubeConfig);
  const credentials = secretCredentialStore(cluster, cfg.namespace);
  let targetInfrastructure = 'unknown';
  let hubLink: HubLink | undefined;
  const publisher = new StatusPublisher(cluster, cfg.namespace, cfg.logger);

  const agent = new Agent({
    journal,
    cluster,
    logger: cfg.logger,
    now,
    clusterId: cfg.clusterId,
    targetInfrastructure: () => targetInfrastructure,
    releaseKeys: cfg.releaseKeys,
    admission: cfg.admission ?? defaultAdmission,
    pollMs: cfg.pollMs ?? 1000,
    ...cfg.agent,
    onTransition: (a, t) => {
      // Outbox first (the engine already wrote the report), then a nudge to send it.
      hubLink?.flush();
      publisher.publish(attemptStatus(journal, a), t);
      cfg.agent?.onTransition?.(a, t);
    },
  });

  if (cfg.hub) {
    let credential = await credentials.load().catch(() => undefined);
    const inventory = async (): Promise<Inventory> => ({
      components: agent.inventory(),
      kubernetesVersion: await cluster.serverVersion().catch(() => ''),
      targetInfrastructure,
      overrides: [],
    });
    const hub = cfg.hub;
    hubLink = new HubLink({
      url: hub.url,
      clusterId: cfg.clusterId,
      agentVersion: AGENT_VERSION,
      credential: () => credential,
      bootstrapToken: () => hub.bootstrapToken,
      onCredential: async (c) => {
        await credentials.save(c);
        credential = c;
      },
      outbox: journal.outbox,
      releaseKey: cfg.releaseKeys,
      lastRevision: () => journal.releases.lastAcceptedRevision(),
      inventory,
      onRelease: async (release, envelope) => {
        await agent.admit(release, envelope);
        hubLink?.flush();
      },
      onRefused: (refusal) => {
        journal.transaction(() => journal.releases.refuse({ revision: refusal.revision ?? null, reason: refusal.reason, message: refusal.message }));
      },
      onDeregister: async (reason) => {
        cfg.logger.warn({ reason }, 'the hub deregistered this cluster');
        credential = undefined;
        await credentials.clear().catch(() => {});
        if (hub.uninstallOnDeregister) await uninstallAll(cluster, journal);
      },
      now,
      random: () => randomInt(0, 2 ** 31) / 2 ** 31,
      logger: cfg.logger.child({ component: 'hub-link' }),
      ...(hub.heartbeatMs ? { heartbeatMs: hub.heartbeatMs } : {}),
      ...(hub.tls ? { tls: hub.tls } : {}),
    });
  }

  return {
    agent,
    journal,
    cluster,
    hubLink,
    credentials,
    publisher,
    async run(signal) {
      targetInfrastructure = await detectInfrastructure(cluster).catch(() => 'unknown');
      hubLink?.start(signal);
      try {
        await agent.run(signal);
      } finally {
        await hubLink?.stop();
        await publisher.idle();
        journal.close();
      }
    },
  };
}
