// Secrets the hub checks (operator and bootstrap tokens, legacy bearer
// credentials). Random ones come from node:crypto's CSPRNG, never from an
// injected random: a test PRNG must not be able to mint them.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export interface IssuedCredential {
  credential: string;
  hash: string;
}

/**
 * A per-cluster bearer credential, 32 random bytes, as hubs issued them
 * before agents registered keys; the hub issues none now, but still
 * accepts one by its hash until that agent binds a key (docs/security.md).
 */
export function issueCredential(): IssuedCredential {
  const credential = randomBytes(32).toString('base64url');
  return { credential, hash: hashSecret(credential) };
}

/** sha256 is enough for 256-bit random secrets, and lets the hub find a credential's owner by index. */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** Compares digests, so neither length nor content leaks through timing. */
export function secretMatches(presented: string, expected: string): boolean {
  const a = createHash('sha256').update(presented, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b);
}

export function matchesAny(presented: string, expected: readonly string[]): boolean {
  let found = false;
  // No early exit: every token is compared, so timing does not say which matched.
  for (const e of expected) found = secretMatches(presented, e) || found;
  return found;
}

/** The token of an `Authorization: Bearer <token>` header, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  const m = /^Bearer ([A-Za-z0-9._~+/=-]{1,512})$/.exec(header ?? '');
  return m?.[1];
}
