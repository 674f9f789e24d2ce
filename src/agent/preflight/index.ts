// The checks every agent runs before a stage, besides the ones the policy
// lists. Built per evaluation: which namespaces and components they look at
// depends on the stage, and their thresholds on the policy in force.
import type { Policy } from '../../protocol/policy.ts';
import type { Journal } from '../../store/journal.ts';
import type { Check } from '../checks/check.ts';
import type { ClusterClient } from '../kube/cluster-client.ts';
import { componentsHealthyCheck } from './components-healthy.ts';
import { consentLeaseCheck } from './consent-lease.ts';
import { disruptionBudgetsCheck } from './disruption-budgets.ts';
import { dryRunCheck } from './dry-run.ts';
import { journalDiskCheck, type Statfs } from './journal-disk.ts';
import { kubernetesApiCheck } from './kubernetes-api.ts';
import { nodesReadyCheck } from './nodes-ready.ts';
import { singleAttemptCheck } from './single-attempt.ts';
import { stageNamespaces, type StageContext } from './stage-context.ts';

export interface BuiltinCheckDeps {
  cluster: ClusterClient;
  journal: Journal;
  now: () => Date;
  statfs?: Statfs;
}

export function builtinPreflightChecks(deps: BuiltinCheckDeps, policy: Policy, ctx: StageContext): Check[] {
  const { cluster, journal } = deps;
  return [
    kubernetesApiCheck(cluster, ctx.release),
    nodesReadyCheck(cluster, policy.checks.builtin.minReadyNodesPercent, policy.checks.builtin.nodeSelector),
    componentsHealthyCheck(cluster, journal, ctx),
    disruptionBudgetsCheck(cluster, stageNamespaces(ctx)),
    journalDiskCheck(journal.path, policy.checks.builtin.minFreeDiskMiB, deps.statfs),
    singleAttemptCheck(journal, ctx.attempt.id),
    consentLeaseCheck(deps, policy.consent, ctx.attempt.id),
    dryRunCheck(cluster, ctx),
  ];
}

export { componentsHealthyCheck } from './components-healthy.ts';
export { consentLeaseCheck, DEFERRAL_LIMIT_EXCEEDED, DEFERRAL_META_KEY } from './consent-lease.ts';
export { disruptionBudgetsCheck } from './disruption-budgets.ts';
export { dryRunCheck } from './dry-run.ts';
export { journalDiskCheck, type Statfs } from './journal-disk.ts';
export { kubernetesApiCheck } from './kubernetes-api.ts';
export { nodesReadyCheck } from './nodes-ready.ts';
export { singleAttemptCheck } from './single-attempt.ts';
export { stageComponents, stageNamespaces, touchedComponentNames, type StageContext } from './stage-context.ts';
export { DaemonSetPrePuller, PRE_PULL_LABEL, prePullDaemonSet, stageImages, type PrePuller, type PrePullOptions } from './pre-pull.ts';
