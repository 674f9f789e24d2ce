// The local maintenance policy: when the agent may upgrade (allow windows,
// blackouts), how critical releases are treated, which custom checks gate a
// stage, and how a local operator defers upgrades. It is a file a person
// writes in a ConfigMap, so every error must name the exact field; objects are
// strict because a misspelt `blackouts` silently ignored would let upgrades run
// through a freeze.
import { validateDetailed } from 'node-cron';
import { z } from 'zod';
import { dnsLabel } from './names.ts';

// ---------------------------------------------------------------- durations

// The lookahead refuses the empty string while keeping every unit optional.
const DURATION_RE = /^(?=\d)(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/;

/**
 * Parses a Go-style duration restricted to whole h/m/s units ("90m", "4h",
 * "1h30m", "45s"). Returns milliseconds, or undefined when the text is not a
 * duration. Fractions are refused on purpose: "1.5h" reads ambiguously in a
 * freeze calendar.
 */
export function parseDuration(text: string): number | undefined {
  const m = DURATION_RE.exec(text);
  if (!m) return undefined;
  const [h, min, s] = [m[1], m[2], m[3]].map((v) => (v === undefined ? 0 : Number(v)));
  return ((h ?? 0) * 3600 + (min ?? 0) * 60 + (s ?? 0)) * 1000;
}

/** parseDuration for values that passed the schema (which guarantees they parse). */
export function durationMs(text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined) throw new RangeError(`"${text}" is not a duration like 90m, 4h or 1h30m`);
  return ms;
}

const MAX_DURATION_MS = 366 * 24 * 3600 * 1000;

export const duration = z
  .string()
  .meta({ description: 'Go-style duration in whole hours, minutes, seconds: 90m, 4h, 1h30m, 45s', examples: ['4h', '1h30m'] })
  // The pattern also reaches editors through the JSON Schema.
  .regex(DURATION_RE, 'must be a duration like 90m, 4h or 1h30m')
  .superRefine((s, ctx) => {
    const ms = parseDuration(s);
    if (ms === undefined) return;
    if (ms <= 0) ctx.addIssue({ code: 'custom', message: 'must be longer than zero' });
    else if (ms > MAX_DURATION_MS) ctx.addIssue({ code: 'custom', message: 'must be at most 366 days (8784h)' });
  });

// ------------------------------------------------------------ cron and zones

/** A refinement whose message quotes the offending value. */
function refuse(bad: (s: string) => boolean, message: (s: string) => string) {
  return (s: string, ctx: z.RefinementCtx): void => {
    if (bad(s)) ctx.addIssue({ code: 'custom', message: message(s) });
  };
}

/**
 * A node-cron expression with 5 fields (minute hour day-of-month month
 * day-of-week); node-cron's own field errors are reported. A 6-field
 * expression is refused: node-cron reads its first field as seconds, so
 * "0 22 * * 1-5 *" written as Quartz or AWS cron would start at the wrong
 * time, and a window has minute resolution anyway.
 */
export const cronExpression = z
  .string()
  .meta({
    description:
      'node-cron expression with 5 fields (minute hour day-of-month month day-of-week) in the entry\'s time zone. Day of month AND day of week must both match (node-cron semantics, unlike Vixie cron).',
    examples: ['0 22 * * 1-5', '30 1 * * sat'],
  })
  .superRefine((s, ctx) => {
    const fields = s.trim().split(/\s+/);
    if (fields.length === 6) {
      ctx.addIssue({
        code: 'custom',
        message: `"${s}" has 6 fields, which node-cron reads as seconds first; windows have minute resolution: write the 5 fields minute hour day-of-month month day-of-week, e.g. "${fields.slice(1).join(' ')}" if the first field was seconds`,
      });
      return;
    }
    const v = validateDetailed(s);
    if (v.valid) return;
    for (const e of v.errors) {
      ctx.addIssue({ code: 'custom', message: e.field === 'expression' ? e.message : `${e.field} field: ${e.message}` });
    }
  });

const WALL_CLOCK_RE = /^([01]\d|2[0-3]):([0-5]\d)$/;

/** "04:00" → milliseconds after local midnight; undefined when not a 24-hour HH:MM. */
export function parseWallClock(text: string): number | undefined {
  const m = WALL_CLOCK_RE.exec(text);
  return m ? (Number(m[1]) * 60 + Number(m[2])) * 60_000 : undefined;
}

export const wallClock = z
  .string()
  .meta({
    description:
      'Wall-clock end, 24-hour HH:MM in the entry\'s time zone: the window closes the first time the local clock reads this after it opened (the next day when it is not later than the start). Exclusive; a DST change does not move it.',
    examples: ['04:00', '06:30'],
  })
  .regex(WALL_CLOCK_RE, 'must be a 24-hour wall-clock time like 04:00 or 23:30');

/** A cron-started entry ends after a duration or at a wall-clock time: not both. */
function oneEnd(w: { duration?: string | undefined; until?: string | undefined }, ctx: z.RefinementCtx): void {
  if (w.duration !== undefined && w.until !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['until'], message: 'give either duration (elapsed time) or until (wall-clock end), not both' });
  }
}

/** A window (the agent's allow window, the hub's rollout window) ends after a duration or at a wall-clock time: exactly one of them. */
export function exactlyOneEnd(w: { duration?: string | undefined; until?: string | undefined }, ctx: z.RefinementCtx): void {
  oneEnd(w, ctx);
  if (w.duration === undefined && w.until === undefined) ctx.addIssue({ code: 'custom', path: ['duration'], message: 'a window needs an end: duration (e.g. 6h) or until (e.g. "04:00")' });
}

export function isValidTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

export const timeZone = z
  .string()
  .meta({ description: 'IANA time zone, e.g. Europe/Berlin, America/New_York, UTC', examples: ['Europe/Berlin', 'UTC'] })
  .superRefine(refuse((s) => !isValidTimeZone(s), (s) => `"${s}" is not an IANA time zone known to this runtime (e.g. Europe/Berlin, UTC)`));

const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})$/;
const LOCAL_DATETIME_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/;
const ABSOLUTE_DATETIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})$/;

function realDate(y: number, m: number, d: number): boolean {
  const t = new Date(Date.UTC(y, m - 1, d));
  return t.getUTCFullYear() === y && t.getUTCMonth() === m - 1 && t.getUTCDate() === d;
}

export type CalendarPoint =
  | { kind: 'date'; year: number; month: number; day: number }
  | { kind: 'local'; year: number; month: number; day: number; hour: number; minute: number; second: number }
  | { kind: 'absolute'; ms: number };

/** Reads a blackout bound: a date, a local date-time (in the entry's zone), or a date-time with offset. */
export function parseCalendarPoint(text: string): CalendarPoint | undefined {
  let m = DATE_RE.exec(text);
  if (m) {
    const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
    return realDate(y, mo, d) ? { kind: 'date', year: y, month: mo, day: d } : undefined;
  }
  m = LOCAL_DATETIME_RE.exec(text);
  if (m) {
    const [y, mo, d, h, mi, s] = [1, 2, 3, 4, 5, 6].map((i) => Number(m?.[i] ?? 0)) as [number, number, number, number, number, number];
    if (!realDate(y, mo, d) || h > 23 || mi > 59 || s > 59) return undefined;
    return { kind: 'local', year: y, month: mo, day: d, hour: h, minute: mi, second: s };
  }
  if (ABSOLUTE_DATETIME_RE.test(text)) {
    const ms = Date.parse(text);
    return Number.isNaN(ms) ? undefined : { kind: 'absolute', ms };
  }
  return undefined;
}

const calendarPoint = z
  .string()
  .meta({
    description:
      'A date (2026-12-20), a local date-time in the entry\'s time zone (2026-12-20T18:00), or a date-time with offset (2026-12-20T17:00:00Z)',
  })
  .superRefine(
    refuse(
      (s) => parseCalendarPoint(s) === undefined,
      (s) => `"${s}" is not a date (2026-12-20), local date-time (2026-12-20T18:00) or date-time with offset (2026-12-20T17:00:00Z)`,
    ),
  );

const entryName = z.string().min(1).max(63).meta({ description: 'Shown in status and reasons, e.g. "weeknights", "christmas"' });

// ------------------------------------------------------------ windows

export const allowWindow = z
  .strictObject({
    name: entryName,
    cron: cronExpression.meta({ description: 'When the window starts (node-cron syntax, 5 fields, in timeZone)' }),
    duration: duration.optional().meta({ description: 'How long the window stays open, in elapsed real time (a DST change does not stretch or shrink it). Give this or until.' }),
    until: wallClock.optional(),
    timeZone: timeZone.optional().meta({ description: 'IANA zone the cron is read in; defaults to the policy\'s timeZone' }),
  })
  .meta({ description: 'An allow window: upgrades may start while one is open. It ends after duration, or at the wall-clock time until.' })
  .superRefine(exactlyOneEnd);
export type AllowWindow = z.infer<typeof allowWindow>;

/**
 * A deny period: either a calendar range (from/to) or a recurring cron with a
 * duration. One flat object rather than a union, so a mistake is reported on
 * the field that is wrong instead of as "matches neither form".
 */
export const blackout = z
  .strictObject({
    name: entryName,
    from: calendarPoint.optional().meta({ description: 'Start of a calendar blackout (inclusive)' }),
    to: calendarPoint.optional().meta({ description: 'End of a calendar blackout: a date is inclusive (the whole day), a date-time is the exact end' }),
    cron: cronExpression.optional().meta({ description: 'Start of a recurring blackout (node-cron syntax, in timeZone)' }),
    duration: duration.optional().meta({ description: 'Length of a recurring blackout (or give until)' }),
    until: wallClock.optional(),
    timeZone: timeZone.optional().meta({ description: 'IANA zone the dates or cron are read in; defaults to the policy\'s timeZone' }),
  })
  .meta({ description: 'A blackout (deny): wins over any allow window. Give either from+to, or cron with duration or until.' })
  .superRefine((b, ctx) => {
    const range = b.from !== undefined || b.to !== undefined;
    const recurring = b.cron !== undefined || b.duration !== undefined || b.until !== undefined;
    if (range && recurring) {
      ctx.addIssue({ code: 'custom', path: [b.cron !== undefined ? 'cron' : b.duration !== undefined ? 'duration' : 'until'], message: 'give either from/to or cron with duration/until, not both' });
      return;
    }
    if (!range && !recurring) {
      ctx.addIssue({ code: 'custom', path: [], message: 'a blackout needs either from and to, or cron and duration (or until)' });
      return;
    }
    if (range) {
      if (b.from === undefined) ctx.addIssue({ code: 'custom', path: ['from'], message: 'is required when to is given' });
      if (b.to === undefined) ctx.addIssue({ code: 'custom', path: ['to'], message: 'is required when from is given' });
      if (b.from !== undefined && b.to !== undefined) {
        const from = parseCalendarPoint(b.from);
        const to = parseCalendarPoint(b.to);
        // Only comparable here when both are written the same way; mixed forms
        // need the zone and are checked when the window is compiled.
        if (from && to && from.kind !== 'absolute' && to.kind !== 'absolute' && calendarKey(to, true) <= calendarKey(from, false)) {
          ctx.addIssue({ code: 'custom', path: ['to'], message: `must not be before from (${b.from})` });
        }
        if (from?.kind === 'absolute' && to?.kind === 'absolute' && to.ms <= from.ms) {
          ctx.addIssue({ code: 'custom', path: ['to'], message: `must be after from (${b.from})` });
        }
      }
    } else {
      if (b.cron === undefined) ctx.addIssue({ code: 'custom', path: [b.duration !== undefined ? 'duration' : 'until'], message: 'needs a cron start' });
      if (b.duration === undefined && b.until === undefined) ctx.addIssue({ code: 'custom', path: ['duration'], message: 'is required when cron is given (or until)' });
      oneEnd(b, ctx);
    }
  });
export type Blackout = z.infer<typeof blackout>;

function calendarKey(p: CalendarPoint, isEnd: boolean): number {
  if (p.kind === 'absolute') return p.ms;
  if (p.kind === 'date') return Date.UTC(p.year, p.month - 1, p.day + (isEnd ? 1 : 0));
  return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
}

type Zoned = { timeZone?: string | undefined };
type WindowSet = { timeZone?: string | undefined; windows?: Zoned[] | undefined; blackouts?: Zoned[] | undefined };

/** Every window and blackout needs a zone, from itself or from the top level; a silent UTC default would shift windows by hours. */
function requireZones(p: WindowSet, ctx: z.RefinementCtx): void {
  for (const key of ['windows', 'blackouts'] as const) {
    (p[key] ?? []).forEach((w, i) => {
      if (w.timeZone === undefined && p.timeZone === undefined) {
        ctx.addIssue({ code: 'custom', path: [key, i, 'timeZone'], message: 'is required here or as the top-level timeZone' });
      }
    });
  }
}

function uniqueNames(items: { name: string }[] | undefined, path: string, ctx: z.RefinementCtx): void {
  const seen = new Set<string>();
  (items ?? []).forEach((w, i) => {
    if (seen.has(w.name)) ctx.addIssue({ code: 'custom', path: [path, i, 'name'], message: `duplicate name "${w.name}"` });
    seen.add(w.name);
  });
}

const windowsField = z
  .array(allowWindow)
  .optional()
  .meta({ description: 'Allow windows; several combine (union). Absent: always allowed. An empty list: never allowed.' });
const blackoutsField = z.array(blackout).default([]).meta({ description: 'Deny periods; a blackout wins over any allow window' });

/**
 * What a hub may impose on top of local policy. It only ever narrows: the
 * agent intersects it with the local windows and adds its blackouts.
 */
export const hubWindows = z
  .strictObject({
    timeZone: timeZone.optional(),
    windows: windowsField,
    blackouts: blackoutsField,
  })
  .superRefine((p, ctx) => {
    requireZones(p, ctx);
  });
export type HubWindows = z.infer<typeof hubWindows>;
export type HubWindowsInput = z.input<typeof hubWindows>;

// ------------------------------------------------------------ checks

function compiles(pattern: string): boolean {
  try {
    new RegExp(pattern);
    return true;
  } catch {
    return false;
  }
}
const regexString = z.string().superRefine(refuse((s) => !compiles(s), (s) => `"${s}" is not a valid JavaScript regular expression`));

const checkCommon = {
  name: dnsLabel,
  timeout: duration.default('10s').meta({ description: 'A check still running after this is an error' }),
  description: z.string().max(1024).optional(),
};

export const httpCheckSpec = z
  .strictObject({
    ...checkCommon,
    type: z.literal('http'),
    url: z.url({ protocol: /^https?$/ }),
    method: z.enum(['GET', 'HEAD']).default('GET'),
    headers: z.record(z.string(), z.string()).optional(),
    expectStatus: z.array(z.number().int().min(100).max(599)).min(1).default([200]),
    bodyMatches: regexString.optional().meta({ description: 'Regular expression the response body must match' }),
  })
  .meta({ description: 'Passes when the URL answers with one of expectStatus (and the body matches bodyMatches, when given)' });
export type HttpCheckSpec = z.infer<typeof httpCheckSpec>;

export const kubernetesConditionCheckSpec = z
  .strictObject({
    ...checkCommon,
    type: z.literal('kubernetesCondition'),
    object: z
      .strictObject({
        apiVersion: z.string().min(1),
        kind: z.string().min(1),
        namespace: z.string().min(1).optional().meta({ description: 'Omit for cluster-scoped objects' }),
        name: z.string().min(1),
      })
      .meta({ description: 'The Kubernetes object whose condition is read' }),
    conditionType: z.string().min(1),
    status: z.enum(['True', 'False', 'Unknown']).default('True'),
  })
  .meta({ description: 'Passes when the object has status.conditions[type=conditionType].status == status' });
export type KubernetesConditionCheckSpec = z.infer<typeof kubernetesConditionCheckSpec>;

export const prometheusCheckSpec = z
  .strictObject({
    ...checkCommon,
    type: z.literal('prometheus'),
    url: z.url({ protocol: /^https?$/ }).meta({ description: 'Prometheus base URL' }),
    query: z.string().min(1).default('ALERTS{alertstate="firing"}'),
    alertFilter: regexString.default('.*').meta({ description: 'Alert names (label alertname) that block; firing alerts not matching are ignored' }),
  })
  .meta({ description: 'Passes when the query returns no series whose alertname matches alertFilter (like kured)' });
export type PrometheusCheckSpec = z.infer<typeof prometheusCheckSpec>;

export const checkSpec = z.discriminatedUnion('type', [httpCheckSpec, kubernetesConditionCheckSpec, prometheusCheckSpec]);
export type CheckSpec = z.infer<typeof checkSpec>;

export const checksPolicy = z
  .strictObject({
    preflight: z.array(checkSpec).default([]).meta({ description: 'Run before an attempt starts changing anything; a failure blocks it' }),
    postflight: z.array(checkSpec).default([]).meta({ description: 'Run after each stage; a failure fails the stage' }),
    recheck: z
      .strictObject({
        initialBackoff: duration.default('30s'),
        maxBackoff: duration.default('10m'),
      })
      .prefault({})
      .meta({ description: 'How a blocked attempt re-runs its preflight checks: exponential backoff with full jitter' }),
    builtin: z
      .strictObject({
        minReadyNodesPercent: z
          .number()
          .min(0)
          .max(100)
          .default(100)
          .meta({ description: 'Share of nodes that must be Ready before a stage starts (100: every node)' }),
        nodeSelector: z
          .record(z.string(), z.string())
          .default({})
          .meta({ description: 'Only nodes carrying all these labels count for minReadyNodesPercent (e.g. the pool the add-ons run on); empty: every node' }),
        minFreeDiskMiB: z
          .number()
          .int()
          .min(0)
          .default(64)
          .meta({ description: 'Free space the journal\'s filesystem must have before a stage starts; a journal that cannot write cannot roll back' }),
      })
      .prefault({})
      .meta({ description: 'Thresholds of the checks every agent runs before a stage (API reachable, nodes, component health, PodDisruptionBudgets, journal disk, consent)' }),
  })
  .superRefine((c, ctx) => {
    uniqueNames(c.preflight, 'preflight', ctx);
    uniqueNames(c.postflight, 'postflight', ctx);
    if (durationMs(c.recheck.maxBackoff) < durationMs(c.recheck.initialBackoff)) {
      ctx.addIssue({ code: 'custom', path: ['recheck', 'maxBackoff'], message: 'must not be shorter than initialBackoff' });
    }
  });
export type ChecksPolicy = z.infer<typeof checksPolicy>;

/** One check's outcome as journaled and reported with the attempt. */
export const checkReport = z.object({
  name: z.string(),
  result: z.enum(['pass', 'fail', 'error']),
  message: z.string(),
  startedAt: z.iso.datetime(),
  finishedAt: z.iso.datetime(),
});
export type CheckReport = z.infer<typeof checkReport>;

// ------------------------------------------------------------ the policy

export const maintenancePolicy = z
  .strictObject({
    apiVersion: z.literal('fleetlet.io/v1'),
    kind: z.literal('MaintenancePolicy'),
    timeZone: timeZone.optional().meta({ description: 'Default zone for windows and blackouts that do not name one' }),
    windows: windowsField,
    blackouts: blackoutsField,
    critical: z
      .strictObject({
        mayStartOutsideWindows: z.boolean().default(false).meta({ description: 'A release marked critical may start outside allow windows (still not in blackouts)' }),
        ignoreBlackouts: z.boolean().default(false).meta({ description: 'A release marked critical may also start during blackouts' }),
      })
      .prefault({}),
    checks: checksPolicy.prefault({}),
    consent: z
      .strictObject({
        leaseName: z.string().min(1).max(253).default('fleetlet-defer'),
        namespace: z.string().min(1).max(63).default('fleetlet-system'),
        maxDeferral: duration.default('72h').meta({ description: 'A deferral held longer than this is escalated in the status instead of obeyed' }),
      })
      .prefault({})
      .meta({ description: 'A Lease an operator or application holds to defer upgrades' }),
    prePull: z
      .strictObject({
        enabled: z.boolean().default(false).meta({ description: 'Pull the next stage\'s images on every node while waiting for a window (a short-lived DaemonSet in the agent namespace)' }),
      })
      .prefault({})
      .meta({ description: 'Work that changes nothing may happen before the window opens' }),
  })
  .superRefine((p, ctx) => {
    requireZones(p, ctx);
    uniqueNames(p.windows, 'windows', ctx);
    uniqueNames(p.blackouts, 'blackouts', ctx);
  });
export type Policy = z.infer<typeof maintenancePolicy>;
export type PolicyInput = z.input<typeof maintenancePolicy>;

// ------------------------------------------------------------ errors

export interface PolicyIssue {
  /** Field path as a person writes it: windows[1].cron; "" for the whole document. */
  path: string;
  /** The same path as keys, to find the field in the source document. */
  keys: (string | number)[];
  message: string;
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out;
}

/** Turns zod issues into one line per field, in the words of the policy file. */
export function policyIssues(error: z.ZodError): PolicyIssue[] {
  const out: PolicyIssue[] = [];
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        const keys = [...plainKeys(issue.path), key];
        out.push({ path: formatPath(keys), keys, message: 'is not a known field' });
      }
      continue;
    }
    let message = issue.message;
    if (issue.code === 'invalid_type' && /received undefined$/.test(message)) message = `is required (${issue.expected})`;
    out.push({ path: formatPath(issue.path), keys: plainKeys(issue.path), message });
  }
  return out;
}

function plainKeys(path: readonly PropertyKey[]): (string | number)[] {
  return path.map((k) => (typeof k === 'number' ? k : String(k)));
}

export type PolicyValidation = { ok: true; policy: Policy } | { ok: false; issues: PolicyIssue[] };

/** Validates an already-parsed document (YAML or JSON). */
export function validatePolicy(doc: unknown): PolicyValidation {
  const r = maintenancePolicy.safeParse(doc);
  return r.success ? { ok: true, policy: r.data } : { ok: false, issues: policyIssues(r.error) };
}
