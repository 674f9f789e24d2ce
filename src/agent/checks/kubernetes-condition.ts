// Custom check from the policy: a Kubernetes object's condition, e.g. a
// database operator's Cluster Ready=True, must have the required status.
import { durationMs, type KubernetesConditionCheckSpec } from '../../protocol/policy.ts';
import type { KubeObject } from '../../protocol/release.ts';
import type { ClusterClient } from '../kube/cluster-client.ts';
import { describeRef } from '../kube/object-ref.ts';
import type { Check } from './check.ts';

type WithConditions = KubeObject & { status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] } };

export function kubernetesConditionCheck(spec: KubernetesConditionCheckSpec, cluster: ClusterClient): Check {
  const ref = { apiVersion: spec.object.apiVersion, kind: spec.object.kind, name: spec.object.name, namespace: spec.object.namespace };
  const what = describeRef(ref);
  return {
    name: spec.name,
    timeoutMs: durationMs(spec.timeout),
    async run() {
      const obj = (await cluster.read(ref)) as WithConditions | undefined;
      if (!obj) return { result: 'fail', message: `${what} (${spec.object.apiVersion}) does not exist` };
      const c = obj.status?.conditions?.find((x) => x.type === spec.conditionType);
      if (!c) return { result: 'fail', message: `${what} has no ${spec.conditionType} condition (needs ${spec.conditionType}=${spec.status})` };
      const why = [c.reason, c.message].filter(Boolean).join(': ');
      const text = `${what} ${spec.conditionType}=${c.status}${why ? ` (${why})` : ''}`;
      return c.status === spec.status ? { result: 'pass', message: text } : { result: 'fail', message: `${text}; needs ${spec.conditionType}=${spec.status}` };
    },
  };
}
