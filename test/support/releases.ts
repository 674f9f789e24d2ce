// Releases for tests: three components in two stages, built the way a hub
// would, signed with a per-test key.
import type { KeyObject } from 'node:crypto';
import type { ReleaseInput, SignedEnvelope } from '../../src/protocol/release.ts';
export { addonsRelease, type AddonVersions } from '../../src/testbed/sample-releases.ts';
import { generateReleaseKey, signRelease } from '../../src/protocol/signing.ts';

export interface TestSigner {
  publicKey: KeyObject;
  privateKey: KeyObject;
  sign(r: ReleaseInput): SignedEnvelope;
}

export function testSigner(): TestSigner {
  const { privateKey, publicKey } = generateReleaseKey();
  return { privateKey, publicKey, sign: (r) => signRelease(r, privateKey) };
}
