// Where the hand-over record and the candidate's report live in the
// cluster: two ConfigMaps in the agent's namespace. Two, because the leader
// and the candidate each write only their own (no write ever races).
import { gunzipSync, gzipSync } from 'node:zlib';
import { candidateReport, handoverRecord, type CandidateReport, type HandoverRecord } from '../../protocol/handover.ts';
import type { Logger } from 'pino';
import type { Journal } from '../../store/journal.ts';
import { exportMirror, markMirrored } from '../../store/mirror.ts';
import type { ClusterClient } from './cluster-client.ts';
import { FIELD_MANAGER, MANAGED_BY_LABEL } from './object-ref.ts';

export class HandoverCorrupt extends Error {
  readonly reason = 'HandoverCorrupt';
  constructor(message: string) {
    super(message);
    this.name = 'HandoverCorrupt';
  }
}

/** The record would not fit in a ConfigMap: the agent carries on without an in-cluster copy (logged), never blocks on it. */
export class HandoverTooLarge extends Error {
  readonly reason = 'HandoverTooLarge';
  constructor(bytes: number) {
    super(`the hand-over record is ${bytes} bytes compressed, over the ${MAX_RECORD_BYTES} a ConfigMap can hold; a new leader could not take over this attempt`);
    this.name = 'HandoverTooLarge';
  }
}

/** ConfigMaps hold at most 1 MiB; leave room for metadata. */
const MAX_RECORD_BYTES = 900 * 1024;

export class HandoverStore {
  static readonly RECORD = 'fleetlet-handover';
  static readonly CANDIDATE = 'fleetlet-candidate';
  private readonly cluster: ClusterClient;
  private readonly namespace: string;

  constructor(cluster: ClusterClient, namespace: string) {
    this.cluster = cluster;
    this.namespace = namespace;
  }

  /** Written gzipped: snapshots of manifests compress about tenfold, and a ConfigMap holds 1 MiB. */
  async write(record: HandoverRecord): Promise<void> {
    const gz = gzipSync(JSON.stringify(record));
    if (gz.length > MAX_RECORD_BYTES) throw new HandoverTooLarge(gz.length);
    await this.cluster.apply({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: HandoverStore.RECORD, namespace: this.namespace, labels: { [MANAGED_BY_LABEL]: FIELD_MANAGER } },
      data: { generation: String(record.generation), writtenBy: record.writtenBy },
      binaryData: { 'record.json.gz': gz.toString('base64') },
    });
  }

  /**
   * Writes the journal's state as the record, then notes in the journal which
   * generation the cluster holds. A record too large for a ConfigMap is not
   * transient: waiting would block the upgrade forever, so it carries on, loudly.
   */
  async mirror(journal: Journal, who: { identity: string; agentVersion: string }, logger: Pick<Logger, 'error'>): Promise<void> {
    const record = exportMirror(journal, who);
    try {
      await this.write(record);
    } catch (err) {
      if (!(err instanceof HandoverTooLarge)) throw err;
      logger.error({ err: err.message }, 'no in-cluster hand-over record for this attempt');
      return;
    }
    markMirrored(journal, record.generation);
  }

  async read(): Promise<HandoverRecord | undefined> {
    const cm = (await this.cluster.read({ apiVersion: 'v1', kind: 'ConfigMap', name: HandoverStore.RECORD, namespace: this.namespace })) as { binaryData?: Record<string, string> } | undefined;
    const raw = cm?.binaryData?.['record.json.gz'];
    if (raw === undefined) return undefined;
    let json: unknown;
    try {
      json = JSON.parse(gunzipSync(Buffer.from(raw, 'base64')).toString('utf8'));
    } catch {
      throw new HandoverCorrupt(`ConfigMap ${this.namespace}/${HandoverStore.RECORD} does not hold a gzipped JSON record; delete it to let the leader rewrite it`);
    }
    const parsed = handoverRecord.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new HandoverCorrupt(`ConfigMap ${this.namespace}/${HandoverStore.RECORD}: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`);
    }
    return parsed.data;
  }

  async writeCandidate(report: CandidateReport): Promise<void> {
    await this.put(HandoverStore.CANDIDATE, { 'candidate.json': JSON.stringify(report), version: report.version, ready: String(report.ready) });
  }

  async readCandidate(): Promise<CandidateReport | undefined> {
    return this.get(HandoverStore.CANDIDATE, 'candidate.json', (v) => candidateReport.safeParse(v));
  }

  private async put(name: string, data: Record<string, string>): Promise<void> {
    await this.cluster.apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: this.namespace, labels: { [MANAGED_BY_LABEL]: FIELD_MANAGER } }, data });
  }

  private async get<T>(name: string, key: string, parse: (v: unknown) => { success: true; data: T } | { success: false; error: { issues: { path: PropertyKey[]; message: string }[] } }): Promise<T | undefined> {
    const cm = (await this.cluster.read({ apiVersion: 'v1', kind: 'ConfigMap', name, namespace: this.namespace })) as { data?: Record<string, string> } | undefined;
    const raw = cm?.data?.[key];
    if (raw === undefined) return undefined;
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      throw new HandoverCorrupt(`ConfigMap ${this.namespace}/${name} key ${key} is not JSON; delete it to let the leader rewrite it`);
    }
    const parsed = parse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new HandoverCorrupt(`ConfigMap ${this.namespace}/${name}: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`);
    }
    return parsed.data;
  }
}
