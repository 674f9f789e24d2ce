// Who is calling the operator API, and may they? One place decides, for the
// HTTP API and for anything else the hub serves to operators (a dashboard):
// authorizeOperator. Roles are ordered: viewer < operator < admin.
import { ApiError } from '../api-error.ts';
import { bearerToken, secretMatches } from '../credentials.ts';
import type { HubContext } from '../hub-context.ts';
import { operatorRoles, type OperatorRole } from '../store/operator-token-repo.ts';

export { operatorRoles, type OperatorRole };

export interface OperatorPrincipal {
  /** The token's id ("config-admin" for the token configured at start). */
  id: string;
  name: string;
  role: OperatorRole;
}

/** Whether a principal with role `have` may do what needs `need`. */
export function roleAllows(have: OperatorRole, need: OperatorRole): boolean {
  return operatorRoles.indexOf(have) >= operatorRoles.indexOf(need);
}

/** The principal an `Authorization: Bearer …` header names, or undefined. */
export async function identifyOperator(ctx: HubContext, authorization: string | undefined): Promise<OperatorPrincipal | undefined> {
  const token = bearerToken(authorization);
  if (token === undefined) return undefined;
  if (secretMatches(token, ctx.adminToken)) return { id: 'config-admin', name: 'admin (configured)', role: 'admin' };
  const found = await ctx.operatorTokens.find(token);
  return found && { id: found.id, name: found.name, role: found.role };
}

/**
 * The principal, if it may act with role `need`; otherwise an ApiError:
 * 401 without a valid token, 403 with one whose role is too low.
 */
export async function authorizeOperator(ctx: HubContext, authorization: string | undefined, need: OperatorRole): Promise<OperatorPrincipal> {
  return requireRole(await identifyOperator(ctx, authorization), need);
}

/** The same decision for a principal already identified (the HTTP API keeps it for the audit row). */
export function requireRole(who: OperatorPrincipal | undefined, need: OperatorRole): OperatorPrincipal {
  if (!who) throw new ApiError(401, 'Unauthorized', 'send an operator token as "Authorization: Bearer <token>"');
  if (!roleAllows(who.role, need)) throw new ApiError(403, 'Forbidden', `this needs the ${need} role; token "${who.name}" has ${who.role}`);
  return who;
}
