// Many thousands of mutated frames against the parser and against the hub's
// frame handling: nothing throws, every rejection is a ProtocolError, and a
// rejected frame changes nothing in the hub's store.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { AgentSession } from '../../src/hub/agent-session.ts';
import { createHubContext } from '../../src/hub/hub-context.ts';
import { openSqlite } from '../../src/hub/store/database.ts';
import { encodeMessage, parseMessage, ProtocolError, protocolErrorReason, type Message } from '../../src/protocol/messages.ts';
import { generateReleaseKey, signRelease } from '../../src/protocol/signing.ts';
import { FrameMutator } from '../support/frame-mutator.ts';
import { BOOTSTRAP_TOKEN, storedPublicKey, testLogger } from '../support/hub-fixture.ts';
import { mulberry32 } from '../support/prng.ts';
import { sampleRelease } from '../support/releases.ts';
import { completed, transition } from '../support/sample-reports.ts';

const key = generateReleaseKey();
const inventory = { components: [{ name: 'metrics', version: '0.9.1' }], kubernetesVersion: 'v1.35.4', targetInfrastructure: 'aws', overrides: [{ name: 'hf', component: 'metrics' }] };
const at = '2030-01-01T00:00:00.000Z';

function seeds(clusterId: string): string[] {
  return [
    encodeMessage({ type: 'hello', clusterId, agentVersion: '0.1.0', inventory, lastRevision: 0, outbox: { firstSeq: 1, lastSeq: 3 } }),
    encodeMessage({
      type: 'reports',
      afterSeq: 0,
      reports: [
        { seq: 1, kind: 'attempt-transition', body: transition(1), createdAt: at },
        { seq: 2, kind: 'upgrade-completed', body: completed(clusterId, 2), createdAt: at },
        { seq: 3, kind: 'inventory', body: inventory, createdAt: at },
      ],
    }),
    encodeMessage({ type: 'heartbeat', sentAt: at }),
    encodeMessage({ type: 'register', bootstrapToken: BOOTSTRAP_TOKEN, clusterId, agentVersion: '0.1.0', inventory, labels: { env: 'edge' } }),
    encodeMessage({ type: 'welcome', ackedSeq: 3, heartbeatMs: 10_000, leaseDurationMs: 50_000 }),
    encodeMessage({ type: 'release', envelope: signRelease(sampleRelease(), key.privateKey) }),
    encodeMessage({ type: 'ack', uptoSeq: 3 }),
    encodeMessage({ type: 'registration', status: 'accepted' }),
    encodeMessage({ type: 'challenge', nonce: 'n'.repeat(43) }),
    encodeMessage({ type: 'deregister', reason: 'bye' }),
    encodeMessage({ type: 'error', code: 'InvalidMessage', message: 'no' }),
  ];
}

const reasons = new Set<string>(protocolErrorReason.options);

describe('protocol fuzzing', () => {
  it('parseMessage survives 30,000 mutated frames and rejects only with ProtocolError', async () => {
    const seed = 0xf1ee7;
    const random = mulberry32(seed);
    const mutator = new FrameMutator(random);
    const corpus = seeds('edge-fuzz');
    let rejected = 0;
    for (let i = 0; i < 30_000; i++) {
      const frame = mutator.mutate(corpus[i % corpus.length] as string);
      const direction = (['from-agent', 'from-hub', undefined] as const)[i % 3];
      let result;
      try {
        result = parseMessage(frame, direction as 'from-agent');
      } catch (err) {
        assert.fail(`seed ${seed} frame ${i} threw ${String(err)}: ${String(frame).slice(0, 200)}`);
      }
      if (result.ok) {
        // What parses must survive a round trip unchanged.
        const again = parseMessage(JSON.stringify(result.message));
        assert.ok(again.ok, `frame ${i}: accepted message does not re-parse`);
      } else {
        rejected++;
        assert.ok(result.error instanceof ProtocolError);
        assert.ok(reasons.has(result.error.reason));
        assert.ok(result.error.message.length > 0);
      }
    }
    assert.ok(rejected > 15_000, `mutations must mostly break frames (${rejected} rejected)`);
  });

  it('the hub handles 8,000 mutated agent frames: no exception, an error reply for each rejection, and no change from it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fleetlet-fuzz-'));
    const db = openSqlite(join(dir, 'hub.db'));
    try {
      let t = Date.parse('2030-01-02T00:00:00.000Z');
      const now = (): Date => new Date(t);
      const ctx = await createHubContext({ db, now, log: testLogger(), heartbeatMs: 10_000, graceMultiplier: 5, bootstrapTokens: [BOOTSTRAP_TOKEN], releaseKey: key.privateKey,
        // The frame-rate budget runs on the real clock; this test is about what frames say, not how fast they come.
        budgets: { framesPerSecond: 1e9, frameBurst: 1e9 } });
      await ctx.clusters.requestRegistration({ id: 'edge-fuzz', labels: {}, agentVersion: '0.1.0', inventory: undefined, publicKey: storedPublicKey('edge-fuzz') });
      await ctx.clusters.accept('edge-fuzz');

      // Rows written by this connection so far: a rejected frame must not move it.
      const writes = (): number => (db.db.prepare('SELECT total_changes() AS n').get() as { n: number }).n;

      const sent: Message[] = [];
      let closed = false;
      const open = (kind: 'cluster' | 'anonymous'): AgentSession => {
        closed = false;
        const session = new AgentSession(ctx, kind === 'cluster' ? { kind, clusterId: 'edge-fuzz' } : { kind }, {
          send: (text) => {
            const m = parseMessage(text, 'from-hub');
            assert.ok(m.ok, `the hub sent something it would not accept: ${text.slice(0, 200)}`);
            sent.push(m.message);
          },
          close: () => {
            closed = true;
          },
        });
        if (kind === 'cluster') session.handleFrame(seeds('edge-fuzz')[0] as string);
        return session;
      };

      const seed = 0xbadf00d;
      const random = mulberry32(seed);
      const mutator = new FrameMutator(random);
      const corpus = seeds('edge-fuzz').slice(0, 4);
      let session = open('cluster');
      let rejections = 0;
      for (let i = 0; i < 8_000; i++) {
        // The frames before this one are handled and their writes committed (one event-loop turn on SQLite).
        await new Promise<void>((resolve) => setImmediate(resolve));
        if (closed || i % 500 === 0) session = open(i % 1000 === 500 ? 'anonymous' : 'cluster');
        t += 10;
        const frame = mutator.mutate(corpus[i % corpus.length] as string);
        const parsed = parseMessage(frame, 'from-agent');
        const before = writes();
        const sentBefore = sent.length;
        try {
          session.handleFrame(frame);
        } catch (err) {
          assert.fail(`seed ${seed} frame ${i} threw ${String(err)}: ${String(frame).slice(0, 200)}`);
        }
        if (!parsed.ok) {
          rejections++;
          const reply = sent[sentBefore];
          assert.equal(reply?.type, 'error', `frame ${i}: a rejection is answered`);
          assert.equal(reply?.type === 'error' && reply.code, parsed.error.reason);
          assert.equal(writes(), before, `frame ${i}: a rejected frame changed the store`);
        }
      }
      assert.ok(rejections > 3_000, `${rejections} rejections`);
      assert.ok(writes() > 100, 'the frames that survived mutation did reach the store');
      // Still coherent: the chain mark never passes a report the hub does not hold.
      const acked = (db.db.prepare("SELECT acked_seq FROM clusters WHERE id = 'edge-fuzz'").get() as { acked_seq: number }).acked_seq;
      if (acked > 0) assert.ok(db.db.prepare("SELECT 1 FROM reports WHERE cluster_id = 'edge-fuzz' AND seq = ?").get(acked));
    } finally {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
