// The hotfix override: replaces the image of one component on clusters that
// run an affected release, without a new release version (so no new upgrade
// edges). Signed exactly like a release (same envelope, same key), but with
// its own kind, so a signed override can never pass as a release or the
// reverse: each verifier parses the payload against its own `kind` literal.
//
// Revisions: a cluster has ONE override revision counter, shared by all the
// overrides it is sent and separate from the release revision counter. The
// hub assigns strictly increasing revisions per cluster, so for any override
// name a newer document always has a higher revision, and an agent refuses a
// document whose revision is not above the one it holds for that name (a
// replay). Keeping it apart from the release counter means an override never
// makes an agent refuse the next release as a replay, and the reverse.
import { sign, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import { dnsLabel, semverLike, type SignedEnvelope } from './release.ts';
import { keyIdOf, openSignedEnvelope, refusalReason } from './signing.ts';

/** A container image reference (registry/repo:tag or @sha256:digest). */
export const imageRef = z
  .string()
  .min(1)
  .max(512)
  .regex(/^[a-z0-9][a-z0-9._/:@-]*$/i, 'must be an image reference like registry.example/metrics:0.9.1-hf1 or …@sha256:<digest>');

export const overrideAppliesTo = z.object({
  /** The release whose clusters are affected. */
  releaseName: dnsLabel,
  /** Versions of that release the fix is for; a cluster running another version ignores the override. */
  versions: z.array(semverLike).min(1).max(100),
});
export type OverrideAppliesTo = z.infer<typeof overrideAppliesTo>;

export const override = z
  .object({
    apiVersion: z.literal('fleetlet.io/v1'),
    kind: z.literal('Override'),
    /** Names the fix (e.g. a CVE or incident id); reported back in inventory.overrides[].name. */
    name: dnsLabel,
    /** The fix's own label (e.g. "0.9.1-hf1"); reported back in inventory.overrides[].version. */
    version: z.string().min(1).max(128),
    /** Per cluster, shared by all overrides of that cluster, separate from release revisions (see the file comment). */
    revision: z.number().int().positive(),
    issuedAt: z.iso.datetime(),
    /** After this the agent stops applying the override and restores the release's images. */
    expiresAt: z.iso.datetime(),
    appliesTo: overrideAppliesTo,
    /** The release component whose workloads get the new images. */
    component: dnsLabel,
    /** Container name → image, for every workload of the component that has such a container. */
    images: z.record(z.string().min(1).max(253), imageRef),
    /** A withdrawal: the agent removes the override named here and restores the release's images. */
    withdrawn: z.boolean().default(false),
    /** Why the fix exists, for people reading the cluster's status. */
    description: z.string().max(1024).optional(),
  })
  .superRefine((o, ctx) => {
    if (!o.withdrawn && Object.keys(o.images).length === 0) ctx.addIssue({ code: 'custom', path: ['images'], message: 'must name at least one container image (or set withdrawn)' });
    if (Date.parse(o.expiresAt) <= Date.parse(o.issuedAt)) ctx.addIssue({ code: 'custom', path: ['expiresAt'], message: 'must be after issuedAt' });
  });
export type Override = z.infer<typeof override>;
export type OverrideInput = z.input<typeof override>;

/** What an operator sends to create an override: the fields the hub does not own. */
export const overrideRequest = z.strictObject({
  name: dnsLabel,
  version: z.string().min(1).max(128),
  appliesTo: overrideAppliesTo,
  component: dnsLabel,
  images: z.record(z.string().min(1).max(253), imageRef).refine((i) => Object.keys(i).length > 0, 'must name at least one container image'),
  description: z.string().max(1024).optional(),
  /** Lifetime of each signed document; the hub's release TTL when absent. */
  ttlSeconds: z.number().int().positive().max(366 * 86_400).optional(),
});
export type OverrideRequest = z.infer<typeof overrideRequest>;

export const overrideRefusalReason = z.enum([...refusalReason.options, 'WrongKind']);
export type OverrideRefusalReason = z.infer<typeof overrideRefusalReason>;

/** Thrown by verifyOverride; the agent runs nothing and keeps what it had. */
export class OverrideRefused extends Error {
  override readonly name = 'OverrideRefused';
  readonly reason: OverrideRefusalReason;
  /** Set once the signature verified. */
  readonly revision: number | undefined;
  /** The override's name, set with the revision. */
  readonly overrideName: string | undefined;
  constructor(reason: OverrideRefusalReason, message: string, revision?: number, overrideName?: string) {
    super(message);
    this.reason = reason;
    this.revision = revision;
    this.overrideName = overrideName;
  }
}

/** Validates and signs the override's JSON text, exactly as signRelease does for releases. */
export function signOverride(input: OverrideInput, privateKey: KeyObject, keyId: string = keyIdOf(privateKey)): SignedEnvelope {
  const payload = JSON.stringify(override.parse(input));
  return { payload, signature: sign(null, Buffer.from(payload, 'utf8'), privateKey).toString('base64'), keyId };
}

export interface VerifyOverrideOptions {
  now: () => Date;
  /** The revision of the override with this name the agent holds (0 when none): anything not newer is a replay. */
  lastRevision: (name: string) => number;
}

/** The agent's check of an `override` message's envelope: signature first, then kind, schema, replay and expiry. */
export function verifyOverride(envelope: unknown, trusted: KeyObject | readonly KeyObject[], opts: VerifyOverrideOptions): Override {
  const json = openSignedEnvelope(envelope, trusted, 'override', (reason, message) => new OverrideRefused(reason, message));
  if ((json as { kind?: unknown } | null)?.kind !== 'Override') throw new OverrideRefused('WrongKind', 'the signed document is not an Override');
  const parsed = override.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new OverrideRefused('Malformed', `signed override is invalid at ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`);
  }
  const o = parsed.data;
  const held = opts.lastRevision(o.name);
  if (o.revision <= held) throw new OverrideRefused('Replayed', `override ${o.name} revision ${o.revision} is not newer than the held revision ${held}`, o.revision, o.name);
  if (Date.parse(o.expiresAt) <= opts.now().getTime()) throw new OverrideRefused('Expired', `override ${o.name} revision ${o.revision} expired at ${o.expiresAt}`, o.revision, o.name);
  return o;
}
