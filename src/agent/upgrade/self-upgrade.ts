// The agent upgrading itself without ever leaving the cluster without a
// working agent. The old version applies its own new spec (a rolling update,
// so the old pod keeps running), then supervises: the new version starts as a
// *candidate*, checks it can open the journal and reach the Kubernetes API,
// and reports ready in the cluster. Only then does the old version hand the
// attempt over (the hand-over record in the cluster tells the candidate where
// the attempt stands). If the candidate is not ready by the deadline, or its
// pod cannot start (crash loop, image pull; seen at once, decide.ts
// `containerFailure`), the old version restores its own previous spec
// (RolledBack, CandidateNotReady). After it takes over (handed over in
// Soaking, or from the record in Verifying when the rolling update ended the
// old pod first), the candidate must reach the hub within a configured time
// or it reverts itself (CandidateCannotReachHub).
import type { SelfUpgradeSupervisor } from './observe.ts';
import type { HandoverStore } from '../kube/handover-store.ts';
import type { ClusterClient } from '../kube/cluster-client.ts';
import type { HandoverRecord } from '../../protocol/handover.ts';
import type { Journal } from '../../store/journal.ts';

export interface SelfUpgradeOptions {
  version: string;
  identity: string;
  handover: HandoverStore;
  now: () => Date;
  /** Is the hub link up? Undefined when no hub is configured (then nothing to prove). */
  hubConnected?: () => boolean;
  /** How long a new version may take to reach the hub after it took over. */
  hubTimeoutMs?: number;
  /** A candidate report older than this is stale (the candidate died). */
  candidateFreshMs?: number;
}

export function selfUpgradeSupervisor(o: SelfUpgradeOptions): SelfUpgradeSupervisor {
  const fresh = o.candidateFreshMs ?? 15_000;
  return {
    isRunningVersion: (v) => v === o.version,
    async candidateReady(version, since) {
      const c = await o.handover.readCandidate();
      if (!c || c.version !== version) return { ready: false, message: `no agent ${version} has reported yet` };
      const at = Date.parse(c.at);
      if (at < since.getTime()) return { ready: false, message: `the last report of ${version} predates this upgrade` };
      if (o.now().getTime() - at > fresh) return { ready: false, message: `${c.identity} stopped reporting (last at ${c.at})` };
      return { ready: c.ready, message: `${c.identity}: ${c.message}` };
    },
    ...(o.hubConnected ? { hub: { connected: o.hubConnected, timeoutMs: o.hubTimeoutMs ?? 120_000 } } : {}),
  };
}

/** The self stage of the record's unfinished attempt targets `version`? Then this process is its candidate. */
export function candidateTarget(record: HandoverRecord | undefined, version: string): boolean {
  const a = record?.attempt;
  if (!a || a.finishedAt || a.stage === null) return false;
  return a.plan.stages[a.stage]?.components.some((c) => c.self && c.version === version) ?? false;
}

/**
 * What a standing-by agent does when it is the candidate: prove it can run
 * (journal answers, Kubernetes API answers) and say so, every tick, so the
 * supervisor can tell a live candidate from a dead one.
 */
export async function reportCandidacy(o: { journal: Journal; cluster: ClusterClient; handover: HandoverStore; version: string; identity: string; now: () => Date }): Promise<boolean> {
  const record = await o.handover.read().catch(() => undefined);
  if (!candidateTarget(record, o.version)) return false;
  const problems: string[] = [];
  try {
    o.journal.ping();
  } catch (err) {
    problems.push(`journal: ${(err as Error).message}`);
  }
  const kube = await o.cluster.serverVersion().catch((err: Error) => {
    problems.push(`Kubernetes API: ${err.message}`);
    return undefined;
  });
  await o.handover.writeCandidate({
    identity: o.identity,
    version: o.version,
    ready: problems.length === 0,
    message: problems.length ? problems.join('; ') : `journal open, Kubernetes API ${kube} reachable`,
    at: o.now().toISOString(),
  });
  return problems.length === 0;
}
