// Accepted clusters with known credentials, written straight into a hub
// database before the hub starts: the capacity benchmarks measure sessions
// and reports, not N operator accepts.
import { issueCredential } from '../src/hub/credentials.ts';
import { ClusterStore } from '../src/hub/store/clusters.ts';
import { openHubDatabase } from '../src/hub/store/database.ts';

export interface SeededCluster {
  clusterId: string;
  credential: string;
}

/** `labels`: the labels of the i-th cluster (none by default), as PUT /api/v1/clusters/:id/labels would set them. */
export function seedClusters(dbPath: string, count: number, now: () => Date, prefix = 'sim', labels: (i: number) => Record<string, string> = () => ({})): SeededCluster[] {
  const db = openHubDatabase(dbPath);
  try {
    const clusters = new ClusterStore(db, now);
    const seeded: SeededCluster[] = [];
    db.transaction(() => {
      for (let i = 0; i < count; i++) {
        const clusterId = `${prefix}-${i}`;
        const { credential, hash } = issueCredential();
        clusters.requestRegistration({ id: clusterId, labels: labels(i), agentVersion: 'sim', inventory: undefined });
        clusters.accept(clusterId, credential, hash);
        // As if the agent had connected once: the hub keeps only the hash.
        clusters.markCredentialUsed(clusterId);
        seeded.push({ clusterId, credential });
      }
    })();
    return seeded;
  } finally {
    db.close();
  }
}
