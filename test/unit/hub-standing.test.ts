// When a revoked agent may knock again (pure), and where tokens come from.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { bootstrapDigest, decideStanding } from '../../src/agent/hub-standing.ts';
import type { AgentIdentity } from '../../src/agent/kube/credential-secret.ts';
import { readSecretFile, readSecretLines, SecretFileError } from '../../src/lib/secret-file.ts';
import { generateAgentKey } from '../../src/protocol/agent-identity.ts';

const TOKEN = 'a'.repeat(43);
const identity = (revokedUnder?: string): AgentIdentity => ({
  key: generateAgentKey(),
  registered: revokedUnder === undefined,
  legacyCredential: undefined,
  ...(revokedUnder !== undefined ? { revoked: { at: '2026-11-30T00:00:00.000Z', reason: 'revoked', bootstrapDigest: bootstrapDigest(revokedUnder || undefined) } } : {}),
});

describe('a revoked agent waits for a new bootstrap', () => {
  it('connects when not revoked, with or without a token', () => {
    assert.equal(decideStanding(identity(), TOKEN), 'connect');
    assert.equal(decideStanding(identity(), undefined), 'connect');
  });

  it('waits under the token it was revoked with, or with none', () => {
    assert.equal(decideStanding(identity(TOKEN), TOKEN), 'wait');
    assert.equal(decideStanding(identity(TOKEN), undefined), 'wait');
    assert.equal(decideStanding(identity(''), undefined), 'wait');
  });

  it('bootstraps again with a token it was not revoked under', () => {
    assert.equal(decideStanding(identity(TOKEN), 'b'.repeat(43)), 'rebootstrap');
    assert.equal(decideStanding(identity(''), TOKEN), 'rebootstrap');
  });

  it('keeps only a digest of the token', () => {
    const d = bootstrapDigest(TOKEN);
    assert.ok(d?.startsWith('sha256:'));
    assert.ok(!d?.includes(TOKEN.slice(0, 10)));
    assert.equal(bootstrapDigest(undefined), null);
    assert.equal(bootstrapDigest(''), null);
  });
});

describe('secrets from files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fleetlet-secret-'));

  it('reads a token without its trailing newline, again on every call', () => {
    const file = join(dir, 'token');
    writeFileSync(file, `${TOKEN}\n`);
    assert.equal(readSecretFile(file), TOKEN);
    writeFileSync(file, 'b'.repeat(43));
    assert.equal(readSecretFile(file), 'b'.repeat(43), 'a file updated in place is read anew');
  });

  it('a missing or empty file holds no token yet (an optional Secret volume)', () => {
    assert.equal(readSecretFile(join(dir, 'absent')), undefined);
    writeFileSync(join(dir, 'empty'), ' \n');
    assert.equal(readSecretFile(join(dir, 'empty')), undefined);
  });

  it('any other failure names the file', () => {
    mkdirSync(join(dir, 'a-directory'));
    assert.throws(() => readSecretFile(join(dir, 'a-directory')), (err: unknown) => err instanceof SecretFileError && err.message.includes('a-directory'));
  });

  it('a token list is one token a line; blank lines and comments are skipped; a missing list is an error', () => {
    const file = join(dir, 'tokens');
    writeFileSync(file, `# issued 2026-11-30\n${TOKEN}\n\n  ${'c'.repeat(43)}  \n`);
    assert.deepEqual(readSecretLines(file), [TOKEN, 'c'.repeat(43)]);
    assert.throws(() => readSecretLines(join(dir, 'absent')), /missing or empty/);
  });
});
