// A release may leave namespaced objects without a namespace; the agent puts
// them in its configured target namespace (like `helm install -n` or a
// kustomize namespace), so one release fits clusters that keep add-ons in
// different namespaces. Applied before admission, so the allowed-namespace
// rules see the namespaces that will really be used.
import type { Release } from '../../protocol/release.ts';

/** Kinds that have no namespace; everything else is namespaced. */
const clusterScoped = new Set([
  'Namespace',
  'ClusterRole',
  'ClusterRoleBinding',
  'CustomResourceDefinition',
  'PriorityClass',
  'StorageClass',
  'IngressClass',
  'RuntimeClass',
  'ValidatingWebhookConfiguration',
  'MutatingWebhookConfiguration',
  'APIService',
  'PersistentVolume',
]);

export function withDefaultNamespace(release: Release, namespace: string | undefined): Release {
  if (!namespace) return release;
  let changed = false;
  const components = release.components.map((c) => ({
    ...c,
    manifests: c.manifests.map((m) => {
      if (m.metadata.namespace || clusterScoped.has(m.kind)) return m;
      changed = true;
      return { ...m, metadata: { ...m.metadata, namespace } };
    }),
    health: {
      ...c.health,
      ...(c.health.workloads ? { workloads: c.health.workloads.map((w) => ({ ...w, namespace: w.namespace || namespace })) } : {}),
    },
  }));
  return changed ? { ...release, components } : release;
}
