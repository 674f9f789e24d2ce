// test/support/kustomize.ts: the kustomize subset manifests/ may use, and
// its refusals of everything else.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { renderComponent, renderKustomization, strategicMerge } from '../support/kustomize.ts';

function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'fleetlet-kust-'));
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, p)), { recursive: true });
    writeFileSync(join(root, p), text);
  }
  return root;
}

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata: { name: app }
spec:
  template:
    spec:
      containers:
        - { name: a, image: a:1, args: [x] }
        - { name: b, image: b:1 }
`;

test('resources, namespace, patches by name, null deletes, subjects follow the namespace', () => {
  const root = tree({
    'base/kustomization.yaml': 'resources: [deploy.yaml, rbac.yaml]\n',
    'base/deploy.yaml': deployment,
    'base/rbac.yaml': `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: { name: crb }
subjects: [{ kind: ServiceAccount, name: sa, namespace: old }]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: rb }
subjects: [{ kind: ServiceAccount, name: sa, namespace: old }, { kind: User, name: u }]
`,
    'overlay/kustomization.yaml': 'namespace: prod\nresources: [../base]\npatches:\n  - path: patch.yaml\n',
    'overlay/patch.yaml': `apiVersion: apps/v1
kind: Deployment
metadata: { name: app }
spec:
  template:
    spec:
      containers:
        - { name: b, image: b:2 }
        - { name: c, image: c:1 }
      serviceAccountName: null
`,
  });
  const out = renderKustomization(join(root, 'overlay'));
  const dep = out.find((o) => o.kind === 'Deployment')!;
  assert.equal(dep.metadata.namespace, 'prod');
  assert.deepEqual((dep.spec as { template: { spec: unknown } }).template.spec, {
    containers: [
      { name: 'a', image: 'a:1', args: ['x'] },
      { name: 'b', image: 'b:2' },
      { name: 'c', image: 'c:1' },
    ],
  });
  const crb = out.find((o) => o.kind === 'ClusterRoleBinding')!;
  assert.equal(crb.metadata.namespace, undefined, 'cluster-scoped objects get no namespace');
  assert.deepEqual(crb.subjects, [{ kind: 'ServiceAccount', name: 'sa', namespace: 'prod' }]);
  assert.deepEqual(out.find((o) => o.kind === 'RoleBinding')!.subjects, [
    { kind: 'ServiceAccount', name: 'sa', namespace: 'prod' },
    { kind: 'User', name: 'u' },
  ]);
});

test('refuses what kustomize refuses or this subset does not implement', () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ 'k/kustomization.yaml': 'resources: [../outside.yaml]\n', 'outside.yaml': deployment }, /outside .*load restrictor/],
    [{ 'k/kustomization.yaml': 'images: [{ name: a, newTag: "2" }]\n' }, /field "images" is not supported/],
    [{ 'k/kustomization.yaml': 'resources: [a.yaml, b.yaml]\n', 'k/a.yaml': deployment, 'k/b.yaml': deployment }, /already in the resource set/],
    [{ 'k/kustomization.yaml': 'configMapGenerator: [{ name: c, literals: [a=b] }]\n' }, /disableNameSuffixHash/],
    [{ 'k/kustomization.yaml': 'resources: [a.yaml]\npatches: [{ path: p.yaml }]\n', 'k/a.yaml': deployment, 'k/p.yaml': 'apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: other }\n' }, /matches no resource/],
    [{ 'k/kustomization.yaml': 'resources: [missing.yaml]\n' }, /does not exist/],
    [{ 'k/kustomization.yaml': 'components: [../c]\n', 'c/kustomization.yaml': 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n' }, /kind Kustomization, expected Component/],
  ];
  for (const [files, message] of cases) assert.throws(() => renderKustomization(join(tree(files), 'k')), message);
});

test('configMapGenerator: files (with key=), literals, generator labels', () => {
  const root = tree({
    'k/kustomization.yaml': `generatorOptions: { disableNameSuffixHash: true, labels: { app: x } }
configMapGenerator:
  - name: cfg
    files: [policy.yaml, renamed.yaml=other.yaml]
    literals: [mode=fast]
`,
    'k/policy.yaml': 'a: 1\n',
    'k/other.yaml': 'b: 2\n',
  });
  const [cm] = renderKustomization(join(root, 'k'));
  assert.deepEqual(cm, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cfg', labels: { app: 'x' } }, data: { 'policy.yaml': 'a: 1\n', 'renamed.yaml': 'b: 2\n', mode: 'fast' } });
});

test('every kustomization and component under manifests/ renders in this subset', () => {
  const manifests = new URL('../../manifests/', import.meta.url).pathname;
  for (const dir of ['examples', 'base', 'overlays/deployment', 'overlays/daemonset']) assert.ok(renderKustomization(join(manifests, dir)).length > 0, dir);
  for (const dir of ['components/prometheus-rules', 'components/rbac-role-escalation']) assert.ok(renderComponent(join(manifests, dir)).length > 0, dir);
});

test('strategic merge keeps lists of unnamed items whole', () => {
  assert.deepEqual(strategicMerge({ args: ['a', 'b'] }, { args: ['c'] }), { args: ['c'] });
});
