import { z } from 'zod';

/** RFC 1123 label, as Kubernetes requires for names of most objects. */
export const dnsLabel = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a lowercase RFC 1123 label (a-z, 0-9, "-")');

export const labelKey = z.string().min(1).max(317);
export const labelValue = z.string().max(63);
/** Cluster labels, as rollouts select by them; the same cap whether an operator or a registering agent sets them. */
export const labels = z.record(labelKey, labelValue).refine((l) => Object.keys(l).length <= 64, 'at most 64 labels');
