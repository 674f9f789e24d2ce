// Enough nodes are Ready: a rollout onto a cluster already short of nodes
// cannot reschedule what it evicts.
import type { Check } from '../checks/check.ts';
import type { ClusterClient } from '../kube/cluster-client.ts';

export function nodesReadyCheck(cluster: ClusterClient, minReadyPercent: number, nodeSelector: Record<string, string> = {}, timeoutMs = 10_000): Check {
  const selected = Object.entries(nodeSelector);
  return {
    name: 'nodes-ready',
    timeoutMs,
    async run() {
      const nodes = (await cluster.nodes()).filter((n) => selected.every(([k, v]) => n.labels[k] === v));
      if (nodes.length === 0) return { result: 'fail', message: selected.length ? `no node matches ${selected.map(([k, v]) => `${k}=${v}`).join(',')}` : 'the cluster has no nodes' };
      const notReady = nodes.filter((n) => !n.ready).map((n) => n.name).sort();
      const ready = nodes.length - notReady.length;
      const percent = (ready * 100) / nodes.length;
      const summary = `${ready}/${nodes.length} nodes Ready (${formatPercent(percent)}, policy needs ${minReadyPercent}%)`;
      if (percent + 1e-9 < minReadyPercent) return { result: 'fail', message: `${summary}; not Ready: ${listNames(notReady)}` };
      return { result: 'pass', message: notReady.length ? `${summary}; not Ready: ${listNames(notReady)}` : summary };
    },
  };
}

function formatPercent(p: number): string {
  return `${Number.isInteger(p) ? p : p.toFixed(1)}%`;
}

function listNames(names: string[]): string {
  return names.length <= 10 ? names.join(', ') : `${names.slice(0, 10).join(', ')} and ${names.length - 10} more`;
}
