// The hub's operator HTTP API (docs/hub-api.md, docs/openapi.json): what a
// request's path, query and body may hold, and the shape of the main answers.
// The hub validates every request against these before a handler runs and
// generates its OpenAPI document from them; the CLI shares the types.
// Rollout requests live in rollout.ts, with the rest of the rollout API.
import { z } from 'zod';
import { clusterId } from './messages.ts';
import { labels } from './names.ts';

export { labelsRequest, pauseRequest, rollbackRequest, rolloutRequest } from './rollout.ts';

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
