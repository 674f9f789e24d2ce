// Decides, before the WebSocket upgrade, who is connecting. Most agents
// connect anonymously and prove their key inside the protocol
// (agent-session.ts); a bearer credential from before keys names its
// cluster here. A bad or foreign credential, or an address that failed too
// often, is refused with an HTTP status and never reaches the protocol.
import type { IncomingMessage } from 'node:http';
import { AGENT_PATH, CLUSTER_ID_HEADER, clusterId as clusterIdSchema } from '../protocol/messages.ts';
import type { SessionIdentity } from './agent-session.ts';
import { bearerToken, hashSecret } from './credentials.ts';
import type { HubContext } from './hub-context.ts';

export type UpgradeDecision =
  | { ok: true; identity: SessionIdentity }
  | { ok: false; status: 400 | 401 | 403 | 404 | 429; reason: string; message: string; retryAfterSeconds?: number };

export async function authenticateUpgrade(ctx: HubContext, req: IncomingMessage): Promise<UpgradeDecision> {
  const path = new URL(req.url ?? '/', 'http://hub').pathname;
  if (path !== AGENT_PATH) return { ok: false, status: 404, reason: 'NotFound', message: `agents connect to ${AGENT_PATH}` };

  const remote = req.socket.remoteAddress;
  const wait = ctx.throttle.retryAfterMs(remote);
  if (wait > 0) return { ok: false, status: 429, reason: 'Throttled', message: `too many failed attempts from this address: retry in ${Math.ceil(wait / 1000)} s`, retryAfterSeconds: Math.ceil(wait / 1000) };

  const authorization = req.headers.authorization;
  // No credential: the agent proves its key (or registers) inside the protocol.
  if (authorization === undefined) return { ok: true, identity: { kind: 'anonymous' } };

  const token = bearerToken(authorization);
  if (token === undefined) return { ok: false, status: 401, reason: 'MalformedAuthorization', message: 'expected "Authorization: Bearer <credential>"' };
  const claimedHeader = req.headers[CLUSTER_ID_HEADER];
  const claimed = clusterIdSchema.safeParse(Array.isArray(claimedHeader) ? undefined : claimedHeader);
  if (!claimed.success) return { ok: false, status: 400, reason: 'MissingClusterId', message: `header ${CLUSTER_ID_HEADER} must name the cluster the credential is for` };

  const owner = await ctx.clusters.ownerOfCredential(hashSecret(token));
  if (!owner) ctx.throttle.fail(remote);
  if (!owner) return { ok: false, status: 401, reason: 'UnknownCredential', message: 'credential not recognised (revoked, deregistered, or replaced by a key): register with a bootstrap token' };
  if (owner.id !== claimed.data) {
    return { ok: false, status: 403, reason: 'ClusterMismatch', message: `this credential does not belong to cluster "${claimed.data}"` };
  }
  if (owner.status !== 'Accepted') return { ok: false, status: 403, reason: 'NotAccepted', message: `cluster "${owner.id}" is not accepted` };
  const banned = ctx.bans.retryAfterMs({ kind: 'cluster', clusterId: owner.id });
  if (banned > 0) {
    const seconds = Math.ceil(banned / 1000);
    return { ok: false, status: 429, reason: 'Banned', message: `cluster "${owner.id}" was cut off for exceeding its connection budget: retry in ${seconds} s`, retryAfterSeconds: seconds };
  }
  return { ok: true, identity: { kind: 'cluster', clusterId: owner.id } };
}
