// Operator actions on a cluster. Each changes the store first and then tells
// a connected agent, so an agent that is offline learns the same on its next
// connect.
import { agentKeyFingerprint } from '../protocol/agent-identity.ts';
import { releaseRequest, trustKeyRequest } from '../protocol/hub-api.ts';
import { closeCodes } from '../protocol/messages.ts';
import { release, type ReleaseInput } from '../protocol/release.ts';
import { signRelease } from '../protocol/signing.ts';
import { ApiError } from './api-error.ts';
import type { HubContext } from './hub-context.ts';
import type { DesiredReleaseRecord } from './store/release-repo.ts';
import { closeClusterEverywhere, pushAccepted, pushRelease } from './replicas/fleet-delivery.ts';

export async function acceptCluster(ctx: HubContext, id: string): Promise<{ delivered: boolean }> {
  const cluster = await ctx.clusters.get(id);
  if (!cluster) throw new ApiError(404, 'NotFound', `no cluster "${id}" has asked to register`);
  if (cluster.status !== 'Pending') throw new ApiError(409, cluster.status === 'Accepted' ? 'AlreadyAccepted' : 'Revoked', `cluster "${id}" is ${cluster.status.toLowerCase()}, not pending`);
  if (!(await ctx.clusters.accept(id))) throw new ApiError(409, 'NotPending', `cluster "${id}" is no longer pending`);
  ctx.log.info({ clusterId: id, fingerprint: cluster.publicKey && agentKeyFingerprint(cluster.publicKey) }, 'cluster accepted');
  // Nothing secret goes out: only connections that proved the accepted key wait here, and each must prove it again to say hello.
  return { delivered: await pushAccepted(ctx, id) };
}

export async function deregisterCluster(ctx: HubContext, id: string): Promise<void> {
  const cluster = await ctx.clusters.get(id);
  if (!cluster) throw new ApiError(404, 'NotFound', `no cluster "${id}"`);
  await ctx.clusters.delete(id);
  ctx.log.warn({ clusterId: id, status: cluster.status }, 'cluster deregistered');
  await closeClusterEverywhere(ctx, id, closeCodes.deregistered, 'deregistered', () =>
    cluster.status === 'Pending'
      ? { type: 'registration', status: 'rejected', code: 'Removed', reason: 'the registration request was removed by an operator' }
      : { type: 'deregister', reason: 'the cluster was deregistered by an operator' },
  );
}

/** The cluster's key stops authenticating it; every connection of the cluster ends, and its agent stops reconnecting (Revoked). */
export async function revokeCluster(ctx: HubContext, id: string): Promise<{ closed: number }> {
  const cluster = await ctx.clusters.get(id);
  if (!cluster) throw new ApiError(404, 'NotFound', `no cluster "${id}"`);
  if (cluster.status === 'Revoked') throw new ApiError(409, 'AlreadyRevoked', `cluster "${id}" is already revoked`);
  await ctx.clusters.revoke(id);
  ctx.log.warn({ clusterId: id }, 'cluster revoked');
  const message = 'an operator revoked this cluster\'s key: stop, and register again with a new bootstrap';
  return { closed: await closeClusterEverywhere(ctx, id, closeCodes.revoked, 'revoked', () => ({ type: 'error', code: 'Revoked', message })) };
}

/**
 * The operator trusts a key for the cluster, by its fingerprint: one a
 * conflicting registrant proved (an agent whose Secret was wiped), replacing
 * the key the cluster had. Connections holding the old right end.
 */
export async function trustClusterKey(ctx: HubContext, id: string, body: unknown): Promise<{ fingerprint: string; closed: number }> {
  const cluster = await ctx.clusters.get(id);
  if (!cluster) throw new ApiError(404, 'NotFound', `no cluster "${id}"`);
  const req = trustKeyRequest.safeParse(body);
  if (!req.success) throw new ApiError(400, 'InvalidRequest', 'send {"fingerprint": "sha256:…"} naming one of the cluster\'s keyConflicts', req.error.issues);
  const candidate = (await ctx.clusters.keyConflicts(id)).find((c) => agentKeyFingerprint(c.publicKey) === req.data.fingerprint);
  if (!candidate) throw new ApiError(404, 'UnknownKey', `cluster "${id}" has no conflicting key ${req.data.fingerprint}: see keyConflicts in GET /api/v1/clusters/${id}`);
  await ctx.clusters.trustKey(id, candidate.publicKey);
  ctx.log.warn({ clusterId: id, fingerprint: req.data.fingerprint }, 'operator trusted a new key for the cluster');
  return { fingerprint: req.data.fingerprint, closed: await closeClusterEverywhere(ctx, id, closeCodes.keyConflict, 'key replaced') };
}

/** `deliver: false` (rollouts): the caller pushes the release itself once its own transaction has committed. */
export async function setDesiredRelease(ctx: HubContext, id: string, body: unknown, opts: { deliver?: boolean } = {}): Promise<{ record: DesiredReleaseRecord; delivered: boolean }> {
  const cluster = await ctx.clusters.get(id);
  if (!cluster) throw new ApiError(404, 'NotFound', `no cluster "${id}"`);
  if (cluster.status !== 'Accepted') throw new ApiError(409, 'NotAccepted', `cluster "${id}" is pending: accept it first`);
  const req = releaseRequest.safeParse(body);
  if (!req.success) throw new ApiError(400, 'InvalidRelease', 'the release request is invalid', req.error.issues);

  const now = ctx.now();
  const issuedAt = now.toISOString();
  const expiresAt = new Date(now.getTime() + (req.data.ttlSeconds !== undefined ? req.data.ttlSeconds * 1000 : ctx.releaseTtlMs)).toISOString();
  const build = (revision: number): ReleaseInput => {
    const { ttlSeconds: _ttl, ...rest } = req.data;
    return { apiVersion: 'fleetlet.io/v1', kind: 'Release', ...rest, revision, issuedAt, expiresAt } as ReleaseInput;
  };
  // Validate before a revision is taken, so a rejected request burns no revision.
  const check = release.safeParse(build(1));
  if (!check.success) throw new ApiError(400, 'InvalidRelease', 'the release does not validate', check.error.issues);

  const record = await ctx.releases.issue(id, (revision) => ({
    name: check.data.name,
    version: check.data.version,
    envelope: signRelease(build(revision), ctx.releaseKey, ctx.releaseKeyId),
    issuedAt,
    expiresAt,
  }));
  ctx.log.info({ clusterId: id, revision: record.revision, release: record.name, version: record.version }, 'desired release set');
  if (opts.deliver === false) return { record, delivered: false };
  return { record, delivered: await pushRelease(ctx, id, record.envelope) };
}
