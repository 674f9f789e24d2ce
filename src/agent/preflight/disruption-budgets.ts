// No PodDisruptionBudget in the namespaces the stage rolls out in is at zero
// allowed disruptions: a rollout there would either stall on evictions or
// take down what the budget protects. The budget is named so a person can
// look at it.
import type { KubeObject } from '../../protocol/release.ts';
import type { Check } from '../checks/check.ts';
import type { ClusterClient } from '../kube/cluster-client.ts';

type Pdb = KubeObject & { status?: { disruptionsAllowed?: number; currentHealthy?: number; desiredHealthy?: number; expectedPods?: number } };

export function disruptionBudgetsCheck(cluster: ClusterClient, namespaces: readonly string[], timeoutMs = 10_000): Check {
  return {
    name: 'disruption-budgets',
    timeoutMs,
    async run(signal) {
      const blocking: string[] = [];
      let seen = 0;
      for (const ns of namespaces) {
        signal.throwIfAborted();
        for (const pdb of (await cluster.list('policy/v1', 'PodDisruptionBudget', ns)) as Pdb[]) {
          seen++;
          // A budget the disruption controller has not evaluated yet has no
          // status: treat it as zero, as an eviction would.
          const allowed = pdb.status?.disruptionsAllowed ?? 0;
          if (allowed > 0) continue;
          const s = pdb.status;
          const detail = s ? ` (${s.currentHealthy ?? 0} healthy, ${s.desiredHealthy ?? 0} required, ${s.expectedPods ?? 0} expected)` : ' (not evaluated yet)';
          blocking.push(`PodDisruptionBudget ${ns}/${pdb.metadata.name} allows 0 disruptions${detail}`);
        }
      }
      if (blocking.length > 0) return { result: 'fail', message: blocking.join('; ') };
      return { result: 'pass', message: namespaces.length ? `${seen} PodDisruptionBudget(s) in ${namespaces.join(', ')}; none at zero allowed disruptions` : 'the stage touches no namespaced objects' };
    },
  };
}
