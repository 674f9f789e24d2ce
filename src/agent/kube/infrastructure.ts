import type { ClusterClient } from './cluster-client.ts';

/** Target infrastructure from node provider IDs and labels (reported in upgrade telemetry). */
export async function detectInfrastructure(cluster: ClusterClient): Promise<string> {
  const nodes = await cluster.nodes();
  const provider = nodes.map((n) => n.providerID?.split(':')[0]).find((p) => p);
  if (provider) return provider;
  if (nodes.some((n) => n.labels.type === 'kwok')) return 'kwok';
  return nodes.length ? 'bare-metal' : 'unknown';
}
