// Builds exactly the agent a test needs: a real journal in a temp dir, a
// real Kubernetes client against the run's control plane, fast polling.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, type AgentDeps } from '../../src/agent/agent.ts';
import { defaultAdmission } from '../../src/agent/intake/admission.ts';
import { KubeClusterClient } from '../../src/agent/kube/cluster-client.ts';
import { Journal } from '../../src/store/journal.ts';
import type { AttemptRecord } from '../../src/store/attempt-repo.ts';
import { kubeConfig } from './cluster.ts';
import type { TestSigner } from './releases.ts';
import { testLogger } from './test-log.ts';

export interface Harness {
  agent: Agent;
  journal: Journal;
  cluster: KubeClusterClient;
  journalPath: string;
  /** Runs the agent until the attempt for `revision` finishes; returns it. */
  runUntilFinished(revision: number, timeoutMs?: number): Promise<AttemptRecord>;
  close(): void;
}

export function agentHarness(signer: TestSigner, overrides: Partial<AgentDeps> = {}, journalPath?: string): Harness {
  const path = journalPath ?? join(mkdtempSync(join(tmpdir(), 'fleetlet-agent-')), 'journal.db');
  const journal = Journal.open(path, { durability: 'normal' });
  const cluster = new KubeClusterClient(kubeConfig());
  const logger = testLogger();
  const agent = new Agent({
    journal,
    cluster,
    logger,
    now: () => new Date(),
    clusterId: 'test-cluster',
    targetInfrastructure: () => 'kwok',
    releaseKeys: [signer.publicKey],
    admission: defaultAdmission,
    pollMs: 200,
    idleMs: 200,
    ...overrides,
  });
  return {
    agent,
    journal,
    cluster,
    journalPath: path,
    async runUntilFinished(revision, timeoutMs = 120_000) {
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(new Error(`attempt for revision ${revision} did not finish in ${timeoutMs} ms`)), timeoutMs);
      const running = agent.run(controller.signal).catch(() => {});
      try {
        for (;;) {
          const a = journal.attempts.list(50).find((x) => x.revision === revision && x.finishedAt);
          if (a) return a;
          if (controller.signal.aborted) throw controller.signal.reason as Error;
          await new Promise((r) => setTimeout(r, 100));
        }
      } finally {
        clearTimeout(timer);
        controller.abort();
        await running;
      }
    },
    close: () => journal.close(),
  };
}
