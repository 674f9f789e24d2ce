import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { Journal } from '../../src/store/journal.ts';
import { JournalError, JournalTooNew } from '../../src/store/errors.ts';
import { formatLevel } from '../../src/store/migrations.ts';
import type { Release, SignedEnvelope } from '../../src/protocol/release.ts';
import type { Plan } from '../../src/protocol/plan.ts';

const tmp = () => join(mkdtempSync(join(tmpdir(), 'journal-')), 'journal.db');
const clockAt = (start: number) => {
  let t = start;
  return { now: () => new Date(t), advance: (ms: number) => (t += ms) };
};
const release = (revision: number): Release =>
  ({
    apiVersion: 'fleetlet.io/v1',
    kind: 'Release',
    name: 'addons',
    version: `1.${revision}.0`,
    revision,
    issuedAt: '2026-01-01T00:00:00.000Z',
    expiresAt: '2027-01-01T00:00:00.000Z',
    critical: false,
    allowDowngrade: false,
    kubernetesVersion: {},
    components: [],
  }) as unknown as Release;
const envelope: SignedEnvelope = { payload: '{}', signature: 'AAAA', keyId: 'k1' };
const plan: Plan = { revision: 1, stages: [], unchanged: [], removed: [] };

test('opens in WAL mode with FULL synchronous by default and records the schema version', () => {
  const j = Journal.open(tmp());
  assert.deepEqual(j.settings(), { journalMode: 'wal', synchronous: 2 /* FULL */, schemaVersion: formatLevel() });
  j.close();
});

test('reopening runs no migration twice and keeps the data', () => {
  const path = tmp();
  const j = Journal.open(path);
  j.releases.accept(release(3), envelope);
  j.close();
  const j2 = Journal.open(path);
  assert.equal(j2.releases.lastAcceptedRevision(), 3);
  j2.close();
});

test('refuses a journal written by a newer agent, naming both format levels and what to do', () => {
  const path = tmp();
  Journal.open(path).close();
  const raw = new Database(path);
  raw.pragma('user_version = 99');
  raw.close();
  assert.throws(
    () => Journal.open(path, { agentVersion: '0.2.0' }),
    (e: unknown) =>
      e instanceof JournalTooNew &&
      e.reason === 'JournalTooNew' &&
      e.journalLevel === 99 &&
      e.knownLevel === formatLevel() &&
      e.message.includes(`is at format level 99`) &&
      e.message.includes(`this agent (0.2.0) reads format levels up to ${formatLevel()}`) &&
      e.message.includes('do not delete the journal'),
  );
});

test('a file that is not a database gives a clear error', () => {
  const path = tmp();
  writeFileSync(path, 'this is not sqlite at all, not even close'.repeat(200));
  assert.throws(() => Journal.open(path), (e: unknown) => e instanceof JournalError && e.message.includes(path));
});

test('transitions are appended in order and move the attempt; a finished attempt cannot move', () => {
  const clock = clockAt(Date.parse('2026-05-01T00:00:00Z'));
  const j = Journal.open(tmp(), { now: clock.now });
  const r = j.releases.accept(release(1), envelope);
  j.attempts.create({ id: 'a1', releaseId: r.id, revision: 1, releaseName: 'addons', releaseVersion: '1.1.0', plan });
  clock.advance(1000);
  j.attempts.transition('a1', { phase: 'Upgrading', stage: 0 });
  clock.advance(1000);
  j.attempts.transition('a1', { phase: 'Succeeded', finished: true });
  const ts = j.attempts.transitions('a1');
  assert.deepEqual(
    ts.map((t) => t.phase),
    ['Pending', 'Upgrading', 'Succeeded'],
  );
  assert.deepEqual(
    ts.map((t) => t.at),
    ['2026-05-01T00:00:00.000Z', '2026-05-01T00:00:01.000Z', '2026-05-01T00:00:02.000Z'],
  );
  assert.equal(j.attempts.get('a1')?.finishedAt, '2026-05-01T00:00:02.000Z');
  assert.equal(j.attempts.current(), undefined);
  assert.throws(() => j.attempts.transition('a1', { phase: 'Upgrading' }), (e: unknown) => e instanceof JournalError && e.reason === 'AttemptFinished');
});

test('a snapshot is saved once: a resumed attempt cannot overwrite the last known good', () => {
  const j = Journal.open(tmp());
  const r = j.releases.accept(release(1), envelope);
  j.attempts.create({ id: 'a1', releaseId: r.id, revision: 1, releaseName: 'addons', releaseVersion: '1.1.0', plan });
  const first = { attemptId: 'a1', component: 'dns', stage: 0, version: '1.0', digest: 'd0', objects: [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'old' } }], created: [], owned: [] };
  j.attempts.saveSnapshotOnce(first);
  const again = j.attempts.saveSnapshotOnce({ ...first, version: '1.1', objects: [] });
  assert.equal(again.version, '1.0');
  assert.equal(again.objects.length, 1);
});

test('outbox sequence numbers increase, survive restarts and are never reused after acknowledgement', () => {
  const path = tmp();
  const j = Journal.open(path);
  const a = j.outbox.enqueue('x', { n: 1 });
  const b = j.outbox.enqueue('x', { n: 2 });
  assert.equal(b, a + 1);
  assert.equal(j.outbox.ack(b), 2);
  assert.deepEqual(j.outbox.stats(), { depth: 0, firstSeq: null, lastSeq: b });
  j.close();
  const j2 = Journal.open(path);
  const c = j2.outbox.enqueue('x', { n: 3 });
  assert.equal(c, b + 1);
  assert.deepEqual(
    j2.outbox.pending(0, 10).map((r) => r.body),
    [{ n: 3 }],
  );
  j2.close();
});

test('a transition and its report commit together or not at all', () => {
  const j = Journal.open(tmp());
  const r = j.releases.accept(release(1), envelope);
  j.attempts.create({ id: 'a1', releaseId: r.id, revision: 1, releaseName: 'addons', releaseVersion: '1.1.0', plan });
  assert.throws(() =>
    j.transaction(() => {
      j.attempts.transition('a1', { phase: 'Upgrading', stage: 0 });
      j.outbox.enqueue('attempt-transition', { phase: 'Upgrading' });
      throw new Error('crash between the two writes');
    }),
  );
  assert.equal(j.attempts.get('a1')?.phase, 'Pending');
  assert.equal(j.outbox.stats().depth, 0);
});

test('compaction drops old history but never the current attempt, the desired release or unsent reports', () => {
  const clock = clockAt(Date.parse('2026-01-01T00:00:00Z'));
  const j = Journal.open(tmp(), { now: clock.now });
  for (let i = 1; i <= 30; i++) {
    const r = j.releases.accept(release(i), envelope);
    j.attempts.create({ id: `a${i}`, releaseId: r.id, revision: i, releaseName: 'addons', releaseVersion: `1.${i}.0`, plan });
    j.attempts.transition(`a${i}`, { phase: i === 30 ? 'Upgrading' : 'Succeeded', finished: i !== 30 });
    j.outbox.enqueue('attempt-transition', { i });
    clock.advance(86_400_000);
  }
  const result = j.compact({ maxAgeMs: 10 * 86_400_000, maxBytes: 1 << 30, keepAttempts: 5 });
  assert.ok(result.attemptsRemoved > 0);
  assert.equal(j.attempts.current()?.id, 'a30');
  assert.equal(j.releases.lastAcceptedRevision(), 30);
  assert.equal(j.outbox.stats().depth, 30);
  // Attempts younger than maxAge stay: a21..a29 finished within the last 10 days, plus the current one.
  assert.deepEqual(
    j.attempts.list(100).map((a) => a.id).sort(),
    ['a21', 'a22', 'a23', 'a24', 'a25', 'a26', 'a27', 'a28', 'a29', 'a30'].sort(),
  );
});

test('over the size budget, compaction gives up history oldest first down to keepAttempts', () => {
  const clock = clockAt(Date.parse('2026-01-01T00:00:00Z'));
  const j = Journal.open(tmp(), { now: clock.now });
  const big = 'x'.repeat(50_000);
  for (let i = 1; i <= 40; i++) {
    const r = j.releases.accept(release(i), envelope);
    j.attempts.create({ id: `a${i}`, releaseId: r.id, revision: i, releaseName: 'addons', releaseVersion: `1.${i}.0`, plan });
    j.attempts.transition(`a${i}`, { phase: 'Succeeded', finished: true, data: { big } });
    clock.advance(60_000);
  }
  const before = j.sizeBytes();
  const result = j.compact({ maxAgeMs: 365 * 86_400_000, maxBytes: 600_000, keepAttempts: 3 });
  assert.ok(result.bytesAfter < before, `shrank from ${before} to ${result.bytesAfter}`);
  const left = j.attempts.list(100).map((a) => a.id);
  assert.ok(left.length >= 3);
  assert.ok(left.includes('a40') && left.includes('a39') && left.includes('a38'), 'newest attempts kept');
  assert.ok(!left.includes('a1'), 'oldest removed');
});

test('a refusal is remembered per revision and reason', () => {
  const j = Journal.open(tmp());
  j.releases.refuse({ revision: 7, reason: 'DryRunRejected', message: 'bad manifest' });
  assert.equal(j.releases.refusedBefore({ revision: 7, reason: 'DryRunRejected' }), true);
  assert.equal(j.releases.refusedBefore({ revision: 7, reason: 'Downgrade' }), false);
  assert.equal(j.releases.refusedBefore({ revision: 8, reason: 'DryRunRejected' }), false);
  j.close();
});

test('an unverified refusal (no trusted revision) is remembered by its exact envelope', () => {
  const j = Journal.open(tmp());
  const forged = { payload: '{"revision":9}', signature: 'AAAA', keyId: 'nobody' };
  j.releases.refuse({ revision: null, reason: 'UnknownKey', message: 'untrusted key', envelope: forged });
  assert.equal(j.releases.refusedBefore({ revision: null, reason: 'UnknownKey', envelope: { ...forged } }), true);
  assert.equal(j.releases.refusedBefore({ revision: null, reason: 'UnknownKey', envelope: { ...forged, signature: 'BBBB' } }), false);
  assert.equal(j.releases.refusedBefore({ revision: null, reason: 'BadSignature', envelope: forged }), false);
  assert.equal(j.releases.refusedBefore({ revision: null, reason: 'UnknownKey' }), false, 'without an envelope nothing identifies it');
  j.close();
});

test('a query asked for again reuses its prepared statement (SQLite statements are native memory V8 frees late)', (t) => {
  // Counts what SQLite is asked to compile: the wrapper below is better-sqlite3's own prepare, called through.
  const original = Database.prototype.prepare;
  let compiled = 0;
  Database.prototype.prepare = function (this: Database.Database, sql: string) {
    compiled++;
    return original.call(this, sql);
  } as typeof original;
  t.after(() => {
    Database.prototype.prepare = original;
  });
  const j = Journal.open(tmp());
  t.after(() => j.close());
  j.ping();
  j.attempts.latest();
  j.outbox.pending(0, 10);
  const once = compiled;
  assert.ok(once >= 3, `the queries went through prepare (${once})`);
  for (let i = 0; i < 100; i++) {
    j.ping();
    j.attempts.latest();
    j.outbox.pending(0, 10);
  }
  assert.equal(compiled, once, 'no statement compiled a second time');
});
