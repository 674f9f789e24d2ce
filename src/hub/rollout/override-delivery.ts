// Signing and delivering hotfix overrides, and answering "which clusters run
// fix X" and "which affected clusters do not yet".
import type { OverrideClusterEntry, OverrideClusters } from '../../protocol/hub-api.ts';
import { signOverride, type OverrideRequest } from '../../protocol/override.ts';
import { ApiError } from '../api-error.ts';
import type { HubContext } from '../hub-context.ts';
import type { OverrideDocumentRecord } from '../store/override-repo.ts';

/** Signs the cluster's next override document and stores it; the caller delivers it after its transaction commits. */
export function issueOverride(ctx: HubContext, clusterId: string, def: OverrideRequest, withdraw: boolean): Promise<OverrideDocumentRecord> {
  const now = ctx.now();
  const issuedAt = now.toISOString();
  const expiresAt = new Date(now.getTime() + (def.ttlSeconds !== undefined ? def.ttlSeconds * 1000 : ctx.releaseTtlMs)).toISOString();
  return ctx.overrides.issue(clusterId, (revision) => ({
    name: def.name,
    version: def.version,
    withdrawn: withdraw,
    envelope: signOverride(
      {
        apiVersion: 'fleetlet.io/v1',
        kind: 'Override',
        name: def.name,
        version: def.version,
        revision,
        issuedAt,
        expiresAt,
        appliesTo: def.appliesTo,
        component: def.component,
        images: withdraw ? {} : def.images,
        withdrawn: withdraw,
        ...(def.description !== undefined ? { description: def.description } : {}),
      },
      ctx.releaseKey,
      ctx.releaseKeyId,
    ),
    issuedAt,
    expiresAt,
  }));
}

/** After a hello: every override the cluster should hold, oldest revision first (the agent ignores the ones it holds). */
export async function deliverCurrentOverrides(ctx: HubContext, clusterId: string): Promise<number> {
  if (!ctx.sessions.agent(clusterId)) return 0;
  const docs = await ctx.overrides.current(clusterId, ctx.now());
  // Looked up again: the connection may have closed while the documents were read.
  const agent = ctx.sessions.agent(clusterId);
  if (!agent) return 0;
  for (const d of docs) agent.deliver({ type: 'override', envelope: d.envelope });
  return docs.length;
}

export type { OverrideClusterEntry };

/**
 * running: clusters whose inventory lists the override (whatever they run).
 * missing: accepted clusters on an affected release version that do not list it.
 */
export async function overrideClusters(ctx: HubContext, name: string, state: 'running' | 'missing'): Promise<OverrideClusters> {
  const def = await ctx.overrides.get(name);
  if (!def) throw new ApiError(404, 'NotFound', `no override "${name}"`);
  const out: OverrideClusterEntry[] = [];
  for (const c of await ctx.clusters.list()) {
    if (c.status !== 'Accepted') continue;
    const up = await ctx.aggregate.upgrade(c.id);
    const running = up?.runningName && up.runningVersion ? { name: up.runningName, version: up.runningVersion } : null;
    const reported = (c.inventory?.overrides ?? []).find((o) => o.name === name);
    if (state === 'running' && reported) {
      const since = reported.version ? await ctx.reports.overrideSince(c.id, name, reported.version) : null;
      out.push({ clusterId: c.id, runningRelease: running, reported: { component: reported.component ?? null, version: reported.version ?? null }, since });
    } else if (state === 'missing' && !reported && running !== null) {
      const a = def.definition.appliesTo;
      if (running.name === a.releaseName && a.versions.includes(running.version)) out.push({ clusterId: c.id, runningRelease: running, reported: null, since: null });
    }
  }
  return { override: name, state, version: def.definition.version, clusters: out };
}
