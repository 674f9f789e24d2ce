// (what is installed, the desired release) → the ordered stages of a plan.
// Pure: the same inputs always give the same plan, so a resumed attempt and
// a fresh one agree on what to do.
import type { Plan, PlanStage, PlannedComponent } from '../../protocol/plan.ts';
import type { Component, Release } from '../../protocol/release.ts';
import type { InstalledComponent } from '../../store/installed-repo.ts';
import { digestOf } from '../kube/object-ref.ts';
import type { AppliedOverride } from '../intake/overrides.ts';
import { compareText } from '../../lib/compare.ts';

/** The digest covers version, manifests and health policy: a config-only change is an upgrade like any other. */
export function componentDigest(c: Component): string {
  return digestOf({ version: c.version, manifests: c.manifests, health: c.health });
}

/** `release` is the effective one (overrides folded in, see overrides.ts); `overrides` records which. */
export function planRelease(release: Release, installed: InstalledComponent[], overrides: AppliedOverride[] = []): Plan {
  const current = new Map(installed.map((i) => [i.component, i]));
  const changed: { c: Component; p: PlannedComponent }[] = [];
  const unchanged: Plan['unchanged'] = [];
  for (const c of release.components) {
    const digest = componentDigest(c);
    const now = current.get(c.name);
    if (now && now.version === c.version && now.digest === digest) {
      unchanged.push({ name: c.name, version: c.version });
      continue;
    }
    changed.push({ c, p: { name: c.name, version: c.version, fromVersion: now?.version ?? null, self: c.self, digest } });
  }

  const byStage = new Map<number, PlannedComponent[]>();
  for (const { c, p } of changed.filter((x) => !x.c.self)) {
    byStage.set(c.stage, [...(byStage.get(c.stage) ?? []), p]);
  }
  const stages: PlanStage[] = [...byStage.entries()]
    .sort(([a], [b]) => a - b)
    .map(([, components], index) => ({ index, components: components.sort((a, b) => compareText(a.name, b.name)) }));
  // The agent itself goes last, alone: if it fails, every add-on is already proven.
  const self = changed.find((x) => x.c.self);
  if (self) stages.push({ index: stages.length, components: [self.p] });

  const wanted = new Set(release.components.map((c) => c.name));
  const removed = installed.filter((i) => !wanted.has(i.component)).map((i) => ({ name: i.component, version: i.version }));
  return { revision: release.revision, stages, unchanged, removed, ...(overrides.length ? { overrides } : {}) };
}
