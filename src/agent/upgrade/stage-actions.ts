// The cluster-changing actions of a stage, each idempotent: re-running one
// after a crash converges to the same cluster state (docs/architecture.md, invariant 2).
import type { Component, KubeObject } from '../../protocol/release.ts';
import type { ObjectRef, Snapshot } from '../../store/attempt-repo.ts';
import type { InstalledComponent } from '../../store/installed-repo.ts';
import type { ClusterClient } from '../kube/cluster-client.ts';
import { isOwnedBy, refKey, refOf, stampOwnership, toRestorable } from '../kube/object-ref.ts';

/** Namespaces first, then what pods consume, workloads last: apply order that never references a missing object. */
const kindOrder = ['Namespace', 'ServiceAccount', 'Role', 'ClusterRole', 'RoleBinding', 'ClusterRoleBinding', 'ConfigMap', 'Secret', 'Service'];
const rank = (kind: string) => {
  const i = kindOrder.indexOf(kind);
  return i === -1 ? kindOrder.length : i;
};

export function renderManifests(c: Component): KubeObject[] {
  return c.manifests.map((m) => stampOwnership(m, c.name, c.version)).sort((a, b) => rank(a.kind) - rank(b.kind));
}

/** Reads what the component's new version will replace, before anything changes. */
export async function takeSnapshot(
  cluster: ClusterClient,
  c: Component,
  installed: InstalledComponent | undefined,
): Promise<Pick<Snapshot, 'objects' | 'created' | 'owned' | 'version' | 'digest'>> {
  const newRefs = c.manifests.map(refOf);
  const owned = installed?.objects ?? [];
  const seen = new Set<string>();
  const objects: KubeObject[] = [];
  const created: ObjectRef[] = [];
  for (const ref of [...newRefs, ...owned]) {
    const key = refKey(ref);
    if (seen.has(key)) continue;
    seen.add(key);
    const live = await cluster.read(ref);
    if (live) objects.push(toRestorable(live));
    else if (newRefs.some((r) => refKey(r) === key)) created.push(ref);
  }
  return { objects, created, owned, version: installed?.version ?? null, digest: installed?.digest ?? null };
}

export async function applyComponent(cluster: ClusterClient, c: Component, signal: AbortSignal): Promise<void> {
  for (const obj of renderManifests(c)) {
    signal.throwIfAborted();
    await cluster.apply(obj);
  }
}

/** Deletes objects the previous version had and the new one does not, but only those still labelled as this component's. */
export async function pruneComponent(cluster: ClusterClient, c: { name: string; manifests: KubeObject[] }, previouslyOwned: ObjectRef[]): Promise<ObjectRef[]> {
  const keep = new Set(c.manifests.map((m) => refKey(refOf(m))));
  const pruned: ObjectRef[] = [];
  for (const ref of previouslyOwned) {
    if (keep.has(refKey(ref))) continue;
    const live = await cluster.read(ref);
    if (live && isOwnedBy(live, c.name)) {
      await cluster.remove(ref);
      pruned.push(ref);
    }
  }
  return pruned;
}

/** Puts a component back to its last known good: re-apply what was live, delete what the attempt created. */
export async function restoreSnapshot(cluster: ClusterClient, s: Snapshot): Promise<void> {
  for (const obj of [...s.objects].sort((a, b) => rank(a.kind) - rank(b.kind))) {
    await cluster.apply(obj);
  }
  for (const ref of s.created) {
    const live = await cluster.read(ref);
    if (live && isOwnedBy(live, s.component)) await cluster.remove(ref);
  }
}

/** Removes everything fleetlet installed (deregistration with uninstall configured). */
export async function uninstallAll(cluster: ClusterClient, journal: { installed: { all(): InstalledComponent[]; remove(c: string): void } }): Promise<void> {
  for (const c of journal.installed.all().reverse()) {
    await pruneComponent(cluster, { name: c.component, manifests: [] }, c.objects);
    journal.installed.remove(c.component);
  }
}
