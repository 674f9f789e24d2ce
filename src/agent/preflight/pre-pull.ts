// Image pre-pull: while an attempt waits for its window, a short-lived
// DaemonSet in the agent's namespace pulls the next stage's images on every
// node (one init container per image, running `true`), so the window is not
// spent downloading. It changes nothing the cluster runs; it is removed when
// the stage is allowed to start.
import { createHash } from 'node:crypto';
import type { KubeObject, WorkloadRef } from '../../protocol/release.ts';
import type { Check } from '../checks/check.ts';
import type { ClusterClient } from '../kube/cluster-client.ts';
import { MANAGED_BY_LABEL, FIELD_MANAGER } from '../kube/object-ref.ts';
import { evaluateWorkload } from '../kube/workload-health.ts';
import { stageComponents, type StageContext } from './stage-context.ts';

export const PRE_PULL_LABEL = 'fleetlet.io/pre-pull';

export interface PrePuller {
  /** Ensures the pull DaemonSet for the stage exists and reports progress; never blocks (result 'error' only when the API fails). */
  check(ctx: StageContext): Check;
  /** Removes every pre-pull DaemonSet (the stage may start, or the attempt ended). */
  cleanUp(attemptId: string): Promise<void>;
}

export interface PrePullOptions {
  cluster: ClusterClient;
  /** The agent's namespace, where the DaemonSet runs. */
  namespace: string;
  /** The container that keeps each pod alive after its init containers pulled the images. */
  pauseImage?: string;
}

type PodSpecHolder = { spec?: { template?: { spec?: { containers?: { image?: string }[]; initContainers?: { image?: string }[] } } } };

/** Container images of the stage's workloads, in a stable order. */
export function stageImages(ctx: StageContext): string[] {
  const out = new Set<string>();
  for (const c of stageComponents(ctx)) {
    for (const m of c.manifests) {
      const pod = (m as KubeObject & PodSpecHolder).spec?.template?.spec;
      for (const ct of [...(pod?.initContainers ?? []), ...(pod?.containers ?? [])]) if (ct.image) out.add(ct.image);
    }
  }
  return [...out].sort();
}

export function prePullDaemonSet(ctx: StageContext, images: string[], opts: PrePullOptions): KubeObject {
  const id = createHash('sha256').update(`${ctx.attempt.id}/${ctx.stage}`).digest('hex').slice(0, 10);
  const labels = { [PRE_PULL_LABEL]: id };
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name: `fleetlet-pre-pull-${id}`, namespace: opts.namespace, labels: { ...labels, [MANAGED_BY_LABEL]: FIELD_MANAGER }, annotations: { 'fleetlet.io/attempt': ctx.attempt.id, 'fleetlet.io/stage': String(ctx.stage) } },
    spec: {
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          // Every node a stage's pods may land on, including tainted ones.
          tolerations: [{ operator: 'Exists' }],
          terminationGracePeriodSeconds: 0,
          automountServiceAccountToken: false,
          initContainers: images.map((image, i) => ({ name: `pull-${i}`, image, command: ['true'], imagePullPolicy: 'IfNotPresent', resources: { requests: { cpu: '1m', memory: '4Mi' } } })),
          containers: [{ name: 'done', image: opts.pauseImage ?? 'registry.k8s.io/pause:3.10', resources: { requests: { cpu: '1m', memory: '4Mi' } } }],
        },
      },
    },
  };
}

export class DaemonSetPrePuller implements PrePuller {
  private readonly o: PrePullOptions;

  constructor(opts: PrePullOptions) {
    this.o = opts;
  }

  check(ctx: StageContext): Check {
    return {
      name: 'pre-pull',
      timeoutMs: 15_000,
      run: async () => {
        const images = stageImages(ctx);
        if (images.length === 0) return { result: 'pass', message: 'the stage has no container images to pull' };
        const ds = prePullDaemonSet(ctx, images, this.o);
        await this.o.cluster.apply(ds);
        const ref: WorkloadRef = { kind: 'DaemonSet', name: ds.metadata.name, namespace: this.o.namespace };
        const h = evaluateWorkload(ref, await this.o.cluster.read({ apiVersion: 'apps/v1', kind: 'DaemonSet', name: ref.name, namespace: ref.namespace }));
        const state = h.state === 'Healthy' ? 'pulled' : 'pulling';
        return { result: 'pass', message: `${images.length} image(s) ${state} on every node by ${ref.namespace}/${ref.name}: ${h.message}` };
      },
    };
  }

  async cleanUp(): Promise<void> {
    for (const ds of await this.o.cluster.list('apps/v1', 'DaemonSet', this.o.namespace, PRE_PULL_LABEL)) {
      await this.o.cluster.remove({ apiVersion: 'apps/v1', kind: 'DaemonSet', name: ds.metadata.name, namespace: this.o.namespace });
    }
  }
}
