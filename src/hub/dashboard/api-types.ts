// The JSON the dashboard's endpoints answer (src/hub/dashboard/server.ts)
// and the browser code reads (web/src). Types only: the browser bundle
// imports nothing of the hub at run time.
import type { RolloutClusterView, RolloutView } from '../../protocol/rollout.ts';
import type { ClusterView } from '../../protocol/hub-api.ts';
import type { ClusterRow, ClusterState, OverrideUsage } from '../store/dashboard-repo.ts';
import type { OperatorRole as Role } from '../auth/operator-auth.ts';

export type { ClusterRow, ClusterState, ClusterView, Role, RolloutClusterView, RolloutView };

export interface ApiErrorBody {
  error: { reason: string; message: string; details?: unknown };
}

export interface SessionAnswer {
  role: Role;
}

export interface Page<T> {
  total: number;
  offset: number;
  limit: number;
  items: T[];
}

export interface RolloutSummary {
  name: string;
  phase: RolloutView['phase'];
  reason: string | null;
  message: string | null;
  target: RolloutView['target'];
  counts: RolloutView['counts'];
  limits: RolloutView['limits'];
  window: RolloutView['window'];
  createdAt: string;
  endedAt: string | null;
}

export interface Overview {
  now: string;
  leaseMs: number;
  filter: [string, string][];
  total: number;
  byState: Record<ClusterState, number>;
  byRelease: { name: string | null; version: string | null; clusters: number }[];
  waitingForWindow: Page<ClusterRow>;
  failures: Page<ClusterRow>;
  offline: Page<ClusterRow>;
  pending: Page<ClusterRow>;
  labels: { key: string; value: string; clusters: number }[];
}

export interface TransitionView {
  phase: string;
  stage: number | null;
  reason: string | null;
  message: string | null;
  /** When the agent made the transition. */
  at: string;
  /** When the hub received its report. */
  receivedAt: string;
  /** The report waited in the agent's outbox this long (the link was down): shown when it is more than a heartbeat or two. */
  heldMs: number | null;
}

export interface AttemptView {
  attemptId: string;
  release: { name: string; version: string; revision: number };
  startedAt: string;
  endedAt: string | null;
  /** The last phase seen: Succeeded, RolledBack, Failed, or an in-progress phase. */
  phase: string;
  durationMs: number;
  /** Oldest first. */
  transitions: TransitionView[];
}

export interface ClusterDetail {
  now: string;
  state: ClusterState;
  cluster: ClusterView;
  /** Newest first. */
  attempts: AttemptView[];
  outbox: { heldReports: number; longestHeldMs: number; lastHeldAt: string | null; offlineNow: boolean };
  windows: {
    /** The agent's own gate, from its latest attempt, while it waits. */
    agent: { reason: string | null; message: string | null; since: string; nextOpensAt: string | null } | null;
    /** The agent's own next maintenance window as it last reported it (heartbeat.maintenanceWindow); null: never reported (an older agent). */
    reported: { open: boolean; opensAt: string | null; closesAt: string | null } | null;
    /** Windows of active rollouts that hold this cluster. */
    hub: { rollout: string; cron: string; duration?: string | undefined; until?: string | undefined; timeZone: string; open: boolean; nextOpeningAt: string | null }[];
  };
  rollouts: { name: string; phase: string; createdAt: string }[];
}

export interface RolloutDetail {
  now: string;
  rollout: RolloutView;
  /** A page of the members, filtered by group and status. */
  members: Page<RolloutClusterView> & { group: string | null; status: string | null };
}

export interface OverrideView {
  name: string;
  version: string | null;
  component: string | null;
  description: string | null;
  appliesTo: { releaseName: string; versions: string[] } | null;
  images: Record<string, string>;
  withdrawn: boolean;
  /** Defined by an operator on this hub; false: only seen in clusters' inventories. */
  defined: boolean;
  createdAt: string | null;
  updatedAt: string | null;
  running: OverrideUsage[];
  runningTotal: number;
  rollouts: { name: string; phase: string }[];
}

export interface OverrideClustersPage extends Page<{ clusterId: string; version: string | null; runningVersion: string | null }> {
  name: string;
}

/** Sent on the event stream when what the dashboard shows changed; the page refetches. */
export interface ChangedEvent {
  now: string;
}
