// Hotfix overrides folded into a release (a fix reaches every
// affected cluster without a new release version). An override replaces
// container images in one component's workloads; the component's digest
// changes with it, so the fix goes through the same staged, health-gated,
// rolled-back-on-failure upgrade as any release.
import type { Override } from '../../protocol/override.ts';
import type { Plan } from '../../protocol/plan.ts';
import type { KubeObject, Release } from '../../protocol/release.ts';
import { compareText } from '../../lib/compare.ts';

export type AppliedOverride = NonNullable<Plan['overrides']>[number] & { images: Record<string, string> };

/** The overrides that apply to this release now: matching name and version, not withdrawn, not expired, for a component it has. */
export function applicableOverrides(release: Release, overrides: Override[], now: Date): AppliedOverride[] {
  return overrides
    .filter(
      (o) =>
        !o.withdrawn &&
        Date.parse(o.expiresAt) > now.getTime() &&
        o.appliesTo.releaseName === release.name &&
        o.appliesTo.versions.includes(release.version) &&
        release.components.some((c) => c.name === o.component),
    )
    .sort((a, b) => compareText(a.name, b.name))
    .map((o) => ({ name: o.name, version: o.version, revision: o.revision, component: o.component, images: o.images }));
}

export function overridesKey(list: { name: string; revision: number }[] | undefined): string {
  return (list ?? []).map((o) => `${o.name}@${o.revision}`).join(',');
}

const podSpecOf = (m: KubeObject): { containers?: { name: string; image?: string }[]; initContainers?: { name: string; image?: string }[] } | undefined =>
  (m as { spec?: { template?: { spec?: never } } }).spec?.template?.spec;

/** The release as the cluster should run it: the same release with the overrides' images. */
export function withOverrides(release: Release, applied: AppliedOverride[] | undefined): Release {
  if (!applied?.length) return release;
  const copy = structuredClone(release);
  for (const o of applied) {
    const component = copy.components.find((c) => c.name === o.component);
    for (const m of component?.manifests ?? []) {
      const spec = podSpecOf(m);
      for (const c of [...(spec?.containers ?? []), ...(spec?.initContainers ?? [])]) {
        const image = o.images[c.name];
        if (image) c.image = image;
      }
    }
  }
  return copy;
}
