// What every part of the hub shares: stores, live sessions, clock, logger,
// configuration. Built once by startHub and passed down, never global.
import type { KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import { keyIdOf } from '../protocol/signing.ts';
import { AbuseBans, type AbuseBanOptions } from './abuse-bans.ts';
import { defaultBudgets, type ConnectionBudgets } from './connection-budget.ts';
import { ApiRateLimit, type ApiRateLimits } from './api-rate-limit.ts';
import { FailureThrottle, type FailureThrottleOptions } from './failure-throttle.ts';
import { SessionRegistry } from './session-registry.ts';
import { AuditRepo } from './store/audit-repo.ts';
import { BootstrapTokenRepo } from './store/bootstrap-token-repo.ts';
import { OperatorTokenRepo } from './store/operator-token-repo.ts';
import { AggregateRepo } from './store/aggregate-repo.ts';
import { ClusterRepo } from './store/cluster-repo.ts';
import { GroupCommitter, type GroupCommitOptions } from './store/group-commit.ts';
import { OverrideRepo } from './store/override-repo.ts';
import { ReleaseRepo } from './store/release-repo.ts';
import { ReportRepo } from './store/report-repo.ts';
import { RolloutRepo } from './store/rollout-repo.ts';
import type { Sql } from './store/sql.ts';
import { singleReplica, type ReplicaBus } from './replicas/replica-bus.ts';
import { DatabaseHealth } from './database-health.ts';

export interface HubContext {
  /** The database the repositories use: `db.transaction(fn)` makes their calls in fn one transaction. */
  db: Sql;
  /** Other replicas on the same database (a no-op with SQLite): replicas/replica-bus.ts. */
  bus: ReplicaBus;
  /** Whether the database answers (database-health.ts); startHub starts its probe, a context built without it stays ready. */
  health: DatabaseHealth;
  clusters: ClusterRepo;
  releases: ReleaseRepo;
  reports: ReportRepo;
  aggregate: AggregateRepo;
  rollouts: RolloutRepo;
  overrides: OverrideRepo;
  /** Writes that must be durable before the hub answers (report batches, hellos) share one commit per event-loop turn. */
  commits: GroupCommitter;
  sessions: SessionRegistry;
  /**
   * Something rollouts depend on changed (reports applied, an agent
   * connected): startHub points it at the rollout ticker, which coalesces
   * calls into one tick. A no-op until then.
   */
  rolloutInputChanged: () => void;
  /**
   * Something the dashboard shows changed, and is committed (reports
   * applied, an agent connected or registered, an operator's write, a
   * rollout step): startHub points it at the dashboard's change feed and
   * announces it to other replicas, coalesced (dashboard/change-feed.ts).
   * `tokens`: an operator token was revoked. A no-op until then.
   */
  fleetChanged: (what?: { tokens?: boolean }) => void;
  now: () => Date;
  log: Logger;
  heartbeatMs: number;
  /** graceMultiplier × heartbeatMs: after this much silence a cluster is Unknown. */
  leaseMs: number;
  bootstrapTokens: BootstrapTokenRepo;
  operatorTokens: OperatorTokenRepo;
  audit: AuditRepo;
  /** The admin token from the hub's configuration (auth/operator-auth.ts). */
  adminToken: string;
  /** Failed authentications per source address. */
  throttle: FailureThrottle;
  budgets: ConnectionBudgets;
  /** Offenders cut off for exceeding a budget, refused at the upgrade (or their hello) for a growing back-off (abuse-bans.ts). */
  bans: AbuseBans;
  /** Operator API requests per source address (api-rate-limit.ts). */
  apiRateLimit: ApiRateLimit;
  /** New registrations are refused past this many pending ones. */
  maxPendingRegistrations: number;
  releaseKey: KeyObject;
  releaseKeyId: string;
  /** Lifetime of a release the hub signs. */
  releaseTtlMs: number;
}

export interface HubContextOptions {
  db: Sql;
  /** Default: a single replica (SQLite). */
  bus?: ReplicaBus;
  now: () => Date;
  log: Logger;
  heartbeatMs: number;
  graceMultiplier: number;
  /** The admin token from the hub's configuration. Default: none valid (tests that build a context without the API). */
  adminToken?: string;
  /** Tokens from the hub's configuration; they become exactly the valid 'config' tokens in the store. */
  bootstrapTokens: readonly string[];
  throttle?: FailureThrottleOptions;
  budgets?: Partial<ConnectionBudgets>;
  abuseBans?: Partial<AbuseBanOptions>;
  apiRateLimits?: Partial<ApiRateLimits>;
  /** Default 1,000. */
  maxPendingRegistrations?: number;
  releaseKey: KeyObject;
  releaseKeyId?: string;
  releaseTtlMs?: number;
  groupCommit?: GroupCommitOptions;
}

export async function createHubContext(o: HubContextOptions): Promise<HubContext> {
  const clusters = new ClusterRepo(o.db, o.now);
  const bootstrapTokens = new BootstrapTokenRepo(o.db, o.now);
  await bootstrapTokens.syncConfigured(o.bootstrapTokens);
  return {
    db: o.db,
    bus: o.bus ?? singleReplica(),
    health: new DatabaseHealth({ probe: (timeoutMs) => o.db.ping(timeoutMs), now: o.now, log: o.log }),
    clusters,
    releases: new ReleaseRepo(o.db),
    reports: new ReportRepo(o.db, o.now, o.log),
    aggregate: new AggregateRepo(o.db),
    rollouts: new RolloutRepo(o.db, (id) => clusters.pendingLease(id)?.lastSeen),
    overrides: new OverrideRepo(o.db),
    // A group locks its clusters' rows in one order before anything else (group-commit.ts).
    commits: new GroupCommitter(o.db, o.log, { lockKeys: (ids) => clusters.lockRows(ids), ...o.groupCommit }),
    rolloutInputChanged: () => {},
    fleetChanged: () => {},
    sessions: new SessionRegistry(),
    now: o.now,
    log: o.log,
    heartbeatMs: o.heartbeatMs,
    leaseMs: o.graceMultiplier * o.heartbeatMs,
    bootstrapTokens,
    operatorTokens: new OperatorTokenRepo(o.db, o.now),
    audit: new AuditRepo(o.db, o.now),
    // Empty matches nothing: a presented bearer token has at least one character.
    adminToken: o.adminToken ?? '',
    throttle: new FailureThrottle(o.now, o.throttle),
    budgets: { ...defaultBudgets, ...o.budgets },
    bans: new AbuseBans(o.now, o.abuseBans),
    apiRateLimit: new ApiRateLimit(o.apiRateLimits),
    maxPendingRegistrations: o.maxPendingRegistrations ?? 1000,
    releaseKey: o.releaseKey,
    releaseKeyId: o.releaseKeyId ?? keyIdOf(o.releaseKey),
    releaseTtlMs: o.releaseTtlMs ?? 7 * 86_400_000,
  };
}
