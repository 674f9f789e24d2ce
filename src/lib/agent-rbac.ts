// The agent's permissions, generated from one list: the namespaces releases
// may touch. Write access exists only in those namespaces (one Role each);
// cluster-wide the agent may only read nodes and get/patch the listed
// namespaces themselves. Nothing lands in kube-system unless it is listed.
// `fleetlet rbac` prints these objects; manifests/base/allowed-namespaces.yaml
// is its output for the shipped list (a test keeps the two identical).
import { stringify } from 'yaml';

/** The kinds a release may contain, by API group and resource; the verbs the agent uses on each. */
export const addonResources: readonly { apiGroup: string; resources: string[] }[] = [
  { apiGroup: '', resources: ['configmaps', 'services', 'serviceaccounts'] },
  { apiGroup: 'apps', resources: ['deployments', 'daemonsets', 'statefulsets'] },
  { apiGroup: 'rbac.authorization.k8s.io', resources: ['roles', 'rolebindings'] },
  { apiGroup: 'policy', resources: ['poddisruptionbudgets'] },
  { apiGroup: 'networking.k8s.io', resources: ['networkpolicies'] },
];
//   get     snapshots (last known good), health checks, prune ownership checks
//   list    workloads' pods, PodDisruptionBudgets before a stage, pre-pull DaemonSets
//   create  server-side apply of an object that does not exist yet
//   patch   server-side apply (and its dry-run)
//   delete  pruning what a new version dropped; rollback of created objects
export const addonVerbs = ['get', 'list', 'create', 'patch', 'delete'] as const;

export const AGENT_SERVICE_ACCOUNT = 'fleetlet';
const labels = { 'app.kubernetes.io/name': 'fleetlet', 'app.kubernetes.io/part-of': 'fleetlet' };

export class InvalidNamespaceList extends Error {
  readonly reason = 'InvalidNamespaceList';
  constructor(message: string) {
    super(message);
    this.name = 'InvalidNamespaceList';
  }
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** Parses `a,b,c`: explicit names only (RBAC cannot express prefixes or `*`). */
export function parseNamespaceList(list: string): string[] {
  const names = list.split(',').map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) throw new InvalidNamespaceList('the list of allowed namespaces is empty: name at least one namespace releases may touch');
  for (const n of names) {
    if (!DNS_LABEL.test(n)) throw new InvalidNamespaceList(`"${n}" is not a namespace name (lower-case letters, digits and '-', at most 63 characters; no wildcards: RBAC grants by exact name)`);
  }
  return [...new Set(names)];
}

export interface AgentRbacOptions {
  /** Namespaces releases may touch. */
  allowedNamespaces: string[];
  /** The agent's own namespace (its ServiceAccount lives there; self-upgrades apply there). */
  agentNamespace: string;
}

/** Every object that grants the agent its add-on rights, in apply order. */
export function agentRbacObjects(o: AgentRbacOptions): Record<string, unknown>[] {
  const allowed = [...o.allowedNamespaces];
  const writable = [...new Set([o.agentNamespace, ...allowed])];
  const subject = { kind: 'ServiceAccount', name: AGENT_SERVICE_ACCOUNT, namespace: o.agentNamespace };
  const objects: Record<string, unknown>[] = [
    // The same list reaches the agent as --allowed-namespaces (its own namespace included: self-upgrades).
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'fleetlet-allowed-namespaces', namespace: o.agentNamespace, labels },
      data: { namespaces: writable.join(',') },
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'fleetlet-agent-cluster', labels },
      rules: [
        // Node readiness (built-in pre-flight check) and infrastructure detection.
        { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list'] },
        // The listed namespaces themselves: that they exist, and labels a release sets on them.
        { apiGroups: [''], resources: ['namespaces'], resourceNames: writable, verbs: ['get', 'patch'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'fleetlet-agent-cluster', labels },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'fleetlet-agent-cluster' },
      subjects: [subject],
    },
  ];
  for (const namespace of writable) {
    objects.push(
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'Role',
        metadata: { name: 'fleetlet-agent-addons', namespace, labels },
        rules: [
          ...addonResources.map((r) => ({ apiGroups: [r.apiGroup], resources: r.resources, verbs: [...addonVerbs] })),
          // Read only: what the pods of a workload's current revision say (a crash-looping new pod
          // ends its stage early; pod problems in health messages), and which revision is current.
          { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list'] },
          { apiGroups: ['apps'], resources: ['replicasets', 'controllerrevisions'], verbs: ['get', 'list'] },
        ],
      },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'RoleBinding',
        metadata: { name: 'fleetlet-agent-addons', namespace, labels },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'fleetlet-agent-addons' },
        subjects: [subject],
      },
    );
  }
  return objects;
}

export function agentRbacYaml(o: AgentRbacOptions, command: string): string {
  const head = `# Generated by \`${command}\`; do not edit: re-run it with your list.\n# Write access for the fleetlet agent in exactly these namespaces: ${o.allowedNamespaces.join(', ')} (and its own, ${o.agentNamespace}).\n`;
  return head + agentRbacObjects(o).map((obj) => `---\n${stringify(obj, { lineWidth: 0 })}`).join('');
}
