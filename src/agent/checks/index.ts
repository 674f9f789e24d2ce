// Pre-flight and post-flight check framework.
export type { Check, CheckOutcome, CheckReport, CheckResultKind } from './check.ts';
export { allPassed, checksCondition, runChecks, type RunChecksOptions } from './run-checks.ts';
export { recheckDelayMs } from './backoff.ts';
export { httpProbeCheck, type HttpProbeDeps } from './http-probe.ts';
export { kubernetesConditionCheck } from './kubernetes-condition.ts';
export { prometheusQueryCheck, type PrometheusDeps } from './prometheus-query.ts';
export { checksFromSpecs, type CheckFactories } from './from-policy.ts';
