// `fleetlet status`: the current attempt and history, read from the journal.
import { parseArgs } from 'node:util';
import { attemptStatus } from '../agent/attempt-status.ts';
import { Journal } from '../store/journal.ts';

export function statusCommand(argv: string[], out: (s: string) => void = (s) => process.stdout.write(s)): number {
  const { values } = parseArgs({
    args: argv,
    options: {
      journal: { type: 'string', default: process.env.FLEETLET_JOURNAL ?? '/var/lib/fleetlet/journal.db' },
      json: { type: 'boolean', default: false },
      history: { type: 'string', default: '10' },
    },
  });
  const journal = Journal.open(values.journal);
  try {
    const attempts = journal.attempts.list(Number(values.history));
    const statuses = attempts.map((a) => attemptStatus(journal, a));
    if (values.json) {
      out(`${JSON.stringify({ installed: journal.installed.all(), attempts: statuses, outbox: journal.outbox.stats() }, null, 2)}\n`);
      return 0;
    }
    const [cur, ...rest] = statuses;
    if (!cur) {
      out('no upgrade attempts yet\n');
      return 0;
    }
    out(`Release:   ${cur.release.name} ${cur.release.version} (revision ${cur.release.revision})\n`);
    out(`Status:    ${cur.upgradeStatus} (phase ${cur.phase}${cur.stage !== null ? `, stage ${cur.stage}` : ''})\n`);
    if (cur.reason) out(`Reason:    ${cur.reason}: ${cur.message ?? ''}\n`);
    out(`Started:   ${cur.startedAt}${cur.finishedAt ? `   Finished: ${cur.finishedAt}` : ''}\n\n`);
    out('COMPONENT             STAGE  CURRENT      DESIRED      LAST-KNOWN-GOOD\n');
    for (const c of cur.components) {
      out(`${c.name.padEnd(22)}${String(c.stage).padEnd(7)}${(c.current ?? '-').padEnd(13)}${c.desired.padEnd(13)}${c.lastKnownGood ?? '-'}\n`);
    }
    out('\nTRANSITIONS\n');
    for (const t of journal.attempts.transitions(cur.attemptId)) {
      out(`  ${t.at}  ${t.phase.padEnd(18)}${t.stage !== null ? `stage ${t.stage}  ` : ''}${t.reason ?? ''}${t.message ? `: ${t.message}` : ''}\n`);
    }
    if (rest.length) {
      out('\nHISTORY\n');
      for (const s of rest) out(`  ${s.startedAt}  ${s.release.name} ${s.release.version} (rev ${s.release.revision})  ${s.phase}${s.reason ? ` (${s.reason})` : ''}\n`);
    }
    const ob = journal.outbox.stats();
    out(`\nOutbox: ${ob.depth} report(s) not yet acknowledged by the hub (last seq ${ob.lastSeq})\n`);
    return 0;
  } finally {
    journal.close();
  }
}
