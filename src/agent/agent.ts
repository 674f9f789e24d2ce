// The agent: the one door for signed input (releases, hotfix overrides, the
// in-cluster hand-over record), and the loop that keeps the cluster moving
// towards the newest accepted release, one attempt at a time. Level-
// triggered: every turn of the loop compares what the journal says is
// desired with what the last attempt reached, so a restart, a missed wake-up
// or a duplicate release all converge the same way.
import { randomUUID, type KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import type { HandoverRecord } from '../protocol/handover.ts';
import type { Inventory } from '../protocol/inventory.ts';
import { OverrideRefused, verifyOverride } from '../protocol/override.ts';
import type { Release, SignedEnvelope } from '../protocol/release.ts';
import type { OverrideRefusedReport, ReleaseRefusedReport, ReportBody } from '../protocol/reports.ts';
import { ReleaseRefused, verifyAcceptedRelease, verifyRelease } from '../protocol/signing.ts';
import type { AttemptRecord } from '../store/attempt-repo.ts';
import { defaultCompaction, type CompactionPolicy } from '../store/compaction.ts';
import type { Journal } from '../store/journal.ts';
import { importMirror, mirrorGeneration } from '../store/mirror.ts';
import { admitRelease, ReleaseRejected, type AdmissionPolicy } from './intake/admission.ts';
import { withDefaultNamespace } from './intake/default-namespace.ts';
import { applicableOverrides, overridesKey, withOverrides } from './intake/overrides.ts';
import type { ClusterClient } from './kube/cluster-client.ts';
import { detectInfrastructure } from './kube/infrastructure.ts';
import { Wake } from './process/wake.ts';
import { Engine, transitionReport, type EngineDeps } from './upgrade/engine.ts';
import { planRelease } from './upgrade/planner.ts';

export interface AgentDeps extends Omit<EngineDeps, 'sleep' | 'targetInfrastructure'> {
  journal: Journal;
  cluster: ClusterClient;
  logger: Logger;
  now: () => Date;
  releaseKeys: readonly KeyObject[];
  admission: AdmissionPolicy;
  /** Where the cluster runs, for telemetry; read from its nodes when the agent starts unless given. */
  targetInfrastructure?: () => string;
  /** Where namespaced objects without a namespace go (see default-namespace.ts). */
  targetNamespace?: string;
  /** How long the loop idles when there is nothing to do (a wake cuts it short). */
  idleMs?: number;
  compaction?: CompactionPolicy;
  /** Report the inventory to the hub whenever an attempt ends (what the cluster runs may have changed). */
  reportInventory?: boolean;
}

export type OfferResult = { accepted: true; revision: number } | { accepted: false; reason: string; message: string };

/** How `run` ended: stopped by its signal, or handed over to the agent's own new version (this one stands by). */
export type RunResult = { handedOverTo?: string };

export class Agent {
  readonly #engine: Engine;
  readonly #journal: Journal;
  readonly #cluster: ClusterClient;
  readonly #logger: Logger;
  readonly #now: () => Date;
  readonly #releaseKeys: readonly KeyObject[];
  readonly #admission: AdmissionPolicy;
  readonly #targetNamespace: string | undefined;
  readonly #idleMs: number;
  readonly #compaction: CompactionPolicy;
  readonly #wake = new Wake();
  readonly #infrastructure: (() => string) | undefined;
  #detected = { infrastructure: 'unknown', kubernetesVersion: '' };

  constructor(deps: AgentDeps) {
    this.#journal = deps.journal;
    this.#cluster = deps.cluster;
    this.#logger = deps.logger;
    this.#now = deps.now;
    this.#releaseKeys = deps.releaseKeys;
    this.#admission = deps.admission;
    this.#targetNamespace = deps.targetNamespace;
    this.#idleMs = deps.idleMs ?? 30_000;
    this.#compaction = deps.compaction ?? defaultCompaction;
    this.#infrastructure = deps.targetInfrastructure;
    this.#engine = new Engine({
      ...deps,
      targetInfrastructure: () => this.#targetInfrastructure(),
      sleep: (ms, signal) => this.#wake.wait(ms, signal),
      ...(deps.reportInventory ? { inventory: () => this.#inventoryNow() } : {}),
    });
  }

  // ── the door for signed input ─────────────────────────────────────────

  /** A release from anywhere (hub, file): verified here and only here, because nothing runs unless signed. */
  async offer(envelope: unknown): Promise<OfferResult> {
    let verified: Release;
    try {
      verified = verifyRelease(envelope, this.#releaseKeys, { now: this.#now, lastRevision: this.#journal.releases.lastAcceptedRevision() });
    } catch (err) {
      if (err instanceof ReleaseRefused) return this.#refuse(err.reason, err.message, err.revision ?? null, envelope);
      throw err;
    }
    const release = withDefaultNamespace(verified, this.#targetNamespace);
    try {
      await admitRelease(release, { cluster: this.#cluster, installed: this.#journal.installed.all(), policy: this.#admission });
    } catch (err) {
      if (err instanceof ReleaseRejected) return this.#refuse(err.reason, err.message, release.revision, envelope);
      throw err;
    }
    // verifyRelease parsed the envelope before it checked the signature.
    this.#journal.releases.accept(release, envelope as SignedEnvelope);
    this.#logger.info({ revision: release.revision, release: release.name, version: release.version }, 'release accepted');
    this.#wake.notify();
    return { accepted: true, revision: release.revision };
  }

  /** A hotfix override (from the hub): verified like a release, then folded into the desired release. */
  offerOverride(envelope: unknown): OfferResult {
    const journal = this.#journal;
    try {
      const o = verifyOverride(envelope, this.#releaseKeys, { now: this.#now, lastRevision: (name) => journal.overrides.revisionOf(name) });
      journal.overrides.accept(o, envelope as SignedEnvelope);
      this.#logger.info({ override: o.name, revision: o.revision, component: o.component, withdrawn: o.withdrawn }, 'override accepted');
      this.#wake.notify();
      return { accepted: true, revision: o.revision };
    } catch (err) {
      if (!(err instanceof OverrideRefused)) throw err;
      // The hub re-sends every stored override after each hello: one the agent holds already is no news.
      if (err.reason === 'Replayed') return { accepted: false, reason: err.reason, message: err.message };
      const refusal = { name: err.overrideName ?? null, revision: err.revision ?? null, reason: err.reason, message: err.message, envelope: isEnvelope(envelope) ? envelope : undefined };
      const body: OverrideRefusedReport = {
        reason: err.reason,
        message: err.message,
        at: this.#now().toISOString(),
        ...(refusal.name !== null ? { name: refusal.name } : {}),
        ...(refusal.revision !== null ? { revision: refusal.revision } : {}),
      };
      this.#refuseOnce(journal.overrides, refusal, 'override-refused', body);
      return { accepted: false, reason: err.reason, message: err.message };
    }
  }

  /**
   * The in-cluster hand-over record of the agent that led before (another
   * node's journal, or the previous version), when it is newer than ours: we
   * take over its story and resume where it stopped. Its release is cluster
   * data, so it is verified again.
   */
  adoptHandover(record: HandoverRecord): boolean {
    if (record.generation <= mirrorGeneration(this.#journal)) return false;
    const release = record.release ? withDefaultNamespace(verifyAcceptedRelease(record.release, this.#releaseKeys), this.#targetNamespace) : null;
    const adopted = importMirror(this.#journal, record, release);
    if (adopted) this.#logger.info({ generation: record.generation, from: record.writtenBy }, 'took over from the hand-over record');
    return adopted;
  }

  /** A refused release through the one refusal path. */
  #refuse(reason: string, message: string, revision: number | null, envelope: unknown): OfferResult {
    const refusal = { revision, reason, message, envelope: isEnvelope(envelope) ? envelope : undefined };
    const body: ReleaseRefusedReport = { reason: reason as ReleaseRefusedReport['reason'], message, at: this.#now().toISOString(), ...(revision ? { revision } : {}) };
    this.#refuseOnce(this.#journal.releases, refusal, 'release-refused', body);
    return { accepted: false, reason, message };
  }

  /**
   * The one refusal path for signed input (releases, overrides): a journal row
   * and its report in one transaction, once per document and reason. Refused
   * once is refused: the hub re-sends its desired release and its overrides
   * after every reconnect, and the story (journal, hub) needs the refusal
   * once, not per reconnect.
   */
  #refuseOnce<R extends { reason: string; message: string; revision: number | null }, K extends 'release-refused' | 'override-refused'>(
    repo: { refusedBefore(r: R): boolean; refuse(r: R): unknown },
    refusal: R,
    kind: K,
    body: ReportBody<K>,
  ): void {
    const journal = this.#journal;
    if (repo.refusedBefore(refusal)) return;
    journal.transaction(() => {
      repo.refuse(refusal);
      journal.outbox.enqueue(kind, body);
    });
    this.#logger.warn({ reason: refusal.reason, revision: refusal.revision }, `${kind === 'release-refused' ? 'release' : 'override'} refused: ${refusal.message}`);
  }

  // ── what the agent tells ──────────────────────────────────────────────

  /** The overrides the cluster runs: those of the newest attempt that succeeded. */
  runningOverrides(): { name: string; component: string; version: string }[] {
    const ok = this.#journal.attempts.list(50).find((a) => a.phase === 'Succeeded');
    return (ok?.plan.overrides ?? []).map((o) => ({ name: o.name, component: o.component, version: o.version }));
  }

  /** What the cluster runs, for the hello and the inventory report; asks the API server for its version again. */
  async inventory(): Promise<Inventory> {
    this.#detected.kubernetesVersion = await this.#cluster.serverVersion().catch(() => this.#detected.kubernetesVersion);
    return this.#inventoryNow();
  }

  #inventoryNow(): Inventory {
    const components = this.#journal.installed.all().map((c) => ({ name: c.component, version: c.version }));
    return { components, kubernetesVersion: this.#detected.kubernetesVersion, targetInfrastructure: this.#targetInfrastructure(), overrides: this.runningOverrides() };
  }

  #targetInfrastructure(): string {
    return this.#infrastructure?.() ?? this.#detected.infrastructure;
  }

  /** Revision of the newest accepted release (0 when none). */
  lastRevision(): number {
    return this.#journal.releases.lastAcceptedRevision();
  }

  // ── the loop ──────────────────────────────────────────────────────────

  /**
   * Re-evaluates at once instead of at the end of the current wait: call it
   * when something the gate reads changed (the policy file was reloaded, the
   * hub's windows arrived).
   */
  wakeUp(): void {
    this.#wake.notify();
  }

  /** Runs until the signal aborts or the attempt is handed over: resumes an unfinished attempt, then follows the desired release. */
  async run(signal: AbortSignal): Promise<RunResult> {
    const journal = this.#journal;
    if (!this.#infrastructure) this.#detected.infrastructure = await detectInfrastructure(this.#cluster).catch(() => 'unknown');
    this.#detected.kubernetesVersion = await this.#cluster.serverVersion().catch(() => '');
    const unfinished = journal.attempts.current();
    if (unfinished) {
      this.#logger.info({ attemptId: unfinished.id, phase: unfinished.phase, stage: unfinished.stage }, 'resuming unfinished attempt');
      await this.#engine.resume(unfinished.id);
    }
    while (!signal.aborted) {
      const attempt = journal.attempts.current() ?? this.#nextAttempt();
      if (!attempt) {
        await this.#wake.wait(this.#idleMs, signal);
        continue;
      }
      try {
        const result = await this.#engine.drive(attempt.id, signal);
        if (result.handedOverTo) return { handedOverTo: result.handedOverTo };
        this.#compact();
      } catch (err) {
        if (signal.aborted) break;
        this.#logger.error({ err, attemptId: attempt.id }, 'attempt loop failed; retrying');
        await this.#wake.wait(5_000, signal);
      }
    }
    return {};
  }

  /** Starts an attempt when the desired release is newer than what the last attempt tried; its first state (Pending) is reported like every other. */
  #nextAttempt(): AttemptRecord | undefined {
    const journal = this.#journal;
    const desired = journal.releases.latestAccepted();
    if (!desired) return undefined;
    const last = journal.attempts.latest();
    const overrides = applicableOverrides(desired.release, journal.overrides.all(), this.#now());
    // A new attempt for a newer release, or for the same release when its set of
    // applicable overrides changed (a fix arrived, was withdrawn or expired).
    // The same (release, overrides) is never retried on its own: it needs a new revision.
    if (last && (last.revision > desired.revision || (last.revision === desired.revision && overridesKey(last.plan.overrides) === overridesKey(overrides)))) return undefined;
    const plan = planRelease(withOverrides(desired.release, overrides), journal.installed.all(), overrides);
    return journal.transaction(() => {
      const a = journal.attempts.create({ id: randomUUID(), releaseId: desired.id, revision: desired.revision, releaseName: desired.release.name, releaseVersion: desired.release.version, plan });
      journal.outbox.enqueue('attempt-transition', transitionReport(a, journal.attempts.transitions(a.id)[0]!));
      return a;
    });
  }

  /** History goes after each attempt, so the journal stays bounded on small edge disks. */
  #compact(): void {
    try {
      const r = this.#journal.compact(this.#compaction);
      if (r.attemptsRemoved || r.releasesRemoved) this.#logger.info(r, 'journal compacted');
    } catch (err) {
      this.#logger.warn({ err: (err as Error).message }, 'journal compaction failed; will retry after the next attempt');
    }
  }
}

function isEnvelope(e: unknown): e is SignedEnvelope {
  return typeof e === 'object' && e !== null && typeof (e as SignedEnvelope).payload === 'string' && typeof (e as SignedEnvelope).signature === 'string';
}
