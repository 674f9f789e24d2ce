// Whether a workload has rolled out, read from the status its controller
// wrote: the same rules `kubectl rollout status` uses, plus the failure
// conditions Kubernetes reports, so a failure names the workload and why.
import { workloadKind, type KubeObject, type WorkloadRef } from '../../protocol/release.ts';
import { refOf } from './object-ref.ts';

export type HealthState = 'Healthy' | 'Progressing' | 'Failed';

export interface WorkloadHealth {
  ref: WorkloadRef;
  state: HealthState;
  /** CamelCase, e.g. ProgressDeadlineExceeded, NotFound, Rolling. */
  reason: string;
  message: string;
}

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

type Obj = KubeObject & {
  metadata: KubeObject['metadata'] & { generation?: number };
  spec?: { replicas?: number; updateStrategy?: { type?: string; rollingUpdate?: { partition?: number } } };
  status?: Record<string, unknown> & { conditions?: Condition[]; observedGeneration?: number };
};

const n = (v: unknown): number => (typeof v === 'number' ? v : 0);
const name = (ref: WorkloadRef) => `${ref.kind} ${ref.namespace}/${ref.name}`;

export function evaluateWorkload(ref: WorkloadRef, live: KubeObject | undefined): WorkloadHealth {
  const h = (state: HealthState, reason: string, message: string): WorkloadHealth => ({ ref, state, reason, message: `${name(ref)}: ${message}` });
  if (!live) return h('Progressing', 'NotFound', 'does not exist yet');
  const obj = live as Obj;
  const status = obj.status ?? {};
  const generation = obj.metadata.generation ?? 0;
  if (n(status.observedGeneration) < generation) return h('Progressing', 'GenerationNotObserved', `controller has not observed generation ${generation} yet`);

  switch (ref.kind) {
    case 'Deployment': {
      const progressing = status.conditions?.find((c) => c.type === 'Progressing');
      if (progressing?.reason === 'ProgressDeadlineExceeded') {
        return h('Failed', 'ProgressDeadlineExceeded', `Progressing=${progressing.status} ProgressDeadlineExceeded: ${progressing.message ?? ''}`.trim());
      }
      const desired = obj.spec?.replicas ?? 1;
      const updated = n(status.updatedReplicas);
      const total = n(status.replicas);
      const available = n(status.availableReplicas);
      if (updated < desired) return h('Progressing', 'Rolling', `${updated} of ${desired} replicas updated`);
      if (total > updated) return h('Progressing', 'Rolling', `${total - updated} old replicas pending termination`);
      if (available < updated) return h('Progressing', 'Rolling', `${available} of ${updated} updated replicas available`);
      return h('Healthy', 'RolledOut', `${available}/${desired} replicas updated and available`);
    }
    case 'DaemonSet': {
      const desired = n(status.desiredNumberScheduled);
      const updated = n(status.updatedNumberScheduled);
      const available = n(status.numberAvailable);
      if (updated < desired) return h('Progressing', 'Rolling', `${updated} of ${desired} scheduled pods updated`);
      if (available < desired) return h('Progressing', 'Rolling', `${available} of ${desired} pods available`);
      return h('Healthy', 'RolledOut', `${available}/${desired} pods updated and available`);
    }
    case 'StatefulSet': {
      const desired = obj.spec?.replicas ?? 1;
      const ready = n(status.readyReplicas);
      const partition = obj.spec?.updateStrategy?.rollingUpdate?.partition ?? 0;
      if (obj.spec?.updateStrategy?.type !== 'OnDelete') {
        const updated = n(status.updatedReplicas);
        if (updated < desired - partition) return h('Progressing', 'Rolling', `${updated} of ${desired - partition} replicas updated`);
        if (partition === 0 && status.updateRevision !== status.currentRevision) return h('Progressing', 'Rolling', `revision ${String(status.updateRevision)} not reached by all replicas`);
      }
      if (ready < desired) return h('Progressing', 'Rolling', `${ready} of ${desired} replicas ready`);
      return h('Healthy', 'RolledOut', `${ready}/${desired} replicas on revision ${String(status.updateRevision)}`);
    }
  }
}

/** The workload an object is, when its kind is one whose rollout can be watched (the one place that knows those kinds). */
export function asWorkload(o: { kind: string; name: string; namespace?: string | undefined }): WorkloadRef | undefined {
  const kind = workloadKind.safeParse(o.kind);
  return kind.success ? { kind: kind.data, name: o.name, namespace: o.namespace ?? 'default' } : undefined;
}

/** Workloads whose health a component's stage depends on: declared, or every workload in its manifests. */
export function workloadsOf(manifests: KubeObject[], declared: WorkloadRef[] | undefined): WorkloadRef[] {
  if (declared && declared.length > 0) return declared;
  return manifests.flatMap((m) => asWorkload(refOf(m)) ?? []);
}

/** A short reason for why pods are not ready, to make a failure message actionable. */
export function podProblems(pods: KubeObject[]): string[] {
  const out = new Set<string>();
  for (const p of pods as (KubeObject & { status?: { containerStatuses?: { name: string; state?: { waiting?: { reason?: string } }; ready?: boolean }[] } })[]) {
    for (const cs of p.status?.containerStatuses ?? []) {
      if (cs.state?.waiting?.reason) out.add(`container ${cs.name} ${cs.state.waiting.reason}`);
      else if (cs.ready === false) out.add(`container ${cs.name} not ready`);
    }
  }
  return [...out];
}

/**
 * What the kubelet says of one container of a workload's pod that is not
 * running: the facts the early failure rule (src/agent/upgrade/decide.ts,
 * `containerFailure`) reads. A running container is not a fact here.
 */
export interface ContainerFact {
  /** namespace/name of the pod. */
  pod: string;
  container: string;
  init: boolean;
  restartCount: number;
  /** Why it waits, e.g. CrashLoopBackOff, ImagePullBackOff, CreateContainerConfigError. */
  waiting?: { reason: string; message?: string };
  /** Its last exit: the current terminated state, else the previous one. */
  exit?: { code: number; reason?: string };
}

type Meta = { uid?: string; ownerReferences?: { uid?: string }[]; labels?: Record<string, string>; annotations?: Record<string, string> };
const metaOf = (o: KubeObject) => o.metadata as KubeObject['metadata'] & Meta;
const ownedBy = (o: KubeObject, owner: KubeObject) => {
  const uid = metaOf(owner).uid;
  return uid !== undefined && (metaOf(o).ownerReferences ?? []).some((r) => r.uid === uid);
};
const DEPLOYMENT_REVISION = 'deployment.kubernetes.io/revision';
const REVISION_HASH = 'controller-revision-hash';

/**
 * The kind of object that tells a workload's current revision apart from
 * its old one: a Deployment's ReplicaSets, a DaemonSet's ControllerRevisions;
 * a StatefulSet names its revision in its status.
 */
export function revisionKind(kind: WorkloadRef['kind']): 'ReplicaSet' | 'ControllerRevision' | undefined {
  return kind === 'Deployment' ? 'ReplicaSet' : kind === 'DaemonSet' ? 'ControllerRevision' : undefined;
}

/**
 * The pods of the workload's current revision (its template as last applied),
 * never those of the revision being replaced: an old pod that crash-loops is
 * often the reason for the upgrade, and must not fail it. Empty while the
 * controller has not caught up with the workload's generation (until then it
 * has not made the new revision, and the newest one it knows is the old).
 */
export function currentRevisionPods(workload: KubeObject, revisions: KubeObject[], pods: KubeObject[]): KubeObject[] {
  const w = workload as Obj;
  if (n(w.status?.observedGeneration) < (w.metadata.generation ?? 0)) return [];
  const mine = pods.filter((p) => ownedBy(p, workload));
  switch (workload.kind) {
    case 'Deployment': {
      const revision = metaOf(workload).annotations?.[DEPLOYMENT_REVISION];
      const rs = revisions.find((r) => ownedBy(r, workload) && revision !== undefined && metaOf(r).annotations?.[DEPLOYMENT_REVISION] === revision);
      return rs ? pods.filter((p) => ownedBy(p, rs)) : [];
    }
    case 'StatefulSet': {
      const hash = w.status?.updateRevision;
      return typeof hash === 'string' ? mine.filter((p) => metaOf(p).labels?.[REVISION_HASH] === hash) : [];
    }
    case 'DaemonSet': {
      const newest = revisions
        .filter((r) => ownedBy(r, workload))
        .sort((x, y) => n((y as { revision?: unknown }).revision) - n((x as { revision?: unknown }).revision))[0];
      const hash = newest && metaOf(newest).labels?.[REVISION_HASH];
      return hash ? mine.filter((p) => metaOf(p).labels?.[REVISION_HASH] === hash) : [];
    }
    default:
      return [];
  }
}

interface ContainerStatus {
  name: string;
  restartCount?: number;
  state?: { waiting?: { reason?: string; message?: string }; running?: unknown; terminated?: { exitCode?: number; reason?: string } };
  lastState?: { terminated?: { exitCode?: number; reason?: string } };
}

/** The containers of these pods that are not running, with what the kubelet says of them. */
export function containerFacts(pods: KubeObject[]): ContainerFact[] {
  const out: ContainerFact[] = [];
  for (const p of pods as (KubeObject & { status?: { initContainerStatuses?: ContainerStatus[]; containerStatuses?: ContainerStatus[] } })[]) {
    const pod = `${p.metadata.namespace ?? 'default'}/${p.metadata.name}`;
    const statuses = [...(p.status?.initContainerStatuses ?? []).map((cs) => ({ cs, init: true })), ...(p.status?.containerStatuses ?? []).map((cs) => ({ cs, init: false }))];
    for (const { cs, init } of statuses) {
      if (cs.state?.running) continue;
      const terminated = cs.state?.terminated ?? cs.lastState?.terminated;
      // A finished init container is done, not down.
      if (init && cs.state?.terminated?.exitCode === 0) continue;
      const waitingReason = cs.state?.waiting?.reason;
      out.push({
        pod,
        container: cs.name,
        init,
        restartCount: cs.restartCount ?? 0,
        ...(waitingReason ? { waiting: { reason: waitingReason, ...(cs.state?.waiting?.message ? { message: cs.state.waiting.message } : {}) } } : {}),
        ...(terminated && typeof terminated.exitCode === 'number' ? { exit: { code: terminated.exitCode, ...(terminated.reason ? { reason: terminated.reason } : {}) } } : {}),
      });
    }
  }
  return out;
}
