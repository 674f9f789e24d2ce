// An in-process Outbox with the journal's contract (seq strictly increasing,
// never reused, cumulative ack), for tests of the hub link. The real journal
// (src/store) implements the same interface on SQLite.
import type { Outbox, OutboxRow, OutboxStats } from '../../src/store/outbox.ts';

export class MemoryOutbox implements Outbox {
  readonly #rows: OutboxRow[] = [];
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

  stats(): OutboxStats {
    return { depth: this.#rows.length, firstSeq: this.#rows[0]?.seq ?? null, lastSeq: this.#lastSeq };
  }
}
