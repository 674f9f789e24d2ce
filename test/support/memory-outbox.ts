// An in-process Outbox with the journal's contract (seq strictly increasing,
// never reused, cumulative ack), for tests of the hub link. The real journal
// (src/store) implements the same interface on SQLite.
import type { Outbox, OutboxRow, OutboxStats, QuarantineProblem } from '../../src/store/outbox.ts';

export class MemoryOutbox implements Outbox {
  readonly #rows: OutboxRow[] = [];
  /** What quarantine() took out, with why. */
  readonly quarantined: (OutboxRow & QuarantineProblem)[] = [];
  #lastSeq = 0;
  readonly #now: () => Date;

  constructor(now: () => Date = () => new Date()) {
    this.#now = now;
  }

  enqueue(kind: string, body: unknown): number {
    const seq = ++this.#lastSeq;
    // A deep copy, as a journal round-trip through JSON would give.
    this.#rows.push({ seq, kind, body: JSON.parse(JSON.stringify(body ?? null)) as unknown, createdAt: this.#now().toISOString() });
    return seq;
  }

  pending(afterSeq: number, limit: number): OutboxRow[] {
    return this.#rows.filter((r) => r.seq > afterSeq).slice(0, limit);
  }

  ack(uptoSeq: number): number {
    let removed = 0;
    while (this.#rows.length > 0 && (this.#rows[0]?.seq ?? Infinity) <= uptoSeq) {
      this.#rows.shift();
      removed++;
    }
    return removed;
  }

  quarantine(seq: number, problem: QuarantineProblem): void {
    const i = this.#rows.findIndex((r) => r.seq === seq);
    if (i < 0) return;
    const [row] = this.#rows.splice(i, 1);
    if (!row) return;
    this.quarantined.push({ ...row, ...problem });
    this.enqueue('report-quarantined', { seq, kind: row.kind, reason: problem.reason, message: problem.message, bytes: problem.bytes, at: this.#now().toISOString() });
  }

  stats(): OutboxStats {
    return { depth: this.#rows.length, firstSeq: this.#rows[0]?.seq ?? null, lastSeq: this.#lastSeq };
  }
}
