// Pod lifecycle stages for kwok. kwok falls back to its default node stages
// (initialize, heartbeat) because none are given here, but pod stages are
// ours: besides the normal "becomes Ready", an image tag containing
// `unready` stays Running but never Ready, and one containing `crash` sits in
// CrashLoopBackOff. That is how tests produce real ProgressDeadlineExceeded
// failures through the real deployment controller.

const failingImage = '[.spec.containers[].image | test("unready|crash")] | any';
const imageMatches = (word: string) => `[.spec.containers[].image | test("${word}")] | any`;

const notDeletedAndNew = `
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.podIP'
      operator: 'DoesNotExist'`;

const podAddresses = `
      hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
      podIP: {{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}
      phase: Running
      startTime: {{ $now | Quote }}`;

function notReadyStage(name: string, word: string, containerState: string, restartCount: number): string {
  return `apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: ${name}
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:${notDeletedAndNew}
    - key: '${imageMatches(word)}'
      operator: 'In'
      values: ['true']
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Initialized
      - lastTransitionTime: {{ $now | Quote }}
        status: "False"
        type: Ready
        reason: ContainersNotReady
      - lastTransitionTime: {{ $now | Quote }}
        status: "False"
        type: ContainersReady
        reason: ContainersNotReady
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: false
        restartCount: ${restartCount}
        state:
${containerState}
      {{ end }}${podAddresses}
`;
}

export const kwokPodStages = `apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-ready
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:${notDeletedAndNew}
    - key: '${failingImage}'
      operator: 'NotIn'
      values: ['true']
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Initialized
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Ready
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: ContainersReady
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: true
        restartCount: 0
        state:
          running:
            startedAt: {{ $now | Quote }}
      {{ end }}${podAddresses}
---
${notReadyStage(
  'pod-unready',
  'unready',
  `          running:
            startedAt: {{ $now | Quote }}`,
  0,
)}---
${notReadyStage(
  'pod-crash',
  'crash',
  `          waiting:
            reason: CrashLoopBackOff
            message: back-off restarting failed container`,
  5,
)}---
apiVersion: kwok.x-k8s.io/v1alpha1
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
