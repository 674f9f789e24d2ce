import type { KubeObject, WorkloadRef } from '../../protocol/release.ts';
import { KubeApiError, type ClusterClient } from '../kube/cluster-client.ts';
import { containerFacts, currentRevisionPods, evaluateWorkload, podProblems, revisionKind, type ContainerFact, type WorkloadHealth } from '../kube/workload-health.ts';

export interface HealthSummary {
  healthy: boolean;
  failed: WorkloadHealth | undefined;
  notReady: WorkloadHealth[];
  all: WorkloadHealth[];
}

export async function checkWorkloads(cluster: ClusterClient, refs: WorkloadRef[]): Promise<HealthSummary> {
  const all: WorkloadHealth[] = [];
  for (const ref of refs) {
    all.push(evaluateWorkload(ref, await cluster.read({ apiVersion: 'apps/v1', kind: ref.kind, name: ref.name, namespace: ref.namespace })));
  }
  return {
    healthy: all.every((h) => h.state === 'Healthy'),
    failed: all.find((h) => h.state === 'Failed'),
    notReady: all.filter((h) => h.state !== 'Healthy'),
    all,
  };
}

/** Adds what the pods say (CrashLoopBackOff, not ready) to a workload's failure, so the message is actionable. */
export async function explain(cluster: ClusterClient, h: WorkloadHealth): Promise<string> {
  try {
    const w = (await cluster.read({ apiVersion: 'apps/v1', kind: h.ref.kind, name: h.ref.name, namespace: h.ref.namespace })) as
      | (KubeObject & { spec?: { selector?: { matchLabels?: Record<string, string> } } })
      | undefined;
    const labels = w?.spec?.selector?.matchLabels;
    if (!labels) return h.message;
    const selector = Object.entries(labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    const problems = podProblems(await cluster.list('v1', 'Pod', h.ref.namespace, selector));
    return problems.length ? `${h.message} (pods: ${problems.join('; ')})` : h.message;
  } catch {
    return h.message;
  }
}

/**
 * The containers of a workload's current revision that are not running, as
 * the kubelet reports them (an observation: whether they fail the stage is
 * decided in decide.ts). Empty when the workload is gone, has no selector, or
 * the agent may not read its revisions (an older RBAC): the stage then waits
 * for its deadline, as it did before pods were looked at.
 */
export async function currentContainers(cluster: ClusterClient, ref: WorkloadRef): Promise<ContainerFact[]> {
  try {
    const w = (await cluster.read({ apiVersion: 'apps/v1', kind: ref.kind, name: ref.name, namespace: ref.namespace })) as
      | (KubeObject & { spec?: { selector?: { matchLabels?: Record<string, string> } } })
      | undefined;
    const labels = w?.spec?.selector?.matchLabels;
    if (!w || !labels) return [];
    const selector = Object.entries(labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    const kind = revisionKind(ref.kind);
    const [revisions, pods] = await Promise.all([kind ? cluster.list('apps/v1', kind, ref.namespace, selector) : Promise.resolve([]), cluster.list('v1', 'Pod', ref.namespace, selector)]);
    return containerFacts(currentRevisionPods(w, revisions, pods));
  } catch (err) {
    if (err instanceof KubeApiError && (err.status === 403 || err.status === 404)) return [];
    throw err;
  }
}
