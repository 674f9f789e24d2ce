// The per-cluster hub credential lives in a Secret in the agent's namespace,
// so a successor pod (rescheduled, upgraded, or a new leader) finds it
// without re-registering, and nothing else on disk holds it.
import type { ClusterClient } from './cluster-client.ts';

export interface CredentialStore {
  load(): Promise<string | undefined>;
  save(credential: string): Promise<void>;
  clear(): Promise<void>;
}

export function secretCredentialStore(cluster: ClusterClient, namespace: string, name = 'fleetlet-hub-credential'): CredentialStore {
  const ref = { apiVersion: 'v1', kind: 'Secret', name, namespace };
  return {
    async load() {
      const s = (await cluster.read(ref)) as { data?: Record<string, string> } | undefined;
      const v = s?.data?.credential;
      return v ? Buffer.from(v, 'base64').toString('utf8') : undefined;
    },
    async save(credential) {
      await cluster.apply({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name, namespace, labels: { 'app.kubernetes.io/managed-by': 'fleetlet' } },
        type: 'Opaque',
        data: { credential: Buffer.from(credential, 'utf8').toString('base64') },
      });
    },
    async clear() {
      await cluster.remove(ref);
    },
  };
}
