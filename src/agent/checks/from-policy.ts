// Builds runnable checks from the policy's check specs. Only the HTTP probe
// lives here; Kubernetes- and Prometheus-backed checks need clients the agent
// owns, so their factories are passed in.
import { durationMs, type CheckSpec, type KubernetesConditionCheckSpec, type PrometheusCheckSpec } from '../../protocol/policy.ts';
import type { Check } from './check.ts';
import { httpProbeCheck, type HttpProbeDeps } from './http-probe.ts';

export interface CheckFactories extends HttpProbeDeps {
  kubernetesCondition?: (spec: KubernetesConditionCheckSpec) => Check;
  prometheus?: (spec: PrometheusCheckSpec) => Check;
}

export function checksFromSpecs(specs: readonly CheckSpec[], factories: CheckFactories = {}): Check[] {
  return specs.map((spec): Check => {
    switch (spec.type) {
      case 'http':
        return httpProbeCheck(spec, factories);
      case 'kubernetesCondition':
        return factories.kubernetesCondition?.(spec) ?? unavailable(spec);
      case 'prometheus':
        return factories.prometheus?.(spec) ?? unavailable(spec);
    }
  });
}

/**
 * A configured check this agent cannot run still blocks (result 'error'):
 * skipping it would let an upgrade through a gate the operator asked for.
 */
function unavailable(spec: CheckSpec): Check {
  return {
    name: spec.name,
    timeoutMs: durationMs(spec.timeout),
    run: () => Promise.resolve({ result: 'error', message: `checks of type ${spec.type} are not supported by this agent build` }),
  };
}
