// Identity of Kubernetes objects, and the labels that mark what fleetlet owns.
import { createHash } from 'node:crypto';
import type { KubeObject } from '../../protocol/release.ts';
import type { ObjectRef } from '../../store/attempt-repo.ts';

export const FIELD_MANAGER = 'fleetlet';
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const COMPONENT_LABEL = 'fleetlet.io/component';
export const VERSION_ANNOTATION = 'fleetlet.io/component-version';

export function refOf(obj: KubeObject): ObjectRef {
  return { apiVersion: obj.apiVersion, kind: obj.kind, name: obj.metadata.name, namespace: obj.metadata.namespace };
}

export function refKey(r: ObjectRef): string {
  return `${r.apiVersion}/${r.kind}/${r.namespace ?? ''}/${r.name}`;
}

export function describeRef(r: ObjectRef): string {
  return `${r.kind} ${r.namespace ? `${r.namespace}/` : ''}${r.name}`;
}

/** Stamps ownership on an object fleetlet applies, so pruning can tell ours from everybody else's. */
export function stampOwnership(obj: KubeObject, component: string, version: string): KubeObject {
  return {
    ...obj,
    metadata: {
      ...obj.metadata,
      labels: { ...obj.metadata.labels, [MANAGED_BY_LABEL]: FIELD_MANAGER, [COMPONENT_LABEL]: component },
      annotations: { ...obj.metadata.annotations, [VERSION_ANNOTATION]: version },
    },
  };
}

export function isOwnedBy(obj: KubeObject, component: string): boolean {
  const labels = obj.metadata.labels ?? {};
  return labels[MANAGED_BY_LABEL] === FIELD_MANAGER && labels[COMPONENT_LABEL] === component;
}

/**
 * What of a live object to keep as last known good: its desired state only.
 * Server-populated fields would make a later apply fail (resourceVersion) or
 * steal fields from the controllers that own them (status, revision annotations).
 */
export function toRestorable(live: KubeObject): KubeObject {
  const { uid: _u, resourceVersion: _r, generation: _g, creationTimestamp: _c, managedFields: _m, selfLink: _s, ...metadata } = live.metadata as Record<string, unknown>;
  const annotations = { ...((metadata.annotations as Record<string, string> | undefined) ?? {}) };
  delete annotations['deployment.kubernetes.io/revision'];
  delete annotations['kubectl.kubernetes.io/last-applied-configuration'];
  const { status: _st, ...rest } = live as Record<string, unknown>;
  return { ...rest, metadata: { ...metadata, annotations } } as KubeObject;
}

/** Stable digest of manifests: key order does not matter, any value change does. */
export function digestOf(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex').slice(0, 32);
}

function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v as object)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}
