import assert from 'node:assert/strict';
import { sign } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  exportPrivateKeyPem,
  exportPublicKeyPem,
  generateReleaseKey,
  importPrivateKeyPem,
  importPublicKeyPem,
  keyIdOf,
  ReleaseRefused,
  signRelease,
  verifyRelease,
  type RefusalReason,
} from '../../src/protocol/signing.ts';
import { sampleRelease } from '../support/releases.ts';

const now = () => new Date('2030-01-02T00:00:00.000Z');
const key = generateReleaseKey();

function refusal(fn: () => unknown): RefusalReason {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ReleaseRefused, `expected ReleaseRefused, got ${String(err)}`);
    assert.ok(err.message.length > 10);
    return err.reason;
  }
  assert.fail('expected the release to be refused');
}

describe('release signing', () => {
  it('verifies a release it signed and returns the parsed release', () => {
    const env = signRelease(sampleRelease({ revision: 3 }), key.privateKey);
    const r = verifyRelease(env, key.publicKey, { now, lastRevision: 2 });
    assert.equal(r.revision, 3);
    assert.equal(r.components[0]?.stage, 0, 'defaults applied by the release schema');
    assert.equal(env.keyId, keyIdOf(key.publicKey));
  });

  it('round-trips keys through PEM', () => {
    const priv = importPrivateKeyPem(exportPrivateKeyPem(key.privateKey));
    const pub = importPublicKeyPem(exportPublicKeyPem(key.publicKey));
    const env = signRelease(sampleRelease(), priv);
    assert.equal(verifyRelease(env, pub, { now, lastRevision: 0 }).name, 'edge-addons');
    assert.equal(keyIdOf(priv), keyIdOf(pub));
  });

  it('refuses a forged payload (BadSignature)', () => {
    const env = signRelease(sampleRelease(), key.privateKey);
    const forged = { ...env, payload: env.payload.replace('0.9.1', '6.6.6') };
    assert.equal(refusal(() => verifyRelease(forged, key.publicKey, { now, lastRevision: 0 })), 'BadSignature');
  });

  it('refuses a release signed by another key that claims the trusted key id (BadSignature)', () => {
    const other = generateReleaseKey();
    const env = signRelease(sampleRelease(), other.privateKey, keyIdOf(key.publicKey));
    assert.equal(refusal(() => verifyRelease(env, key.publicKey, { now, lastRevision: 0 })), 'BadSignature');
  });

  it('refuses a release signed with an untrusted key (UnknownKey) and accepts it when the key is trusted', () => {
    const other = generateReleaseKey();
    const env = signRelease(sampleRelease(), other.privateKey);
    assert.equal(refusal(() => verifyRelease(env, key.publicKey, { now, lastRevision: 0 })), 'UnknownKey');
    assert.equal(verifyRelease(env, [key.publicKey, other.publicKey], { now, lastRevision: 0 }).revision, 1);
  });

  it('refuses unsigned releases (Unsigned)', () => {
    const env = signRelease(sampleRelease(), key.privateKey);
    assert.equal(refusal(() => verifyRelease({ payload: env.payload, keyId: env.keyId }, key.publicKey, { now, lastRevision: 0 })), 'Unsigned');
    assert.equal(refusal(() => verifyRelease({ ...env, signature: '' }, key.publicKey, { now, lastRevision: 0 })), 'Unsigned');
    assert.equal(refusal(() => verifyRelease(undefined, key.publicKey, { now, lastRevision: 0 })), 'Unsigned');
    assert.equal(refusal(() => verifyRelease(JSON.parse(env.payload), key.publicKey, { now, lastRevision: 0 })), 'Unsigned');
  });

  it('refuses an expired release (Expired)', () => {
    const env = signRelease(sampleRelease({ issuedAt: '2029-12-01T00:00:00.000Z', expiresAt: '2030-01-01T00:00:00.000Z' }), key.privateKey);
    const err = (() => {
      try {
        verifyRelease(env, key.publicKey, { now, lastRevision: 0 });
      } catch (e) {
        return e as ReleaseRefused;
      }
      return undefined;
    })();
    assert.equal(err?.reason, 'Expired');
    assert.equal(err?.revision, 1, 'a verified revision is named in the refusal');
  });

  it('refuses a replayed (not newer) revision (Replayed)', () => {
    const env = signRelease(sampleRelease({ revision: 5 }), key.privateKey);
    assert.equal(refusal(() => verifyRelease(env, key.publicKey, { now, lastRevision: 5 })), 'Replayed');
    assert.equal(refusal(() => verifyRelease(env, key.publicKey, { now, lastRevision: 9 })), 'Replayed');
    assert.equal(verifyRelease(env, key.publicKey, { now, lastRevision: 4 }).revision, 5);
  });

  it('refuses a validly signed payload that is not a release, and a malformed envelope (Malformed)', () => {
    const text = JSON.stringify({ hello: 'world' });
    // Signed with the trusted key, so only the release schema can catch it (a hub bug, not an attacker).
    const envelope = { payload: text, signature: sign(null, Buffer.from(text, 'utf8'), key.privateKey).toString('base64'), keyId: keyIdOf(key.publicKey) };
    assert.equal(refusal(() => verifyRelease(envelope, key.publicKey, { now, lastRevision: 0 })), 'Malformed');
    assert.equal(refusal(() => verifyRelease({ payload: 1, signature: 'AAAA', keyId: 'x' }, key.publicKey, { now, lastRevision: 0 })), 'Malformed');
    assert.equal(refusal(() => verifyRelease({ payload: '{}', signature: 'not base64!', keyId: 'x' }, key.publicKey, { now, lastRevision: 0 })), 'Malformed');
  });

  it('never signs a release that would not verify as well-formed', () => {
    assert.throws(() => signRelease(sampleRelease({ name: 'Not A Label' }), key.privateKey));
  });
});
