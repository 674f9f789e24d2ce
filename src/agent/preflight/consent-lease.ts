// Consent: an operator or an application defers upgrades by holding a Lease
// (coordination.k8s.io) named in the policy, like a "do not disturb" sign.
// The deferral holds while renewTime + leaseDurationSeconds is in the future,
// so a holder that dies stops deferring on its own. A deferral held past the
// policy's maxDeferral is escalated, not obeyed forever: the check passes and
// says DeferralLimitExceeded, so the status shows who held it and for how long.
import type { Policy } from '../../protocol/policy.ts';
import { durationMs } from '../../protocol/policy.ts';
import type { KubeObject } from '../../protocol/release.ts';
import type { Journal } from '../../store/journal.ts';
import type { Check } from '../checks/check.ts';
import type { ClusterClient } from '../kube/cluster-client.ts';
import { formatMs } from '../windows/index.ts';

/** Meta key of the deferral the current attempt first saw: survives restarts, one row however many attempts. */
export const DEFERRAL_META_KEY = 'consent.deferral';

export const DEFERRAL_LIMIT_EXCEEDED = 'DeferralLimitExceeded';

interface DeferralSeen {
  attemptId: string;
  firstSeenAt: string;
}

type Lease = KubeObject & {
  spec?: { holderIdentity?: string; leaseDurationSeconds?: number; renewTime?: string | Date; acquireTime?: string | Date };
};

export interface ConsentCheckDeps {
  cluster: ClusterClient;
  journal: Journal;
  now: () => Date;
}

export function consentLeaseCheck(deps: ConsentCheckDeps, consent: Policy['consent'], attemptId: string, timeoutMs = 10_000): Check {
  const where = `Lease ${consent.namespace}/${consent.leaseName}`;
  return {
    name: 'consent',
    timeoutMs,
    async run() {
      const lease = (await deps.cluster.read({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', name: consent.leaseName, namespace: consent.namespace })) as Lease | undefined;
      const holder = lease?.spec?.holderIdentity;
      const renewed = toMs(lease?.spec?.renewTime ?? lease?.spec?.acquireTime);
      const seconds = lease?.spec?.leaseDurationSeconds;
      const now = deps.now().getTime();
      if (!lease) return { result: 'pass', message: `no deferral (${where} does not exist)` };
      if (!holder) return { result: 'pass', message: `no deferral (${where} has no holder)` };
      if (renewed === undefined || seconds === undefined) return { result: 'pass', message: `no deferral (${where} held by ${holder} has no renewTime or leaseDurationSeconds)` };
      const until = renewed + seconds * 1000;
      if (until <= now) return { result: 'pass', message: `no deferral (${where} held by ${holder} expired at ${new Date(until).toISOString()})` };

      const since = firstSeen(deps.journal, attemptId, now);
      const held = now - since;
      const limit = durationMs(consent.maxDeferral);
      if (held > limit) {
        return {
          result: 'pass',
          message: `${DEFERRAL_LIMIT_EXCEEDED}: ${holder} has deferred upgrades through ${where} for ${formatMs(held)} (since ${new Date(since).toISOString()}), beyond maxDeferral ${consent.maxDeferral}; going ahead`,
        };
      }
      return {
        result: 'fail',
        message: `upgrades deferred by ${holder} through ${where} until ${new Date(until).toISOString()} unless renewed; deferred for ${formatMs(held)} so far, escalated after maxDeferral ${consent.maxDeferral} (at ${new Date(since + limit).toISOString()})`,
      };
    },
  };
}

/** When this attempt first saw a deferral; recorded on first sight. */
function firstSeen(journal: Journal, attemptId: string, now: number): number {
  const raw = journal.getMeta(DEFERRAL_META_KEY);
  if (raw) {
    try {
      const seen = JSON.parse(raw) as DeferralSeen;
      if (seen.attemptId === attemptId) return Date.parse(seen.firstSeenAt);
    } catch {
      // unreadable: start measuring again
    }
  }
  journal.setMeta(DEFERRAL_META_KEY, JSON.stringify({ attemptId, firstSeenAt: new Date(now).toISOString() } satisfies DeferralSeen));
  return now;
}

function toMs(v: string | Date | undefined): number | undefined {
  if (v === undefined) return undefined;
  const ms = v instanceof Date ? v.getTime() : Date.parse(v);
  return Number.isNaN(ms) ? undefined : ms;
}
