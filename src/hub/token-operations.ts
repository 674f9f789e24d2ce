// Admin actions on tokens: bootstrap tokens (agents ask to register with
// them) and operator tokens (a role each). A token's text is in the answer
// that creates it, once; listings never show it or its hash.
import { bootstrapTokenRequest, operatorRoles, operatorTokenRequest } from '../protocol/hub-api.ts';
import { ApiError } from './api-error.ts';
import type { HubContext } from './hub-context.ts';
import type { BootstrapToken } from './store/bootstrap-token-repo.ts';
import type { OperatorToken } from './store/operator-token-repo.ts';

export async function issueBootstrapToken(ctx: HubContext, body: unknown): Promise<BootstrapToken & { token: string }> {
  const req = bootstrapTokenRequest.safeParse(body);
  if (!req.success) throw new ApiError(400, 'InvalidRequest', 'send {"ttlSeconds"?: n, "maxUses"?: n, "description"?: "…"}', req.error.issues);
  const { token, record } = await ctx.bootstrapTokens.issue({ ttlMs: (req.data.ttlSeconds ?? 86_400) * 1000, maxUses: req.data.maxUses ?? 1, description: req.data.description });
  ctx.log.info({ tokenId: record.id, expiresAt: record.expiresAt, maxUses: record.maxUses }, 'bootstrap token issued');
  return { ...record, token };
}

export async function revokeBootstrapToken(ctx: HubContext, id: string): Promise<BootstrapToken> {
  const record = await ctx.bootstrapTokens.get(id);
  if (!record) throw new ApiError(404, 'NotFound', `no bootstrap token "${id}"`);
  if (!(await ctx.bootstrapTokens.revoke(id))) throw new ApiError(409, 'AlreadyRevoked', `bootstrap token "${id}" is already revoked`);
  ctx.log.warn({ tokenId: id }, 'bootstrap token revoked');
  return (await ctx.bootstrapTokens.get(id)) as BootstrapToken;
}

export async function createOperatorToken(ctx: HubContext, body: unknown, createdBy: string): Promise<OperatorToken & { token: string }> {
  const req = operatorTokenRequest.safeParse(body);
  if (!req.success) throw new ApiError(400, 'InvalidRequest', `send {"name": "…", "role": "${operatorRoles.join('" | "')}"}`, req.error.issues);
  const { token, record } = await ctx.operatorTokens.create({ name: req.data.name, role: req.data.role, createdBy });
  ctx.log.info({ tokenId: record.id, name: record.name, role: record.role, createdBy }, 'operator token created');
  return { ...record, token };
}

export async function revokeOperatorToken(ctx: HubContext, id: string): Promise<OperatorToken> {
  const record = await ctx.operatorTokens.get(id);
  if (!record) throw new ApiError(404, 'NotFound', `no operator token "${id}"`);
  if (!(await ctx.operatorTokens.revoke(id))) throw new ApiError(409, 'AlreadyRevoked', `operator token "${id}" is already revoked`);
  ctx.log.warn({ tokenId: id, name: record.name }, 'operator token revoked');
  return (await ctx.operatorTokens.get(id)) as OperatorToken;
}
