// What the agent needs before it can start, as a pod gets it: files from
// ConfigMap and Secret volumes (the release key, the policy) and values from
// env vars filled from ConfigMaps (the cluster id). A missing one must not
// become a silent crash loop (issue: ship as users run it, "Bad input"): the
// agent logs one line naming what is missing and the kubectl command that
// creates it, answers /readyz with that reason, and checks again with
// backoff. A file appears in place once its ConfigMap or Secret exists (the
// kubelet fills an optional volume on its next sync); an env var does not
// change in a running process, so for those the agent exits after a while
// and the kubelet's restart (with its own backoff) reads them afresh.
import type { Logger } from 'pino';
import { backoffDelay, type BackoffPolicy } from '../../lib/backoff.ts';
import { createCommand, envSource, fileSource, type PodSpecView } from '../kube/pod-sources.ts';

export interface StartupInput {
  /** For the message: `release key`, `policy`, `cluster id`. */
  what: string;
  /** The flag that names it. */
  flag: string;
  /** A file that must exist and not be empty. */
  file?: string;
  /** An env var that must be set: its name and the value the process got. */
  env?: { name: string; value: string | undefined };
}

/** How kubelet leaves `$(NAME)` in an argument when NAME is not set: the reference itself. */
export function unresolvedEnvReference(value: string | undefined): string | undefined {
  return value === undefined ? undefined : /^\$\(([A-Za-z_][A-Za-z0-9_]*)\)$/.exec(value.trim())?.[1];
}

/** The inputs that are missing now. */
export function missingInputs(inputs: readonly StartupInput[], fileReady: (path: string) => boolean): StartupInput[] {
  return inputs.filter((i) => (i.file !== undefined && !fileReady(i.file)) || (i.env !== undefined && (!i.env.value || unresolvedEnvReference(i.env.value) !== undefined)));
}

/** One sentence: what is missing, where it comes from in this pod, and the command that creates it. */
export function describeMissing(input: StartupInput, pod: PodSpecView | undefined): string {
  if (input.file !== undefined) {
    const source = pod && fileSource(pod, input.file);
    const head = `${input.what} ${input.file} (${input.flag}) is missing`;
    if (!source) return `${head}: no such file`;
    return `${head}: it comes from ${source.kind} ${source.namespace}/${source.name} key ${source.key} (${source.via}), which does not exist or lacks that key; create it: ${createCommand(source, 'file')}`;
  }
  const name = input.env!.name;
  const source = pod && envSource(pod, name);
  const head = `${input.what} (${input.flag}, env ${name}) is not set`;
  if (!source) return `${head}: set ${name} or pass ${input.flag}`;
  return `${head}: it comes from ${source.kind} ${source.namespace}/${source.name} key ${source.key}, which does not exist or lacks that key; create it: ${createCommand(source, 'literal')} (the agent restarts to read it)`;
}

export interface WaitOptions {
  inputs: readonly StartupInput[];
  fileReady(path: string): boolean;
  /** This pod as the API has it; undefined (or a rejection) when it cannot be read: the message is then less specific. */
  pod(): Promise<PodSpecView | undefined>;
  logger: Logger;
  /** Told the current problem (undefined once everything is there), for /readyz. */
  onProblem(message: string | undefined): void;
  sleep(ms: number, signal: AbortSignal): Promise<void>;
  now(): number;
  random(): number;
  signal: AbortSignal;
  backoff?: BackoffPolicy;
  /** How long to wait for a missing env var before exiting so the kubelet restarts the container. */
  envHoldMs?: number;
}

export type WaitOutcome = 'ready' | 'restart' | 'stopped';

export async function waitForStartupInputs(o: WaitOptions): Promise<WaitOutcome> {
  const backoff = o.backoff ?? { baseMs: 1_000, capMs: 30_000 };
  const holdMs = o.envHoldMs ?? 60_000;
  const started = o.now();
  let said: string | undefined;
  for (let attempt = 0; ; attempt++) {
    const missing = missingInputs(o.inputs, o.fileReady);
    if (missing.length === 0) {
      if (said !== undefined) o.logger.info('start-up inputs are present now; starting');
      o.onProblem(undefined);
      return 'ready';
    }
    const pod = await o.pod().catch(() => undefined);
    const message = missing.map((i) => describeMissing(i, pod)).join('; ');
    o.onProblem(message);
    // One line per distinct problem, not one per retry.
    if (message !== said) {
      o.logger.error({ missing: missing.map((i) => i.flag) }, message);
      said = message;
    }
    if (missing.some((i) => i.env !== undefined) && o.now() - started >= holdMs) return 'restart';
    await o.sleep(Math.max(250, backoffDelay(attempt, backoff, o.random)), o.signal);
    if (o.signal.aborted) return 'stopped';
  }
}
