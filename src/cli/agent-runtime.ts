// Composition root of a running agent: journal, Kubernetes client, agent
// loop and (when a hub is configured) the hub link, wired together and
// nothing more; what they do lives in src/agent. Used by `fleetlet agent` and
// by `fleetlet demo`; tests build the same pieces directly when they need a
// different mix.
import { randomInt, type KeyObject } from 'node:crypto';
import type * as k8s from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { Agent, type AgentDeps } from '../agent/agent.ts';
import { createPolicyGate, defaultPolicy } from '../agent/gate/gate-policy.ts';
import { watchPolicyFile, type PolicyWatch } from '../agent/gate/policy-loader.ts';
import { HubStandingSupervisor, type HubStanding } from '../agent/hub-standing.ts';
import { defaultAdmission, type AdmissionPolicy } from '../agent/intake/admission.ts';
import { KubeClusterClient } from '../agent/kube/cluster-client.ts';
import { secretCredentialStore, type AgentIdentity, type CredentialStore } from '../agent/kube/credential-secret.ts';
import { HandoverStore } from '../agent/kube/handover-store.ts';
import { LeaderElector } from '../agent/kube/leader-election.ts';
import { StatusPublisher } from '../agent/kube/status-publisher.ts';
import { DaemonSetPrePuller } from '../agent/preflight/index.ts';
import { attemptStatus } from '../agent/upgrade/attempt-status.ts';
import { candidateTarget, reportCandidacy, selfUpgradeSupervisor } from '../agent/upgrade/self-upgrade.ts';
import { uninstallAll } from '../agent/upgrade/stage-actions.ts';
import { HubLink } from '../hub-link/hub-link.ts';
import type { BackoffPolicy } from '../lib/backoff.ts';
import { sleep } from '../lib/sleep.ts';
import type { Policy } from '../protocol/policy.ts';
import { compilePolicy, maintenanceWindowReport, type CompiledPolicy, type MaintenanceWindowReport } from '../agent/windows/index.ts';
import { Journal } from '../store/journal.ts';

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
    /** A function is read at every connect: a token file mounted from a Secret may change in place (a new bootstrap after a revocation). */
    bootstrapToken?: string | (() => string | undefined) | undefined;
    /** How often a revoked agent looks for a new bootstrap token (default 30 s). */
    revokedRecheckMs?: number;
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
  /** Registering, Registered or Revoked, as this instance last saw it while leading (undefined without a hub). */
  readonly hubStanding: HubStanding | undefined;
  credentials: CredentialStore;
  publisher: StatusPublisher;
  handover: HandoverStore;
  /** Is this instance leading right now? */
  leading(): boolean;
  /** Not ready while this instance is a self-upgrade candidate that has not yet proven itself. */
  candidateReadiness(): Promise<void>;
  /** Not ready while the Lease API refuses this instance (e.g. a missing permission): it could never lead. */
  electionReadiness(): Promise<void>;
  /** Runs until the signal aborts; closes the hub link and the journal on the way out. */
  run(signal: AbortSignal): Promise<void>;
}

export async function createAgentRuntime(cfg: RuntimeConfig): Promise<AgentRuntime> {
  const version = cfg.agentVersion ?? AGENT_VERSION;
  const now = cfg.now ?? (() => new Date());
  const log = cfg.logger;
  const journal = Journal.open(cfg.journalPath, { now, agentVersion: version });
  if (journal.format.fromNewerAgents.length > 0) {
    // After a newer agent was rolled back: its additive migrations stay, unused, for when it returns.
    log.info({ level: journal.format.level, migrations: journal.format.fromNewerAgents }, 'the journal holds additive migrations of a newer agent; they are left alone');
  }
  journal.recordHub(cfg.hub?.url);
  const cluster = new KubeClusterClient(cfg.kubeConfig);
  const credentials = secretCredentialStore(cluster, cfg.namespace);
  const publisher = new StatusPublisher(cluster, cfg.namespace, log);
  const handover = new HandoverStore(cluster, cfg.namespace);
  const identity = cfg.leaderElection?.identity ?? `${cfg.clusterId}-agent`;
  let hubLink: HubLink | undefined;
  let hubStanding: HubStandingSupervisor | undefined;
  let leading = false;
  // Maintenance windows and checks. Without a policy file: always allowed,
  // built-in checks at their default thresholds. With one that is missing or
  // invalid at start, attempts wait (NoPolicy) rather than run unguarded.
  let policyWatch: PolicyWatch | undefined;
  const fallbackPolicy = cfg.policy ?? defaultPolicy();
  const currentPolicy = (): Policy | undefined => (cfg.policyPath ? policyWatch?.current()?.policy : fallbackPolicy);
  // Compiled once per policy object (a reload makes a new one): the hub link asks every heartbeat.
  let compiledFor: { policy: Policy; compiled: CompiledPolicy } | undefined;
  const maintenanceWindow = (): MaintenanceWindowReport | undefined => {
    const policy = currentPolicy();
    if (!policy) return undefined;
    if (compiledFor?.policy !== policy) compiledFor = { policy, compiled: compilePolicy(policy) };
    return maintenanceWindowReport(compiledFor.compiled, now());
  };
  const { gate, postflight } = createPolicyGate({
    policy: currentPolicy,
    journal,
    cluster,
    now,
    logger: log,
    prePuller: new DaemonSetPrePuller({ cluster, namespace: cfg.namespace }),
  });
  const elector = cfg.leaderElection ? new LeaderElector({ ...cfg.leaderElection, cluster, namespace: cfg.namespace, identity, now, sleep, logger: log }) : undefined;

  const agent = new Agent({
    journal,
    cluster,
    logger: log,
    now,
    clusterId: cfg.clusterId,
    releaseKeys: cfg.releaseKeys,
    admission: cfg.admission ?? defaultAdmission,
    pollMs: cfg.pollMs ?? 1000,
    reportInventory: true,
    ...(cfg.targetNamespace ? { targetNamespace: cfg.targetNamespace } : {}),
    gate,
    postflight,
    mirror: () => handover.mirror(journal, { identity, agentVersion: version }, log),
    selfUpgrade: selfUpgradeSupervisor({
      version,
      identity,
      handover,
      now,
      ...(cfg.hub ? { hubConnected: () => hubLink?.connected ?? false } : {}),
      ...(cfg.selfUpgradeHubTimeoutMs ? { hubTimeoutMs: cfg.selfUpgradeHubTimeoutMs } : {}),
    }),
    ...cfg.agent,
    onTransition: (a, t) => {
      publisher.publish(attemptStatus(journal, a), t);
      cfg.agent?.onTransition?.(a, t);
    },
  });

  const makeHubLink = (hub: NonNullable<RuntimeConfig['hub']>, key: AgentIdentity, standing: HubStandingSupervisor, onRevoked: (reason: string) => void): HubLink =>
    new HubLink({
      url: hub.url,
      clusterId: cfg.clusterId,
      agentVersion: version,
      agentKey: key.key,
      maintenanceWindow,
      registered: () => key.registered,
      onRegistered: async () => {
        key.registered = true;
        await credentials.save(key);
        standing.registered();
      },
      legacyCredential: () => key.legacyCredential,
      onKeyBound: async () => {
        key.legacyCredential = undefined;
        await credentials.save(key);
      },
      bootstrapToken: tokenSource(hub),
      outbox: journal.outbox,
      lastRevision: () => agent.lastRevision(),
      inventory: () => agent.inventory(),
      onRelease: async (envelope) => {
        await agent.offer(envelope);
      },
      onOverride: async (envelope) => {
        agent.offerOverride(envelope);
      },
      onDeregister: async (reason) => {
        log.warn({ reason }, 'the hub deregistered this cluster');
        // The key stays: registering again (with a bootstrap token) proves the same key.
        key.registered = false;
        key.legacyCredential = undefined;
        await credentials.save(key).catch(() => {});
        if (hub.uninstallOnDeregister) await uninstallAll(cluster, journal);
      },
      onRevoked: async (reason) => onRevoked(reason),
      now,
      random: () => randomInt(0, 2 ** 31) / 2 ** 31,
      logger: log,
      ...(hub.heartbeatMs ? { heartbeatMs: hub.heartbeatMs } : {}),
      ...(hub.backoff ? { backoff: hub.backoff } : {}),
      ...(hub.tls ? { tls: hub.tls } : {}),
    });

  // One per leadership term: read (or, on first start, create) the key in the Secret, connect, and wait while revoked.
  const superviseHub = (hub: NonNullable<RuntimeConfig['hub']>): HubStandingSupervisor => {
    const standing: HubStandingSupervisor = new HubStandingSupervisor({
      credentials,
      bootstrapToken: tokenSource(hub),
      now,
      logger: log,
      ...(hub.revokedRecheckMs ? { recheckMs: hub.revokedRecheckMs } : {}),
      onStanding: (s) => publisher.publishHubStanding(s),
      connect: async (key, signal) => {
        let revoked: string | undefined;
        const link = makeHubLink(hub, key, standing, (reason) => (revoked = reason));
        hubLink = link;
        link.start(signal);
        await link.stopped();
        if (hubLink === link) hubLink = undefined;
        return revoked === undefined ? {} : { revoked };
      },
    });
    return standing;
  };

  const lead = async (signal: AbortSignal): Promise<'stepDown' | void> => {
    leading = true;
    // The hub link lives for this term only, even when the agent steps down without an abort.
    const term = new AbortController();
    const termSignal = AbortSignal.any([signal, term.signal]);
    let hubTask: Promise<void> | undefined;
    try {
      // A new leader whose journal is behind the cluster's record takes it over, so it resumes where the last leader stopped.
      const record = await handover.read();
      if (record) agent.adoptHandover(record);
      if (cfg.hub) {
        hubStanding = superviseHub(cfg.hub);
        // Awaited only when the term ends: a failure must not go unhandled meanwhile.
        hubTask = hubStanding.run(termSignal).catch((err: unknown) => log.error({ err }, 'the hub link supervisor failed: no hub link this leadership term'));
      }
      const result = await agent.run(signal);
      if (result.handedOverTo) return 'stepDown';
    } finally {
      leading = false;
      term.abort();
      await hubLink?.stop();
      await hubTask;
      hubLink = undefined;
    }
  };

  return {
    agent,
    journal,
    cluster,
    // Getters: the link is created when leadership starts, after this object is returned.
    get hubLink() {
      return hubLink;
    },
    get hubStanding() {
      return hubStanding?.standing;
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
    async electionReadiness() {
      const problem = elector?.problem();
      if (problem) throw new Error(problem);
    },
    async run(signal) {
      if (cfg.policyPath) {
        policyWatch = await watchPolicyFile({
          path: cfg.policyPath,
          signal,
          now,
          logger: log,
          onPolicy: (p) => {
            log.info({ file: p.file, digest: p.digest }, 'maintenance policy in force');
            agent.wakeUp();
          },
          onInvalid: (err) => log.warn({ issues: err.issues, reason: err.reason }, err.message),
        });
      }
      try {
        if (!cfg.leaderElection) {
          await lead(signal);
          return;
        }
        if (!elector) throw new Error('leader election is configured but no elector was created');
        await elector.run(signal, lead, async () => {
          // Standing by: if the upgrade in progress installs our version, we are its candidate.
          await reportCandidacy({ journal, cluster, handover, version, identity, now }).catch((err: unknown) => log.warn({ err: (err as Error).message }, 'candidate report failed'));
        });
      } finally {
        await publisher.idle();
        journal.close();
      }
    },
  };
}

function tokenSource(hub: NonNullable<RuntimeConfig['hub']>): () => string | undefined {
  const t = hub.bootstrapToken;
  return typeof t === 'function' ? t : () => t;
}
