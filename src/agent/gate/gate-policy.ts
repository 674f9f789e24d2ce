// The gate that enforces the local maintenance policy before every stage:
//
//   1. windows: outside allowed time → WaitingForWindow until it opens;
//   2. fit: inside, but the stage's estimated duration does not fit before
//      allowed time ends → WaitingForWindow (WindowTooShort) until a long
//      enough stretch begins;
//   3. pre-flight checks (built-in and the policy's) → PreflightChecking with
//      a backoff while any fails or errors;
//   4. all pass → go.
//
// Work that changes nothing (the server-side dry-run, pulling images) may
// happen before the window opens, so problems show while waiting. The policy
// and the hub's windows are read through getters on every evaluation,
// because the loader swaps the policy when its ConfigMap changes. The engine
// consults the gate only before a stage starts: a stage already running when
// its window closes runs to its end.
import type { Logger } from 'pino';
import { maintenancePolicy, type CheckReport, type HubWindows, type Policy } from '../../protocol/policy.ts';
import type { Journal } from '../../store/journal.ts';
import type { Check } from '../checks/check.ts';
import { recheckDelayMs } from '../checks/backoff.ts';
import { checksFromSpecs } from '../checks/from-policy.ts';
import { kubernetesConditionCheck } from '../checks/kubernetes-condition.ts';
import { prometheusQueryCheck } from '../checks/prometheus-query.ts';
import { runChecks } from '../checks/run-checks.ts';
import type { Gate, GateContext, GateDecision, PostflightChecks } from './gate.ts';
import type { ClusterClient } from '../kube/cluster-client.ts';
import { builtinPreflightChecks, DEFERRAL_LIMIT_EXCEEDED, dryRunCheck, stageComponents, type Statfs } from '../preflight/index.ts';
import type { PrePuller } from '../preflight/pre-pull.ts';
import { compileHubWindows, compilePolicy, estimateStageMs, fitsInWindow, windowState, type CompiledPolicy, type CompiledWindowSet, type WindowOptions } from '../windows/index.ts';

export interface PolicyGateDeps {
  /** The policy in force: the loader's last valid one; undefined while none has loaded. */
  policy: () => Policy | undefined;
  /** Windows the hub imposes (last known); they only narrow local policy. */
  hubWindows?: () => HubWindows | undefined;
  journal: Journal;
  cluster: ClusterClient;
  now: () => Date;
  logger?: Pick<Logger, 'info' | 'warn'>;
  /** For HTTP and Prometheus checks. */
  fetch?: typeof fetch;
  /** For the journal-disk check. */
  statfs?: Statfs;
  /** Jitter source of the re-check backoff ([0, 1)). */
  random?: () => number;
  /** Pulls the next stage's images while waiting, when the policy enables it. */
  prePuller?: PrePuller;
}

/** What every gate decision carries in its transition's data, for status and the hub. */
export interface GateData {
  window?: { reason: string; message: string; closesAt?: string; nextOpensAt?: string };
  estimatedStageMs?: number;
  checks?: CheckReport[];
}

/** How long to wait before looking again when no policy has loaded or no allowed time lies within the horizon. */
const IDLE_RECHECK_MS = 60_000;
/**
 * A window-fit estimate never assumes a stage can finish in less than this, even
 * when its progress deadline is shorter: applying, rolling out and a rollback
 * take time of their own. (The engine's deadline rule is progressDeadlineMs in
 * src/agent/upgrade/decide.ts; this floor is the estimate's, not the engine's.)
 */
const MIN_STAGE_ESTIMATE_S = 60;

export class PolicyGate implements Gate {
  private readonly d: PolicyGateDeps;
  private readonly compiled = new WeakMap<Policy, CompiledPolicy>();
  private readonly compiledHub = new WeakMap<HubWindows, CompiledWindowSet>();
  /** Consecutive blocked evaluations per attempt and stage: the re-check backoff's exponent. */
  private readonly retries = new Map<string, number>();
  /** Dry-run result per attempt and stage while waiting: it changes nothing, so once is enough. */
  private readonly prepared = new Map<string, CheckReport>();

  constructor(deps: PolicyGateDeps) {
    this.d = deps;
  }

  async evaluate(ctx: GateContext): Promise<GateDecision> {
    const policy = this.d.policy();
    const key = `${ctx.attempt.id}:${ctx.stage}`;
    if (!policy) {
      return {
        go: false,
        phase: 'WaitingForWindow',
        reason: 'NoPolicy',
        message: 'no valid maintenance policy is loaded yet; fix or mount the policy file (the agent re-reads it on change)',
        retryAt: new Date(ctx.now.getTime() + IDLE_RECHECK_MS),
      };
    }
    const opts = this.windowOptions(ctx);
    const compiled = this.compile(policy);
    const estimate = this.estimateStageMs(ctx);
    const fit = fitsInWindow(compiled, ctx.now, estimate, opts);

    if (!fit.fits) {
      const prepared = await this.prepare(ctx, policy, key);
      const notes = prepared.filter((r) => r.result !== 'pass').map((r) => `; meanwhile ${r.name} ${r.result}: ${r.message}`).join('');
      if (fit.reason === 'WindowTooShort') {
        return {
          go: false,
          phase: 'WaitingForWindow',
          reason: 'WindowTooShort',
          message: fit.message + notes,
          retryAt: fit.nextStartAt ?? new Date(ctx.now.getTime() + IDLE_RECHECK_MS),
          data: { window: { reason: fit.reason, message: fit.message, ...(fit.nextStartAt ? { nextOpensAt: fit.nextStartAt.toISOString() } : {}) }, estimatedStageMs: estimate, checks: prepared } satisfies GateData,
        };
      }
      const state = windowState(compiled, ctx.now, opts);
      const opens = state.nextOpensAt;
      const when = opens ? `the next window opens at ${opens.toISOString()}` : 'no window opens within the next 400 days';
      const fitting = fit.nextStartAt && opens && fit.nextStartAt.getTime() !== opens.getTime() ? ` (the first long enough for this stage, ~${Math.round(estimate / 60_000)}m, at ${fit.nextStartAt.toISOString()})` : '';
      return {
        go: false,
        phase: 'WaitingForWindow',
        reason: state.reason,
        message: `waiting for a maintenance window: ${stripNext(state.message)}; ${when}${fitting}${notes}`,
        retryAt: opens ?? new Date(ctx.now.getTime() + IDLE_RECHECK_MS),
        data: { window: { reason: state.reason, message: state.message, ...(opens ? { nextOpensAt: opens.toISOString() } : {}) }, estimatedStageMs: estimate, checks: prepared } satisfies GateData,
      };
    }

    const window = { reason: fit.reason, message: fit.message, ...(fit.closesAt ? { closesAt: fit.closesAt.toISOString() } : {}) };
    const reports = await this.runAndRecord('preflight', ctx, this.preflightChecks(policy, ctx));
    const blocking = reports.filter((r) => r.result !== 'pass');
    const data: GateData = { window, estimatedStageMs: estimate, checks: reports };
    if (blocking.length > 0) {
      const retry = this.retries.get(key) ?? 0;
      this.retries.set(key, retry + 1);
      const delay = recheckDelayMs(retry, policy.checks.recheck, this.d.random);
      const retryAt = new Date(ctx.now.getTime() + delay);
      return {
        go: false,
        phase: 'PreflightChecking',
        reason: 'PreflightFailed',
        message: `pre-flight checks block stage ${ctx.stage}: ${blocking.map((r) => `${r.name} ${r.result}: ${r.message}`).join('; ')}; checking again at ${retryAt.toISOString()}`,
        retryAt,
        data,
      };
    }
    this.retries.delete(key);
    this.prepared.delete(key);
    await this.d.prePuller?.cleanUp(ctx.attempt.id).catch((err: unknown) => this.d.logger?.warn({ err }, 'could not remove the image pre-pull DaemonSet'));
    // Escalations pass but must stay visible: they go into the transition's message.
    const escalated = reports.filter((r) => r.message.startsWith(`${DEFERRAL_LIMIT_EXCEEDED}:`));
    return { go: true, ...(escalated.length ? { message: escalated.map((r) => r.message).join('; ') } : {}), data };
  }

  /**
   * The stage's estimated wall time: the longest of its components', each
   * from its past durations in the journal, bounded by its deadline and soak.
   */
  estimateStageMs(ctx: Pick<GateContext, 'attempt' | 'release' | 'stage'>): number {
    const components = stageComponents(ctx);
    if (components.length === 0) return MIN_STAGE_ESTIMATE_S * 1000;
    return Math.max(
      ...components.map((c) =>
        estimateStageMs(
          Math.max(MIN_STAGE_ESTIMATE_S, c.health.progressDeadlineSeconds) * 1000,
          // The journal gives newest first; the estimate wants oldest first.
          this.d.journal.attempts.pastDurationsMs(c.name).reverse(),
          { soakMs: c.health.soakSeconds * 1000 },
        ),
      ),
    );
  }

  private preflightChecks(policy: Policy, ctx: GateContext): Check[] {
    return [...builtinPreflightChecks(this.d, policy, ctx), ...checksFromSpecs(policy.checks.preflight, this.factories())];
  }

  /** Runs the checks and journals every result before the decision is taken. */
  async runAndRecord(kind: 'preflight' | 'postflight', ctx: GateContext, checks: readonly Check[]): Promise<CheckReport[]> {
    const reports = await runChecks(checks, { now: this.d.now, signal: ctx.signal });
    const { journal } = this.d;
    journal.transaction(() => {
      for (const r of reports) journal.attempts.recordCheck(ctx.attempt.id, { kind, stage: ctx.stage, ...r });
    });
    return reports;
  }

  factories() {
    return {
      ...(this.d.fetch ? { fetch: this.d.fetch } : {}),
      kubernetesCondition: (spec: Parameters<typeof kubernetesConditionCheck>[0]) => kubernetesConditionCheck(spec, this.d.cluster),
      prometheus: (spec: Parameters<typeof prometheusQueryCheck>[0]) => prometheusQueryCheck(spec, this.d.fetch ? { fetch: this.d.fetch } : {}),
    };
  }

  /** Work that changes nothing, done while waiting: the dry-run once per stage, and the image pre-pull if enabled. */
  private async prepare(ctx: GateContext, policy: Policy, key: string): Promise<CheckReport[]> {
    const out: CheckReport[] = [];
    let dry = this.prepared.get(key);
    if (!dry) {
      const [r] = await this.runAndRecord('preflight', ctx, [dryRunCheck(this.d.cluster, ctx)]);
      dry = r!;
      // An error (API away) is worth trying again at the next evaluation.
      if (dry.result !== 'error') this.prepared.set(key, dry);
    }
    out.push(dry);
    if (policy.prePull.enabled && this.d.prePuller) {
      const [r] = await this.runAndRecord('preflight', ctx, [this.d.prePuller.check(ctx)]);
      out.push(r!);
    }
    return out;
  }

  private windowOptions(ctx: GateContext): WindowOptions {
    // The release's own windows (signed by the hub, e.g. a rollout's window) narrow local policy too.
    const hub = ctx.release.windows ?? this.d.hubWindows?.();
    let compiledHub: CompiledWindowSet | undefined;
    if (hub) {
      compiledHub = this.compiledHub.get(hub);
      if (!compiledHub) this.compiledHub.set(hub, (compiledHub = compileHubWindows(hub)));
    }
    return { critical: ctx.release.critical, hubWindows: compiledHub };
  }

  private compile(policy: Policy): CompiledPolicy {
    let c = this.compiled.get(policy);
    if (!c) this.compiled.set(policy, (c = compilePolicy(policy)));
    return c;
  }
}

/** Post-flight: the policy's postflight checks after each healthy stage; any failure rolls the attempt back. */
export class PolicyPostflight implements PostflightChecks {
  private readonly gate: PolicyGate;
  private readonly policy: () => Policy | undefined;

  constructor(gate: PolicyGate, policy: () => Policy | undefined) {
    this.gate = gate;
    this.policy = policy;
  }

  async run(ctx: GateContext): Promise<{ ok: true } | { ok: false; reason: string; message: string }> {
    const specs = this.policy()?.checks.postflight ?? [];
    if (specs.length === 0) return { ok: true };
    const reports = await this.gate.runAndRecord('postflight', ctx, checksFromSpecs(specs, this.gate.factories()));
    const failed = reports.filter((r) => r.result !== 'pass');
    if (failed.length === 0) return { ok: true };
    return {
      ok: false,
      reason: 'PostflightFailed',
      message: `post-flight check(s) ${failed.map((r) => r.name).join(', ')} failed after stage ${ctx.stage}: ${failed.map((r) => `${r.name} ${r.result}: ${r.message}`).join('; ')}`,
    };
  }
}

/**
 * The gate and post-flight checks for the engine (EngineDeps.gate and
 * .postflight), both reading the policy through the same getter.
 */
export function createPolicyGate(deps: PolicyGateDeps): { gate: PolicyGate; postflight: PolicyPostflight } {
  const gate = new PolicyGate(deps);
  return { gate, postflight: new PolicyPostflight(gate, deps.policy) };
}

/** The policy of an agent started without a policy file: no windows (always allowed), built-in checks at their default thresholds. */
export function defaultPolicy(): Policy {
  return maintenancePolicy.parse({ apiVersion: 'fleetlet.io/v1', kind: 'MaintenancePolicy' });
}

/** Window messages end with "; next opens at …"; the gate says that in its own words. */
function stripNext(message: string): string {
  return message.replace(/; next opens at \S+$/, '');
}
