// One attempt at a time: two attempts interleaving stages would each take the
// other's half-applied state as last known good.
import type { Journal } from '../../store/journal.ts';
import type { Check } from '../checks/check.ts';

export function singleAttemptCheck(journal: Journal, attemptId: string, timeoutMs = 5_000): Check {
  return {
    name: 'single-attempt',
    timeoutMs,
    run() {
      const others = journal.attempts.list(50).filter((a) => a.finishedAt === null && a.id !== attemptId);
      if (others.length > 0) {
        const list = others.map((a) => `${a.id} (${a.releaseName} ${a.releaseVersion}, ${a.phase})`).join(', ');
        return Promise.resolve({ result: 'fail', message: `another attempt is unfinished: ${list}` });
      }
      return Promise.resolve({ result: 'pass', message: 'no other attempt is running' });
    },
  };
}
