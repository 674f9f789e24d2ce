// Composition root of a running agent: journal, Kubernetes client, agent
// loop and (when a hub is configured) the hub link, wired together. Used by
// `fleetlet agent` and by `fleetlet demo`; tests build the same pieces
// directly when they need a different mix.
import { randomInt, type KeyObject } from 'node:crypto';
import type * as k8s from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { Agent, type AgentDeps } from '../agent/agent.ts';
import { HandedOver } from '../agent/upgrade/engine.ts';
import { HandoverStore, HandoverTooLarge } from '../agent/kube/handover-store.ts';
import { LeaderElector } from '../agent/kube/leader-election.ts';
import { candidateTarget, reportCandidacy, selfUpgradeSupervisor } from '../agent/upgrade/self-upgrade.ts';
import { Wake } from '../agent/process/wake.ts';
import { withDefaultNamespace } from '../agent/intake/default-namespace.ts';
import { createPolicyGate, defaultPolicy } from '../agent/gate/gate-policy.ts';
import { watchPolicyFile, type PolicyWatch } from '../agent/gate/policy-loader.ts';
import { DaemonSetPrePuller } from '../agent/preflight/index.ts';
import { verifyRelease } from '../protocol/signing.ts';
import type { Policy } from '../protocol/policy.ts';
import { exportMirror, importMirror, markMirrored, mirrorGeneration } from '../store/mirror.ts';
import { defaultAdmission, type AdmissionPolicy } from '../agent/intake/admission.ts';
import { KubeClusterClient } from '../agent/kube/cluster-client.ts';
import { secretCredentialStore, type CredentialStore } from '../agent/kube/credential-secret.ts';
import { StatusPublisher } from '../agent/kube/status-publisher.ts';
import { attemptStatus } from '../agent/upgrade/attempt-status.ts';
import { uninstallAll } from '../agent/upgrade/stage-actions.ts';
import type { BackoffPolicy } from '../lib/backoff.ts';
import { HubLink } from '../hub-link/hub-link.ts';
import type { Inventory } from '../protocol/inventory.ts';
import { Journal } from '../store/journal.ts';
import { detectInfrastructure } from '../agent/kube/infrastructure.ts';

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
  hub?: {
    url: string;
    bootstrapToken?: string | undefined;
    heartbeatMs?: number;
    /** Reconnect delays; tests shorten them so a healed link comes back in well under a second. */
    backoff?: BackoffPolicy;
    uninstallOnDeregister?: boolean;
    tls?: { ca?: string; rejectUnauthorized?: boolean };
  };
  agent?: Partial<AgentDeps>;
  now?: () => Date;
  /** This agent's own version (the `self` component's version); default $FLEETLET_AGENT_VERSION or the package version. */
  agentVersion?: string;
  /** With more than one instance: a Lease elects the one that acts; the others stand by. */
  leaderElection?: { identity: string; leaseDurationMs?: number; retryMs?: number };
  /** Where a release's namespaced objects without a namespace go. */
  targetNamespace?: string;
  /** The local maintenance-window and check policy (YAML, mounted from a ConfigMap; reloaded on change). */
  policyPath?: string;
  /** A fixed policy when there is no file (default: always allowed, built-in checks at default thresholds). */
  policy?: Policy;
  /** How long a new agent version may take to reach the hub after a self-upgrade hand-over. */
  selfUpgradeHubTimeoutMs?: number;
}

export interface AgentRuntime {
  agent: Agent;
  journal: Journal;
  cluster: KubeClusterClient;
  /** The live hub link while this instance leads (a new one per leadership term); undefined otherwise. */
  readonly hubLink: HubLink | undefined;
  credentials: CredentialStore;
  publisher: StatusPublisher;
  handover: HandoverStore;
  /** Is this instance leading right now? */
  leading(): boolean;
  /** Not ready while this instance is a self-upgrade candidate that has not yet proven itself. */
  candidateReadiness(): Promise<void>;
  /** Runs until the signal aborts; closes the hub link and the journal on the way out. */
  run(signal: AbortSignal): Promise<void>;
}

export async function createAgentRuntime(cfg: RuntimeConfig): Promise<AgentRuntime> {
  const version = cfg.agentVersion ?? AGENT_VERSION;
  const now = cfg.now ?? (() => new Date());
  const journal = Journal.open(cfg.journalPath, { now });
  const cluster = new KubeClusterClient(cfg.kubeConfig);
  const credentials = secretCredentialStore(cluster, cfg.namespace);
  let targetInfrastructure = 'unknown';
  let kubernetesVersion = '';
  let hubLink: HubLink | undefined;
  let leading = false;
  const publisher = new StatusPublisher(cluster, cfg.namespace, cfg.logger);
  const handover = new HandoverStore(cluster, cfg.namespace);
  const identity = cfg.leaderElection?.identity ?? `${cfg.clusterId}-agent`;
  const wake = new Wake();
  // Maintenance windows and checks. Without a policy file: always allowed,
  // built-in checks at their default thresholds. With one that is missing or
  // invalid at start, attempts wait (NoPolicy) rather than run unguarded.
  let policyWatch: PolicyWatch | undefined;
  const fallbackPolicy = cfg.policy ?? defaultPolicy();
  const { gate, postflight } = createPolicyGate({
    policy: () => (cfg.policyPath ? policyWatch?.current()?.policy : fallbackPolicy),
    journal,
    cluster,
    now,
    logger: cfg.logger,
    prePuller: new DaemonSetPrePuller({ cluster, namespace: cfg.namespace }),
  });
  const sleep = (ms: number, signal: AbortSignal) => wake.wait(ms, signal);

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
    ...(cfg.targetNamespace ? { targetNamespace: cfg.targetNamespace } : {}),
    gate,
    postflight,
    mirror: async () => {
      const record = exportMirror(journal, { identity, agentVersion: version });
      try {
        await handover.write(record);
      } catch (err) {
        // Too large is not transient: waiting would block the upgrade forever. Carry on, loudly.
        if (err instanceof HandoverTooLarge) {
          cfg.logger.error({ err: err.message }, 'no in-cluster hand-over record for this attempt');
          return;
        }
        throw err;
      }
      markMirrored(journal, record.generation);
    },
    selfUpgrade: selfUpgradeSupervisor({
      version: version,
      identity,
      handover,
      now,
      sleep,
      ...(cfg.hub ? { hubConnected: () => hubLink?.connected ?? false } : {}),
      ...(cfg.selfUpgradeHubTimeoutMs ? { hubTimeoutMs: cfg.selfUpgradeHubTimeoutMs } : {}),
    }),
    ...cfg.agent,
    onTransition: (a, t) => {
      // Outbox first (the engine already wrote the report), then a nudge to send it.
      hubLink?.flush();
      publisher.publish(attemptStatus(journal, a), t);
      // What the cluster runs may have changed: tell the hub (outbox first, like every report).
      if (a.finishedAt) journal.outbox.enqueue('inventory', { components: agent.inventory(), kubernetesVersion: kubernetesVersion, targetInfrastructure, overrides: agent.runningOverrides() });
      cfg.agent?.onTransition?.(a, t);
    },
  });


  let credential = cfg.hub ? await credentials.load().catch(() => undefined) : undefined;
  const makeHubLink = (): HubLink | undefined => {
    if (!cfg.hub) return undefined;
    const inventory = async (): Promise<Inventory> => ({
      components: agent.inventory(),
      kubernetesVersion: await cluster.serverVersion().catch(() => ''),
      targetInfrastructure,
      overrides: agent.runningOverrides(),
    });
    const hub = cfg.hub;
    return new HubLink({
      url: hub.url,
      clusterId: cfg.clusterId,
      agentVersion: version,
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
      onOverride: async (envelope) => {
        agent.offerOverride(envelope);
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
      ...(hub.backoff ? { backoff: hub.backoff } : {}),
      ...(hub.tls ? { tls: hub.tls } : {}),
    });
  };

  /** A new leader whose journal is behind the cluster's record imports it, so it resumes where the last leader stopped. */
  const takeover = async (): Promise<void> => {
    const record = await handover.read();
    if (!record || record.generation <= mirrorGeneration(journal)) return;
    let verified: { revision: number; release: unknown } | null = null;
    if (record.release) {
      // Nothing runs unless signed: the record is cluster data, so its release is verified again
      // (as of its issue time: it was in force when the previous leader accepted it).
      const issuedAt = Date.parse((JSON.parse(record.release.payload) as { issuedAt: string }).issuedAt);
      const release = withDefaultNamespace(verifyRelease(record.release, cfg.releaseKeys, { now: () => new Date(issuedAt + 1), lastRevision: 0 }), cfg.targetNamespace);
      verified = { revision: release.revision, release };
    }
    if (importMirror(journal, record, verified)) cfg.logger.info({ generation: record.generation, from: record.writtenBy }, 'took over from the hand-over record');
  };

  const lead = async (signal: AbortSignal): Promise<'stepDown' | void> => {
    leading = true;
    try {
      await takeover();
      hubLink = makeHubLink();
      hubLink?.start(signal);
      await agent.run(signal);
    } catch (err) {
      if (err instanceof HandedOver) {
        cfg.logger.info(err.message);
        return 'stepDown';
      }
      throw err;
    } finally {
      leading = false;
      await hubLink?.stop();
      hubLink = undefined;
    }
  };

  return {
    agent,
    journal,
    cluster,
    // A getter: the link is created when leadership starts, after this object is returned.
    get hubLink() {
      return hubLink;
    },
    credentials,
    publisher,
    handover,
    leading: () => leading,
    async candidateReadiness() {
      if (leading || !candidateTarget(await handover.read(), version)) return;
      const report = await handover.readCandidate();
      if (report?.identity !== identity || !report.ready) {
        throw new Error(`candidate ${version} has not yet proven it can open the journal and reach the Kubernetes API${report?.identity === identity ? `: ${report.message}` : ''}`);
      }
    },
    async run(signal) {
      targetInfrastructure = await detectInfrastructure(cluster).catch(() => 'unknown');
      kubernetesVersion = await cluster.serverVersion().catch(() => '');
      if (cfg.policyPath) {
        policyWatch = await watchPolicyFile({
          path: cfg.policyPath,
          signal,
          now,
          logger: cfg.logger,
          onPolicy: (p) => {
            cfg.logger.info({ file: p.file, digest: p.digest }, 'maintenance policy in force');
            agent.wakeUp();
          },
          onInvalid: (err) => cfg.logger.warn({ issues: err.issues, reason: err.reason }, err.message),
        });
      }
      try {
        if (!cfg.leaderElection) {
          await lead(signal);
          return;
        }
        const elector = new LeaderElector({ ...cfg.leaderElection, cluster, namespace: cfg.namespace, identity, now, sleep, logger: cfg.logger });
        await elector.run(signal, lead, async () => {
          // Standing by: if the upgrade in progress installs our version, we are its candidate.
          await reportCandidacy({ journal, cluster, handover, version: version, identity, now }).catch((err: unknown) =>
            cfg.logger.warn({ err: (err as Error).message }, 'candidate report failed'),
          );
        });
      } finally {
        await publisher.idle();
        journal.close();
      }
    },
  };
}
