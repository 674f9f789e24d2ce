// `fleetlet agent`: the daemon. Wires the journal, the Kubernetes client, the
// release sources (hub link and/or a signed release file) and the engine;
// then the probes/metrics server and a graceful stop on SIGTERM.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { Agent } from '../agent/agent.ts';
import { defaultAdmission } from '../agent/admission.ts';
import { startAgentEndpoints } from '../agent/http/agent-endpoints.ts';
import { KubeClusterClient } from '../agent/kube/cluster-client.ts';
import type { AgentMetrics } from '../agent/metrics.ts';
import { GracefulShutdown } from '../agent/shutdown.ts';
import { importPublicKeyPem } from '../protocol/signing.ts';
import { Journal } from '../store/journal.ts';
import { AGENT_VERSION } from './agent-runtime.ts';
import { loadKubeConfig } from './kube-config.ts';

export const agentUsage = `fleetlet agent [options]
  --cluster-id <id>        this cluster's id (env FLEETLET_CLUSTER_ID)
  --journal <path>         journal file (default /var/lib/fleetlet/journal.db)
  --kubeconfig <path>      default: in-cluster, then $KUBECONFIG
  --release-key <pem>      hub's public release key (repeatable; env FLEETLET_RELEASE_KEY)
  --release-file <json>    a signed release to follow (offline / air-gapped delivery)
  --allowed-namespaces <a,b*>  namespaces releases may touch (default: all)
  --poll-ms <ms>           health poll interval (default 1000)
  --http-addr <host:port>  serve /healthz, /readyz and /metrics, e.g. :8080 (env FLEETLET_HTTP_ADDR; default off)
  --shutdown-grace-ms <ms> on SIGTERM, how long the step in flight may take to finish (default 20000)
  --exit-when-done         exit once the desired release's attempt has finished
  -h, --help               show this help`;

const options = {
  'cluster-id': { type: 'string' },
  journal: { type: 'string' },
  kubeconfig: { type: 'string' },
  'release-key': { type: 'string', multiple: true },
  'release-file': { type: 'string' },
  'allowed-namespaces': { type: 'string' },
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
  const journal = Journal.open(values.journal ?? process.env.FLEETLET_JOURNAL ?? '/var/lib/fleetlet/journal.db');
  const cluster = new KubeClusterClient(loadKubeConfig(values.kubeconfig));
  const shutdown = new GracefulShutdown({ logger, graceMs: Number(values['shutdown-grace-ms']) });
  // Closed last (closers run newest first): nothing may write after it.
  shutdown.onClose('journal', () => journal.close());
  let targetInfrastructure = 'unknown';
  let metrics: AgentMetrics | undefined;

  const failAfter = Number(process.env.FLEETLET_FAILPOINT_KILL_AFTER_TRANSITION ?? 0);
  let transitions = 0;
  const agent = new Agent({
    journal,
    cluster,
    logger,
    now: () => new Date(),
    clusterId,
    targetInfrastructure: () => targetInfrastructure,
    releaseKeys,
    admission: values['allowed-namespaces'] ? { ...defaultAdmission, allowedNamespaces: values['allowed-namespaces'].split(',') } : defaultAdmission,
    pollMs: Number(values['poll-ms']),
    // Failpoint for crash-loop tests: die whenever an action of this phase begins.
    onStep: (a) => {
      if (process.env.FLEETLET_FAILPOINT_KILL_IN_PHASE === a.phase) process.kill(process.pid, 'SIGKILL');
    },
    onTransition: (a, t) => {
      // Failpoint for crash-recovery tests (like etcd's gofail): die right
      // after the k-th transition is durable, before its action starts.
      if (failAfter > 0 && ++transitions === failAfter) process.kill(process.pid, 'SIGKILL');
      metrics?.onTransition(a, t);
      if (values['exit-when-done'] && a.finishedAt && journal.releases.latestAccepted()?.revision === a.revision) shutdown.stop('the desired release is done');
    },
  });

  const httpAddr = values['http-addr'] ?? process.env.FLEETLET_HTTP_ADDR;
  if (httpAddr) {
    try {
      const endpoints = await startAgentEndpoints({ address: httpAddr, journal, cluster, clusterId, version: AGENT_VERSION, logger, processMetrics: true });
      metrics = endpoints.metrics;
      shutdown.onClose('http server', () => endpoints.close());
    } catch (err) {
      logger.error({ err: (err as Error).message, address: httpAddr }, 'cannot serve probes and metrics');
      journal.close();
      return 1;
    }
  }

  return shutdown.run(async (signal) => {
    targetInfrastructure = await detectInfrastructure(cluster).catch(() => 'unknown');
    if (values['release-file']) {
      const result = await agent.offer(JSON.parse(readFileSync(values['release-file'], 'utf8')));
      if (!result.accepted && result.reason !== 'Replayed') logger.warn(result, 'release file refused');
    }
    if (values['exit-when-done']) {
      const latest = journal.attempts.latest();
      const desired = journal.releases.latestAccepted();
      if (latest?.finishedAt && desired && latest.revision >= desired.revision) return;
    }
    await agent.run(signal);
  });
}

/** Target infrastructure from node labels and provider IDs (seed 001 telemetry). */
export async function detectInfrastructure(cluster: KubeClusterClient): Promise<string> {
  const nodes = await cluster.nodes();
  const provider = nodes.map((n) => n.providerID?.split(':')[0]).find((p) => p);
  if (provider) return provider;
  if (nodes.some((n) => n.labels.type === 'kwok')) return 'kwok';
  return nodes.length ? 'baremetal' : 'unknown';
}
