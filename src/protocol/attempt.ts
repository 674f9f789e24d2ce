// The vocabulary of an upgrade attempt as the hub and a person read it.
// The transitions between phases live in src/agent/upgrade/lifecycle.ts.
import { z } from 'zod';

export const attemptPhase = z.enum([
  'Pending',
  'WaitingForWindow',
  'PreflightChecking',
  'Upgrading',
  'Verifying',
  'Soaking',
  'RollingBack',
  'Succeeded',
  'RolledBack',
  'Failed',
]);
export type AttemptPhase = z.infer<typeof attemptPhase>;

export const terminalPhases: ReadonlySet<AttemptPhase> = new Set(['Succeeded', 'RolledBack', 'Failed']);

/** The cluster's upgrade status as a person reads it. */
export const upgradeStatus = z.enum(['InProgress', 'Succeeded', 'Failed']);
export type UpgradeStatus = z.infer<typeof upgradeStatus>;

export function upgradeStatusOf(phase: AttemptPhase): UpgradeStatus {
  if (phase === 'Succeeded') return 'Succeeded';
  // RolledBack is a failed upgrade whose cluster is safe; it still needs attention.
  if (phase === 'RolledBack' || phase === 'Failed') return 'Failed';
  return 'InProgress';
}

/** Kubernetes-style condition. */
export const condition = z.object({
  type: z.string().min(1),
  status: z.enum(['True', 'False', 'Unknown']),
  reason: z.string().regex(/^[A-Za-z][A-Za-z0-9]*$/, 'reason must be CamelCase'),
  message: z.string(),
  lastTransitionTime: z.iso.datetime(),
});
export type Condition = z.infer<typeof condition>;

export const componentStatus = z.object({
  name: z.string(),
  current: z.string().nullable(),
  desired: z.string(),
  lastKnownGood: z.string().nullable(),
  stage: z.number().int(),
  startedAt: z.iso.datetime().nullable(),
  finishedAt: z.iso.datetime().nullable(),
});
export type ComponentStatus = z.infer<typeof componentStatus>;

export const attemptStatus = z.object({
  attemptId: z.string(),
  release: z.object({ name: z.string(), version: z.string(), revision: z.number().int() }),
  phase: attemptPhase,
  upgradeStatus: upgradeStatus,
  stage: z.number().int().nullable(),
  reason: z.string().nullable(),
  message: z.string().nullable(),
  conditions: z.array(condition),
  components: z.array(componentStatus),
  startedAt: z.iso.datetime(),
  finishedAt: z.iso.datetime().nullable(),
});
export type AttemptStatus = z.infer<typeof attemptStatus>;
