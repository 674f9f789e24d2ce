// Which clusters a rollout takes, and in what order: selected when the
// rollout is created, so its membership and order never shift under it
// (unless it asks for membership Dynamic: rollout-operations.ts reselect).
// Mandatory groups first (in the order given), then the other named groups,
// then the rest; inside a group, by cluster id (stable across restarts).
import type { ClusterSelector, LabelSelector, RolloutGroup } from '../../protocol/rollout.ts';
import type { NewMember, RolloutGroupRecord } from '../store/rollout-repo.ts';

export interface Candidate {
  id: string;
  labels: Record<string, string>;
  /** The release the cluster runs (its last Succeeded one). */
  running: { name: string; version: string } | null;
}

export function matchesLabels(labels: Record<string, string>, s: LabelSelector, id: string): boolean {
  if (s.clusterIds !== undefined && !s.clusterIds.includes(id)) return false;
  for (const [k, v] of Object.entries(s.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of s.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const value = labels[e.key];
    const values = e.values ?? [];
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
    if (e.operator === 'In' && (!has || !values.includes(value as string))) return false;
    if (e.operator === 'NotIn' && has && values.includes(value as string)) return false;
  }
  return true;
}

export function matchesSelector(c: Candidate, s: ClusterSelector): boolean {
  if (!matchesLabels(c.labels, s, c.id)) return false;
  const r = s.runningRelease;
  if (r !== undefined) {
    if (c.running === null) return false;
    if (r.name !== undefined && c.running.name !== r.name) return false;
    if (r.versions !== undefined && !r.versions.includes(c.running.version)) return false;
  }
  return true;
}

export interface Grouping {
  groups: RolloutGroupRecord[];
  members: NewMember[];
}

export function groupClusters(selected: readonly Candidate[], groups: readonly RolloutGroup[], restGroupSize: number | undefined): Grouping {
  const byId = [...selected].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  // Membership: the first group (in the order written) whose selector matches.
  const named = groups.map(() => [] as string[]);
  const rest: string[] = [];
  for (const c of byId) {
    const gi = groups.findIndex((g) => matchesLabels(c.labels, g.selector, c.id));
    if (gi >= 0) (named[gi] as string[]).push(c.id);
    else rest.push(c.id);
  }
  const ordered = [...groups.keys()].sort((a, b) => Number(groups[b]?.mandatory) - Number(groups[a]?.mandatory) || a - b);
  const out: Grouping = { groups: [], members: [] };
  const add = (name: string, mandatory: boolean, ids: readonly string[]): void => {
    const idx = out.groups.length;
    out.groups.push({ name, mandatory });
    for (const id of ids) out.members.push({ clusterId: id, group: idx });
  };
  for (const gi of ordered) {
    const g = groups[gi] as RolloutGroup;
    add(g.name, g.mandatory, named[gi] as string[]);
  }
  if (rest.length > 0) {
    if (restGroupSize === undefined || rest.length <= restGroupSize) add('rest', false, rest);
    else for (let i = 0; i < rest.length; i += restGroupSize) add(`rest-${i / restGroupSize + 1}`, false, rest.slice(i, i + restGroupSize));
  }
  return out;
}
