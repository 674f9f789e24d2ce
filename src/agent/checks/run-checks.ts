// Runs checks concurrently, each under its own timeout. A check can never
// hang an attempt or take the agent down: a timeout, a throw, a rejected
// promise or a malformed answer all become result 'error' with a message.
import type { Condition } from '../../protocol/attempt.ts';
import type { Check, CheckOutcome, CheckReport } from './check.ts';

/** Journal rows and status messages stay small even if a check echoes a whole response body. */
const MAX_MESSAGE = 1024;

export interface RunChecksOptions {
  /** Aborting it (agent shutdown) ends every running check with result 'error'. */
  signal?: AbortSignal;
  now: () => Date;
}

export async function runChecks(checks: readonly Check[], opts: RunChecksOptions): Promise<CheckReport[]> {
  return Promise.all(checks.map((c) => runOne(c, opts)));
}

async function runOne(check: Check, opts: RunChecksOptions): Promise<CheckReport> {
  const startedAt = opts.now();
  const outcome = await outcomeOf(check, opts.signal);
  const finishedAt = opts.now();
  return {
    name: check.name,
    result: outcome.result,
    message: truncate(outcome.message),
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
  };
}

function outcomeOf(check: Check, parent: AbortSignal | undefined): Promise<CheckOutcome> {
  if (parent?.aborted) return Promise.resolve({ result: 'error', message: `not run: ${reasonText(parent.reason, 'aborted')}` });
  const controller = new AbortController();
  return new Promise<CheckOutcome>((resolve) => {
    let settled = false;
    const finish = (o: CheckOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      parent?.removeEventListener('abort', onParentAbort);
      resolve(o);
    };
    const onParentAbort = (): void => {
      controller.abort(parent?.reason);
      finish({ result: 'error', message: `aborted: ${reasonText(parent?.reason, 'aborted')}` });
    };
    // The answer does not wait for the check to notice the abort: a check
    // that ignores its signal is abandoned, not awaited.
    const timer = setTimeout(() => {
      controller.abort(new Error(`check "${check.name}" timed out after ${check.timeoutMs}ms`));
      finish({ result: 'error', message: `timed out after ${check.timeoutMs}ms` });
    }, check.timeoutMs);
    parent?.addEventListener('abort', onParentAbort, { once: true });

    let pending: Promise<unknown>;
    try {
      pending = Promise.resolve(check.run(controller.signal));
    } catch (err) {
      pending = Promise.reject(err);
    }
    pending.then(
      (o) => finish(validOutcome(o) ? o : { result: 'error', message: `check returned an invalid result: ${safeJson(o)}` }),
      (err: unknown) => finish({ result: 'error', message: `threw: ${reasonText(err, 'unknown error')}` }),
    );
  });
}

function validOutcome(o: unknown): o is CheckOutcome {
  if (typeof o !== 'object' || o === null) return false;
  const { result, message } = o as Record<string, unknown>;
  return (result === 'pass' || result === 'fail' || result === 'error') && typeof message === 'string';
}

function reasonText(reason: unknown, fallback: string): string {
  if (reason instanceof Error) return reason.message || reason.name;
  if (typeof reason === 'string' && reason !== '') return reason;
  return fallback;
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

function truncate(s: string): string {
  return s.length <= MAX_MESSAGE ? s : `${s.slice(0, MAX_MESSAGE - 1)}…`;
}

/** Whether the attempt may go ahead: every check passed ('fail' and 'error' both block). */
export function allPassed(reports: readonly CheckReport[]): boolean {
  return reports.every((r) => r.result === 'pass');
}

/**
 * The reports as one Kubernetes-style condition, like OpenShift's
 * Upgradeable: True when every check passed, False naming each that did not.
 */
export function checksCondition(type: string, reports: readonly CheckReport[], now: () => Date): Condition {
  const lastTransitionTime = now().toISOString();
  const blocking = reports.filter((r) => r.result !== 'pass');
  if (reports.length === 0) return { type, status: 'True', reason: 'NoChecks', message: 'no checks configured', lastTransitionTime };
  if (blocking.length === 0) return { type, status: 'True', reason: 'ChecksPassed', message: `${reports.length} check(s) passed`, lastTransitionTime };
  const reason = blocking.some((r) => r.result === 'fail') ? 'ChecksFailed' : 'ChecksErrored';
  const message = blocking.map((r) => `${r.name} ${r.result}: ${r.message}`).join('; ');
  return { type, status: 'False', reason, message: truncate(message), lastTransitionTime };
}
