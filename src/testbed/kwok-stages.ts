// Pod lifecycle stages for kwok. kwok falls back to its default node stages
// (initialize, heartbeat) because none are given here, but pod stages are
// ours: besides the normal "becomes Ready", an image tag containing
// `unready` stays Running but never Ready, and one containing `crash` sits in
// CrashLoopBackOff. That is how tests produce real ProgressDeadlineExceeded
// failures through the real deployment controller.

const imageMatches = (pattern: string) => `[.spec.containers[].image | test("${pattern}")] | any`;

const running = `running:
            startedAt: {{ $now | Quote }}`;

interface PodStage {
  name: string;
  /** Which images this stage takes: those matching (In) or not matching (NotIn) the pattern. */
  images: { pattern: string; operator: 'In' | 'NotIn' };
  ready: boolean;
  /** The containers' state block (YAML under `state:`). */
  containerState: string;
  restartCount: number;
}

/** A pod that kwok just scheduled (no IP yet) moves to Running, Ready or not. */
function podStage(s: PodStage): string {
  const status = s.ready ? '"True"' : '"False"';
  const notReady = s.ready ? '' : '\n        reason: ContainersNotReady';
  return `apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: ${s.name}
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.podIP'
      operator: 'DoesNotExist'
    - key: '${imageMatches(s.images.pattern)}'
      operator: '${s.images.operator}'
      values: ['true']
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Initialized
      - lastTransitionTime: {{ $now | Quote }}
        status: ${status}
        type: Ready${notReady}
      - lastTransitionTime: {{ $now | Quote }}
        status: ${status}
        type: ContainersReady${notReady}
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: ${s.ready}
        restartCount: ${s.restartCount}
        state:
          ${s.containerState}
      {{ end }}
      hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
      podIP: {{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}
      phase: Running
      startTime: {{ $now | Quote }}
`;
}

const podDelete = `apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-delete
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'Exists'
  next:
    finalizers:
      empty: true
    delete: true
`;

export const kwokPodStages = [
  podStage({ name: 'pod-ready', images: { pattern: 'unready|crash', operator: 'NotIn' }, ready: true, containerState: running, restartCount: 0 }),
  podStage({ name: 'pod-unready', images: { pattern: 'unready', operator: 'In' }, ready: false, containerState: running, restartCount: 0 }),
  podStage({
    name: 'pod-crash',
    images: { pattern: 'crash', operator: 'In' },
    ready: false,
    containerState: `waiting:
            reason: CrashLoopBackOff
            message: back-off restarting failed container`,
    restartCount: 5,
  }),
  podDelete,
].join('---\n');
