// The hub's rolling-upgrade API: what an operator sends to create a rollout
// and what the hub answers about its progress. Shared by the hub and the
// `fleetlet rollout` CLI. Strategies follow Open Cluster Management's
// RolloutStrategy (All, Progressive, ProgressivePerGroup) so people who know
// OCM read them the same way.
import { parse as parseCron } from 'node-cron';
import { z } from 'zod';
import { overrideRequest } from './override.ts';
import { cronExpression, duration, exactlyOneEnd, parseDuration, timeZone, wallClock } from './policy.ts';
import { labelKey, labels, labelValue } from './names.ts';
import { dnsLabel } from './release.ts';

/** A count, or a percentage of the rollout's clusters ("10%"). */
export const intOrPercent = z.union([
  z.number().int().nonnegative(),
  z.string().regex(/^(100|[1-9]?[0-9])%$/, 'must be a whole percentage from 0% to 100%'),
]);
export type IntOrPercent = z.infer<typeof intOrPercent>;

/** A duration that may be zero ("0s"), for soak times. */
export const durationOrZero = z.union([z.literal('0s'), duration]);

export function durationOrZeroMs(text: string): number {
  return parseDuration(text) ?? 0;
}

export { labels } from './names.ts';

export const labelSelector = z.strictObject({
  matchLabels: z.record(labelKey, labelValue).optional(),
  matchExpressions: z
    .array(
      z.strictObject({
        key: labelKey,
        operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
        values: z.array(labelValue).max(1000).optional(),
      }),
    )
    .max(100)
    .optional(),
  /** Explicit cluster ids, ANDed with the label terms. */
  clusterIds: z.array(z.string().min(1).max(253)).max(100_000).optional(),
});
export type LabelSelector = z.infer<typeof labelSelector>;

export const clusterSelector = labelSelector.extend({
  /** Only clusters running this release (their last Succeeded one): "every cluster on an affected version". */
  runningRelease: z.strictObject({ name: dnsLabel.optional(), versions: z.array(z.string().min(1)).min(1).max(1000).optional() }).optional(),
});
export type ClusterSelector = z.infer<typeof clusterSelector>;

export const rolloutGroup = z.strictObject({
  name: dnsLabel,
  /**
   * Mandatory groups (canaries: integration, stage, production canary) go
   * first, one at a time in the order given, and tolerate no failure: the
   * rest starts only once every mandatory group fully succeeded (or an
   * operator resumed past its failures).
   */
  mandatory: z.boolean().default(false),
  selector: labelSelector,
});
export type RolloutGroup = z.infer<typeof rolloutGroup>;

export const strategyType = z.enum(['All', 'Progressive', 'ProgressivePerGroup']);
export type StrategyType = z.infer<typeof strategyType>;

/**
 * "None" or a duration. OCM reads "0s" as "every cluster times out the
 * moment it is sent"; that is never what anyone means, so it is refused with
 * what to write instead.
 */
const progressDeadline = z.string().superRefine((s, ctx) => {
  if (s === 'None') return;
  if (parseDuration(s) === 0) {
    ctx.addIssue({ code: 'custom', message: `"${s}" would count every cluster TimedOut the moment it is sent; write None for no deadline, or how long a cluster may take, e.g. 30m` });
    return;
  }
  const r = duration.safeParse(s);
  if (!r.success) for (const i of r.error.issues) ctx.addIssue({ code: 'custom', message: `${i.message} (or None for no deadline)` });
});

export const rolloutStrategy = z.strictObject({
  type: strategyType,
  /** Progressive only: clusters in flight at once, soaking ones included. Absent: every cluster (OCM's meaning). */
  maxConcurrency: intOrPercent.optional(),
  /** How long a cluster must have been Succeeded before it counts (and frees its slot). */
  minSuccessTime: durationOrZero.default('0s'),
  /** A cluster not Succeeded this long after it was sent the release counts as TimedOut (a failure). "None": never. */
  progressDeadline: progressDeadline.default('None'),
  /**
   * Failed + TimedOut clusters tolerated; one more and no new cluster starts
   * (Paused, MaxFailuresExceeded). ProgressivePerGroup: per group, a
   * percentage of the group's size. Percentages round down.
   */
  maxFailures: intOrPercent.default(0),
}).meta({ id: 'RolloutStrategy' });
export type RolloutStrategy = z.infer<typeof rolloutStrategy>;

/**
 * The hub-side window: new clusters start only while it is open. It ends
 * after `duration` (elapsed time) or at the wall-clock time `until`, exactly
 * one of them, as an agent's allow window does. Each
 * cluster's local maintenance windows still apply on top. The day fields
 * take numbers, ranges, lists and steps; node-cron's L/W/# day tokens are
 * refused here (the hub evaluates only plain day fields).
 */
export const rolloutWindow = z.strictObject({
  cron: cronExpression.superRefine((s, ctx) => {
    try {
      const f = parseCron(s);
      if ([...f.dayOfMonth, ...f.dayOfWeek].some((t) => typeof t !== 'number')) {
        ctx.addIssue({ code: 'custom', message: 'L, W and # day tokens are not supported in rollout windows' });
      }
    } catch {
      // cronExpression reports the parse error itself.
    }
  }),
  duration: duration.optional().meta({ description: 'How long the window stays open, in elapsed real time. Give this or until.' }),
  until: wallClock.optional(),
  timeZone,
}).superRefine(exactlyOneEnd).meta({ id: 'RolloutWindow' });
export type RolloutWindow = z.infer<typeof rolloutWindow>;

/** Release fields as PUT /clusters/:id/release takes them; the hub validates them fully. */
const releaseBody = z.looseObject({ name: dnsLabel, version: z.string().min(1).max(128) });

export const rolloutTarget = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('Release'), release: releaseBody }),
  z.strictObject({ kind: z.literal('Override'), override: overrideRequest }),
]);
export type RolloutTarget = z.infer<typeof rolloutTarget>;

/**
 * What happens to a cluster that is Unknown (lease expired) when its turn comes:
 * - Skip: it is not sent anything now, shows as Skipped, takes no slot and does
 *   not hold back its group; it starts as soon as it is back (whatever wave is
 *   running then).
 * - Wait: it is sent the release anyway (delivered when it reconnects), takes
 *   a slot and counts against progressDeadline, after which it is TimedOut.
 * Mandatory groups always Wait: a canary must not be skipped.
 */
export const unknownClusterPolicy = z.enum(['Skip', 'Wait']);
export type UnknownClusterPolicy = z.infer<typeof unknownClusterPolicy>;

/**
 * Fixed: the clusters selected at creation, in that order, for the whole
 * rollout. Dynamic: the selector is evaluated again before every wave; a
 * cluster that newly matches joins (at the end of its group), and one that
 * no longer matches or was deregistered before it was counted (not yet
 * Succeeded, Failed or TimedOut) drops out of the rollout and its counts.
 */
export const rolloutMembership = z.enum(['Fixed', 'Dynamic']);
export type RolloutMembership = z.infer<typeof rolloutMembership>;

const rolloutFields = {
  name: dnsLabel,
  description: z.string().max(1024).optional(),
  /** Which clusters; empty: every accepted cluster. An Override target adds its appliesTo release and versions. */
  selector: clusterSelector.default({}),
  /** A cluster belongs to the first group whose selector matches; the rest form "rest" (or rest-1, rest-2… with restGroupSize). */
  groups: z.array(rolloutGroup).max(100).default([]),
  restGroupSize: z.number().int().positive().optional(),
  strategy: rolloutStrategy,
  window: rolloutWindow.optional(),
  unknownClusters: unknownClusterPolicy.default('Skip'),
  membership: rolloutMembership.default('Fixed'),
};

function checkStrategy(r: { strategy: RolloutStrategy; unknownClusters: UnknownClusterPolicy; groups?: RolloutGroup[] }, ctx: z.RefinementCtx): void {
  if (r.strategy.type === 'Progressive' && (r.strategy.maxConcurrency === 0 || r.strategy.maxConcurrency === '0%')) {
    ctx.addIssue({ code: 'custom', path: ['strategy', 'maxConcurrency'], message: 'must allow at least one cluster' });
  }
  if (r.strategy.type !== 'Progressive' && r.strategy.maxConcurrency !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['strategy', 'maxConcurrency'], message: `applies to Progressive only, not ${r.strategy.type}` });
  }
  if (r.unknownClusters === 'Wait' && r.strategy.progressDeadline === 'None') {
    ctx.addIssue({ code: 'custom', path: ['unknownClusters'], message: 'Wait needs a progressDeadline, or an offline cluster would hold its wave forever' });
  }
  const seen = new Set<string>();
  (r.groups ?? []).forEach((g, i) => {
    if (seen.has(g.name) || /^rest(-\d+)?$/.test(g.name)) ctx.addIssue({ code: 'custom', path: ['groups', i, 'name'], message: `"${g.name}" is used twice or reserved` });
    seen.add(g.name);
  });
}

export const rolloutRequest = z
  .strictObject({ ...rolloutFields, target: rolloutTarget })
  .superRefine((r, ctx) => {
    checkStrategy(r, ctx);
    if (r.target.kind === 'Override' && r.strategy.progressDeadline === 'None') {
      // The agent reports a running override only in its inventory; without a deadline a cluster that never applies it would hold the rollout forever.
      ctx.addIssue({ code: 'custom', path: ['strategy', 'progressDeadline'], message: 'is required for an Override rollout' });
    }
  })
  .meta({ id: 'RolloutRequest' });
export type RolloutRequest = z.infer<typeof rolloutRequest>;
export type RolloutRequestInput = z.input<typeof rolloutRequest>;

/** POST /rollouts/:name/rollback: everything optional; defaults copy the rolled-back rollout (without its window). */
export const rollbackRequest = z
  .strictObject({
    name: dnsLabel.optional(),
    strategy: rolloutStrategy.optional(),
    window: rolloutWindow.optional(),
    unknownClusters: unknownClusterPolicy.optional(),
  })
  .prefault({});
export type RollbackRequest = z.infer<typeof rollbackRequest>;

export const pauseRequest = z.strictObject({ reason: z.string().max(1024).optional() }).prefault({});

export const labelsRequest = z.strictObject({ labels });

// ---------------------------------------------------------------- answers

export const clusterRolloutStatuses = ['ToApply', 'Progressing', 'Succeeded', 'Failed', 'TimedOut', 'Skipped'] as const;
export type ClusterRolloutStatus = (typeof clusterRolloutStatuses)[number];

export const rolloutPhases = ['Progressing', 'Paused', 'Succeeded', 'Completed', 'Cancelled'] as const;
export type RolloutPhase = (typeof rolloutPhases)[number];

const count = z.number().int().nonnegative();
export const statusCounts = z.object({
  ToApply: count,
  Progressing: count,
  Succeeded: count,
  Failed: count,
  TimedOut: count,
  Skipped: count,
  total: count,
  /** Clusters whose availability is Unknown (lease expired), whatever their status. */
  unknown: count,
});
export type StatusCounts = z.infer<typeof statusCounts>;

const timestamp = z.string();

export const rolloutClusterView = z.object({
  clusterId: z.string(),
  group: z.string(),
  status: z.enum(clusterRolloutStatuses),
  /** Why (CamelCase): the agent's reason, ProgressDeadlineExceeded, ClusterUnknown, Soaking, Superseded, Deregistered… */
  reason: z.string().nullable(),
  message: z.string().nullable(),
  available: z.boolean(),
  revision: z.number().int().nullable(),
  sentAt: timestamp.nullable(),
  succeededAt: timestamp.nullable(),
  /** When the status was reached, where known. */
  at: timestamp.nullable(),
}).meta({ id: 'RolloutClusterView' });
export type RolloutClusterView = z.infer<typeof rolloutClusterView>;

export const rolloutGroupView = z.object({
  name: z.string(),
  mandatory: z.boolean(),
  state: z.enum(['Pending', 'Active', 'Done']),
  counts: statusCounts,
  /** ProgressivePerGroup: the failures this group tolerates (maxFailures of its size, rounded down; 0 for a mandatory group); null for the other strategies. */
  maxFailures: z.number().int().nullable(),
  startedAt: timestamp.nullable(),
  endedAt: timestamp.nullable(),
});
export type RolloutGroupView = z.infer<typeof rolloutGroupView>;

/** What GET /api/v1/rollouts/:name answers (and every change to a rollout). */
export const rolloutView = z.object({
  name: z.string(),
  description: z.string().nullable(),
  target: z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('Release'), release: z.object({ name: z.string(), version: z.string() }) }),
    z.object({ kind: z.literal('Override'), override: z.object({ name: z.string(), version: z.string(), component: z.string(), withdrawn: z.boolean() }) }),
    z.object({ kind: z.literal('Rollback'), rollbackOf: z.string() }),
  ]),
  selector: clusterSelector,
  strategy: rolloutStrategy,
  /** The window as created, whether it is open now, and when it opens next. */
  window: rolloutWindow.safeExtend({ open: z.boolean(), nextOpeningAt: timestamp.nullable() }).nullable(),
  unknownClusters: unknownClusterPolicy,
  membership: rolloutMembership,
  phase: z.enum(rolloutPhases),
  /** CamelCase: MaxFailuresExceeded, MandatoryGroupFailed, PausedByOperator, WaitingForWindow, WaitingForUnknownClusters… */
  reason: z.string().nullable(),
  message: z.string().nullable(),
  limits: z.object({ maxConcurrency: z.number().int().nullable(), maxFailures: z.number().int(), failures: z.number().int(), acknowledgedFailures: z.number().int() }),
  counts: statusCounts,
  groups: z.array(rolloutGroupView),
  createdAt: timestamp,
  startedAt: timestamp.nullable(),
  expectedEndAt: timestamp.nullable(),
  endedAt: timestamp.nullable(),
  /** The next instant at which something changes without any report (a soak or deadline ends, the window opens). */
  nextWakeAt: timestamp.nullable(),
  rolledBackBy: z.string().nullable(),
  /** Failed and TimedOut clusters with their reasons. */
  failed: z.array(rolloutClusterView),
  /** Every cluster, with ?clusters=all. */
  clusters: z.array(rolloutClusterView).optional(),
}).meta({ id: 'RolloutView' });
export type RolloutView = z.infer<typeof rolloutView>;

export const rolloutList = z.object({ rollouts: z.array(rolloutView) });
/** POST /rollouts/:name/rollback: the new rollout, and the reached clusters left out of it (they had no release before: nothing to go back to). */
export const rollbackResult = z.object({ rollback: rolloutView, excluded: z.array(z.string()) });
export type RollbackResult = z.infer<typeof rollbackResult>;
