// Report bodies as the agent's engine writes them.
import type { AttemptPhase } from '../../src/protocol/attempt.ts';
import type { AttemptTransitionReport, UpgradeCompletedReport } from '../../src/protocol/reports.ts';

export function transition(n: number, phase: AttemptPhase = 'Upgrading', extra: Partial<AttemptTransitionReport> = {}): AttemptTransitionReport {
  return {
    attemptId: `attempt-${n}`,
    release: { name: 'edge-addons', version: '1.4.2', revision: 1 },
    phase,
    stage: 0,
    reason: null,
    message: `step ${n}`,
    at: new Date(Date.parse('2030-01-01T00:00:00.000Z') + n * 1000).toISOString(),
    ...extra,
  };
}

export function completed(clusterId: string, n: number, result: UpgradeCompletedReport['result'] = 'Succeeded'): UpgradeCompletedReport {
  return {
    cluster_id: clusterId,
    target_infrastructure: 'aws',
    release: { name: 'edge-addons', version: '1.4.2' },
    result,
    durationMs: 1000 + n,
    attemptId: `attempt-${n}`,
    completedAt: new Date(Date.parse('2030-01-01T00:00:00.000Z') + n * 1000).toISOString(),
  };
}
