// Where a pod gets a file or an environment variable from, read off its own
// spec: which ConfigMap or Secret backs the volume a path lies in, or the
// key an env var is taken from. Pure, so the start-up message that names a
// missing input (src/agent/process/startup-inputs.ts) says which object to
// create, and how, without this code knowing the manifests' names.
import { posix } from 'node:path';

/** The part of a Pod the lookups read (client-node's V1Pod fits). */
export interface PodSpecView {
  metadata?: { namespace?: string };
  spec?: {
    containers: { name: string; env?: { name: string; valueFrom?: { configMapKeyRef?: { name?: string; key: string }; secretKeyRef?: { name?: string; key: string } } }[]; volumeMounts?: { name: string; mountPath: string; subPath?: string }[] }[];
    volumes?: { name: string; configMap?: { name?: string; items?: { key: string; path: string }[] }; secret?: { secretName?: string; items?: { key: string; path: string }[] } }[];
  };
}

/** A ConfigMap or Secret key that supplies a file or an env var. */
export interface PodSource {
  kind: 'ConfigMap' | 'Secret';
  namespace: string;
  name: string;
  key: string;
  /** How it reaches the container: `volume <name> at <mountPath>` or `env <NAME>`. */
  via: string;
}

/** The ConfigMap or Secret key behind `path` in the pod's containers; undefined if no such volume holds it. */
export function fileSource(pod: PodSpecView, path: string): PodSource | undefined {
  const namespace = pod.metadata?.namespace ?? 'default';
  const mounts = (pod.spec?.containers ?? []).flatMap((c) => c.volumeMounts ?? []).filter((m) => !m.subPath);
  // The deepest mount that holds the path.
  const mount = mounts
    .filter((m) => path === m.mountPath || path.startsWith(m.mountPath.endsWith('/') ? m.mountPath : `${m.mountPath}/`))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  if (!mount) return undefined;
  const volume = pod.spec?.volumes?.find((v) => v.name === mount.name);
  const inVolume = posix.relative(mount.mountPath, path);
  const via = `volume ${mount.name} at ${mount.mountPath}`;
  const keyOf = (items: { key: string; path: string }[] | undefined) => items?.find((i) => posix.normalize(i.path) === inVolume)?.key ?? inVolume;
  if (volume?.configMap?.name) return { kind: 'ConfigMap', namespace, name: volume.configMap.name, key: keyOf(volume.configMap.items), via };
  if (volume?.secret?.secretName) return { kind: 'Secret', namespace, name: volume.secret.secretName, key: keyOf(volume.secret.items), via };
  return undefined;
}

/** The ConfigMap or Secret key an env var of the pod's containers comes from; undefined if it is set otherwise. */
export function envSource(pod: PodSpecView, env: string): PodSource | undefined {
  const namespace = pod.metadata?.namespace ?? 'default';
  const from = (pod.spec?.containers ?? []).flatMap((c) => c.env ?? []).find((e) => e.name === env)?.valueFrom;
  const via = `env ${env}`;
  if (from?.configMapKeyRef?.name) return { kind: 'ConfigMap', namespace, name: from.configMapKeyRef.name, key: from.configMapKeyRef.key, via };
  if (from?.secretKeyRef?.name) return { kind: 'Secret', namespace, name: from.secretKeyRef.name, key: from.secretKeyRef.key, via };
  return undefined;
}

/** The kubectl command that creates `source` with its key (a file's content or a literal value). */
export function createCommand(source: PodSource, value: 'file' | 'literal'): string {
  const what = source.kind === 'ConfigMap' ? `configmap ${source.name}` : `secret generic ${source.name}`;
  const data = value === 'file' ? `--from-file=${source.key}=<file>` : `--from-literal=${source.key}=<value>`;
  return `kubectl -n ${source.namespace} create ${what} ${data}`;
}
