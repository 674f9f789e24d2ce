// Every component the attempt touches is healthy before a stage starts, read
// from the objects installed now: upgrading on top of a broken component
// hides the cause of whatever fails next, and its rollback target is already
// bad. A component not installed yet has nothing to be unhealthy.
import type { Journal } from '../../store/journal.ts';
import type { Check } from '../checks/check.ts';
import type { ClusterClient } from '../kube/cluster-client.ts';
import { asWorkload, evaluateWorkload } from '../kube/workload-health.ts';
import { touchedComponentNames, type StageContext } from './stage-context.ts';

export function componentsHealthyCheck(cluster: ClusterClient, journal: Journal, ctx: StageContext, timeoutMs = 15_000): Check {
  return {
    name: 'components-healthy',
    timeoutMs,
    async run(signal) {
      const problems: string[] = [];
      let workloads = 0;
      const names = touchedComponentNames(ctx);
      for (const name of names) {
        signal.throwIfAborted();
        const installed = journal.installed.get(name);
        if (!installed) continue;
        for (const o of installed.objects) {
          const ref = asWorkload(o);
          if (!ref) continue;
          const h = evaluateWorkload(ref, await cluster.read(o));
          workloads++;
          if (h.state !== 'Healthy') problems.push(`component ${name} ${installed.version}: ${h.message} (${h.reason})`);
        }
      }
      if (problems.length > 0) return { result: 'fail', message: problems.join('; ') };
      return { result: 'pass', message: `${workloads} installed workload(s) of ${names.length} touched component(s) healthy` };
    },
  };
}
