// `fleetlet agent`: the daemon. Flags and environment become a runtime
// (src/cli/agent-runtime.ts: journal, Kubernetes client, policy gate, hub
// link, leader election); then the probes/metrics server and a graceful stop
// on SIGTERM.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { defaultAdmission } from '../agent/admission.ts';
import { startAgentEndpoints } from '../agent/http/agent-endpoints.ts';
import type { AgentMetrics } from '../agent/metrics.ts';
import { GracefulShutdown } from '../agent/shutdown.ts';
import { importPublicKeyPem } from '../protocol/signing.ts';
import { AGENT_VERSION, createAgentRuntime } from './agent-runtime.ts';
import { loadKubeConfig } from './kube-config.ts';


export const agentUsage = `fleetlet agent [options]
  --cluster-id <id>        this cluster's id (env FLEETLET_CLUSTER_ID)
  --journal <path>         journal file (default /var/lib/fleetlet/journal.db; env FLEETLET_JOURNAL)
  --kubeconfig <path>      default: in-cluster, then $KUBECONFIG
  --namespace <ns>         the agent's own namespace: status, events, hand-over record, hub credential
                           (env FLEETLET_NAMESPACE; default fleetlet-system)
  --release-key <pem>      hub's public release key (repeatable; env FLEETLET_RELEASE_KEY)
  --release-file <json>    a signed release to follow (offline / air-gapped delivery)
  --hub <wss://…>          the hub's agent endpoint (env FLEETLET_HUB_URL); without it the agent works offline
  --bootstrap-token <t>    registers with the hub once (env FLEETLET_BOOTSTRAP_TOKEN); the issued
                           credential is kept in a Secret in the agent's namespace
  --hub-ca <pem>           CA bundle that signs the hub's certificate
  --policy <yaml>          maintenance windows and checks (env FLEETLET_POLICY); reloaded on change
  --leader-elect           elect one acting instance through a Lease (default on inside a cluster)
  --identity <name>        this instance's name in the Lease (default $FLEETLET_POD_NAME or the host name)
  --lease-duration-ms <ms> how long a leader's Lease holds without renewal (default 15000)
  --allowed-namespaces <a,b*>  namespaces releases may touch (default: all)
  --target-namespace <ns>  where a release's namespaced objects without a namespace go
  --uninstall-on-deregister    remove what fleetlet installed when the hub deregisters the cluster
  --poll-ms <ms>           health poll interval (default 1000)
  --http-addr <host:port>  serve /healthz, /readyz and /metrics, e.g. :8080 (env FLEETLET_HTTP_ADDR; default off)
  --shutdown-grace-ms <ms> on SIGTERM, how long the step in flight may take to finish (default 20000)
  --exit-when-done         exit once the desired release's attempt has finished
  -h, --help               show this help`;

const options = {
  'cluster-id': { type: 'string' },
  journal: { type: 'string' },
  kubeconfig: { type: 'string' },
  namespace: { type: 'string' },
  'release-key': { type: 'string', multiple: true },
  'release-file': { type: 'string' },
  hub: { type: 'string' },
  'bootstrap-token': { type: 'string' },
  'hub-ca': { type: 'string' },
  policy: { type: 'string' },
  'leader-elect': { type: 'boolean' },
  identity: { type: 'string' },
  'lease-duration-ms': { type: 'string', default: '15000' },
  'allowed-namespaces': { type: 'string' },
  'target-namespace': { type: 'string' },
  'uninstall-on-deregister': { type: 'boolean', default: false },
  'poll-ms': { type: 'string', default: '1000' },
  'http-addr': { type: 'string' },
  'shutdown-grace-ms': { type: 'string', default: '20000' },
  'exit-when-done': { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

export async function agentCommand(argv: string[]): Promise<number> {
  let values: ReturnType<typeof parseArgs<{ args: string[]; options: typeof options }>>['values'];
  try {
    ({ values } = parseArgs({ args: argv, options }));
  } catch (err) {
    // A typo in the pod's args should say what is wrong, not print a stack.
    process.stderr.write(`${(err as Error).message}\n\n${agentUsage}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${agentUsage}\n`);
    return 0;
  }
  const logger = pino({ name: 'fleetlet-agent', level: process.env.LOG_LEVEL ?? 'info' });
  const clusterId = values['cluster-id'] ?? process.env.FLEETLET_CLUSTER_ID;
  if (!clusterId) {
    logger.error('--cluster-id (or FLEETLET_CLUSTER_ID) is required');
    return 2;
  }
  const keyPaths = values['release-key'] ?? (process.env.FLEETLET_RELEASE_KEY ? [process.env.FLEETLET_RELEASE_KEY] : []);
  if (keyPaths.length === 0) {
    logger.error('--release-key is required: the agent runs nothing that is not signed by the hub');
    return 2;
  }
  const releaseKeys = keyPaths.map((p) => importPublicKeyPem(readFileSync(p, 'utf8')));
  const hubUrl = values.hub ?? process.env.FLEETLET_HUB_URL;
  const policyPath = values.policy ?? process.env.FLEETLET_POLICY;
  const inCluster = Boolean(process.env.KUBERNETES_SERVICE_HOST);
  const leaderElect = values['leader-elect'] ?? inCluster;
  const shutdown = new GracefulShutdown({ logger, graceMs: Number(values['shutdown-grace-ms']) });
  let metrics: AgentMetrics | undefined;
  const failAfter = Number(process.env.FLEETLET_FAILPOINT_KILL_AFTER_TRANSITION ?? 0);
  let transitions = 0;

  const runtime = await createAgentRuntime({
    clusterId,
    journalPath: values.journal ?? process.env.FLEETLET_JOURNAL ?? '/var/lib/fleetlet/journal.db',
    kubeConfig: loadKubeConfig(values.kubeconfig),
    releaseKeys,
    logger,
    namespace: values.namespace ?? process.env.FLEETLET_NAMESPACE ?? 'fleetlet-system',
    pollMs: Number(values['poll-ms']),
    admission: values['allowed-namespaces'] ? { ...defaultAdmission, allowedNamespaces: values['allowed-namespaces'].split(',') } : defaultAdmission,
    ...(policyPath ? { policyPath } : {}),
    ...(values['target-namespace'] ? { targetNamespace: values['target-namespace'] } : {}),
    ...(leaderElect ? { leaderElection: { identity: values.identity ?? process.env.FLEETLET_POD_NAME ?? hostname(), leaseDurationMs: Number(values['lease-duration-ms']) } } : {}),
    ...(hubUrl
      ? {
          hub: {
            url: hubUrl,
            bootstrapToken: values['bootstrap-token'] ?? process.env.FLEETLET_BOOTSTRAP_TOKEN,
            uninstallOnDeregister: values['uninstall-on-deregister'],
            ...(values['hub-ca'] ? { tls: { ca: readFileSync(values['hub-ca'], 'utf8') } } : {}),
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
        if (values['exit-when-done'] && a.finishedAt && runtime.journal.releases.latestAccepted()?.revision === a.revision) shutdown.stop('the desired release is done');
      },
    },
  });
  const { journal, cluster, agent } = runtime;

  const httpAddr = values['http-addr'] ?? process.env.FLEETLET_HTTP_ADDR;
  if (httpAddr) {
    try {
      const endpoints = await startAgentEndpoints({
        address: httpAddr,
        journal,
        cluster,
        clusterId,
        version: AGENT_VERSION,
        logger,
        processMetrics: true,
        ...(hubUrl ? { hub: { reconnects: () => runtime.hubLink?.counters.reconnects ?? 0, connected: () => runtime.hubLink?.connected ?? false } } : {}),
      });
      metrics = endpoints.metrics;
      // A self-upgrade candidate is Ready only once it proved itself, so the rolling update waits for it.
      endpoints.readiness.add({ name: 'candidate-handover', check: () => runtime.candidateReadiness() });
      shutdown.onClose('http server', () => endpoints.close());
    } catch (err) {
      logger.error({ err: (err as Error).message, address: httpAddr }, 'cannot serve probes and metrics');
      journal.close();
      return 1;
    }
  }

  return shutdown.run(async (signal) => {
    if (values['release-file']) {
      const result = await agent.offer(JSON.parse(readFileSync(values['release-file'], 'utf8')));
      if (!result.accepted && result.reason !== 'Replayed') logger.warn(result, 'release file refused');
    }
    if (values['exit-when-done']) {
      const latest = journal.attempts.latest();
      const desired = journal.releases.latestAccepted();
      if (latest?.finishedAt && desired && latest.revision >= desired.revision) {
        journal.close();
        return;
      }
    }
    // The runtime closes the journal when it returns (after the hub link).
    await runtime.run(signal);
  });
}
