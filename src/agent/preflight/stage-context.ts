// What a built-in check needs to know about the stage it guards. Checks are
// built per evaluation because the answer depends on the stage (which
// namespaces it disrupts) and on the policy in force at that moment.
import type { Component, Release } from '../../protocol/release.ts';
import type { AttemptRecord } from '../../store/attempt-repo.ts';

export interface StageContext {
  attempt: AttemptRecord;
  release: Release;
  stage: number;
  now: Date;
}

/** Components of the release the stage changes (none for the removal stage). */
export function stageComponents(ctx: Pick<StageContext, 'attempt' | 'release' | 'stage'>): Component[] {
  const planned = ctx.attempt.plan.stages[ctx.stage]?.components ?? [];
  return planned.flatMap((p) => ctx.release.components.filter((c) => c.name === p.name));
}

/** Every component the attempt changes or removes, in any stage. */
export function touchedComponentNames(ctx: Pick<StageContext, 'attempt'>): string[] {
  return [...ctx.attempt.plan.stages.flatMap((s) => s.components.map((c) => c.name)), ...ctx.attempt.plan.removed.map((r) => r.name)];
}

/** Namespaces the stage's objects live in: where its rollout disrupts pods. */
export function stageNamespaces(ctx: Pick<StageContext, 'attempt' | 'release' | 'stage'>): string[] {
  const out = new Set<string>();
  for (const c of stageComponents(ctx)) {
    for (const m of c.manifests) {
      if (m.kind === 'Namespace') continue;
      out.add(m.metadata.namespace ?? 'default');
    }
  }
  return [...out].sort();
}
