// `fleetlet status`: the current attempt, history, refused releases and overrides, read from the journal.
import { existsSync } from 'node:fs';
import { Command, Option } from '@commander-js/extra-typings';
import type { AttemptStatus } from '../protocol/attempt.ts';
import type { Journal } from '../store/journal.ts';
import { ExitCode, wholeNumber, type CliIo, type CommandContext } from './cli-support.ts';

export function statusCommand(ctx: CommandContext) {
  return new Command('status')
    .description("print the agent's current upgrade attempt, its history, refused releases and overrides, from the journal")
    .addOption(new Option('--journal <path>', 'journal file').env('FLEETLET_JOURNAL').default('/var/lib/fleetlet/journal.db'))
    .option('--json', 'print JSON instead of text', false)
    .option('--history <n>', 'how many attempts to show', wholeNumber(1), 10)
    .addHelpText('after', '\nExits 0, or 3 when the latest attempt rolled back or failed.')
    .action(async (o) => ctx.exit(await printStatus(o, ctx.io)));
}

/** A refusal as status shows it: each (revision, reason) once, however often it was recorded. */
export interface RefusalView {
  revision: number | null;
  reason: string;
  message: string;
  firstAt: string;
  lastAt: string;
  times: number;
}

export async function printStatus(o: { journal: string; json: boolean; history: number }, io: Pick<CliIo, 'out' | 'err'>): Promise<number> {
  // Journal.open would create an empty journal at a mistyped path.
  if (!existsSync(o.journal)) {
    io.err(`fleetlet status: no journal at ${o.journal} (give --journal or FLEETLET_JOURNAL)\n`);
    return ExitCode.Failed;
  }
  const [{ Journal }, { attemptStatus }] = await Promise.all([import('../store/journal.ts'), import('../agent/upgrade/attempt-status.ts')]);
  const journal = Journal.open(o.journal);
  try {
    const statuses = journal.attempts.list(o.history).map((a) => attemptStatus(journal, a));
    const refusals = distinctRefusals(journal.releases.refusals(200));
    const overrideRefusals = journal.overrides.refusals(50);
    // The agent records its hub at start-up; an agent without one has no outbox to speak of.
    const hub = journal.recordedHub();
    const outbox = hub === undefined ? null : { hub, ...journal.outbox.stats() };
    const code = statuses[0] && (statuses[0].phase === 'RolledBack' || statuses[0].phase === 'Failed') ? ExitCode.Stopped : ExitCode.Ok;
    if (o.json) {
      io.out(`${JSON.stringify({ installed: journal.installed.all(), attempts: statuses, refusals, overrideRefusals, outbox }, null, 2)}\n`);
      return code;
    }
    const [cur, ...rest] = statuses;
    if (!cur) io.out('no upgrade attempts yet\n');
    else printAttempt(io, cur, journal);
    if (rest.length) {
      io.out('\nHISTORY\n');
      for (const s of rest) io.out(`  ${s.startedAt}  ${s.release.name} ${s.release.version} (rev ${s.release.revision})  ${s.phase}${s.reason ? ` (${s.reason})` : ''}\n`);
    }
    if (refusals.length) {
      io.out('\nREFUSED RELEASES\n');
      for (const r of refusals) io.out(`  ${r.lastAt}  ${r.revision === null ? 'rev ?' : `rev ${r.revision}`}  ${r.reason}: ${r.message}${r.times > 1 ? ` (received ${r.times} times since ${r.firstAt})` : ''}\n`);
    }
    if (overrideRefusals.length) {
      io.out('\nREFUSED OVERRIDES\n');
      for (const r of overrideRefusals) io.out(`  ${r.receivedAt}  ${r.name ?? '?'}${r.revision === null ? '' : ` rev ${r.revision}`}  ${r.reason}: ${r.message}\n`);
    }
    if (outbox) io.out(`\nOutbox: ${outbox.depth} report(s) not yet acknowledged by the hub at ${outbox.hub} (last seq ${outbox.lastSeq})\n`);
    return code;
  } finally {
    journal.close();
  }
}

function printAttempt(io: Pick<CliIo, 'out'>, cur: AttemptStatus, journal: Journal): void {
  io.out(`Release:   ${cur.release.name} ${cur.release.version} (revision ${cur.release.revision})\n`);
  io.out(`Status:    ${cur.upgradeStatus} (phase ${cur.phase}${cur.stage !== null ? `, stage ${cur.stage}` : ''})\n`);
  if (cur.reason) io.out(`Reason:    ${cur.reason}: ${cur.message ?? ''}\n`);
  io.out(`Started:   ${cur.startedAt}${cur.finishedAt ? `   Finished: ${cur.finishedAt}` : ''}\n\n`);
  io.out('COMPONENT             STAGE  CURRENT      DESIRED      LAST-KNOWN-GOOD\n');
  for (const c of cur.components) {
    io.out(`${c.name.padEnd(22)}${String(c.stage).padEnd(7)}${(c.current ?? '-').padEnd(13)}${c.desired.padEnd(13)}${c.lastKnownGood ?? '-'}\n`);
  }
  io.out('\nTRANSITIONS\n');
  for (const t of journal.attempts.transitions(cur.attemptId)) {
    io.out(`  ${t.at}  ${t.phase.padEnd(18)}${t.stage !== null ? `stage ${t.stage}  ` : ''}${t.reason ?? ''}${t.message ? `: ${t.message}` : ''}\n`);
  }
}

/** Newest first; a release the hub re-sent after every reconnect shows once, with how often it came. */
export function distinctRefusals(rows: { revision: number | null; reason: string; message: string; receivedAt: string }[]): RefusalView[] {
  const byKey = new Map<string, RefusalView>();
  for (const r of rows) {
    const key = `${r.revision ?? '?'}\u0000${r.reason}`;
    const seen = byKey.get(key);
    if (!seen) byKey.set(key, { revision: r.revision, reason: r.reason, message: r.message, firstAt: r.receivedAt, lastAt: r.receivedAt, times: 1 });
    else {
      seen.times++;
      if (r.receivedAt < seen.firstAt) seen.firstAt = r.receivedAt;
      if (r.receivedAt > seen.lastAt) seen.lastAt = r.receivedAt;
    }
  }
  return [...byKey.values()];
}
