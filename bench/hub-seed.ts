// Accepted clusters with known agent keys, written straight into a hub
// database before the hub starts: the capacity benchmarks measure sessions
// and reports, not N registrations and operator accepts.
import { generateAgentKey, type AgentKeyPair } from '../src/protocol/agent-identity.ts';
import { ClusterRepo } from '../src/hub/store/cluster-repo.ts';
import { openHubDatabase, type HubDatabaseLocation } from '../src/hub/store/database.ts';

export interface SeededCluster {
  clusterId: string;
  key: AgentKeyPair;
}

/** `labels`: the labels of the i-th cluster (none by default), as PUT /api/v1/clusters/:id/labels would set them. `where`: a SQLite file, or a PostgreSQL database. */
export async function seedClusters(
  where: string | HubDatabaseLocation,
  count: number,
  now: () => Date,
  prefix = 'sim',
  labels: (i: number) => Record<string, string> = () => ({}),
): Promise<SeededCluster[]> {
  const db = await openHubDatabase(typeof where === 'string' ? { kind: 'sqlite', path: where } : where);
  try {
    const clusters = new ClusterRepo(db, now);
    const seeded: SeededCluster[] = [];
    await db.transaction(async () => {
      for (let i = 0; i < count; i++) {
        const clusterId = `${prefix}-${i}`;
        const key = generateAgentKey();
        await clusters.requestRegistration({ id: clusterId, labels: labels(i), agentVersion: 'sim', inventory: undefined, publicKey: key.publicKey });
        await clusters.accept(clusterId);
        seeded.push({ clusterId, key });
      }
    });
    return seeded;
  } finally {
    await db.close();
  }
}
