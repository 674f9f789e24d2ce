// A plan: the ordered stages an attempt will go through. Derived by the agent
// (src/agent/upgrade/planner.ts), stored with the attempt and reported to the hub.
import { z } from 'zod';

export const plannedComponent = z.object({
  name: z.string(),
  version: z.string(),
  /** Version installed before the attempt (null when the component is new). */
  fromVersion: z.string().nullable(),
  self: z.boolean(),
  /** Digest of the rendered manifests: a change of config alone is an upgrade too. */
  digest: z.string(),
});
export type PlannedComponent = z.infer<typeof plannedComponent>;

export const planStage = z.object({
  index: z.number().int().nonnegative(),
  components: z.array(plannedComponent).min(1),
});
export type PlanStage = z.infer<typeof planStage>;

export const plan = z.object({
  revision: z.number().int(),
  stages: z.array(planStage),
  /** Components already on the desired version and manifests. */
  unchanged: z.array(z.object({ name: z.string(), version: z.string() })),
  /** Components installed before but absent from the release: removed in a final stage. */
  removed: z.array(z.object({ name: z.string(), version: z.string() })),
  /** Hotfix overrides folded into the release for this attempt (absent in plans written before overrides existed). */
  overrides: z
    .array(z.object({ name: z.string(), version: z.string(), revision: z.number().int(), component: z.string(), images: z.record(z.string(), z.string()) }))
    .optional(),
});
export type Plan = z.infer<typeof plan>;
