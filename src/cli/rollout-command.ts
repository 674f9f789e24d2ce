// `fleetlet rollout`: create and steer rolling upgrades through the hub's
// HTTP API (docs/hub-api.md "Rollouts"), with a live progress display for
// `status --watch`.
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from '@commander-js/extra-typings';
import YAML from 'yaml';
import { clusterRolloutStatuses, type RolloutView, type StatusCounts } from '../protocol/rollout.ts';
import { ExitCode, processIo, configureTree, runCommand, type CommandContext } from './cli-support.ts';
import { HubClientError, hubClient, hubSubcommand, type HubClientIo } from './hub-client.ts';

/** What the rollout commands read and write through: a test gives its own. */
export type RolloutCommandIo = HubClientIo & {
  sleep: (ms: number) => Promise<void>;
  now: () => Date;
  /** Redraw in place (a terminal) or print a line per change (a log). */
  tty: boolean;
  readFile: (path: string) => string;
};

const defaultIo = (): RolloutCommandIo => ({
  ...processIo(),
  fetch: globalThis.fetch,
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
  now: () => new Date(),
  tty: process.stdout.isTTY === true,
  readFile: (p) => readFileSync(p, 'utf8'),
});

/** Phases a watch ends on: nothing more happens without an operator. */
const SETTLED = new Set(['Succeeded', 'Completed', 'Cancelled', 'Paused', 'Failed']);

/** A rollout that stands short of success: Paused, Failed, Cancelled, or Completed with failures (exit code 3). */
export function rolloutExitCode(v: Pick<RolloutView, 'phase' | 'counts'>): number {
  if (v.phase === 'Progressing' || v.phase === 'Succeeded') return ExitCode.Ok;
  if (v.phase === 'Completed' && v.counts.Failed + v.counts.TimedOut === 0) return ExitCode.Ok;
  return ExitCode.Stopped;
}

function intervalArg(text: string): number {
  const m = /^(\d+)(ms|s|m)?$/.exec(text);
  if (!m) throw new InvalidArgumentError('must be like 500ms, 2s or 1m');
  const n = Number(m[1]);
  return m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000;
}

export function rolloutCommand(ctx: CommandContext, io: RolloutCommandIo = { ...defaultIo(), ...ctx.io }) {
  /** Runs a subcommand's body: hub errors become one line on stderr and exit 1. */
  const run = async (body: () => Promise<number>): Promise<void> => {
    try {
      ctx.exit(await body());
    } catch (err) {
      if (!(err instanceof HubClientError)) throw err;
      io.err(`fleetlet rollout: ${err.message}\n`);
      ctx.exit(ExitCode.Failed);
    }
  };
  const show = (v: RolloutView, json: boolean): void => io.out(json ? `${JSON.stringify(v, null, 2)}\n` : renderRollout(v, io.now()));
  const file = (path: string): unknown => {
    try {
      return YAML.parse(io.readFile(path)) as unknown;
    } catch (err) {
      throw new HubClientError('BadFile', `cannot read ${path}: ${(err as Error).message}`);
    }
  };
  const rollout = new Command('rollout')
    .description('create, watch and steer rolling upgrades on a hub (docs/hub-api.md "Rollouts")')
    .addHelpText('after', '\nEvery subcommand takes --hub (env FLEETLET_HUB_API), --token (env FLEETLET_ADMIN_TOKEN) and --json.');

  rollout.addCommand(
    hubSubcommand('create')
      .description('create a rollout from a file (docs/hub-api.md)')
      .requiredOption('-f, --file <rollout.yaml|json>', 'the rollout request')
      .action((o) => run(async () => {
        const v = (await hubClient(o, io)('POST', '/api/v1/rollouts', file(o.file))) as RolloutView;
        show(v, o.json);
        return ExitCode.Ok;
      })),
  );
  rollout.addCommand(
    hubSubcommand('list')
      .description('every rollout with its phase and counts')
      .action((o) => run(async () => {
        const { rollouts } = (await hubClient(o, io)('GET', '/api/v1/rollouts')) as { rollouts: RolloutView[] };
        if (o.json) io.out(`${JSON.stringify(rollouts, null, 2)}\n`);
        else {
          io.out('NAME                            PHASE        SUCCEEDED  PROGRESSING  FAILED  TIMEDOUT  SKIPPED  TOAPPLY\n');
          for (const r of rollouts) {
            const c = r.counts;
            io.out(`${r.name.padEnd(32)}${r.phase.padEnd(13)}${`${c.Succeeded}/${c.total}`.padEnd(11)}${String(c.Progressing).padEnd(13)}${String(c.Failed).padEnd(8)}${String(c.TimedOut).padEnd(10)}${String(c.Skipped).padEnd(9)}${c.ToApply}\n`);
          }
        }
        return ExitCode.Ok;
      })),
  );
  rollout.addCommand(
    hubSubcommand('status')
      .description('show a rollout; with --watch, follow it until it settles (Succeeded, Completed, Paused, Cancelled)')
      .argument('<name>', 'the rollout')
      .option('-w, --watch', 'follow until the rollout settles; a line per change, or a redrawn screen on a terminal', false)
      .addOption(new Option('--interval <time>', 'how often --watch asks the hub, like 500ms, 2s or 1m').argParser(intervalArg).default(2000, '2s'))
      .addOption(new Option('--clusters <which>', 'list every cluster, not only the failed ones').choices(['all']))
      .addHelpText('after', '\nExits 0 when the rollout is Progressing or Succeeded (with --watch: once it Succeeded), 3 when it stands Paused, Cancelled or Completed with failures.')
      .action((name, o) => run(async () => {
        const call = hubClient(o, io);
        const path = `/api/v1/rollouts/${encodeURIComponent(name)}${o.clusters === 'all' ? '?clusters=all' : ''}`;
        if (!o.watch) {
          const v = (await call('GET', path)) as RolloutView;
          show(v, o.json);
          return rolloutExitCode(v);
        }
        let last = '';
        for (;;) {
          const v = (await call('GET', path)) as RolloutView;
          if (o.json) io.out(`${JSON.stringify(v)}\n`);
          else if (io.tty) io.out(`\x1b[H\x1b[2J${renderRollout(v, io.now())}`);
          else {
            const line = progressLine(v);
            if (line !== last) io.out(`${io.now().toISOString()} ${line}\n`);
            last = line;
          }
          if (SETTLED.has(v.phase)) return rolloutExitCode(v);
          await io.sleep(o.interval);
        }
      })),
  );
  rollout.addCommand(
    hubSubcommand('pause')
      .description('no new cluster starts; those in flight finish')
      .argument('<name>', 'the rollout')
      .option('--reason <text>', 'why, shown in the status')
      .action((name, o) => run(async () => {
        show((await hubClient(o, io)('POST', `/api/v1/rollouts/${encodeURIComponent(name)}/pause`, o.reason !== undefined ? { reason: o.reason } : {})) as RolloutView, o.json);
        return ExitCode.Ok;
      })),
  );
  for (const [verb, what] of [
    ['resume', 'continue a paused rollout (failures so far are accepted)'],
    ['cancel', 'stop for good; clusters keep what they got'],
  ] as const) {
    rollout.addCommand(
      hubSubcommand(verb)
        .description(what)
        .argument('<name>', 'the rollout')
        .action((name, o) => run(async () => {
          show((await hubClient(o, io)('POST', `/api/v1/rollouts/${encodeURIComponent(name)}/${verb}`)) as RolloutView, o.json);
          return ExitCode.Ok;
        })),
    );
  }
  rollout.addCommand(
    hubSubcommand('rollback')
      .description('send the previous release to the clusters the rollout reached, as a new rollout')
      .argument('<name>', 'the rollout to roll back')
      .option('--name <new>', 'name of the rollback rollout (default <name>-rollback)')
      .option('-f, --file <rollback.yaml|json>', "strategy, window, unknownClusters for the rollback (default: the original's strategy and unknownClusters, no window)")
      .action((name, o) => run(async () => {
        const body = { ...((o.file !== undefined ? (file(o.file) as Record<string, unknown>) : undefined) ?? {}), ...(o.name !== undefined ? { name: o.name } : {}) };
        const res = (await hubClient(o, io)('POST', `/api/v1/rollouts/${encodeURIComponent(name)}/rollback`, body)) as { rollback: RolloutView; excluded: string[] };
        if (res.excluded.length > 0) io.err(`${res.excluded.length} cluster(s) had no earlier release and are left out: ${res.excluded.slice(0, 20).join(', ')}${res.excluded.length > 20 ? ', …' : ''}\n`);
        show(res.rollback, o.json);
        return ExitCode.Ok;
      })),
  );
  rollout.addCommand(
    hubSubcommand('overrides')
      .description('which clusters run which hotfix override, and since when; and which affected clusters do not run it yet')
      .argument('[name]', 'one override (default: every one)')
      .action((name, o) => run(async () => {
        const call = hubClient(o, io);
        const defs = name !== undefined ? [(await call('GET', `/api/v1/overrides/${encodeURIComponent(name)}`)) as OverrideDefinition] : ((await call('GET', '/api/v1/overrides')) as { overrides: OverrideDefinition[] }).overrides;
        const report = [];
        for (const d of defs) {
          const path = `/api/v1/overrides/${encodeURIComponent(d.name)}/clusters`;
          const running = ((await call('GET', `${path}?state=running`)) as { clusters: OverrideCluster[] }).clusters;
          const missing = ((await call('GET', `${path}?state=missing`)) as { clusters: OverrideCluster[] }).clusters;
          report.push({ override: d, running, missing });
        }
        if (o.json) io.out(`${JSON.stringify(report, null, 2)}\n`);
        else io.out(renderOverrides(report));
        return ExitCode.Ok;
      })),
  );
  return rollout;
}

/** `fleetlet rollout …` on its own, for tests that drive it with their own io. */
export async function runRollout(argv: string[], io: RolloutCommandIo): Promise<number> {
  let code: number = ExitCode.Ok;
  const cmd = rolloutCommand({ io, exit: (c) => (code = c) }, io);
  configureTree(cmd, io);
  return runCommand(cmd, argv, io, () => code);
}

interface OverrideDefinition {
  name: string;
  withdrawn: boolean;
  definition: { version: string; component: string; appliesTo: { releaseName: string; versions: string[] } };
}

interface OverrideCluster {
  clusterId: string;
  runningRelease: { name: string; version: string } | null;
  reported: { component: string | null; version: string | null } | null;
  since: string | null;
}

/** Per override: the clusters running it with since when, then the affected ones that do not run it. */
export function renderOverrides(report: { override: OverrideDefinition; running: OverrideCluster[]; missing: OverrideCluster[] }[]): string {
  if (report.length === 0) return 'no overrides\n';
  const release = (c: OverrideCluster) => (c.runningRelease ? `${c.runningRelease.name} ${c.runningRelease.version}` : '-');
  const lines: string[] = [];
  for (const { override: o, running, missing } of report) {
    const d = o.definition;
    lines.push(`Override:  ${o.name} ${d.version} on ${d.component}${o.withdrawn ? ' (withdrawn)' : ''}; applies to ${d.appliesTo.releaseName} ${d.appliesTo.versions.join(', ')}`);
    lines.push(`RUNNING (${running.length})`);
    for (const c of running) lines.push(`  ${c.clusterId.padEnd(30)}${`since ${c.since ?? 'unknown (only a hello listed it)'}`.padEnd(40)}${c.reported?.version !== d.version ? `at ${c.reported?.version ?? '?'}  ` : ''}release ${release(c)}`);
    lines.push(`MISSING (${missing.length})`);
    for (const c of missing) lines.push(`  ${c.clusterId.padEnd(30)}release ${release(c)}`);
    lines.push('');
  }
  return `${lines.join('\n')}`;
}

function progressLine(v: RolloutView): string {
  const c = v.counts;
  return `${v.name} ${v.phase}${v.reason ? ` (${v.reason})` : ''}: ${c.Succeeded}/${c.total} succeeded, ${c.Progressing} progressing, ${c.Failed} failed, ${c.TimedOut} timed out, ${c.Skipped} skipped, ${c.ToApply} to apply`;
}

function bar(c: StatusCounts, width: number): string {
  if (c.total === 0) return ' '.repeat(width);
  const cells = (n: number) => Math.round((n / c.total) * width);
  const ok = cells(c.Succeeded);
  const bad = Math.min(width - ok, cells(c.Failed + c.TimedOut));
  const busy = Math.min(width - ok - bad, cells(c.Progressing));
  return `${'#'.repeat(ok)}${'!'.repeat(bad)}${'>'.repeat(busy)}${'.'.repeat(width - ok - bad - busy)}`;
}

const ago = (iso: string | null, now: Date): string => {
  if (iso === null) return '-';
  const s = Math.round((Date.parse(iso) - now.getTime()) / 1000);
  const abs = Math.abs(s);
  const text = abs < 90 ? `${abs}s` : abs < 5400 ? `${Math.round(abs / 60)}m` : `${(abs / 3600).toFixed(1)}h`;
  return `${iso} (${s >= 0 ? 'in ' : ''}${text}${s < 0 ? ' ago' : ''})`;
};

/** Failures against their limit: over the rollout, or (ProgressivePerGroup) each group against its own, the first few named. */
function failureLimits(v: RolloutView): string {
  if (v.strategy.type !== 'ProgressivePerGroup') return `failures ${v.limits.failures}/${v.limits.maxFailures} allowed`;
  const limited = v.groups.filter((g) => g.maxFailures !== null);
  const shown = limited.slice(0, 6).map((g) => `${g.name} ${g.counts.Failed + g.counts.TimedOut}/${g.maxFailures}`);
  if (limited.length > shown.length) shown.push(`${limited.length - shown.length} more`);
  return `failures ${v.limits.failures}, maxFailures ${v.strategy.maxFailures} per group, rounded down (${shown.join(', ')})`;
}

/** The status as a person reads it: phase and reason, times, a bar per group, the failed clusters. */
export function renderRollout(v: RolloutView, now: Date): string {
  const lines: string[] = [];
  const t = v.target;
  const what = t.kind === 'Release' ? `release ${t.release.name} ${t.release.version}` : t.kind === 'Override' ? `override ${t.override.name} ${t.override.version}${t.override.withdrawn ? ' (withdrawal)' : ''} on ${t.override.component}` : `rollback of ${t.rollbackOf}`;
  lines.push(`Rollout:   ${v.name}  (${what})`);
  lines.push(`Phase:     ${v.phase}${v.reason ? `  ${v.reason}` : ''}${v.message ? `: ${v.message}` : ''}`);
  const s = v.strategy;
  lines.push(
    `Strategy:  ${s.type}${v.limits.maxConcurrency !== null ? `, maxConcurrency ${v.limits.maxConcurrency}` : ''}, minSuccessTime ${s.minSuccessTime}, progressDeadline ${s.progressDeadline}, ${failureLimits(v)}${v.limits.acknowledgedFailures > 0 ? ` (+${v.limits.acknowledgedFailures} accepted)` : ''}, unknown clusters: ${v.unknownClusters}`,
  );
  if (v.window) lines.push(`Window:    ${v.window.cron} ${v.window.until !== undefined ? `until ${v.window.until}` : `for ${v.window.duration}`} (${v.window.timeZone}): ${v.window.open ? 'open' : `closed, opens ${ago(v.window.nextOpeningAt, now)}`}`);
  lines.push(`Started:   ${ago(v.startedAt, now)}`);
  lines.push(v.endedAt !== null ? `Ended:     ${ago(v.endedAt, now)}` : `Expected:  ${ago(v.expectedEndAt, now)}`);
  if (v.rolledBackBy) lines.push(`Rolled back by: ${v.rolledBackBy}`);
  lines.push('');
  const header = `${'GROUP'.padEnd(20)}${'STATE'.padEnd(9)}${'PROGRESS'.padEnd(32)}${clusterRolloutStatuses.map((k) => k.toUpperCase().padStart(12)).join('')}${'UNKNOWN'.padStart(9)}`;
  lines.push(header);
  const row = (label: string, state: string, c: StatusCounts) =>
    `${label.padEnd(20)}${state.padEnd(9)}[${bar(c, 28)}]  ${clusterRolloutStatuses.map((k) => String(c[k]).padStart(12)).join('')}${String(c.unknown).padStart(9)}`;
  for (const g of v.groups) lines.push(row(`${g.name}${g.mandatory ? '*' : ''}`, g.state, g.counts));
  lines.push(row('TOTAL', '', v.counts));
  if (v.groups.some((g) => g.mandatory)) lines.push('* mandatory: goes first and tolerates no failure');
  if (v.failed.length > 0) {
    lines.push('', `FAILED (${v.failed.length})`);
    for (const f of v.failed.slice(0, 20)) lines.push(`  ${f.clusterId.padEnd(30)}${f.status.padEnd(10)}${f.reason ?? ''}${f.message ? `: ${f.message}` : ''}`);
    if (v.failed.length > 20) lines.push(`  … and ${v.failed.length - 20} more (fleetlet rollout status ${v.name} --json)`);
  }
  if (v.clusters) {
    lines.push('', 'CLUSTERS');
    for (const c of v.clusters) lines.push(`  ${c.clusterId.padEnd(30)}${c.group.padEnd(16)}${c.status.padEnd(12)}${c.available ? '' : 'Unknown  '}${c.reason ?? ''}`);
  }
  return `${lines.join('\n')}\n`;
}
