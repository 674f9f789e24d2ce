// Which pods are a workload's current revision, and what their containers
// say: the facts the early failure rule reads (src/agent/upgrade/decide.ts).
// An old pod that crash-loops must never count: it is often why one upgrades.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { KubeObject } from '../../src/protocol/release.ts';
import { containerFacts, currentRevisionPods, revisionKind } from '../../src/agent/kube/workload-health.ts';

const obj = (kind: string, name: string, more: { uid?: string; owner?: string; labels?: Record<string, string>; annotations?: Record<string, string>; generation?: number; status?: unknown; revision?: number; podStatus?: unknown } = {}): KubeObject =>
  ({
    apiVersion: kind === 'Pod' ? 'v1' : 'apps/v1',
    kind,
    metadata: {
      name,
      namespace: 'addons',
      ...(more.uid ? { uid: more.uid } : {}),
      ...(more.owner ? { ownerReferences: [{ uid: more.owner }] } : {}),
      ...(more.labels ? { labels: more.labels } : {}),
      ...(more.annotations ? { annotations: more.annotations } : {}),
      ...(more.generation ? { generation: more.generation } : {}),
    },
    ...(more.status ? { status: more.status } : {}),
    ...(more.podStatus ? { status: more.podStatus } : {}),
    ...(more.revision !== undefined ? { revision: more.revision } : {}),
  }) as KubeObject;
const names = (pods: KubeObject[]) => pods.map((p) => p.metadata.name).sort();
const REV = 'deployment.kubernetes.io/revision';

describe('the pods of a workload’s current revision', () => {
  test('a Deployment: the ReplicaSet of its revision annotation, once the controller observed its generation', () => {
    const deployment = (observed: number) => obj('Deployment', 'dns', { uid: 'd', generation: 2, annotations: { [REV]: '2' }, status: { observedGeneration: observed } });
    const sets = [obj('ReplicaSet', 'dns-old', { uid: 'rs1', owner: 'd', annotations: { [REV]: '1' } }), obj('ReplicaSet', 'dns-new', { uid: 'rs2', owner: 'd', annotations: { [REV]: '2' } }), obj('ReplicaSet', 'other', { uid: 'rs3', owner: 'x', annotations: { [REV]: '2' } })];
    const pods = [obj('Pod', 'old-1', { owner: 'rs1' }), obj('Pod', 'new-1', { owner: 'rs2' }), obj('Pod', 'new-2', { owner: 'rs2' }), obj('Pod', 'stranger', { owner: 'rs3' })];
    assert.deepEqual(names(currentRevisionPods(deployment(2), sets, pods)), ['new-1', 'new-2']);
    assert.deepEqual(currentRevisionPods(deployment(1), sets, pods), [], 'generation not observed: the newest revision it names is the old one');
    assert.equal(revisionKind('Deployment'), 'ReplicaSet');
  });

  test('a StatefulSet: its updateRevision; a DaemonSet: its newest ControllerRevision', () => {
    const sts = obj('StatefulSet', 'db', { uid: 's', generation: 3, status: { observedGeneration: 3, updateRevision: 'db-b' } });
    const stsPods = [obj('Pod', 'db-0', { owner: 's', labels: { 'controller-revision-hash': 'db-a' } }), obj('Pod', 'db-1', { owner: 's', labels: { 'controller-revision-hash': 'db-b' } })];
    assert.deepEqual(names(currentRevisionPods(sts, [], stsPods)), ['db-1']);
    assert.equal(revisionKind('StatefulSet'), undefined);

    const ds = obj('DaemonSet', 'agent', { uid: 'ds', generation: 5, status: { observedGeneration: 5 } });
    const revisions = [obj('ControllerRevision', 'agent-aaa', { owner: 'ds', labels: { 'controller-revision-hash': 'aaa' }, revision: 4 }), obj('ControllerRevision', 'agent-bbb', { owner: 'ds', labels: { 'controller-revision-hash': 'bbb' }, revision: 5 })];
    const dsPods = [obj('Pod', 'agent-x', { owner: 'ds', labels: { 'controller-revision-hash': 'aaa' } }), obj('Pod', 'agent-y', { owner: 'ds', labels: { 'controller-revision-hash': 'bbb' } })];
    assert.deepEqual(names(currentRevisionPods(ds, revisions, dsPods)), ['agent-y']);
    assert.deepEqual(currentRevisionPods(ds, [], dsPods), [], 'no revision known: no pods');
  });
});

describe('what the containers that are not running say', () => {
  test('waiting reason, restarts and the last exit; running containers and finished init containers are not facts', () => {
    const pod = obj('Pod', 'dns-1', {
      podStatus: {
        initContainerStatuses: [
          { name: 'migrate', restartCount: 0, state: { terminated: { exitCode: 0, reason: 'Completed' } } },
          { name: 'wait-db', restartCount: 2, state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 20s' } }, lastState: { terminated: { exitCode: 1, reason: 'Error' } } },
        ],
        containerStatuses: [
          { name: 'sidecar', restartCount: 0, state: { running: { startedAt: 'x' } } },
          { name: 'dns', restartCount: 4, state: { terminated: { exitCode: 137, reason: 'OOMKilled' } }, lastState: { terminated: { exitCode: 1 } } },
          { name: 'pull', restartCount: 0, state: { waiting: { reason: 'ImagePullBackOff' } } },
        ],
      },
    });
    assert.deepEqual(containerFacts([pod]), [
      { pod: 'addons/dns-1', container: 'wait-db', init: true, restartCount: 2, waiting: { reason: 'CrashLoopBackOff', message: 'back-off 20s' }, exit: { code: 1, reason: 'Error' } },
      { pod: 'addons/dns-1', container: 'dns', init: false, restartCount: 4, exit: { code: 137, reason: 'OOMKilled' } },
      { pod: 'addons/dns-1', container: 'pull', init: false, restartCount: 0, waiting: { reason: 'ImagePullBackOff' } },
    ]);
  });
});
