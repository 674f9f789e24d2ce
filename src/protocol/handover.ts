// The hand-over record: the agent's state mirrored into the cluster (a
// ConfigMap in the agent's namespace), so whichever agent leads next, on
// whatever node, with whatever local journal, can take over an unfinished
// attempt. Read back with this schema: it is data from the cluster, and
// anything malformed is refused rather than acted on.
import { z } from 'zod';
import { attemptPhase } from './attempt.ts';
import { plan } from './plan.ts';
import { kubeObject, signedEnvelope } from './release.ts';

const objectRef = z.object({ apiVersion: z.string(), kind: z.string(), name: z.string(), namespace: z.string().optional() });

export const handoverRecord = z.object({
  /** Grows with every write; a journal older than the record imports it. */
  generation: z.number().int().nonnegative(),
  writtenBy: z.string(),
  agentVersion: z.string(),
  writtenAt: z.iso.datetime(),
  release: signedEnvelope.nullable(),
  /** The outbox position and its newest unsent rows, so report numbering continues on the next leader. */
  outbox: z.object({
    lastSeq: z.number().int().nonnegative(),
    pending: z.array(z.object({ seq: z.number().int().positive(), kind: z.string(), body: z.unknown(), createdAt: z.string() })),
  }),
  installed: z.array(z.object({ component: z.string(), version: z.string(), digest: z.string(), objects: z.array(objectRef) })),
  attempt: z
    .object({
      id: z.string(),
      revision: z.number().int(),
      releaseName: z.string(),
      releaseVersion: z.string(),
      plan,
      phase: attemptPhase,
      stage: z.number().int().nullable(),
      step: z.string().nullable(),
      reason: z.string().nullable(),
      message: z.string().nullable(),
      starts: z.number().int(),
      startedAt: z.string(),
      finishedAt: z.string().nullable(),
      transitions: z.array(
        z.object({ phase: attemptPhase, stage: z.number().int().nullable(), step: z.string().nullable(), reason: z.string().nullable(), message: z.string().nullable(), at: z.string() }),
      ),
      snapshots: z.array(
        z.object({
          component: z.string(),
          stage: z.number().int(),
          version: z.string().nullable(),
          digest: z.string().nullable(),
          objects: z.array(kubeObject),
          created: z.array(objectRef),
          owned: z.array(objectRef),
        }),
      ),
    })
    .nullable(),
});
export type HandoverRecord = z.infer<typeof handoverRecord>;

/** What a candidate (a new agent version started by a self-upgrade) says about itself. */
export const candidateReport = z.object({
  identity: z.string(),
  version: z.string(),
  ready: z.boolean(),
  message: z.string(),
  at: z.iso.datetime(),
});
export type CandidateReport = z.infer<typeof candidateReport>;
