// Resuming an attempt on the real control plane: an agent that crash-loops
// before its first gate decision rolls back (and does not die again on every
// start), and the first state of an attempt reaches the outbox like every
// other.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { planRelease } from '../../src/agent/upgrade/planner.ts';
import { testNamespace, type TestNamespace } from '../support/cluster.ts';
import { agentHarness } from '../support/agent-harness.ts';
import { addonsRelease, testSigner } from '../support/releases.ts';

describe('resuming an attempt', () => {
  let ns: TestNamespace;
  const signer = testSigner();
  before(async () => {
    ns = await testNamespace('resume');
  });
  after(async () => {
    await ns.dispose();
  });

  test('a crash loop while still Pending rolls back instead of failing at every start', async () => {
    const h = agentHarness(signer, { maxStarts: 2 });
    try {
      const offer = await h.agent.offer(signer.sign(addonsRelease(ns.name, 1, { dns: '1.0.0', proxy: '1.0.0', metrics: '1.0.0' })));
      assert.equal(offer.accepted, true);
      // The state a crash-looping agent leaves: the attempt exists, Pending, started more often than allowed.
      const desired = h.journal.releases.latestAccepted()!;
      const a = h.journal.attempts.create({
        id: 'crash-looping',
        releaseId: desired.id,
        revision: desired.revision,
        releaseName: desired.release.name,
        releaseVersion: desired.release.version,
        plan: planRelease(desired.release, h.journal.installed.all(), []),
      });
      h.journal.attempts.recordStart(a.id);
      h.journal.attempts.recordStart(a.id);

      const done = await h.runUntilFinished(1, 60_000);
      assert.equal(done.id, 'crash-looping');
      assert.equal(done.phase, 'RolledBack', `${done.reason}: ${done.message}`);
      assert.equal(done.reason, 'CrashLoop');
      assert.deepEqual(
        h.journal.attempts.transitions(a.id).map((t) => t.phase),
        ['Pending', 'RollingBack', 'RolledBack'],
      );
      assert.deepEqual(h.journal.installed.all(), [], 'nothing was installed');
      assert.equal(await h.cluster.read({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'dns', namespace: ns.name }), undefined, 'the cluster is untouched');
    } finally {
      h.close();
    }
  });

  test('every state of an attempt is reported, its first (Pending) included', async () => {
    const h = agentHarness(signer);
    try {
      await h.agent.offer(signer.sign(addonsRelease(ns.name, 2, { dns: '1.0.0', proxy: '1.0.0', metrics: '1.0.0' })));
      // However it ends (a slow cluster may roll it back), every state it went through is reported.
      const a = await h.runUntilFinished(2);
      assert.ok(a.finishedAt, `${a.phase}: ${a.reason}: ${a.message}`);
      const reported = h.journal.outbox
        .pending(0, 1000)
        .filter((r) => r.kind === 'attempt-transition' && (r.body as { attemptId: string }).attemptId === a.id)
        .map((r) => (r.body as { phase: string }).phase);
      assert.deepEqual(
        reported,
        h.journal.attempts.transitions(a.id).map((t) => t.phase),
      );
      assert.equal(reported[0], 'Pending');
    } finally {
      h.close();
    }
  });
});
