// What a verified release must also pass before the agent accepts it: it may
// only touch namespaces and kinds this cluster allows, may not downgrade
// unless it says so, and the API server must accept every manifest in a
// server-side dry-run. A refusal changes nothing: the previous release and
// state stay in force.
import semver from 'semver';
import type { Release } from '../../protocol/release.ts';
import type { AdmissionRejection } from '../../protocol/reports.ts';
import type { InstalledComponent } from '../../store/installed-repo.ts';
import { KubeApiError, type ClusterClient } from '../kube/cluster-client.ts';
import { describeRef, refOf } from '../kube/object-ref.ts';

export type RejectionReason = AdmissionRejection;

export class ReleaseRejected extends Error {
  readonly reason: RejectionReason;
  constructor(reason: RejectionReason, message: string) {
    super(message);
    this.name = 'ReleaseRejected';
    this.reason = reason;
  }
}

export interface AdmissionPolicy {
  /** Namespaces a release may put objects in; `*` suffix matches a prefix. */
  allowedNamespaces: string[];
  /** Kinds a release may contain (Kind or group/Kind). */
  allowedKinds: string[];
  /** Pods with host access (host network/PID/IPC, hostPath volumes, host ports, privileged containers) may be created. */
  allowHostAccess?: boolean;
  /** RoleBindings may bind ClusterRoles (admin, edit, cluster-admin, ...), not only the release's own Roles. */
  allowClusterRoleBindings?: boolean;
}

export const defaultAdmission: AdmissionPolicy = {
  allowedNamespaces: ['*'],
  allowedKinds: [
    'Namespace',
    'ConfigMap',
    'Service',
    'ServiceAccount',
    'Deployment',
    'DaemonSet',
    'StatefulSet',
    'Role',
    'RoleBinding',
    'PodDisruptionBudget',
    'NetworkPolicy',
  ],
};

const matches = (pattern: string, value: string) => (pattern.endsWith('*') ? value.startsWith(pattern.slice(0, -1)) : pattern === value);

export function checkScope(release: Release, policy: AdmissionPolicy): void {
  for (const c of release.components) {
    for (const m of c.manifests) {
      const group = m.apiVersion.includes('/') ? m.apiVersion.split('/')[0] : '';
      if (!policy.allowedKinds.some((k) => k === m.kind || k === `${group}/${m.kind}`)) {
        throw new ReleaseRejected('ForbiddenKind', `component ${c.name}: kind ${m.kind} (${m.apiVersion}) is not allowed on this cluster; allowed: ${policy.allowedKinds.join(', ')}`);
      }
      const ns = m.kind === 'Namespace' ? m.metadata.name : m.metadata.namespace;
      if (ns !== undefined && !policy.allowedNamespaces.some((p) => matches(p, ns))) {
        throw new ReleaseRejected('ForbiddenNamespace', `component ${c.name}: ${describeRef(refOf(m))} is in namespace ${ns}, which this cluster does not allow (allowed: ${policy.allowedNamespaces.join(', ')})`);
      }
    }
  }
}

type PodSpecLike = {
  hostNetwork?: boolean;
  hostPID?: boolean;
  hostIPC?: boolean;
  volumes?: { name?: string; hostPath?: unknown }[];
  containers?: ContainerLike[];
  initContainers?: ContainerLike[];
};
type ContainerLike = { name?: string; securityContext?: { privileged?: boolean }; ports?: { hostPort?: number }[] };

/** What in a pod spec reaches the node itself; empty when nothing does. */
export function hostAccessOf(pod: PodSpecLike): string[] {
  const found: string[] = [];
  for (const f of ['hostNetwork', 'hostPID', 'hostIPC'] as const) if (pod[f]) found.push(f);
  for (const v of pod.volumes ?? []) if (v.hostPath) found.push(`hostPath volume ${v.name ?? ''}`.trim());
  for (const c of [...(pod.containers ?? []), ...(pod.initContainers ?? [])]) {
    if (c.securityContext?.privileged) found.push(`privileged container ${c.name ?? ''}`.trim());
    if ((c.ports ?? []).some((p) => p.hostPort)) found.push(`hostPort on container ${c.name ?? ''}`.trim());
  }
  return found;
}

/**
 * A signed release runs with the agent's rights; these two would reach
 * beyond the namespaces it manages (docs/security.md, trust boundary): a pod
 * with host access reaches the node, and a RoleBinding to a ClusterRole
 * (admin, edit, cluster-admin) grants what the release's own Roles could not.
 * Refused unless this cluster's admission allows them.
 */
export function checkPrivilege(release: Release, policy: AdmissionPolicy): void {
  for (const c of release.components) {
    for (const m of c.manifests) {
      if (!policy.allowHostAccess && ['Deployment', 'DaemonSet', 'StatefulSet'].includes(m.kind)) {
        const pod = (m as { spec?: { template?: { spec?: PodSpecLike } } }).spec?.template?.spec;
        const found = pod ? hostAccessOf(pod) : [];
        if (found.length > 0) {
          throw new ReleaseRejected('HostAccess', `component ${c.name}: ${describeRef(refOf(m))} asks for host access (${found.join(', ')}), which this cluster does not allow; start the agent with --allow-host-access to permit it`);
        }
      }
      if (!policy.allowClusterRoleBindings && m.kind === 'RoleBinding') {
        const ref = (m as { roleRef?: { kind?: string; name?: string } }).roleRef;
        if (ref?.kind === 'ClusterRole') {
          throw new ReleaseRejected('ClusterRoleBinding', `component ${c.name}: ${describeRef(refOf(m))} binds ClusterRole ${ref.name}, which this cluster does not allow (a release may bind only its own Roles); start the agent with --allow-cluster-role-bindings to permit it`);
        }
      }
    }
  }
}

export function checkDowngrade(release: Release, installed: InstalledComponent[]): void {
  if (release.allowDowngrade) return;
  for (const c of release.components) {
    const now = installed.find((i) => i.component === c.name);
    const from = now && semver.coerce(now.version, { includePrerelease: true });
    const to = semver.coerce(c.version, { includePrerelease: true });
    if (from && to && semver.lt(to, from)) {
      throw new ReleaseRejected('Downgrade', `component ${c.name}: ${c.version} is older than the installed ${now!.version}; a release must set allowDowngrade to roll back on purpose`);
    }
  }
}

export function checkKubernetesVersion(release: Release, serverVersion: string): void {
  const v = semver.coerce(serverVersion);
  const { min, max } = release.kubernetesVersion;
  if (!v) return;
  if (min && semver.lt(v, semver.coerce(min)!)) throw new ReleaseRejected('UnsupportedKubernetesVersion', `release needs Kubernetes >= ${min}; the cluster runs ${serverVersion}`);
  if (max && semver.gt(v, semver.coerce(max)!)) throw new ReleaseRejected('UnsupportedKubernetesVersion', `release supports Kubernetes <= ${max}; the cluster runs ${serverVersion}`);
}

/**
 * Server-side dry-run of every manifest. Objects in a namespace the release
 * itself creates cannot be dry-run before it exists; they are checked when
 * applied, after the Namespace.
 */
export async function dryRun(release: Release, cluster: ClusterClient): Promise<void> {
  const created = new Set(release.components.flatMap((c) => c.manifests.filter((m) => m.kind === 'Namespace').map((m) => m.metadata.name)));
  for (const c of release.components) {
    for (const m of c.manifests) {
      if (m.metadata.namespace && created.has(m.metadata.namespace) && !(await cluster.read({ apiVersion: 'v1', kind: 'Namespace', name: m.metadata.namespace }))) continue;
      try {
        await cluster.apply(m, { dryRun: true });
      } catch (err) {
        if (err instanceof KubeApiError && err.status >= 400 && err.status < 500 && err.status !== 401 && err.status !== 403 && err.status !== 429) {
          throw new ReleaseRejected('DryRunRejected', `component ${c.name}: the API server rejected ${describeRef(refOf(m))}: ${err.message}`);
        }
        throw err; // unreachable API or our own permissions: not the release's fault, retry later
      }
    }
  }
}

export async function admitRelease(release: Release, deps: { cluster: ClusterClient; installed: InstalledComponent[]; policy: AdmissionPolicy }): Promise<void> {
  checkScope(release, deps.policy);
  checkPrivilege(release, deps.policy);
  checkDowngrade(release, deps.installed);
  checkKubernetesVersion(release, await deps.cluster.serverVersion());
  await dryRun(release, deps.cluster);
}
