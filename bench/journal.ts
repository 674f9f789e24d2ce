// Journal throughput: transitions per second as the engine writes them (the
// transition and its outbox report in one transaction), with durability
// full (fsync per commit, the default) and normal.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { planRelease } from '../src/agent/upgrade/planner.ts';
import { release as releaseSchema } from '../src/protocol/release.ts';
import { generateReleaseKey, signRelease } from '../src/protocol/signing.ts';
import { Journal, type Durability } from '../src/store/journal.ts';
import { addonsRelease } from '../src/testbed/sample-releases.ts';
import { heading, line, ms, summarize } from './stats.ts';

export interface JournalBenchOptions {
  /** How long each durability level runs. */
  durationMs: number;
}

export async function journalBench(o: JournalBenchOptions): Promise<void> {
  heading('journal: transitions per second (transition + outbox report, one transaction each)');
  for (const durability of ['full', 'normal'] as Durability[]) {
    const dir = mkdtempSync(join(tmpdir(), 'fleetlet-bench-journal-'));
    try {
      const journal = Journal.open(join(dir, 'journal.db'), { durability });
      const input = addonsRelease('bench', 1, { dns: '1.0.0', proxy: '1.0.0', metrics: '1.0.0' });
      const release = releaseSchema.parse(input);
      const stored = journal.releases.accept(release, signRelease(input, generateReleaseKey().privateKey));
      let attempt = journal.attempts.create({ id: 'a-0', releaseId: stored.id, revision: 1, releaseName: release.name, releaseVersion: release.version, plan: planRelease(release, []) });
      const latencies: number[] = [];
      const start = performance.now();
      let n = 0;
      while (performance.now() - start < o.durationMs) {
        // A fresh attempt now and then, so the transitions table grows as in life.
        if (n % 1000 === 999) attempt = journal.attempts.create({ id: `a-${n}`, releaseId: stored.id, revision: 1, releaseName: release.name, releaseVersion: release.version, plan: attempt.plan });
        const t0 = performance.now();
        journal.transaction(() => {
          const tr = journal.attempts.transition(attempt.id, { phase: 'Upgrading', stage: 0, message: `step ${n}` });
          journal.outbox.enqueue('attempt-transition', { attemptId: attempt.id, release: { name: release.name, version: release.version, revision: 1 }, phase: tr.phase, stage: tr.stage, reason: null, message: tr.message, at: tr.at });
        });
        latencies.push(performance.now() - t0);
        n++;
        // Let the event loop breathe between commits, as the engine does between steps.
        if (n % 200 === 0) await new Promise((r) => setImmediate(r));
      }
      const elapsed = performance.now() - start;
      const s = summarize(latencies);
      line(`durability ${durability}`, `${(n / (elapsed / 1000)).toFixed(0)} transitions/s (${n} in ${ms(elapsed)}); commit p50 ${ms(s.p50)}, p99 ${ms(s.p99)}`);
      journal.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}
