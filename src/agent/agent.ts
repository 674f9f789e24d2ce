// The agent: takes signed releases in, decides whether to accept them, and
// keeps the cluster moving towards the newest accepted one, one attempt at a
// time. Level-triggered: every turn of the loop compares what the journal
// says is desired with what the last attempt reached, so a restart, a missed
// wake-up or a duplicate release all converge the same way.
import { randomUUID, type KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import type { ReleaseRefusedReport } from '../protocol/reports.ts';
import type { Release, SignedEnvelope } from '../protocol/release.ts';
import { ReleaseRefused, verifyRelease } from '../protocol/signing.ts';
import type { AttemptRecord } from '../store/attempt-repo.ts';
import type { Journal } from '../store/journal.ts';
import { defaultCompaction, type CompactionPolicy } from '../store/compaction.ts';
import { admitRelease, ReleaseRejected, type AdmissionPolicy } from './intake/admission.ts';
import { Engine, HandedOver, type EngineDeps } from './upgrade/engine.ts';
import type { ClusterClient } from './kube/cluster-client.ts';
import { planRelease } from './upgrade/planner.ts';
import { withDefaultNamespace } from './intake/default-namespace.ts';
import { applicableOverrides, overridesKey, withOverrides } from './intake/overrides.ts';
import { OverrideRefused, verifyOverride } from '../protocol/override.ts';
import { Wake } from './process/wake.ts';

export interface AgentDeps extends Omit<EngineDeps, 'sleep'> {
  journal: Journal;
  cluster: ClusterClient;
  logger: Logger;
  now: () => Date;
  releaseKeys: readonly KeyObject[];
  admission: AdmissionPolicy;
  /** Where namespaced objects without a namespace go (see default-namespace.ts). */
  targetNamespace?: string;
  /** How long the loop idles when there is nothing to do (a wake cuts it short). */
  idleMs?: number;
  compaction?: CompactionPolicy;
}

export type OfferResult = { accepted: true; revision: number } | { accepted: false; reason: string; message: string };

export class Agent {
  readonly engine: Engine;
  private readonly d: AgentDeps;
  private readonly wake = new Wake();

  constructor(deps: AgentDeps) {
    this.d = deps;
    this.engine = new Engine({ ...deps, sleep: (ms, signal) => this.wake.wait(ms, signal) });
  }

  /** A release from anywhere (hub, file): verified here, because nothing runs unless signed. */
  async offer(envelope: unknown): Promise<OfferResult> {
    let release: Release;
    try {
      release = verifyRelease(envelope, this.d.releaseKeys, { now: this.d.now, lastRevision: this.d.journal.releases.lastAcceptedRevision() });
    } catch (err) {
      if (err instanceof ReleaseRefused) return this.refuse(err.reason, err.message, err.revision ?? null, envelope);
      throw err;
    }
    return this.admit(release, envelope as SignedEnvelope);
  }

  /** A hotfix override (from the hub): verified like a release, then folded into the desired release. */
  offerOverride(envelope: unknown): OfferResult {
    const { journal } = this.d;
    try {
      const o = verifyOverride(envelope, this.d.releaseKeys, { now: this.d.now, lastRevision: (name) => journal.overrides.revisionOf(name) });
      journal.overrides.accept(o, envelope as SignedEnvelope);
      this.d.logger.info({ override: o.name, revision: o.revision, component: o.component, withdrawn: o.withdrawn }, 'override accepted');
      this.wake.notify();
      return { accepted: true, revision: o.revision };
    } catch (err) {
      if (!(err instanceof OverrideRefused)) throw err;
      if (err.reason !== 'Replayed') {
        journal.outbox.enqueue('override-refused', { reason: err.reason, message: err.message, at: this.d.now().toISOString(), ...(err.revision ? { revision: err.revision } : {}) });
        this.d.logger.warn({ reason: err.reason }, `override refused: ${err.message}`);
      }
      return { accepted: false, reason: err.reason, message: err.message };
    }
  }

  /** The overrides the cluster runs: those of the newest attempt that succeeded. */
  runningOverrides(): { name: string; component: string; version: string }[] {
    const ok = this.d.journal.attempts.list(50).find((a) => a.phase === 'Succeeded');
    return (ok?.plan.overrides ?? []).map((o) => ({ name: o.name, component: o.component, version: o.version }));
  }

  /** A release the hub link already verified; admission still applies. */
  async admit(verified: Release, envelope: SignedEnvelope): Promise<OfferResult> {
    const { journal } = this.d;
    const release = withDefaultNamespace(verified, this.d.targetNamespace);
    if (release.revision <= journal.releases.lastAcceptedRevision()) {
      return this.refuse('Replayed', `revision ${release.revision} is not newer than the accepted revision ${journal.releases.lastAcceptedRevision()}`, release.revision, envelope);
    }
    try {
      await admitRelease(release, { cluster: this.d.cluster, installed: journal.installed.all(), policy: this.d.admission });
    } catch (err) {
      if (err instanceof ReleaseRejected) return this.refuse(err.reason, err.message, release.revision, envelope);
      throw err;
    }
    journal.releases.accept(release, envelope);
    this.d.logger.info({ revision: release.revision, release: release.name, version: release.version }, 'release accepted');
    this.wake.notify();
    return { accepted: true, revision: release.revision };
  }

  private refuse(reason: string, message: string, revision: number | null, envelope: unknown): OfferResult {
    const { journal } = this.d;
    // Refused once is refused: the hub re-sends its desired release after every
    // reconnect, and the story (journal, hub) needs the refusal once, not per reconnect.
    if (revision !== null && journal.releases.refusedBefore(revision, reason)) return { accepted: false, reason, message };
    const body: ReleaseRefusedReport = { reason: reason as ReleaseRefusedReport['reason'], message, at: this.d.now().toISOString(), ...(revision ? { revision } : {}) };
    journal.transaction(() => {
      journal.releases.refuse({ revision, reason, message, envelope: isEnvelope(envelope) ? envelope : undefined });
      journal.outbox.enqueue('release-refused', body);
    });
    this.d.logger.warn({ reason, revision }, `release refused: ${message}`);
    return { accepted: false, reason, message };
  }

  /**
   * Re-evaluates at once instead of at the end of the current wait: call it
   * when something the gate reads changed (the policy file was reloaded, the
   * hub's windows arrived).
   */
  wakeUp(): void {
    this.wake.notify();
  }

  /** Runs until the signal aborts: resumes an unfinished attempt, then follows the desired release. */
  async run(signal: AbortSignal): Promise<void> {
    const { journal } = this.d;
    const unfinished = journal.attempts.current();
    if (unfinished) {
      this.d.logger.info({ attemptId: unfinished.id, phase: unfinished.phase, stage: unfinished.stage }, 'resuming unfinished attempt');
      await this.engine.resume(unfinished.id);
    }
    while (!signal.aborted) {
      const attempt = journal.attempts.current() ?? this.nextAttempt();
      if (!attempt) {
        await this.wake.wait(this.d.idleMs ?? 30_000, signal);
        continue;
      }
      try {
        await this.engine.drive(attempt.id, signal);
        this.compact();
      } catch (err) {
        if (signal.aborted) break;
        if (err instanceof HandedOver) throw err;
        this.d.logger.error({ err, attemptId: attempt.id }, 'attempt loop failed; retrying');
        await this.wake.wait(5_000, signal);
      }
    }
  }

  /** Starts an attempt when the desired release is newer than what the last attempt tried. */
  private nextAttempt(): AttemptRecord | undefined {
    const { journal } = this.d;
    const desired = journal.releases.latestAccepted();
    if (!desired) return undefined;
    const last = journal.attempts.latest();
    const overrides = applicableOverrides(desired.release, journal.overrides.all(), this.d.now());
    // A new attempt for a newer release, or for the same release when its set of
    // applicable overrides changed (a fix arrived, was withdrawn or expired).
    // The same (release, overrides) is never retried on its own: it needs a new revision.
    if (last && (last.revision > desired.revision || (last.revision === desired.revision && overridesKey(last.plan.overrides) === overridesKey(overrides)))) return undefined;
    const plan = planRelease(withOverrides(desired.release, overrides), journal.installed.all(), overrides);
    return journal.attempts.create({
      id: randomUUID(),
      releaseId: desired.id,
      revision: desired.revision,
      releaseName: desired.release.name,
      releaseVersion: desired.release.version,
      plan,
    });
  }

  /** History goes after each attempt, so the journal stays bounded on small edge disks. */
  private compact(): void {
    try {
      const r = this.d.journal.compact(this.d.compaction ?? defaultCompaction);
      if (r.attemptsRemoved || r.releasesRemoved) this.d.logger.info(r, 'journal compacted');
    } catch (err) {
      this.d.logger.warn({ err: (err as Error).message }, 'journal compaction failed; will retry after the next attempt');
    }
  }

  /** Component versions as installed, for the hello inventory and `fleetlet status`. */
  inventory(): { name: string; version: string }[] {
    return this.d.journal.installed.all().map((c) => ({ name: c.component, version: c.version }));
  }
}

function isEnvelope(e: unknown): e is SignedEnvelope {
  return typeof e === 'object' && e !== null && typeof (e as SignedEnvelope).payload === 'string' && typeof (e as SignedEnvelope).signature === 'string';
}
