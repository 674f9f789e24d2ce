// Accepted clusters with known agent keys, written straight into a hub
// database before the hub starts: the capacity benchmarks measure sessions
// and reports, not N registrations and operator accepts.
import { generateAgentKey, type AgentKeyPair } from '../src/protocol/agent-identity.ts';
import { ClusterRepo } from '../src/hub/store/cluster-repo.ts';
import { openHubDatabase } from '../src/hub/store/database.ts';

export interface SeededCluster {
  clusterId: string;
  key: AgentKeyPair;
}

/** `labels`: the labels of the i-th cluster (none by default), as PUT /api/v1/clusters/:id/labels would set them. */
export function seedClusters(dbPath: string, count: number, now: () => Date, prefix = 'sim', labels: (i: number) => Record<string, string> = () => ({})): SeededCluster[] {
  const db = openHubDatabase(dbPath);
  try {
    const clusters = new ClusterRepo(db, now);
    const seeded: SeededCluster[] = [];
    db.transaction(() => {
      for (let i = 0; i < count; i++) {
        const clusterId = `${prefix}-${i}`;
        const key = generateAgentKey();
        clusters.requestRegistration({ id: clusterId, labels: labels(i), agentVersion: 'sim', inventory: undefined, publicKey: key.publicKey });
        clusters.accept(clusterId);
        seeded.push({ clusterId, key });
      }
    })();
    return seeded;
  } finally {
    db.close();
  }
}
