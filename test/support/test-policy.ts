// Test policies share one control plane, so cluster-wide checks must not see
// each other's test objects: the nodes-ready check counts only the run's
// kwok nodes (label type=kwok) unless a test picks its own node pool.
import { maintenancePolicy, type Policy, type PolicyInput } from '../../src/protocol/policy.ts';

export const sharedNodes = { type: 'kwok' } as const;

type Rest = Omit<PolicyInput, 'apiVersion' | 'kind'>;

/** Adds the shared node selector unless the test chose one. */
export function withSharedNodes(rest: Rest): Rest {
  const builtin = rest.checks?.builtin;
  return { ...rest, checks: { ...rest.checks, builtin: { ...builtin, nodeSelector: builtin?.nodeSelector ?? sharedNodes } } };
}

export function testPolicy(rest: Rest = {}): Policy {
  return maintenancePolicy.parse({ apiVersion: 'fleetlet.io/v1', kind: 'MaintenancePolicy', ...withSharedNodes(rest) });
}

/** The same policy as a file, for agents run through the CLI (`--policy`). */
export function testPolicyYaml(): string {
  return `apiVersion: fleetlet.io/v1
kind: MaintenancePolicy
checks:
  builtin:
    nodeSelector:
      type: kwok
`;
}
