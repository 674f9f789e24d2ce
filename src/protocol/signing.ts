// Release signing. The hub signs the exact JSON text of a release; the agent
// verifies that text before parsing it, so a compromised link or a lying
// parser can never make the agent act on bytes the hub did not sign
// (docs/architecture.md, invariant 4).
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import { release, signedEnvelope, type Release, type ReleaseInput, type SignedEnvelope } from './release.ts';

export const refusalReason = z.enum(['Unsigned', 'BadSignature', 'UnknownKey', 'Malformed', 'Expired', 'Replayed']);
export type RefusalReason = z.infer<typeof refusalReason>;

/** Thrown by verifyRelease; the agent reports it to the hub and runs nothing. */
export class ReleaseRefused extends Error {
  override readonly name = 'ReleaseRefused';
  readonly reason: RefusalReason;
  /** Only set once the signature verified: an unverified revision is not worth repeating. */
  readonly revision: number | undefined;
  constructor(reason: RefusalReason, message: string, revision?: number) {
    super(message);
    this.reason = reason;
    this.revision = revision;
  }
}

export interface ReleaseKeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export function generateReleaseKey(): ReleaseKeyPair {
  return generateKeyPairSync('ed25519');
}

export function exportPrivateKeyPem(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }).toString();
}

export function exportPublicKeyPem(key: KeyObject): string {
  return key.export({ type: 'spki', format: 'pem' }).toString();
}

export function importPrivateKeyPem(pem: string): KeyObject {
  const key = createPrivateKey(pem);
  if (key.asymmetricKeyType !== 'ed25519') throw new TypeError(`release key must be Ed25519, got ${key.asymmetricKeyType ?? 'unknown'}`);
  return key;
}

/** Accepts a public key PEM, or a private key PEM (its public half is used). */
export function importPublicKeyPem(pem: string): KeyObject {
  const key = createPublicKey(pem);
  if (key.asymmetricKeyType !== 'ed25519') throw new TypeError(`release key must be Ed25519, got ${key.asymmetricKeyType ?? 'unknown'}`);
  return key;
}

/**
 * A short stable name for a public key, so an agent holding several keys
 * (during a rotation) knows which one to try, and a refusal can say which
 * key the hub used.
 */
export function keyIdOf(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return createHash('sha256').update(pub.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16);
}

/** Validates the release (the hub never signs something an agent would refuse as malformed) and signs its JSON text. */
export function signRelease(input: ReleaseInput, privateKey: KeyObject, keyId: string = keyIdOf(privateKey)): SignedEnvelope {
  const parsed = release.parse(input);
  const payload = JSON.stringify(parsed);
  const signature = sign(null, Buffer.from(payload, 'utf8'), privateKey).toString('base64');
  return { payload, signature, keyId };
}

export interface VerifyOptions {
  now: () => Date;
  /** The newest revision the agent already accepted; anything not newer is a replay. */
  lastRevision: number;
}

type EnvelopeFailure = 'Unsigned' | 'Malformed' | 'UnknownKey' | 'BadSignature';

/**
 * The part of verification releases and overrides share: the envelope is
 * well formed, signed by a trusted key, and its payload is JSON. Returns the
 * parsed payload; `fail` builds the caller's own refusal error.
 */
export function openSignedEnvelope(envelope: unknown, trusted: KeyObject | readonly KeyObject[], what: string, fail: (reason: EnvelopeFailure, message: string) => Error): unknown {
  if (typeof envelope !== 'object' || envelope === null) {
    throw fail('Unsigned', `no signed envelope: the hub must send the ${what} signed with its release key`);
  }
  const signature = (envelope as { signature?: unknown }).signature;
  if (signature === undefined || signature === null || signature === '') {
    throw fail('Unsigned', `${what} carries no signature: the hub must sign it with its release key`);
  }
  const env = signedEnvelope.safeParse(envelope);
  if (!env.success) {
    const issue = env.error.issues[0];
    throw fail('Malformed', `signed envelope is malformed at ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`);
  }
  const keys = Array.isArray(trusted) ? trusted : [trusted as KeyObject];
  const key = keys.find((k) => keyIdOf(k) === env.data.keyId);
  if (key === undefined) {
    throw fail('UnknownKey', `${what} signed with key ${env.data.keyId}, which this agent does not trust (trusted: ${keys.map(keyIdOf).join(', ') || 'none'}); configure the hub's public release key`);
  }
  let valid = false;
  try {
    valid = verify(null, Buffer.from(env.data.payload, 'utf8'), key.type === 'private' ? createPublicKey(key) : key, Buffer.from(env.data.signature, 'base64'));
  } catch {
    valid = false;
  }
  if (!valid) throw fail('BadSignature', `signature does not match the payload for key ${env.data.keyId}: the ${what} was altered or forged`);
  try {
    return JSON.parse(env.data.payload) as unknown;
  } catch {
    throw fail('Malformed', 'signed payload is not JSON');
  }
}

export function verifyRelease(envelope: unknown, trusted: KeyObject | readonly KeyObject[], opts: VerifyOptions): Release {
  const r = openRelease(envelope, trusted);
  if (r.revision <= opts.lastRevision) {
    throw new ReleaseRefused('Replayed', `revision ${r.revision} is not newer than the accepted revision ${opts.lastRevision}`, r.revision);
  }
  const now = opts.now().getTime();
  if (Date.parse(r.expiresAt) <= now) {
    throw new ReleaseRefused('Expired', `release revision ${r.revision} expired at ${r.expiresAt}; the operator must set the release again`, r.revision);
  }
  return r;
}

/**
 * A release another agent of this cluster accepted before (the in-cluster
 * hand-over record is cluster data, so it is verified again): signed and well
 * formed as always, judged as of its issue time, when it was in force for the
 * agent that accepted it (the schema already holds expiresAt after issuedAt),
 * and not against our revision: the record's story is the newer one.
 */
export function verifyAcceptedRelease(envelope: unknown, trusted: KeyObject | readonly KeyObject[]): Release {
  return openRelease(envelope, trusted);
}

function openRelease(envelope: unknown, trusted: KeyObject | readonly KeyObject[]): Release {
  const json = openSignedEnvelope(envelope, trusted, 'release', (reason, message) => new ReleaseRefused(reason, message));
  const parsed = release.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ReleaseRefused('Malformed', `signed release is invalid at ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}
