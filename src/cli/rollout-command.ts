// `fleetlet rollout`: create and steer rolling upgrades through the hub's
// HTTP API (docs/hub-api.md "Rollouts"), with a live progress display for
// `status --watch`.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { clusterRolloutStatuses, type RolloutView, type StatusCounts } from '../protocol/rollout.ts';

export const rolloutUsage = `fleetlet rollout <subcommand> [options]

Subcommands:
  create -f <rollout.yaml|json>        create a rollout (see docs/hub-api.md)
  list                                 every rollout with its phase and counts
  status <name> [--watch] [--interval 2s] [--clusters all] [--json]
  pause <name> [--reason <text>]       no new cluster starts
  resume <name>                        continue (failures so far are accepted)
  cancel <name>                        stop for good; clusters keep what they got
  rollback <name> [--name <new>] [-f <rollback.yaml|json>]
                                       send the previous release to the clusters it reached

Options:
  --hub <url>      hub HTTP API (env FLEETLET_HUB_API; default http://127.0.0.1:8443)
  --token <token>  hub admin token (env FLEETLET_ADMIN_TOKEN)`;

export class RolloutCommandError extends Error {
  override readonly name = 'RolloutCommandError';
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.reason = reason;
  }
}

export interface RolloutCommandIo {
  fetch: typeof fetch;
  out: (s: string) => void;
  err: (s: string) => void;
  sleep: (ms: number) => Promise<void>;
  now: () => Date;
  /** Redraw in place (a terminal) or print a line per change (a log). */
  tty: boolean;
  env: Record<string, string | undefined>;
  readFile: (path: string) => string;
}

const defaultIo = (): RolloutCommandIo => ({
  fetch: globalThis.fetch,
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
  now: () => new Date(),
  tty: process.stdout.isTTY === true,
  env: process.env,
  readFile: (p) => readFileSync(p, 'utf8'),
});

const TERMINAL = new Set(['Succeeded', 'Completed', 'Cancelled']);

export async function rolloutCommand(argv: string[], io: RolloutCommandIo = defaultIo()): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      hub: { type: 'string' },
      token: { type: 'string' },
      file: { type: 'string', short: 'f' },
      watch: { type: 'boolean', short: 'w', default: false },
      interval: { type: 'string', default: '2s' },
      clusters: { type: 'string' },
      json: { type: 'boolean', default: false },
      reason: { type: 'string' },
      name: { type: 'string' },
    },
  });
  const hub = (values.hub ?? io.env.FLEETLET_HUB_API ?? 'http://127.0.0.1:8443').replace(/\/+$/, '');
  const token = values.token ?? io.env.FLEETLET_ADMIN_TOKEN;
  const call = async (method: string, path: string, body?: unknown): Promise<unknown> => {
    if (token === undefined) throw new RolloutCommandError('NoToken', 'give the hub admin token with --token or FLEETLET_ADMIN_TOKEN');
    let res: Response;
    try {
      res = await io.fetch(`${hub}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (err) {
      throw new RolloutCommandError('HubUnreachable', `cannot reach the hub at ${hub}: ${(err as Error).message}`);
    }
    const text = await res.text();
    const json = text ? (JSON.parse(text) as unknown) : undefined;
    if (!res.ok) {
      const e = (json as { error?: { reason?: string; message?: string; details?: unknown } } | undefined)?.error;
      const details = e?.details === undefined ? '' : `\n${JSON.stringify(e.details, null, 2)}`;
      throw new RolloutCommandError(e?.reason ?? `Http${res.status}`, `${method} ${path}: ${res.status} ${e?.reason ?? ''}: ${e?.message ?? text}${details}`);
    }
    return json;
  };
  const name = (): string => {
    const n = positionals[0];
    if (n === undefined) throw new RolloutCommandError('MissingName', `fleetlet rollout ${sub ?? ''} needs a rollout name`);
    return encodeURIComponent(n);
  };
  const file = (): unknown => (values.file === undefined ? undefined : (YAML.parse(io.readFile(values.file)) as unknown));
  const show = (v: RolloutView): number => {
    io.out(values.json ? `${JSON.stringify(v, null, 2)}\n` : renderRollout(v, io.now()));
    return v.phase === 'Paused' || v.phase === 'Completed' || v.phase === 'Cancelled' ? 1 : 0;
  };

  try {
    switch (sub) {
      case 'create': {
        const body = file();
        if (body === undefined) throw new RolloutCommandError('MissingFile', 'fleetlet rollout create needs -f <rollout.yaml|json>');
        return show((await call('POST', '/api/v1/rollouts', body)) as RolloutView);
      }
      case 'list': {
        const { rollouts } = (await call('GET', '/api/v1/rollouts')) as { rollouts: RolloutView[] };
        if (values.json) io.out(`${JSON.stringify(rollouts, null, 2)}\n`);
        else {
          io.out('NAME                            PHASE        SUCCEEDED  PROGRESSING  FAILED  TIMEDOUT  SKIPPED  TOAPPLY\n');
          for (const r of rollouts) {
            const c = r.counts;
            io.out(`${r.name.padEnd(32)}${r.phase.padEnd(13)}${`${c.Succeeded}/${c.total}`.padEnd(11)}${String(c.Progressing).padEnd(13)}${String(c.Failed).padEnd(8)}${String(c.TimedOut).padEnd(10)}${String(c.Skipped).padEnd(9)}${c.ToApply}\n`);
          }
        }
        return 0;
      }
      case 'status': {
        const query = values.clusters === 'all' ? '?clusters=all' : '';
        const path = `/api/v1/rollouts/${name()}${query}`;
        if (!values.watch) return show((await call('GET', path)) as RolloutView);
        const intervalMs = parseInterval(values.interval);
        let last = '';
        for (;;) {
          const v = (await call('GET', path)) as RolloutView;
          if (io.tty) io.out(`\x1b[H\x1b[2J${renderRollout(v, io.now())}`);
          else {
            const line = progressLine(v);
            if (line !== last) io.out(`${io.now().toISOString()} ${line}\n`);
            last = line;
          }
          if (TERMINAL.has(v.phase)) return v.phase === 'Succeeded' ? 0 : 1;
          await io.sleep(intervalMs);
        }
      }
      case 'pause':
        return show((await call('POST', `/api/v1/rollouts/${name()}/pause`, values.reason !== undefined ? { reason: values.reason } : {})) as RolloutView);
      case 'resume':
        return show((await call('POST', `/api/v1/rollouts/${name()}/resume`)) as RolloutView);
      case 'cancel':
        return show((await call('POST', `/api/v1/rollouts/${name()}/cancel`)) as RolloutView);
      case 'rollback': {
        const body = { ...((file() as Record<string, unknown> | undefined) ?? {}), ...(values.name !== undefined ? { name: values.name } : {}) };
        const res = (await call('POST', `/api/v1/rollouts/${name()}/rollback`, body)) as { rollback: RolloutView; excluded: string[] };
        if (res.excluded.length > 0) io.err(`${res.excluded.length} cluster(s) had no earlier release and are left out: ${res.excluded.slice(0, 20).join(', ')}${res.excluded.length > 20 ? ', …' : ''}\n`);
        show(res.rollback);
        return 0;
      }
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        io.out(`${rolloutUsage}\n`);
        return sub === undefined ? 2 : 0;
      default:
        io.err(`unknown rollout subcommand "${sub}"\n\n${rolloutUsage}\n`);
        return 2;
    }
  } catch (err) {
    if (err instanceof RolloutCommandError) {
      io.err(`fleetlet rollout: ${err.message}\n`);
      return err.reason === 'MissingName' || err.reason === 'MissingFile' || err.reason === 'BadInterval' ? 2 : 1;
    }
    throw err;
  }
}

function parseInterval(text: string): number {
  const m = /^(\d+)(ms|s|m)?$/.exec(text);
  if (!m) throw new RolloutCommandError('BadInterval', `--interval "${text}" is not like 500ms, 2s or 1m`);
  const n = Number(m[1]);
  return m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000;
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

/** The status as a person reads it: phase and reason, times, a bar per group, the failed clusters. */
export function renderRollout(v: RolloutView, now: Date): string {
  const lines: string[] = [];
  const t = v.target;
  const what = t.kind === 'Release' ? `release ${t.release.name} ${t.release.version}` : t.kind === 'Override' ? `override ${t.override.name} ${t.override.version}${t.override.withdrawn ? ' (withdrawal)' : ''} on ${t.override.component}` : `rollback of ${t.rollbackOf}`;
  lines.push(`Rollout:   ${v.name}  (${what})`);
  lines.push(`Phase:     ${v.phase}${v.reason ? `  ${v.reason}` : ''}${v.message ? `: ${v.message}` : ''}`);
  const s = v.strategy;
  lines.push(
    `Strategy:  ${s.type}${v.limits.maxConcurrency !== null ? `, maxConcurrency ${v.limits.maxConcurrency}` : ''}, minSuccessTime ${s.minSuccessTime}, progressDeadline ${s.progressDeadline}, failures ${v.limits.failures}/${v.limits.maxFailures} allowed${v.limits.acknowledgedFailures > 0 ? ` (+${v.limits.acknowledgedFailures} accepted)` : ''}, unknown clusters: ${v.unknownClusters}`,
  );
  if (v.window) lines.push(`Window:    ${v.window.cron} for ${v.window.duration} (${v.window.timeZone}): ${v.window.open ? 'open' : `closed, opens ${ago(v.window.nextOpeningAt, now)}`}`);
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
