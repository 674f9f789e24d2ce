// An attempt as a person (and the hub) reads it: phase, upgrade status
// (InProgress, Succeeded, Failed), Kubernetes-style conditions, and
// per-component versions.
import { upgradeStatusOf, type AttemptStatus, type Condition } from '../../protocol/attempt.ts';
import type { AttemptRecord, TransitionRecord } from '../../store/attempt-repo.ts';
import type { Journal } from '../../store/journal.ts';

export function attemptStatus(journal: Journal, a: AttemptRecord): AttemptStatus {
  const transitions = journal.attempts.transitions(a.id);
  const snapshots = journal.attempts.snapshots(a.id);
  const timings = journal.attempts.stageTimings(a.id);
  const installed = new Map(journal.installed.all().map((c) => [c.component, c]));
  const components = a.plan.stages.flatMap((s) =>
    s.components.map((c) => {
      const t = timings.find((x) => x.component === c.name);
      const snap = snapshots.find((x) => x.component === c.name);
      return {
        name: c.name,
        current: installed.get(c.name)?.version ?? null,
        desired: c.version,
        lastKnownGood: snap ? snap.version : c.fromVersion,
        stage: s.index,
        startedAt: t?.startedAt ?? null,
        finishedAt: t?.finishedAt ?? null,
      };
    }),
  );
  return {
    attemptId: a.id,
    release: { name: a.releaseName, version: a.releaseVersion, revision: a.revision },
    phase: a.phase,
    upgradeStatus: upgradeStatusOf(a.phase),
    stage: a.stage,
    reason: a.reason,
    message: a.message,
    conditions: conditionsOf(a, transitions),
    components,
    startedAt: a.startedAt,
    finishedAt: a.finishedAt,
  };
}

/** Conditions keep the time their status last changed, as Kubernetes conditions do. */
export function conditionsOf(a: AttemptRecord, transitions: TransitionRecord[]): Condition[] {
  const defs: { type: string; holds: (t: TransitionRecord) => boolean }[] = [
    { type: 'Progressing', holds: (t) => !['Succeeded', 'RolledBack', 'Failed'].includes(t.phase) },
    { type: 'Succeeded', holds: (t) => t.phase === 'Succeeded' },
    { type: 'RolledBack', holds: (t) => t.phase === 'RolledBack' },
    { type: 'Failed', holds: (t) => t.phase === 'Failed' || t.phase === 'RolledBack' },
  ];
  return defs.map(({ type, holds }) => {
    let since = transitions[0]?.at ?? a.startedAt;
    let prev: boolean | undefined;
    for (const t of transitions) {
      const h = holds(t);
      if (h !== prev) since = t.at;
      prev = h;
    }
    return {
      type,
      status: prev ? 'True' : 'False',
      reason: (a.reason ?? a.phase).replace(/[^A-Za-z0-9]/g, '') || a.phase,
      message: a.message ?? '',
      lastTransitionTime: since,
    } satisfies Condition;
  });
}
