// The reports an agent writes to its outbox and the hub aggregates. The kind
// travels next to the body so a hub can store (and acknowledge) a kind it
// does not know yet, from a newer agent, instead of blocking the outbox.
import { z } from 'zod';
import { attemptPhase } from './attempt.ts';
import { inventory } from './inventory.ts';
import { overrideRefusalReason } from './override.ts';
import { refusalReason } from './signing.ts';

const nullableText = z.string().max(4096).nullable();

export const attemptTransitionReport = z.object({
  attemptId: z.string().min(1).max(128),
  release: z.object({ name: z.string().min(1), version: z.string().min(1), revision: z.number().int().positive() }),
  phase: attemptPhase,
  stage: z.number().int().nonnegative().nullable(),
  reason: nullableText,
  message: nullableText,
  at: z.iso.datetime(),
});
export type AttemptTransitionReport = z.infer<typeof attemptTransitionReport>;

/** The telemetry event: one per finished upgrade attempt. */
export const upgradeCompletedReport = z.object({
  cluster_id: z.string().min(1).max(253),
  target_infrastructure: z.string().max(128),
  release: z.object({ name: z.string().min(1), version: z.string().min(1) }),
  result: z.enum(['Succeeded', 'Failed', 'RolledBack']),
  durationMs: z.number().int().nonnegative(),
  attemptId: z.string().min(1).max(128),
  completedAt: z.iso.datetime(),
});
export type UpgradeCompletedReport = z.infer<typeof upgradeCompletedReport>;

/** Why the agent's admission refused a correctly signed release (src/agent/intake/admission.ts). */
export const admissionRejection = z.enum(['ForbiddenNamespace', 'ForbiddenKind', 'HostAccess', 'ClusterRoleBinding', 'Downgrade', 'DryRunRejected', 'UnsupportedKubernetesVersion']);
export type AdmissionRejection = z.infer<typeof admissionRejection>;

export const releaseRefusedReport = z.object({
  revision: z.number().int().positive().optional(),
  reason: z.union([refusalReason, admissionRejection]),
  message: z.string().max(4096),
  at: z.iso.datetime().optional(),
});
export type ReleaseRefusedReport = z.infer<typeof releaseRefusedReport>;

/** Why the agent quarantined a report instead of sending it: the hub could not take it (reportProblem in messages.ts). */
export const quarantineReason = z.enum(['TooDeep', 'FrameTooLarge', 'InvalidReport']);
export type QuarantineReason = z.infer<typeof quarantineReason>;

/** A report the agent kept in its journal's quarantine instead of sending: the outbox moved on past it. */
export const reportQuarantinedReport = z.object({
  seq: z.number().int().positive(),
  kind: z.string().max(64),
  reason: quarantineReason,
  message: z.string().max(4096),
  bytes: z.number().int().nonnegative(),
  at: z.iso.datetime(),
});
export type ReportQuarantinedReport = z.infer<typeof reportQuarantinedReport>;

/** A hotfix override the agent refused (src/protocol/override.ts); name and revision once its signature verified. */
export const overrideRefusedReport = z.object({
  name: z.string().min(1).max(253).optional(),
  revision: z.number().int().positive().optional(),
  reason: overrideRefusalReason,
  message: z.string().max(4096),
  at: z.iso.datetime().optional(),
});
export type OverrideRefusedReport = z.infer<typeof overrideRefusedReport>;

export const reportBodies = {
  'attempt-transition': attemptTransitionReport,
  'upgrade-completed': upgradeCompletedReport,
  'release-refused': releaseRefusedReport,
  'report-quarantined': reportQuarantinedReport,
  'override-refused': overrideRefusedReport,
  inventory,
} as const;
export type ReportKind = keyof typeof reportBodies;
export const reportKinds = Object.keys(reportBodies) as ReportKind[];

export type ReportBody<K extends ReportKind> = z.infer<(typeof reportBodies)[K]>;

export type ParsedReport =
  | { [K in ReportKind]: { known: true; ok: true; kind: K; body: ReportBody<K> } }[ReportKind]
  | { known: true; ok: false; kind: ReportKind; issue: string }
  | { known: false; kind: string };

export function isReportKind(kind: string): kind is ReportKind {
  return Object.hasOwn(reportBodies, kind);
}

export function parseReport(kind: string, body: unknown): ParsedReport {
  if (!isReportKind(kind)) return { known: false, kind };
  const result = reportBodies[kind].safeParse(body);
  if (!result.success) {
    const issue = result.error.issues[0];
    return { known: true, ok: false, kind, issue: `${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}` };
  }
  return { known: true, ok: true, kind, body: result.data } as ParsedReport;
}
