// How long a stage will take, so it is started only when it can finish before
// its window closes. Past runs of the same component (from the journal) are
// the best guide; the progress deadline bounds the worst case, because past
// it the stage fails and rolls back instead of running on.

export interface EstimateOptions {
  /** The stage's soak (health must hold this long after rollout). Default 0. */
  soakMs?: number;
  /** Multiplier on the p90 of past durations. Default 1.5. */
  safetyFactor?: number;
  /** Fewer samples than this are too few for a p90 to mean much; the factor doubles. Default 3. */
  minSamples?: number;
  /** Only the most recent samples count (the array is oldest first). Default 20. */
  maxSamples?: number;
}

/**
 * Estimated wall time of a stage in ms:
 *
 *   no history:  progressDeadline + soak          (the longest the stage can run)
 *   history:     clamp(p90(last 20) × k, soak, progressDeadline + soak)
 *                k = safetyFactor (1.5), doubled (3) with fewer than minSamples (3)
 *
 * p90 is nearest-rank. Past durations are whole stages (apply to passed,
 * soak included), so the lower clamp only matters when the soak grew since.
 * Non-finite or negative samples are ignored rather than trusted.
 */
export function estimateStageMs(progressDeadlineMs: number, pastDurationsMs: readonly number[], opts: EstimateOptions = {}): number {
  const soak = Math.max(0, opts.soakMs ?? 0);
  const ceiling = Math.max(0, progressDeadlineMs) + soak;
  const samples = pastDurationsMs.filter((d) => Number.isFinite(d) && d >= 0).slice(-(opts.maxSamples ?? 20));
  if (samples.length === 0) return ceiling;
  const sorted = [...samples].sort((a, b) => a - b);
  const p90 = sorted[Math.ceil(0.9 * sorted.length) - 1] ?? 0;
  const factor = (opts.safetyFactor ?? 1.5) * (samples.length < (opts.minSamples ?? 3) ? 2 : 1);
  return Math.round(Math.min(ceiling, Math.max(soak, p90 * factor)));
}
