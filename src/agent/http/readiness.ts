// What /readyz asks before it says yes. Ready means this agent can do its
// job right now: its journal answers and the Kubernetes API answers. Checks
// are named and pluggable, so later ones (the self-upgrade candidate's
// hand-over check) register with `add` instead of editing the server.
import type { ClusterClient } from '../kube/cluster-client.ts';
import type { Journal } from '../../store/journal.ts';

export interface ReadinessCheck {
  name: string;
  /** Resolves when ready; rejects (or returns a message via throw) when not. Must honour the signal. */
  check(signal: AbortSignal): Promise<void>;
}

export interface CheckResult {
  name: string;
  ok: boolean;
  message: string;
  durationMs: number;
}

export interface ReadinessReport {
  ready: boolean;
  checks: CheckResult[];
}

export class CheckTimedOut extends Error {
  readonly reason = 'CheckTimedOut';
  constructor(name: string, ms: number) {
    super(`${name} did not answer within ${ms} ms`);
    this.name = 'CheckTimedOut';
  }
}

export interface ReadinessOptions {
  /** Per-check limit; kubelet's probe timeout defaults to 1 s, so keep the sum of checks below the probe's timeoutSeconds. */
  timeoutMs?: number;
  /** Told of every failed check (e.g. to count journal errors). */
  onFailure?: (result: CheckResult) => void;
}

export class Readiness {
  private readonly checks: ReadinessCheck[] = [];
  private readonly timeoutMs: number;
  private readonly onFailure: ((r: CheckResult) => void) | undefined;

  constructor(checks: ReadinessCheck[] = [], opts: ReadinessOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 2_000;
    this.onFailure = opts.onFailure;
    for (const c of checks) this.add(c);
  }

  /** Registers a check; names are unique so a report line names exactly one thing. */
  add(check: ReadinessCheck): void {
    if (this.checks.some((c) => c.name === check.name)) throw new Error(`readiness check ${check.name} is already registered`);
    this.checks.push(check);
  }

  /** Runs every check concurrently, each with its own deadline. */
  async evaluate(signal?: AbortSignal): Promise<ReadinessReport> {
    const checks = await Promise.all(this.checks.map((c) => this.run(c, signal)));
    return { ready: checks.every((c) => c.ok), checks };
  }

  private async run(c: ReadinessCheck, outer: AbortSignal | undefined): Promise<CheckResult> {
    const started = performance.now();
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const signal = outer ? AbortSignal.any([outer, timeout]) : timeout;
    let result: CheckResult;
    try {
      await raceAbort(c.check(signal), signal, () => new CheckTimedOut(c.name, this.timeoutMs));
      result = { name: c.name, ok: true, message: 'ok', durationMs: Math.round(performance.now() - started) };
    } catch (err) {
      result = { name: c.name, ok: false, message: (err as Error).message, durationMs: Math.round(performance.now() - started) };
    }
    if (!result.ok) this.onFailure?.(result);
    return result;
  }
}

/** A check that ignores its signal (a client without cancellation) still ends at the deadline. */
function raceAbort<T>(p: Promise<T>, signal: AbortSignal, error: () => Error): Promise<T> {
  if (signal.aborted) return Promise.reject(error());
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(error());
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** The journal opens and answers a read of a real table (not just `SELECT 1`, which needs no file). */
export function journalCheck(journal: Journal): ReadinessCheck {
  return {
    name: 'journal',
    async check() {
      journal.ping();
    },
  };
}

/** The Kubernetes API answers with this agent's credentials (GET /version needs any valid identity). */
export function kubeApiCheck(cluster: Pick<ClusterClient, 'serverVersion'>): ReadinessCheck {
  return {
    name: 'kubernetes-api',
    async check() {
      await cluster.serverVersion();
    },
  };
}
