// The agent's hub identity lives in a Secret in the agent's namespace, so a
// successor pod (rescheduled, upgraded, or a new leader) finds it without
// registering again, and nothing else on disk holds it: its Ed25519 private
// key (generated on first start; the hub only ever sees the public half),
// whether an operator accepted it, and, on a cluster registered with a hub
// before keys, the bearer credential that hub issued until the key replaces
// it (docs/security.md, migration); and, once an operator revoked the
// cluster, that revocation, so a restarted agent does not knock again
// (hub-standing.ts).
import { z } from 'zod';
import { exportAgentKeyPem, generateAgentKey, importAgentKeyPem, type AgentKeyPair } from '../../protocol/agent-identity.ts';
import type { ClusterClient } from './cluster-client.ts';

const revocation = z.strictObject({ at: z.string(), reason: z.string(), bootstrapDigest: z.string().nullable() });

export interface AgentIdentity {
  key: AgentKeyPair;
  registered: boolean;
  legacyCredential: string | undefined;
  /** The hub revoked this key; the agent waits for a new bootstrap (hub-standing.ts). */
  revoked?: Revocation | undefined;
}

export interface Revocation {
  at: string;
  reason: string;
  /** sha256 of the bootstrap token the agent held when it was revoked (null: none); a different one is a new bootstrap. */
  bootstrapDigest: string | null;
}

export interface CredentialStore {
  load(): Promise<AgentIdentity | undefined>;
  /** The stored identity, or a new key pair written before it is returned. */
  loadOrCreate(): Promise<AgentIdentity>;
  save(identity: AgentIdentity): Promise<void>;
  clear(): Promise<void>;
}

export function secretCredentialStore(cluster: ClusterClient, namespace: string, name = 'fleetlet-hub-credential'): CredentialStore {
  const ref = { apiVersion: 'v1', kind: 'Secret', name, namespace };
  const text = (data: Record<string, string> | undefined, key: string): string | undefined => {
    const v = data?.[key];
    return v ? Buffer.from(v, 'base64').toString('utf8') : undefined;
  };
  const read = async (): Promise<{ pem?: string | undefined; registered: boolean; legacyCredential: string | undefined; revoked: Revocation | undefined }> => {
    const data = ((await cluster.read(ref)) as { data?: Record<string, string> } | undefined)?.data;
    const revoked = text(data, 'revoked.json');
    return {
      pem: text(data, 'agent.key'),
      registered: text(data, 'registered') === 'true',
      legacyCredential: text(data, 'credential'),
      revoked: revoked === undefined ? undefined : revocation.parse(JSON.parse(revoked)),
    };
  };
  const fromSecret = (r: Awaited<ReturnType<typeof read>> & { pem: string }): AgentIdentity => ({
    key: importAgentKeyPem(r.pem),
    registered: r.registered,
    legacyCredential: r.legacyCredential,
    ...(r.revoked ? { revoked: r.revoked } : {}),
  });
  const store: CredentialStore = {
    async load() {
      const r = await read();
      return r.pem === undefined ? undefined : fromSecret({ ...r, pem: r.pem });
    },
    async loadOrCreate() {
      const r = await read();
      if (r.pem !== undefined) return fromSecret({ ...r, pem: r.pem });
      // First start, or first start after an upgrade from a hub credential (kept for one more hello).
      const identity: AgentIdentity = { key: generateAgentKey(), registered: false, legacyCredential: r.legacyCredential };
      await store.save(identity);
      return identity;
    },
    async save(identity) {
      const data: Record<string, string> = {
        'agent.key': Buffer.from(exportAgentKeyPem(identity.key.privateKey), 'utf8').toString('base64'),
        registered: Buffer.from(String(identity.registered), 'utf8').toString('base64'),
      };
      if (identity.legacyCredential !== undefined) data.credential = Buffer.from(identity.legacyCredential, 'utf8').toString('base64');
      if (identity.revoked) data['revoked.json'] = Buffer.from(JSON.stringify(identity.revoked), 'utf8').toString('base64');
      await cluster.apply({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name, namespace, labels: { 'app.kubernetes.io/managed-by': 'fleetlet' } },
        type: 'Opaque',
        data,
      });
    },
    async clear() {
      await cluster.remove(ref);
    },
  };
  return store;
}
