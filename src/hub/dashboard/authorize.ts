// Who may do what on the dashboard. One function decides: authorize(token)
// answers a role or a refusal with its reason, which the sign-in page shows.
// viewer < operator < admin: a viewer only looks, an operator may act on
// rollouts and clusters.
import { hashSecret, secretMatches } from '../credentials.ts';

export const roles = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof roles)[number];

export type Authorization =
  | { ok: true; role: Role }
  | { ok: false; reason: 'NoToken' | 'UnknownToken'; message: string };

export type Authorize = (token: string | undefined) => Authorization;

export interface RoleToken {
  token: string;
  role: Role;
}

export function atLeast(role: Role, needed: Role): boolean {
  return roles.indexOf(role) >= roles.indexOf(needed);
}

/** Tokens are kept as sha256 digests only; every one is compared, so timing does not tell which matched. */
export function tokenAuthorizer(tokens: readonly RoleToken[]): Authorize {
  for (const t of tokens) if (t.token.length < 16) throw new TypeError(`a ${t.role} token must be at least 16 characters`);
  const hashed = tokens.map((t) => ({ hash: hashSecret(t.token), role: t.role }));
  return (token) => {
    if (token === undefined || token === '') return { ok: false, reason: 'NoToken', message: 'sign in with a viewer, operator or admin token of this hub' };
    const presented = hashSecret(token);
    let found: Role | undefined;
    for (const h of hashed) {
      if (secretMatches(presented, h.hash) && (found === undefined || atLeast(h.role, found))) found = h.role;
    }
    if (found === undefined) return { ok: false, reason: 'UnknownToken', message: 'this token is not one this hub knows: it is mistyped, or it was replaced or revoked' };
    return { ok: true, role: found };
  };
}
