// The outbox contract between the journal (which owns the rows) and the hub
// link (which sends them). Kept as an interface so the hub link can be built
// and tested against any journal, and the journal never learns about sockets.

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

export interface Outbox {
  /** Durably appends a report and returns its sequence number. */
  enqueue(kind: string, body: unknown): number;
  /** Rows with seq > afterSeq, ascending, at most limit. */
  pending(afterSeq: number, limit: number): OutboxRow[];
  /** Removes every row with seq <= uptoSeq (a cumulative acknowledgement); returns how many left. */
  ack(uptoSeq: number): number;
  stats(): OutboxStats;
  /**
   * Calls `listener` after each enqueue, once the code that enqueued has
   * returned (so a row enqueued inside a transaction is committed, or gone,
   * by then). Returns the unsubscribe. Optional: without it, the sender polls
   * (flush) after it enqueues.
   */
  subscribe?(listener: () => void): () => void;
}
