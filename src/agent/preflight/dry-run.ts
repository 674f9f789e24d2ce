// The stage's manifests still pass a server-side dry-run. Admission ran it
// once; this repeats it for the stage about to start, because a CRD, webhook
// or quota may have changed since. It changes nothing, so it also runs while
// the attempt waits for its window: a problem shows before the window opens.
import type { Check } from '../checks/check.ts';
import { KubeApiError, type ClusterClient } from '../kube/cluster-client.ts';
import { describeRef, refOf } from '../kube/object-ref.ts';
import { stageComponents, type StageContext } from './stage-context.ts';

export function dryRunCheck(cluster: ClusterClient, ctx: StageContext, timeoutMs = 30_000): Check {
  return {
    name: 'dry-run',
    timeoutMs,
    async run(signal) {
      const components = stageComponents(ctx);
      // Objects in a namespace the release creates cannot be dry-run before it exists.
      const created = new Set(ctx.release.components.flatMap((c) => c.manifests.filter((m) => m.kind === 'Namespace').map((m) => m.metadata.name)));
      let count = 0;
      for (const c of components) {
        for (const m of c.manifests) {
          signal.throwIfAborted();
          if (m.metadata.namespace && created.has(m.metadata.namespace) && !(await cluster.read({ apiVersion: 'v1', kind: 'Namespace', name: m.metadata.namespace }))) continue;
          try {
            await cluster.apply(m, { dryRun: true });
            count++;
          } catch (err) {
            const rejected = err instanceof KubeApiError && err.status >= 400 && err.status < 500 && err.status !== 429;
            return { result: rejected ? 'fail' : 'error', message: `component ${c.name}: ${describeRef(refOf(m))}: ${(err as Error).message}` };
          }
        }
      }
      return { result: 'pass', message: components.length ? `server-side dry-run accepted ${count} object(s) of ${components.map((c) => c.name).join(', ')}` : 'the stage applies nothing' };
    },
  };
}
