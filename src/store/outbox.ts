// The outbox contract between the journal (which owns the rows) and the hub
// link (which sends them). Kept as an interface so the hub link can be built
// and tested against any journal, and the journal never learns about sockets.
import type { QuarantineReason } from '../protocol/reports.ts';

export interface OutboxRow {
  /** Per-cluster sequence number: strictly increasing, never reused, survives restarts. */
  seq: number;
  kind: string;
  body: unknown;
  createdAt: string;
}

export interface OutboxStats {
  depth: number;
  firstSeq: number | null;
  /** Highest sequence ever assigned (0 when none). */
  lastSeq: number;
}

export interface QuarantineProblem {
  reason: QuarantineReason;
  message: string;
  bytes: number;
}

export interface Outbox {
  /** Durably appends a report and returns its sequence number. */
  enqueue(kind: string, body: unknown): number;
  /** Rows with seq > afterSeq, ascending, at most limit. */
  pending(afterSeq: number, limit: number): OutboxRow[];
  /** Removes every row with seq <= uptoSeq (a cumulative acknowledgement); returns how many left. */
  ack(uptoSeq: number): number;
  stats(): OutboxStats;
  /**
   * Takes a report the hub cannot take out of the outbox, keeps it (with the
   * reason) where it is not sent again, and enqueues a `report-quarantined`
   * report in its place, so the hub learns of it and the outbox moves on.
   */
  quarantine(seq: number, problem: QuarantineProblem): void;
  /**
   * Calls `listener` after each enqueue, once the code that enqueued has
   * returned (so a row enqueued inside a transaction is committed, or gone,
   * by then). Returns the unsubscribe. Optional: without it, the sender polls
   * (flush) after it enqueues.
   */
  subscribe?(listener: () => void): () => void;
}
