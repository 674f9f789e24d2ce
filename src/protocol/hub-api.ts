// The hub's operator HTTP API (docs/hub-api.md, docs/openapi.json): what a
// request's path, query and body may hold, and the shape of every answer.
// The hub validates every request against these before a handler runs, and
// every answer before it leaves (a hub bug is a 500 naming the field, not a
// silently different shape); it generates its OpenAPI document from them,
// and the CLI and the dashboard share the types.
// Rollout requests live in rollout.ts, with the rest of the rollout API.
import { z } from 'zod';
import { condition, upgradeStatus } from './attempt.ts';
import { inventoryComponent, inventoryOverride } from './inventory.ts';
import { clusterId } from './messages.ts';
import { labels } from './names.ts';
import { overrideRequest } from './override.ts';
import { signedEnvelope } from './release.ts';

export { labelsRequest, pauseRequest, rollbackRequest, rollbackResult, rolloutList, rolloutRequest, rolloutView } from './rollout.ts';

// ---------------------------------------------------------------- path and query

/**
 * A cluster id, rollout or override name, or token id in a path: a lowercase
 * DNS subdomain, as every one of them is (cluster ids are the longest, 253).
 */
export const resourceName = clusterId;
export const clusterParams = z.strictObject({ id: resourceName });
export const nameParams = z.strictObject({ name: resourceName });
export const idParams = z.strictObject({ id: resourceName });

/** The most entries a page holds; a larger `limit` is lowered to it. */
export const MAX_PAGE = 1000;
const nonNegative = z.coerce.number<string>().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/** `?after=<id or seq>&limit=<n>`: the entries after `after`, at most `limit` (default 100, at most 1000). */
export const pageQuery = z.object({
  after: nonNegative.default(0),
  limit: nonNegative.default(100),
});
export const telemetryQuery = pageQuery.extend({ cluster: resourceName.optional() });
export const rolloutStatusQuery = z.object({ clusters: z.enum(['all', 'failed']).default('failed') });
export const overrideClustersQuery = z.object({ state: z.enum(['running', 'missing']).default('running') });

// ---------------------------------------------------------------- request bodies

export const operatorRoles = ['viewer', 'operator', 'admin'] as const;
export type OperatorRole = (typeof operatorRoles)[number];

export const operatorTokenRequest = z.strictObject({
  name: z.string().min(1).max(128),
  role: z.enum(operatorRoles),
});
export type OperatorTokenRequest = z.infer<typeof operatorTokenRequest>;

/** Every field optional; an empty body is an empty request. */
export const bootstrapTokenRequest = z
  .strictObject({
    /** Lifetime; default one day, at most a year. */
    ttlSeconds: z.number().int().min(60).max(366 * 86_400).optional(),
    /** New registrations it may start; default 1. */
    maxUses: z.number().int().min(1).max(1_000_000).optional(),
    description: z.string().max(256).optional(),
  })
  .prefault({});
export type BootstrapTokenRequest = z.infer<typeof bootstrapTokenRequest>;

/** One of the cluster's keyConflicts, by fingerprint. */
export const trustKeyRequest = z.strictObject({ fingerprint: z.string().min(1).max(128) });

/**
 * What an operator sends to set a cluster's release: a release without the
 * fields the hub owns (revision, issuedAt, expiresAt). The hub validates the
 * release it builds from it against the full release schema.
 */
export const releaseRequest = z.object({
  name: z.string(),
  version: z.string(),
  components: z.array(z.unknown()),
  critical: z.boolean().optional(),
  allowDowngrade: z.boolean().optional(),
  kubernetesVersion: z.object({ min: z.string().optional(), max: z.string().optional() }).optional(),
  /** The hub's windows for this release; agents intersect them with their local policy. */
  windows: z.unknown().optional(),
  /** Overrides the hub's default release lifetime. */
  ttlSeconds: z.number().int().positive().max(366 * 86_400).optional(),
}).meta({ id: 'ReleaseRequest' });
export type ReleaseRequest = z.infer<typeof releaseRequest>;

// ---------------------------------------------------------------- answers

/** Every refusal and failure: a CamelCase reason a client can branch on, and what to do. */
export const apiErrorBody = z.object({
  error: z.object({
    reason: z.string(),
    message: z.string(),
    /** Zod issues for a refused request ({path, message, …}), or what the reason names. */
    details: z.unknown().optional(),
  }),
}).meta({ id: 'ApiError' });
export type ApiErrorBody = z.infer<typeof apiErrorBody>;

const timestamp = z.string();

export const operatorToken = z.object({
  id: z.string(),
  name: z.string(),
  role: z.enum(operatorRoles),
  createdAt: timestamp,
  createdBy: z.string(),
  revokedAt: timestamp.nullable(),
}).meta({ id: 'OperatorToken' });
/** The token text is in this answer only; the hub keeps its sha256. */
export const createdOperatorToken = operatorToken.extend({ token: z.string() });
export const operatorTokenList = z.object({ tokens: z.array(operatorToken) });

export const bootstrapToken = z.object({
  id: z.string(),
  source: z.enum(['config', 'api']),
  description: z.string().nullable(),
  createdAt: timestamp,
  expiresAt: timestamp.nullable(),
  maxUses: z.number().int().nullable(),
  uses: z.number().int(),
  revokedAt: timestamp.nullable(),
}).meta({ id: 'BootstrapToken' });
export const issuedBootstrapToken = bootstrapToken.extend({ token: z.string() });
export const bootstrapTokenList = z.object({ tokens: z.array(bootstrapToken) });

export const auditEntry = z.object({
  id: z.number().int(),
  at: timestamp,
  /** The token's name, or "anonymous" when none was valid. */
  actor: z.string(),
  role: z.string().nullable(),
  method: z.string(),
  path: z.string(),
  status: z.number().int(),
  remoteAddress: z.string().nullable(),
}).meta({ id: 'AuditEntry' });
export const auditPage = z.object({ entries: z.array(auditEntry), next: z.number().int().nullable() });

export const acceptedCluster = z.object({ accepted: z.string(), delivered: z.boolean() });
export const deregisteredCluster = z.object({ deregistered: z.string() });
export const revokedCluster = z.object({ revoked: z.string(), closed: z.number().int() });
export const trustedKey = z.object({ clusterId: z.string(), fingerprint: z.string(), closed: z.number().int() });
export const clusterLabels = z.object({ clusterId: z.string(), labels });
export const releaseSet = z.object({
  clusterId: z.string(),
  revision: z.number().int(),
  name: z.string(),
  version: z.string(),
  issuedAt: timestamp,
  expiresAt: timestamp,
  keyId: z.string(),
  /** Whether a connected agent was sent it now (otherwise on its next connect). */
  delivered: z.boolean(),
});

export const liveness = z.object({ status: z.literal('ok') });
export const readiness = z.object({ status: z.literal('ready'), since: timestamp });
export const unreadiness = z.object({ status: z.literal('unavailable'), reason: z.literal('DatabaseUnavailable'), message: z.string() });

// ---------------------------------------------------------------- views

/** A cluster's lease, as OCM reads it: True while heartbeats arrive, Unknown (not False) once it ran out. */
export const availability = z.object({
  status: z.enum(['True', 'Unknown']),
  reason: z.enum(['LeaseRenewed', 'LeaseExpired', 'NeverConnected']),
  message: z.string(),
  lastSeen: timestamp.nullable(),
  /** When the status last flipped, as far as the hub can tell. */
  since: timestamp.nullable(),
});
export type Availability = z.infer<typeof availability>;

const releaseRef = z.object({ name: z.string(), version: z.string() });
/** The release of an attempt, as far as its reports named it. */
const attemptRelease = z.object({ name: z.string().nullable(), version: z.string().nullable(), revision: z.number().int().nullable() });

/** The last release the agent refused (revision once its signature verified). */
export const releaseRefusal = z.object({ revision: z.number().int().optional(), reason: z.string(), message: z.string(), at: timestamp.optional() });
/** The last hotfix override the agent refused (name and revision once its signature verified). */
export const overrideRefusal = releaseRefusal.extend({ name: z.string().optional() });
export type ReleaseRefusal = z.infer<typeof releaseRefusal>;
export type OverrideRefusal = z.infer<typeof overrideRefusal>;

export const clusterView = z.object({
  id: z.string(),
  registration: z.enum(['Pending', 'Accepted', 'Revoked']),
  /** The key the cluster authenticates with (its fingerprint; the hub holds only the public half). */
  key: z.object({ fingerprint: z.string().nullable(), legacyCredential: z.boolean(), revokedAt: timestamp.nullable() }),
  /** Registrants that proved other keys for this id: refused, for an operator to decide (trust-key or deregister). */
  keyConflicts: z.array(z.object({ fingerprint: z.string(), firstSeen: timestamp, lastSeen: timestamp, attempts: z.number().int(), remoteAddress: z.string().nullable() })),
  labels: z.record(z.string(), z.string()),
  requestedAt: timestamp,
  acceptedAt: timestamp.nullable(),
  agentVersion: z.string().nullable(),
  kubernetesVersion: z.string().nullable(),
  targetInfrastructure: z.string().nullable(),
  components: z.array(inventoryComponent),
  overrides: z.array(inventoryOverride),
  lastSeen: timestamp.nullable(),
  connected: z.boolean(),
  availability,
  desiredRelease: z.object({ name: z.string(), version: z.string(), revision: z.number().int(), issuedAt: timestamp, expiresAt: timestamp }).nullable(),
  /** The release of its last Succeeded attempt. */
  runningRelease: releaseRef.nullable(),
  upgrade: z.object({
    status: upgradeStatus,
    phase: z.string(),
    attemptId: z.string().nullable(),
    release: attemptRelease,
    stage: z.number().int().nullable(),
    reason: z.string().nullable(),
    message: z.string().nullable(),
    at: timestamp.nullable(),
  }).nullable(),
  lastRefusal: releaseRefusal.nullable(),
  lastOverrideRefusal: overrideRefusal.nullable(),
  reports: z.object({ ackedSeq: z.number().int() }),
  /** Available (the lease), Upgraded (the last attempt), ReleaseAccepted (False after a refusal of the desired release). */
  conditions: z.array(condition),
}).meta({ id: 'ClusterView' });
export type ClusterView = z.infer<typeof clusterView>;
export const clusterList = z.object({ clusters: z.array(clusterView) });

export const fleetSummary = z.object({
  clusters: z.object({ total: z.number().int(), pending: z.number().int(), accepted: z.number().int(), revoked: z.number().int() }),
  /** Clusters per release version they run (their last Succeeded release); "none" before the first. */
  byReleaseVersion: z.record(z.string(), z.number().int()),
  byUpgradeStatus: z.object({ InProgress: z.number().int(), Succeeded: z.number().int(), Failed: z.number().int(), None: z.number().int() }),
  byAvailability: z.object({ True: z.number().int(), Unknown: z.number().int() }),
  failed: z.array(z.object({ clusterId: z.string(), release: attemptRelease, phase: z.string(), reason: z.string().nullable(), message: z.string().nullable(), at: timestamp.nullable() })),
  /** Which clusters run which hotfix overrides. */
  overrides: z.array(z.object({ name: z.string(), component: z.string().nullable(), version: z.string().nullable(), clusters: z.array(z.string()) })),
}).meta({ id: 'FleetSummary' });
export type FleetSummary = z.infer<typeof fleetSummary>;

/** GET /clusters/:id/release: the newest desired release, with the envelope the agent verifies. */
export const desiredRelease = z.object({
  clusterId: z.string(),
  revision: z.number().int(),
  name: z.string(),
  version: z.string(),
  envelope: signedEnvelope,
  issuedAt: timestamp,
  expiresAt: timestamp,
}).meta({ id: 'DesiredRelease' });
export type DesiredRelease = z.infer<typeof desiredRelease>;

export const storedReport = z.object({
  seq: z.number().int(),
  /** The report before it in the agent's outbox (the chain afterSeq builds). */
  prevSeq: z.number().int(),
  kind: z.string(),
  /** As the agent sent it (src/protocol/reports.ts describes each kind). */
  body: z.unknown(),
  createdAt: timestamp,
  receivedAt: timestamp,
  /** Part of the acknowledged chain (applied to the cluster's view). */
  acknowledged: z.boolean(),
  /** Why the report could not be applied, if it could not. */
  problem: z.string().nullable(),
}).meta({ id: 'StoredReport' });
export type StoredReport = z.infer<typeof storedReport>;
export const reportPage = z.object({ clusterId: z.string(), ackedSeq: z.number().int(), reports: z.array(storedReport) });

export const telemetryEvent = z.object({
  id: z.number().int(),
  clusterId: z.string(),
  seq: z.number().int(),
  receivedAt: timestamp,
  /** The upgrade-completed report's body. */
  event: z.unknown(),
}).meta({ id: 'TelemetryEvent' });
export type TelemetryEvent = z.infer<typeof telemetryEvent>;
export const telemetryPage = z.object({ events: z.array(telemetryEvent), next: z.number().int().nullable() });

export const overrideDefinition = z.object({
  name: z.string(),
  /** As the operator created it (the rollout's override target). */
  definition: overrideRequest,
  withdrawn: z.boolean(),
  createdAt: timestamp,
  updatedAt: timestamp,
}).meta({ id: 'OverrideDefinition' });
export type OverrideDefinition = z.infer<typeof overrideDefinition>;
export const overrideList = z.object({ overrides: z.array(overrideDefinition) });

export const overrideClusterEntry = z.object({
  clusterId: z.string(),
  runningRelease: releaseRef.nullable(),
  /** The override as the cluster reports it (running only). */
  reported: z.object({ component: z.string().nullable(), version: z.string().nullable() }).nullable(),
  /** Running only: since when its inventory reports have listed it at that version without a break; null when only a hello did. */
  since: timestamp.nullable(),
});
export type OverrideClusterEntry = z.infer<typeof overrideClusterEntry>;
export const overrideClusters = z.object({ override: z.string(), state: z.enum(['running', 'missing']), version: z.string(), clusters: z.array(overrideClusterEntry) });
export type OverrideClusters = z.infer<typeof overrideClusters>;

/** GET /api/v1/openapi.json: an OpenAPI 3.1 document (this one). */
export const openApiDocumentBody = z.record(z.string(), z.unknown()).describe('an OpenAPI 3.1 document');
