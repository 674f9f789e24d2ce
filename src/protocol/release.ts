// The release: what a hub wants a cluster to run. This file is the single
// source of the release types; the hub builds releases from it and the agent
// refuses anything that does not parse against it.
import { z } from 'zod';

import { dnsLabel } from './names.ts';
import { hubWindows } from './policy.ts';

export { dnsLabel };

/**
 * A Kubernetes object as it appears in a manifest. Only the identifying
 * fields are checked here; the API server validates the rest (the agent runs
 * a server-side dry-run before changing anything).
 */
export const kubeObject = z
  .object({
    apiVersion: z.string().min(1),
    kind: z.string().min(1),
    metadata: z
      .object({
        name: z.string().min(1),
        namespace: z.string().min(1).optional(),
        labels: z.record(z.string(), z.string()).optional(),
        annotations: z.record(z.string(), z.string()).optional(),
      })
      .loose(),
  })
  .loose();
export type KubeObject = z.infer<typeof kubeObject>;

export const workloadKind = z.enum(['Deployment', 'DaemonSet', 'StatefulSet']);
export type WorkloadKind = z.infer<typeof workloadKind>;

export const workloadRef = z.object({
  kind: workloadKind,
  name: z.string().min(1),
  namespace: z.string().min(1),
});
export type WorkloadRef = z.infer<typeof workloadRef>;

export const healthPolicy = z.object({
  /** Workloads that must roll out; defaults to every workload in the manifests. */
  workloads: z.array(workloadRef).optional(),
  /** How long a stage may take to become healthy before it fails. */
  progressDeadlineSeconds: z.number().int().positive().max(86_400).default(600),
  /** How long health must hold after rollout before the stage counts as passed. */
  soakSeconds: z.number().int().nonnegative().max(86_400).default(0),
});
export type HealthPolicy = z.infer<typeof healthPolicy>;

export const component = z.object({
  name: dnsLabel,
  version: z.string().min(1).max(128),
  /** fleetlet itself: always upgraded last, in a stage of its own. */
  self: z.boolean().default(false),
  /** Components with the same stage number are upgraded together; stages run in ascending order. */
  stage: z.number().int().nonnegative().max(1000).default(0),
  manifests: z.array(kubeObject).min(1),
  health: healthPolicy.prefault({}),
});
export type Component = z.infer<typeof component>;

export const semverLike = z.string().regex(/^v?\d+\.\d+(\.\d+)?([-+].*)?$/, 'must look like a version, e.g. 1.4.2 or v1.35.0');

export const release = z
  .object({
    apiVersion: z.literal('fleetlet.io/v1'),
    kind: z.literal('Release'),
    name: dnsLabel,
    version: semverLike,
    /** Set by the hub, strictly increasing per cluster; an older revision is a replay. */
    revision: z.number().int().positive(),
    issuedAt: z.iso.datetime(),
    expiresAt: z.iso.datetime(),
    /** A fleet-wide fix: may start outside maintenance windows where local policy allows. */
    critical: z.boolean().default(false),
    /** A lower version than the one installed is refused unless this is set (an on-purpose rollback). */
    allowDowngrade: z.boolean().default(false),
    /**
     * The hub's own windows for this release (a rollout's time window). The
     * agent intersects them with its local policy: a hub can narrow, never
     * widen, when a cluster changes (docs/architecture.md, invariant 8). Signed with
     * the release, so nothing on the wire can loosen them.
     */
    windows: hubWindows.optional(),
    /** Kubernetes versions this release supports (checked before anything changes). */
    kubernetesVersion: z.object({ min: semverLike.optional(), max: semverLike.optional() }).prefault({}),
    components: z.array(component).min(1),
  })
  .superRefine((r, ctx) => {
    const seen = new Set<string>();
    r.components.forEach((c, i) => {
      if (seen.has(c.name)) ctx.addIssue({ code: 'custom', path: ['components', i, 'name'], message: `duplicate component "${c.name}"` });
      seen.add(c.name);
    });
    if (r.components.filter((c) => c.self).length > 1) {
      ctx.addIssue({ code: 'custom', path: ['components'], message: 'at most one component may be marked self' });
    }
    if (Date.parse(r.expiresAt) <= Date.parse(r.issuedAt)) {
      ctx.addIssue({ code: 'custom', path: ['expiresAt'], message: 'must be after issuedAt' });
    }
  });
export type Release = z.infer<typeof release>;
export type ReleaseInput = z.input<typeof release>;

/**
 * What travels on the wire: the release as the exact JSON text that was
 * signed, so verification never depends on how a parser re-serialises it.
 */
export const signedEnvelope = z.object({
  payload: z.string().min(2).max(8 * 1024 * 1024),
  /** Ed25519 signature of the UTF-8 payload, base64. */
  signature: z.string().regex(/^[A-Za-z0-9+/]+={0,2}$/, 'must be base64'),
  keyId: z.string().min(1).max(128),
});
export type SignedEnvelope = z.infer<typeof signedEnvelope>;
