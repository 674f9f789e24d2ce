// `fleetlet agent`: the daemon. Wires the journal, the Kubernetes client, the
// release sources (hub link and/or a signed release file) and the engine.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { Agent } from '../agent/agent.ts';
import { defaultAdmission } from '../agent/admission.ts';
import { KubeClusterClient } from '../agent/kube/cluster-client.ts';
import { importPublicKeyPem } from '../protocol/signing.ts';
import { Journal } from '../store/journal.ts';
import { loadKubeConfig } from './kube-config.ts';

export const agentUsage = `fleetlet agent [options]
  --cluster-id <id>        this cluster's id (env FLEETLET_CLUSTER_ID)
  --journal <path>         journal file (default /var/lib/fleetlet/journal.db)
  --kubeconfig <path>      default: in-cluster, then $KUBECONFIG
  --release-key <pem>      hub's public release key (repeatable; env FLEETLET_RELEASE_KEY)
  --release-file <json>    a signed release to follow (offline / air-gapped delivery)
  --allowed-namespaces <a,b*>  namespaces releases may touch (default: all)
  --poll-ms <ms>           health poll interval (default 1000)
  --exit-when-done         exit once the desired release's attempt has finished`;

export async function agentCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      'cluster-id': { type: 'string', default: process.env.FLEETLET_CLUSTER_ID },
      journal: { type: 'string', default: process.env.FLEETLET_JOURNAL ?? '/var/lib/fleetlet/journal.db' },
      kubeconfig: { type: 'string' },
      'release-key': { type: 'string', multiple: true },
      'release-file': { type: 'string' },
      'allowed-namespaces': { type: 'string' },
      'poll-ms': { type: 'string', default: '1000' },
      'exit-when-done': { type: 'boolean', default: false },
    },
  });
  const logger = pino({ name: 'fleetlet-agent', level: process.env.LOG_LEVEL ?? 'info' });
  const clusterId = values['cluster-id'];
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
  const journal = Journal.open(values.journal);
  const cluster = new KubeClusterClient(loadKubeConfig(values.kubeconfig));
  const controller = new AbortController();
  let targetInfrastructure = 'unknown';

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
    onTransition: (a) => {
      // Failpoint for crash-recovery tests (like etcd's gofail): die right
      // after the k-th transition is durable, before its action starts.
      if (failAfter > 0 && ++transitions === failAfter) process.kill(process.pid, 'SIGKILL');
      if (values['exit-when-done'] && a.finishedAt && journal.releases.latestAccepted()?.revision === a.revision) controller.abort();
    },
  });

  process.once('SIGTERM', () => controller.abort());
  process.once('SIGINT', () => controller.abort());
  try {
    targetInfrastructure = await detectInfrastructure(cluster).catch(() => 'unknown');
    if (values['release-file']) {
      const result = await agent.offer(JSON.parse(readFileSync(values['release-file'], 'utf8')));
      if (!result.accepted && result.reason !== 'Replayed') logger.warn(result, 'release file refused');
    }
    if (values['exit-when-done']) {
      const latest = journal.attempts.latest();
      const desired = journal.releases.latestAccepted();
      if (latest?.finishedAt && desired && latest.revision >= desired.revision) return 0;
    }
    await agent.run(controller.signal);
    return 0;
  } finally {
    journal.close();
  }
}

/** Target infrastructure from node labels and provider IDs (seed 001 telemetry). */
export async function detectInfrastructure(cluster: KubeClusterClient): Promise<string> {
  const nodes = await cluster.nodes();
  const provider = nodes.map((n) => n.providerID?.split(':')[0]).find((p) => p);
  if (provider) return provider;
  if (nodes.some((n) => n.labels.type === 'kwok')) return 'kwok';
  return nodes.length ? 'baremetal' : 'unknown';
}
