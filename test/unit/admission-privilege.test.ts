// Releases that would reach beyond the managed namespaces (pods with host
// access, RoleBindings to ClusterRoles) are refused unless the cluster allows them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkPrivilege, defaultAdmission, hostAccessOf, ReleaseRejected } from '../../src/agent/intake/admission.ts';
import { addonsRelease } from '../../src/testbed/sample-releases.ts';
import type { Release } from '../../src/protocol/release.ts';

const release = (manifest: Record<string, unknown>): Release => {
  const r = addonsRelease('addons', 1, { dns: '1.0.0', proxy: '1.0.0', metrics: '1.0.0' });
  return { ...r, components: [{ ...r.components[0]!, manifests: [manifest as never] }] } as unknown as Release;
};
const deployment = (spec: Record<string, unknown>) => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'probe', namespace: 'addons' },
  spec: { selector: { matchLabels: { a: 'b' } }, template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'i' }], ...spec } } },
});

test('pods with host access are refused, naming what they ask for, unless allowed', () => {
  for (const [spec, named] of [
    [{ hostNetwork: true }, /hostNetwork/],
    [{ hostPID: true }, /hostPID/],
    [{ volumes: [{ name: 'root', hostPath: { path: '/' } }] }, /hostPath volume root/],
    [{ containers: [{ name: 'c', image: 'i', securityContext: { privileged: true } }] }, /privileged container c/],
    [{ containers: [{ name: 'c', image: 'i', ports: [{ containerPort: 80, hostPort: 80 }] }] }, /hostPort on container c/],
  ] as const) {
    assert.throws(
      () => checkPrivilege(release(deployment(spec)), defaultAdmission),
      (err: unknown) => err instanceof ReleaseRejected && err.reason === 'HostAccess' && named.test(err.message) && /--allow-host-access/.test(err.message),
      JSON.stringify(spec),
    );
    assert.doesNotThrow(() => checkPrivilege(release(deployment(spec)), { ...defaultAdmission, allowHostAccess: true }));
  }
  assert.deepEqual(hostAccessOf({ containers: [{ name: 'c' }], volumes: [{ name: 'cfg' }] }), []);
  assert.doesNotThrow(() => checkPrivilege(release(deployment({})), defaultAdmission));
});

test('a RoleBinding to a ClusterRole is refused unless allowed; to the release\'s own Role it is fine', () => {
  const binding = (kind: string, name: string) => ({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { name: 'b', namespace: 'addons' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind, name },
    subjects: [{ kind: 'ServiceAccount', name: 'x', namespace: 'addons' }],
  });
  assert.throws(
    () => checkPrivilege(release(binding('ClusterRole', 'cluster-admin')), defaultAdmission),
    (err: unknown) => err instanceof ReleaseRejected && err.reason === 'ClusterRoleBinding' && /cluster-admin/.test(err.message),
  );
  assert.doesNotThrow(() => checkPrivilege(release(binding('ClusterRole', 'admin')), { ...defaultAdmission, allowClusterRoleBindings: true }));
  assert.doesNotThrow(() => checkPrivilege(release(binding('Role', 'reader')), defaultAdmission));
});
