// An in-memory ClusterClient for unit tests of checks and the gate: objects
// keyed by apiVersion/kind/namespace/name, a settable server version and
// nodes. Behaviour that needs a real API server is tested in test/integration.
import type { ClusterClient, NodeSummary } from '../../src/agent/kube/cluster-client.ts';
import { KubeApiError } from '../../src/agent/kube/cluster-client.ts';
import type { KubeObject } from '../../src/protocol/release.ts';
import type { ObjectRef } from '../../src/store/attempt-repo.ts';

const keyOf = (r: { apiVersion: string; kind: string; name: string; namespace?: string | undefined }) => `${r.apiVersion}/${r.kind}/${r.namespace ?? ''}/${r.name}`;

export class FakeCluster implements ClusterClient {
  readonly objects = new Map<string, KubeObject>();
  version = 'v1.35.0';
  nodeList: NodeSummary[] = [
    { name: 'n0', ready: true, labels: {} },
    { name: 'n1', ready: true, labels: {} },
  ];
  /** When set, every call fails as if the API server were away. */
  down = false;
  /** Server-side dry-run rejections by object name. */
  rejectDryRun = new Map<string, string>();
  readonly applied: { obj: KubeObject; dryRun: boolean }[] = [];

  put(obj: KubeObject): void {
    this.objects.set(keyOf({ ...obj.metadata, apiVersion: obj.apiVersion, kind: obj.kind }), obj);
  }

  private guard(what: string): void {
    if (this.down) throw new KubeApiError(0, 'Unreachable', `${what}: connect ECONNREFUSED`);
  }

  async apply(obj: KubeObject, opts: { dryRun?: boolean } = {}): Promise<KubeObject> {
    this.guard('apply');
    const rejected = opts.dryRun ? this.rejectDryRun.get(obj.metadata.name) : undefined;
    if (rejected) throw new KubeApiError(422, 'Invalid', rejected);
    this.applied.push({ obj, dryRun: opts.dryRun === true });
    if (!opts.dryRun) this.put(obj);
    return Promise.resolve(obj);
  }

  create(obj: KubeObject): Promise<KubeObject> {
    return this.apply(obj);
  }

  replace(obj: KubeObject): Promise<KubeObject> {
    return this.apply(obj);
  }

  async read(ref: ObjectRef): Promise<KubeObject | undefined> {
    this.guard('read');
    return Promise.resolve(this.objects.get(keyOf(ref)));
  }

  async remove(ref: ObjectRef): Promise<void> {
    this.guard('remove');
    this.objects.delete(keyOf(ref));
    return Promise.resolve();
  }

  async list(apiVersion: string, kind: string, namespace?: string): Promise<KubeObject[]> {
    this.guard('list');
    return Promise.resolve([...this.objects.values()].filter((o) => o.apiVersion === apiVersion && o.kind === kind && (namespace === undefined || o.metadata.namespace === namespace)));
  }

  async serverVersion(): Promise<string> {
    this.guard('version');
    return Promise.resolve(this.version);
  }

  async nodes(): Promise<NodeSummary[]> {
    this.guard('nodes');
    return Promise.resolve(this.nodeList);
  }

  createEvent(): Promise<void> {
    return Promise.resolve();
  }
}
