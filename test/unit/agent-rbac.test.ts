// The agent's RBAC from one list of namespaces (src/lib/agent-rbac.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultAdmission } from '../../src/agent/intake/admission.ts';
import { addonResources, agentRbacObjects, InvalidNamespaceList, parseNamespaceList } from '../../src/lib/agent-rbac.ts';

test('a Role and RoleBinding in each listed namespace and the agent\'s own, nothing elsewhere', () => {
  const objs = agentRbacObjects({ allowedNamespaces: ['monitoring', 'ingress'], agentNamespace: 'fleetlet-system' }) as { kind: string; metadata: { name: string; namespace?: string }; data?: Record<string, string>; rules?: { resources: string[]; resourceNames?: string[] }[] }[];
  const roles = objs.filter((o) => o.kind === 'Role').map((o) => o.metadata.namespace);
  assert.deepEqual(roles, ['fleetlet-system', 'monitoring', 'ingress']);
  assert.deepEqual(objs.filter((o) => o.kind === 'RoleBinding').map((o) => o.metadata.namespace), roles);
  assert.ok(!objs.some((o) => o.metadata.namespace === 'kube-system'));
  const cluster = objs.find((o) => o.kind === 'ClusterRole')!;
  // Cluster-wide: no write on anything but the listed namespaces themselves.
  assert.deepEqual(cluster.rules!.find((r) => r.resources.includes('namespaces'))!.resourceNames, ['fleetlet-system', 'monitoring', 'ingress']);
  assert.equal(objs.find((o) => o.kind === 'ConfigMap')!.data!.namespaces, 'fleetlet-system,monitoring,ingress');
});

test('the Roles cover exactly the kinds admission lets a release contain', () => {
  const kindToResource = (k: string) => (k.endsWith('y') ? `${k.toLowerCase().slice(0, -1)}ies` : `${k.toLowerCase()}s`);
  const granted = addonResources.flatMap((r) => r.resources).sort();
  const admitted = defaultAdmission.allowedKinds.filter((k) => k !== 'Namespace').map(kindToResource).sort();
  assert.deepEqual(granted, admitted);
});

test('the list names namespaces exactly: no wildcards, no empty list, no invalid names', () => {
  assert.deepEqual(parseNamespaceList(' a, b ,a'), ['a', 'b']);
  for (const bad of ['', ' , ', '*', 'addons-*', 'Kube-System', 'a_b']) assert.throws(() => parseNamespaceList(bad), InvalidNamespaceList, bad);
});
