// An agent's identity: an Ed25519 key pair the agent generates itself and
// never sends anywhere; the hub learns only the public half (at
// registration) and, on every connect, asks for a signature over a fresh
// challenge. Nothing secret travels over the wire, so there is nothing to
// steal before, during or after an operator accepts the cluster
// (docs/security.md).
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { z } from 'zod';

/** An Ed25519 public key as its 32 raw bytes, base64url (43 characters). */
export const agentPublicKey = z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'must be an Ed25519 public key: 32 bytes, base64url');
/** An Ed25519 signature, 64 bytes, base64url (86 characters). */
export const agentProof = z.string().regex(/^[A-Za-z0-9_-]{86}$/, 'must be an Ed25519 signature: 64 bytes, base64url');
/** The hub's challenge: 32 random bytes, base64url. */
export const challengeNonce = z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'must be 32 bytes, base64url');

export interface AgentKeyPair {
  privateKey: KeyObject;
  /** base64url of the raw public key, as the hub stores it. */
  publicKey: string;
}

export function generateAgentKey(): AgentKeyPair {
  const { privateKey } = generateKeyPairSync('ed25519');
  return { privateKey, publicKey: encodeAgentPublicKey(privateKey) };
}

/** The raw 32-byte public key of an Ed25519 private or public key, base64url. */
export function encodeAgentPublicKey(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  const jwk = pub.export({ format: 'jwk' });
  if (jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') throw new TypeError('an agent key must be Ed25519');
  return jwk.x;
}

export function exportAgentKeyPem(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }).toString();
}

export function importAgentKeyPem(pem: string): AgentKeyPair {
  const privateKey = createPrivateKey(pem);
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new TypeError(`the agent key must be Ed25519, got ${privateKey.asymmetricKeyType ?? 'unknown'}`);
  return { privateKey, publicKey: encodeAgentPublicKey(privateKey) };
}

/** A short name for a public key, shown to operators to tell two registrants apart. */
export function agentKeyFingerprint(publicKey: string): string {
  return `sha256:${createHash('sha256').update(Buffer.from(publicKey, 'base64url')).digest('hex').slice(0, 32)}`;
}

/**
 * What the agent signs: a fixed label, the purpose, the hub's nonce and the
 * cluster id. The label keeps the signature useless for anything else the
 * key might sign; the purpose keeps a registration proof from serving as a
 * hello; the nonce makes every proof good for one connection only.
 */
function transcript(purpose: 'register' | 'hello', nonce: string, clusterId: string): Buffer {
  return Buffer.from(`fleetlet-agent-proof/v1\n${purpose}\n${nonce}\n${clusterId}`, 'utf8');
}

export function signChallenge(key: KeyObject, purpose: 'register' | 'hello', nonce: string, clusterId: string): string {
  return sign(null, transcript(purpose, nonce, clusterId), key).toString('base64url');
}

/** False for any malformed key or signature: a verifier never throws on what a peer sent. */
export function verifyChallenge(publicKey: string, proof: string, purpose: 'register' | 'hello', nonce: string, clusterId: string): boolean {
  try {
    const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: publicKey }, format: 'jwk' });
    return verify(null, transcript(purpose, nonce, clusterId), key, Buffer.from(proof, 'base64url'));
  } catch {
    return false;
  }
}
