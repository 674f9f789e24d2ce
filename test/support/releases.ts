// Releases for tests, one module: the three-component, two-stage add-ons
// release the cluster tests install (src/testbed, shared with the demo), a
// small valid release for protocol and hub tests, and a per-test signing key.
import type { KeyObject } from 'node:crypto';
import type { ReleaseInput, SignedEnvelope } from '../../src/protocol/release.ts';
import { generateReleaseKey, signRelease } from '../../src/protocol/signing.ts';
export { addonsRelease, type AddonVersions } from '../../src/testbed/sample-releases.ts';

export interface TestSigner {
  publicKey: KeyObject;
  privateKey: KeyObject;
  sign(r: ReleaseInput): SignedEnvelope;
}

export function testSigner(): TestSigner {
  const { privateKey, publicKey } = generateReleaseKey();
  return { privateKey, publicKey, sign: (r) => signRelease(r, privateKey) };
}

/** A small valid release for protocol and hub tests. */
export function sampleRelease(overrides: Partial<ReleaseInput> = {}): ReleaseInput {
  return {
    apiVersion: 'fleetlet.io/v1',
    kind: 'Release',
    name: 'edge-addons',
    version: '1.4.2',
    revision: 1,
    issuedAt: '2030-01-01T00:00:00.000Z',
    expiresAt: '2030-01-08T00:00:00.000Z',
    components: [
      {
        name: 'metrics',
        version: '0.9.1',
        manifests: [{ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'metrics', namespace: 'kube-system' } }],
      },
    ],
    ...overrides,
  };
}

/** What an operator PUTs to /api/v1/clusters/:id/release. */
export function sampleReleaseRequest(version = '1.4.2'): Record<string, unknown> {
  const { name, components } = sampleRelease();
  return { name, version, components };
}
