// `fleetlet agent`: the daemon. Flags and environment become a runtime
// (src/cli/agent-runtime.ts: journal, Kubernetes client, policy gate, hub
// link, leader election); then the probes/metrics server and a graceful stop
// on SIGTERM.
import { readFileSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { Command, Option } from '@commander-js/extra-typings';
import type { Logger } from 'pino';
import type { AgentMetrics } from '../agent/http/metrics.ts';
import type { KubeClusterClient } from '../agent/kube/cluster-client.ts';
import type { PodSpecView } from '../agent/kube/pod-sources.ts';
import { missingInputs, unresolvedEnvReference, waitForStartupInputs, type StartupInput, type WaitOutcome } from '../agent/process/startup-inputs.ts';
import type { AttemptPhase } from '../protocol/attempt.ts';
import { readSecretFile } from '../lib/secret-file.ts';
import { JournalError } from '../store/errors.ts';
import { ExitCode, wholeNumber, type CommandContext } from './cli-support.ts';

export function agentCommand(ctx: CommandContext) {
  return new Command('agent')
    .description('run the edge agent on a cluster: follow signed releases, upgrade stage by stage, roll back on failure')
    .addOption(new Option('--cluster-id <id>', "this cluster's id").env('FLEETLET_CLUSTER_ID'))
    .addOption(new Option('--journal <path>', 'journal file').env('FLEETLET_JOURNAL').default('/var/lib/fleetlet/journal.db'))
    .option('--kubeconfig <path>', 'kubeconfig file (default: in-cluster, then $KUBECONFIG)')
    .addOption(new Option('--namespace <ns>', "the agent's own namespace: status, events, hand-over record, hub credential; must exist").env('FLEETLET_NAMESPACE').default('fleetlet-system'))
    .addOption(new Option('--release-key <pem...>', "hub's public release key (repeatable)").env('FLEETLET_RELEASE_KEY'))
    .option('--release-file <json>', 'a signed release to follow (offline / air-gapped delivery; see fleetlet sign)')
    .addOption(new Option('--hub <url>', "the hub's agent endpoint (wss://<hub>:8443/api/v1/agent); without it the agent works offline").env('FLEETLET_HUB_URL'))
    .addOption(new Option('--bootstrap-token-file <path>', "file holding the token to register with the hub (a mounted Secret); read again while waiting, so a new token after a revocation is picked up").env('FLEETLET_BOOTSTRAP_TOKEN_FILE'))
    .addOption(new Option('--bootstrap-token <token>', 'the token itself; prefer the file or the environment: the command line shows in ps and the pod spec').env('FLEETLET_BOOTSTRAP_TOKEN'))
    .option('--hub-ca <pem>', "CA bundle that signs the hub's certificate")
    .addOption(new Option('--policy <yaml>', 'maintenance windows and checks (docs/maintenance-windows.md); reloaded on change').env('FLEETLET_POLICY'))
    .option('--leader-elect', 'elect one acting instance through a Lease (default: on inside a cluster)')
    .option('--no-leader-elect', 'act without a Lease even inside a cluster')
    .option('--identity <name>', "this instance's name in the Lease (default $FLEETLET_POD_NAME or the host name)")
    .option('--lease-duration-ms <ms>', "how long a leader's Lease holds without renewal", wholeNumber(1000), 15_000)
    .addOption(new Option('--allowed-namespaces <a,b*>', 'namespaces releases may touch, comma separated, * as a suffix wildcard; required, no default (* allows all, on purpose only)').env('FLEETLET_ALLOWED_NAMESPACES'))
    .option('--allow-host-access', 'admit releases whose pods reach the node (host network/PID/IPC, hostPath, host ports, privileged containers); refused by default', false)
    .option('--allow-cluster-role-bindings', 'admit releases whose RoleBindings bind ClusterRoles; refused by default', false)
    .option('--target-namespace <ns>', "where a release's namespaced objects without a namespace go")
    .option('--uninstall-on-deregister', 'remove what fleetlet installed when the hub deregisters the cluster', false)
    .option('--poll-ms <ms>', 'health poll interval', wholeNumber(50), 1000)
    .addOption(
      new Option('--upgrade-hub-timeout-ms <ms>', "after the agent upgraded itself, how long its new version may take to reach the hub before it reverts to the previous one")
        .env('FLEETLET_UPGRADE_HUB_TIMEOUT_MS')
        .argParser(wholeNumber(1000))
        .default(120_000),
    )
    .addOption(new Option('--http-addr <host:port>', 'serve /healthz, /readyz and /metrics, e.g. :8080 (default: off)').env('FLEETLET_HTTP_ADDR'))
    .option('--shutdown-grace-ms <ms>', 'on SIGTERM, how long the step in flight may take to finish', wholeNumber(0), 20_000)
    .option('--exit-when-done', "exit once the desired release's attempt has finished: 0 if it succeeded, 3 if it rolled back or failed or the release was refused", false)
    .addHelpText('after', '\nEnvironment: LOG_LEVEL (default info). Logs are JSON lines on stdout.')
    .action(async (o, cmd) => {
      const { default: pino } = await import('pino');
      const logger = pino({ name: 'fleetlet-agent', level: process.env.LOG_LEVEL ?? 'info' });
      if (cmd.getOptionValueSource('bootstrapToken') === 'cli') logger.warn('--bootstrap-token on the command line shows in ps and the pod spec: use --bootstrap-token-file or FLEETLET_BOOTSTRAP_TOKEN');
      ctx.exit(await runAgent(o, logger));
    });
}

type AgentOptions = ReturnType<ReturnType<typeof agentCommand>['opts']>;

async function runAgent(values: AgentOptions, logger: Logger): Promise<number> {
  // Loaded here, not at the top: `fleetlet --help` and the other commands need none of it.
  const [{ defaultAdmission }, { startAgentEndpoints }, { GracefulShutdown }, { importPublicKeyPem }, { AGENT_VERSION, createAgentRuntime }, { loadKubeConfig, NoKubeconfig }] = await Promise.all([
    import('../agent/intake/admission.ts'),
    import('../agent/http/agent-endpoints.ts'),
    import('../agent/process/shutdown.ts'),
    import('../protocol/signing.ts'),
    import('./agent-runtime.ts'),
    import('./kube-config.ts'),
  ]);
  // In a pod, inputs from a ConfigMap or Secret that does not exist yet are
  // waited for (NotReady, one line saying how to create them), not a crash loop.
  const podName = process.env.FLEETLET_POD_NAME;
  if (podName) {
    const outcome = await awaitStartupInputs(values, podName, logger);
    if (outcome === 'stopped') return ExitCode.Ok;
    if (outcome === 'restart') return ExitCode.Failed;
  }
  const clusterId = values.clusterId;
  if (!clusterId) {
    logger.error('--cluster-id (or FLEETLET_CLUSTER_ID) is required');
    return ExitCode.Usage;
  }
  const unresolved = unresolvedEnvReference(values.allowedNamespaces);
  if (unresolved) {
    logger.error(`--allowed-namespaces is $(${unresolved}), a reference to an env var that is not set: set ${unresolved} (the manifests fill it from the ConfigMap fleetlet-allowed-namespaces)`);
    return ExitCode.Usage;
  }
  const allowedNamespaces = (values.allowedNamespaces ?? '').split(',').map((n) => n.trim()).filter(Boolean);
  if (allowedNamespaces.length === 0) {
    logger.error('--allowed-namespaces (or FLEETLET_ALLOWED_NAMESPACES) is required: name the namespaces releases may touch, e.g. --allowed-namespaces=monitoring,ingress (the manifests pass the list from manifests/base/allowed-namespaces.yaml)');
    return ExitCode.Usage;
  }
  // From the environment a single path arrives as a string.
  const given = values.releaseKey as string | string[] | undefined;
  const keyPaths = typeof given === 'string' ? [given] : (given ?? []);
  if (keyPaths.length === 0) {
    logger.error('--release-key is required: the agent runs nothing that is not signed by the hub');
    return ExitCode.Usage;
  }
  let releaseKeys;
  let releaseFile: unknown;
  try {
    releaseKeys = keyPaths.map((p) => importPublicKeyPem(readFileSync(p, 'utf8')));
    if (values.releaseFile) releaseFile = JSON.parse(readFileSync(values.releaseFile, 'utf8'));
  } catch (err) {
    logger.error({ err: (err as Error).message }, 'cannot read the release key or release file');
    return ExitCode.Failed;
  }
  const hubUrl = values.hub;
  let bootstrapToken: (() => string | undefined) | string | undefined = values.bootstrapToken;
  const tokenFile = values.bootstrapTokenFile;
  if (tokenFile) {
    try {
      if (readSecretFile(tokenFile) === undefined) logger.warn({ file: tokenFile }, 'the bootstrap token file is missing or empty: the agent registers once it holds a token');
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'cannot read the bootstrap token file');
      return ExitCode.Failed;
    }
    bootstrapToken = () => {
      try {
        return readSecretFile(tokenFile);
      } catch (err) {
        logger.warn({ err: (err as Error).message }, 'cannot read the bootstrap token file');
        return undefined;
      }
    };
  }
  let kubeConfig;
  try {
    kubeConfig = loadKubeConfig(values.kubeconfig);
  } catch (err) {
    if (!(err instanceof NoKubeconfig)) throw err;
    logger.error({ reason: err.reason }, err.message);
    return ExitCode.Usage;
  }
  const inCluster = Boolean(process.env.KUBERNETES_SERVICE_HOST);
  const leaderElect = values.leaderElect ?? inCluster;
  const shutdown = new GracefulShutdown({ logger, graceMs: values.shutdownGraceMs });
  let metrics: AgentMetrics | undefined;
  const failAfter = Number(process.env.FLEETLET_FAILPOINT_KILL_AFTER_TRANSITION ?? 0);
  let transitions = 0;
  /** With --exit-when-done: how the desired release's attempt ended. */
  let outcome: AttemptPhase | undefined;

  let runtime: Awaited<ReturnType<typeof createAgentRuntime>>;
  try {
    runtime = await createAgentRuntime({
      clusterId,
      journalPath: values.journal,
      kubeConfig,
      releaseKeys,
      logger,
      namespace: values.namespace,
      pollMs: values.pollMs,
      selfUpgradeHubTimeoutMs: values.upgradeHubTimeoutMs,
      admission: { ...defaultAdmission, allowedNamespaces, allowHostAccess: values.allowHostAccess === true, allowClusterRoleBindings: values.allowClusterRoleBindings === true },
      ...(values.policy ? { policyPath: values.policy } : {}),
      ...(values.targetNamespace ? { targetNamespace: values.targetNamespace } : {}),
      ...(leaderElect ? { leaderElection: { identity: values.identity ?? process.env.FLEETLET_POD_NAME ?? hostname(), leaseDurationMs: values.leaseDurationMs } } : {}),
      ...(hubUrl
        ? {
            hub: {
              url: hubUrl,
              bootstrapToken,
              uninstallOnDeregister: values.uninstallOnDeregister,
              ...(values.hubCa ? { tls: { ca: readFileSync(values.hubCa, 'utf8') } } : {}),
            },
          }
        : {}),
      agent: {
        // Failpoint for crash-loop tests: die whenever an action of this phase begins.
        onStep: (a) => {
          if (process.env.FLEETLET_FAILPOINT_KILL_IN_PHASE === a.phase) process.kill(process.pid, 'SIGKILL');
        },
        onTransition: (a, t) => {
          // Failpoint for crash-recovery tests (like etcd's gofail): die right
          // after the k-th transition is durable, before its action starts.
          if (failAfter > 0 && ++transitions === failAfter) process.kill(process.pid, 'SIGKILL');
          metrics?.onTransition(a, t);
          if (values.exitWhenDone && a.finishedAt && runtime.journal.releases.latestAccepted()?.revision === a.revision) {
            outcome = a.phase;
            shutdown.stop('the desired release is done');
          }
        },
      },
    });
  } catch (err) {
    // A journal the agent cannot or must not use (newer, corrupt, unreadable):
    // one line that says why and what to do, not a stack trace.
    if (!(err instanceof JournalError)) throw err;
    logger.error({ reason: err.reason, journal: values.journal }, err.message);
    return ExitCode.Failed;
  }
  const { journal, cluster, agent } = runtime;

  // A missing namespace would make every credential, event and lease write
  // fail and retry forever without saying why: name it now and stop.
  const missing = await missingNamespace(cluster, values.namespace, logger);
  if (missing) {
    logger.error({ namespace: values.namespace }, `the agent's namespace "${values.namespace}" does not exist: create it (kubectl create namespace ${values.namespace}) or pass --namespace`);
    journal.close();
    return ExitCode.Failed;
  }

  if (values.httpAddr) {
    try {
      const endpoints = await startAgentEndpoints({
        address: values.httpAddr,
        journal,
        cluster,
        clusterId,
        version: AGENT_VERSION,
        logger,
        processMetrics: true,
        ...(hubUrl ? { hub: { reconnects: () => runtime.hubLink?.counters.reconnects ?? 0, connected: () => runtime.hubLink?.connected ?? false, standing: () => runtime.hubStanding?.state } } : {}),
      });
      metrics = endpoints.metrics;
      // A self-upgrade candidate is Ready only once it proved itself, so the rolling update waits for it.
      endpoints.readiness.add({ name: 'candidate-handover', check: () => runtime.candidateReadiness() });
      endpoints.readiness.add({ name: 'leader-election', check: () => runtime.electionReadiness() });
      shutdown.onClose('http server', () => endpoints.close());
    } catch (err) {
      logger.error({ err: (err as Error).message, address: values.httpAddr }, 'cannot serve probes and metrics');
      journal.close();
      return ExitCode.Failed;
    }
  }

  let refused = false;
  const code = await shutdown.run(async (signal) => {
    if (releaseFile !== undefined) {
      const result = await agent.offer(releaseFile);
      if (!result.accepted && result.reason !== 'Replayed') {
        logger.warn(result, 'release file refused');
        if (values.exitWhenDone) {
          // Nothing more will happen for this file: waiting would hang.
          refused = true;
          journal.close();
          return;
        }
      }
    }
    if (values.exitWhenDone) {
      const latest = journal.attempts.latest();
      const desired = journal.releases.latestAccepted();
      if (latest?.finishedAt && desired && latest.revision >= desired.revision) {
        outcome = latest.phase;
        journal.close();
        return;
      }
    }
    // The runtime closes the journal when it returns (after the hub link).
    await runtime.run(signal);
  });
  if (code !== ExitCode.Ok || !values.exitWhenDone) return code;
  if (refused) return ExitCode.Stopped;
  return outcome === undefined || outcome === 'Succeeded' ? ExitCode.Ok : ExitCode.Stopped;
}

/** Waits, in a pod, until the files and env vars the agent starts from are there; serves /readyz (NotReady, with the reason) meanwhile. */
async function awaitStartupInputs(values: AgentOptions, podName: string, logger: Logger): Promise<WaitOutcome> {
  const given = values.releaseKey as string | string[] | undefined;
  const inputs: StartupInput[] = [
    { what: 'cluster id', flag: '--cluster-id', env: { name: 'FLEETLET_CLUSTER_ID', value: values.clusterId } },
    { what: 'allowed namespaces', flag: '--allowed-namespaces', env: { name: unresolvedEnvReference(values.allowedNamespaces) ?? 'FLEETLET_ALLOWED_NAMESPACES', value: values.allowedNamespaces } },
    ...(typeof given === 'string' ? [given] : (given ?? [])).map((file) => ({ what: 'release key', flag: '--release-key', file })),
    ...(values.policy ? [{ what: 'policy', flag: '--policy', file: values.policy }] : []),
    ...(values.hubCa ? [{ what: 'hub CA bundle', flag: '--hub-ca', file: values.hubCa }] : []),
  ];
  const fileReady = (path: string) => {
    try {
      const st = statSync(path);
      return st.isFile() && st.size > 0;
    } catch {
      return false;
    }
  };
  if (missingInputs(inputs, fileReady).length === 0) return 'ready';

  const [{ startHealthServer }, { Readiness }, { KubeClusterClient }, { loadKubeConfig }, { sleep }] = await Promise.all([
    import('../agent/http/health-server.ts'),
    import('../agent/http/readiness.ts'),
    import('../agent/kube/cluster-client.ts'),
    import('./kube-config.ts'),
    import('../lib/sleep.ts'),
  ]);
  let problem: string | undefined;
  const server = values.httpAddr
    ? await startHealthServer({
        address: values.httpAddr,
        readiness: new Readiness([{ name: 'startup-inputs', check: async () => { if (problem) throw new Error(problem); } }]),
        metrics: { expose: async () => ({ contentType: 'text/plain; version=0.0.4; charset=utf-8', body: '' }) },
        logger,
      })
    : undefined;
  let cluster: KubeClusterClient | undefined;
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGTERM', onSignal).once('SIGINT', onSignal);
  try {
    return await waitForStartupInputs({
      inputs,
      fileReady,
      pod: async () => {
        cluster ??= new KubeClusterClient(loadKubeConfig(values.kubeconfig));
        return (await cluster.read({ apiVersion: 'v1', kind: 'Pod', namespace: values.namespace, name: podName })) as PodSpecView | undefined;
      },
      logger,
      onProblem: (m) => (problem = m),
      sleep,
      now: Date.now,
      random: Math.random,
      signal: stop.signal,
    });
  } finally {
    process.off('SIGTERM', onSignal).off('SIGINT', onSignal);
    await server?.close();
  }
}

/** True only when the API says the namespace does not exist; an API that cannot be asked now is the agent's to retry. */
async function missingNamespace(cluster: KubeClusterClient, namespace: string, logger: Logger): Promise<boolean> {
  try {
    return (await cluster.read({ apiVersion: 'v1', kind: 'Namespace', name: namespace })) === undefined;
  } catch (err) {
    logger.warn({ namespace, err: (err as Error).message }, 'cannot check that the agent namespace exists; going on');
    return false;
  }
}
