// The agent's only door to the Kubernetes API. Injected everywhere, so a
// test can hand the agent a client with exactly the credentials it wants
// (e.g. the ServiceAccount's own token) against the real control plane.
import * as k8s from '@kubernetes/client-node';
import type { KubeObject } from '../../protocol/release.ts';
import type { ObjectRef } from '../../store/attempt-repo.ts';
import { FIELD_MANAGER, describeRef } from './object-ref.ts';

export class KubeApiError extends Error {
  readonly reason: string;
  readonly status: number;
  constructor(status: number, reason: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'KubeApiError';
    this.status = status;
    this.reason = reason;
  }
}

export interface ApplyOptions {
  dryRun?: boolean;
  /** Server-side apply owns fields per manager: a second manager keeps its own fields in the same object (default fleetlet). */
  fieldManager?: string;
}

export interface NodeSummary {
  name: string;
  ready: boolean;
  labels: Record<string, string>;
  providerID?: string | undefined;
}

export interface EventInput {
  namespace: string;
  involvedObject: { apiVersion: string; kind: string; name: string; namespace: string; uid?: string | undefined };
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
  at: Date;
}

export interface ClusterClient {
  apply(obj: KubeObject, opts?: ApplyOptions): Promise<KubeObject>;
  /** Create; fails with status 409 (AlreadyExists) when it exists. */
  create(obj: KubeObject): Promise<KubeObject>;
  /** Replace guarded by metadata.resourceVersion; fails with status 409 (Conflict) when someone wrote first. */
  replace(obj: KubeObject): Promise<KubeObject>;
  read(ref: ObjectRef): Promise<KubeObject | undefined>;
  /** Deletes in the background (children follow); absent is not an error. */
  remove(ref: ObjectRef): Promise<void>;
  list(apiVersion: string, kind: string, namespace?: string, labelSelector?: string): Promise<KubeObject[]>;
  serverVersion(): Promise<string>;
  nodes(): Promise<NodeSummary[]>;
  createEvent(e: EventInput): Promise<void>;
}

function wrap(what: string, err: unknown): KubeApiError {
  if (err instanceof k8s.ApiException) {
    let reason = 'ApiError';
    let message = String(err.message);
    try {
      const body = (typeof err.body === 'string' ? JSON.parse(err.body) : err.body) as { reason?: string; message?: string };
      reason = body.reason ?? reason;
      message = body.message ?? message;
    } catch {
      // keep the generic message
    }
    return new KubeApiError(err.code, reason, `${what}: ${message}`, { cause: err });
  }
  const e = err as Error;
  return new KubeApiError(0, 'Unreachable', `${what}: ${e.message}`, { cause: err });
}

// Nodes and Events go through the generic object API too: the typed
// CoreV1Api client (every core/v1 operation, ~0.6 MB of code) would be in the
// agent's bundle for two calls (docs/footprint.md).
export class KubeClusterClient implements ClusterClient {
  private readonly objects: k8s.KubernetesObjectApi;
  private readonly version: k8s.VersionApi;

  constructor(kc: k8s.KubeConfig) {
    this.objects = k8s.KubernetesObjectApi.makeApiClient(kc);
    this.version = kc.makeApiClient(k8s.VersionApi);
  }

  async apply(obj: KubeObject, opts: ApplyOptions = {}): Promise<KubeObject> {
    try {
      return (await this.objects.patch(obj as k8s.KubernetesObject, undefined, opts.dryRun ? 'All' : undefined, opts.fieldManager ?? FIELD_MANAGER, true, k8s.PatchStrategy.ServerSideApply)) as KubeObject;
    } catch (err) {
      throw wrap(`${opts.dryRun ? 'dry-run apply' : 'apply'} ${describeRef({ apiVersion: obj.apiVersion, kind: obj.kind, name: obj.metadata.name, namespace: obj.metadata.namespace })}`, err);
    }
  }

  async create(obj: KubeObject): Promise<KubeObject> {
    try {
      return (await this.objects.create(obj as k8s.KubernetesObject, undefined, undefined, FIELD_MANAGER)) as KubeObject;
    } catch (err) {
      throw wrap(`create ${describeRef({ apiVersion: obj.apiVersion, kind: obj.kind, name: obj.metadata.name, namespace: obj.metadata.namespace })}`, err);
    }
  }

  async replace(obj: KubeObject): Promise<KubeObject> {
    try {
      return (await this.objects.replace(obj as k8s.KubernetesObject, undefined, undefined, FIELD_MANAGER)) as KubeObject;
    } catch (err) {
      throw wrap(`replace ${describeRef({ apiVersion: obj.apiVersion, kind: obj.kind, name: obj.metadata.name, namespace: obj.metadata.namespace })}`, err);
    }
  }

  async read(ref: ObjectRef): Promise<KubeObject | undefined> {
    try {
      return (await this.objects.read({ apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.name, namespace: ref.namespace } })) as KubeObject;
    } catch (err) {
      if (err instanceof k8s.ApiException && err.code === 404) return undefined;
      throw wrap(`read ${describeRef(ref)}`, err);
    }
  }

  async remove(ref: ObjectRef): Promise<void> {
    try {
      await this.objects.delete({ apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.name, namespace: ref.namespace } }, undefined, undefined, undefined, undefined, 'Background');
    } catch (err) {
      if (err instanceof k8s.ApiException && err.code === 404) return;
      throw wrap(`delete ${describeRef(ref)}`, err);
    }
  }

  async list(apiVersion: string, kind: string, namespace?: string, labelSelector?: string): Promise<KubeObject[]> {
    try {
      const res = await this.objects.list(apiVersion, kind, namespace, undefined, undefined, undefined, undefined, labelSelector);
      return res.items as KubeObject[];
    } catch (err) {
      throw wrap(`list ${kind}${namespace ? ` in ${namespace}` : ''}`, err);
    }
  }

  async serverVersion(): Promise<string> {
    try {
      return (await this.version.getCode()).gitVersion;
    } catch (err) {
      throw wrap('read /version', err);
    }
  }

  async nodes(): Promise<NodeSummary[]> {
    try {
      const res = await this.objects.list<k8s.V1Node>('v1', 'Node');
      return res.items.map((n) => ({
        name: n.metadata?.name ?? '',
        ready: n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
        labels: n.metadata?.labels ?? {},
        providerID: n.spec?.providerID,
      }));
    } catch (err) {
      throw wrap('list nodes', err);
    }
  }

  async createEvent(e: EventInput): Promise<void> {
    try {
      const event: k8s.CoreV1Event & k8s.KubernetesObject = {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { namespace: e.namespace, generateName: `${e.involvedObject.name}.` },
        involvedObject: e.involvedObject,
        type: e.type,
        reason: e.reason,
        message: e.message.slice(0, 1024),
        source: { component: FIELD_MANAGER },
        reportingComponent: FIELD_MANAGER,
        reportingInstance: FIELD_MANAGER,
        firstTimestamp: e.at,
        lastTimestamp: e.at,
        count: 1,
      };
      await this.objects.create(event, undefined, undefined, FIELD_MANAGER);
    } catch (err) {
      throw wrap(`create event ${e.reason}`, err);
    }
  }
}
