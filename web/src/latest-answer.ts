// Which answers of a view's overlapping requests to show. A view refetches
// whenever the server says something changed, so requests overlap; dropping
// every answer but the last request's would leave a view empty (or stale)
// for as long as changes arrive faster than the hub answers, first answer
// included. Instead every answer newer than the one shown is shown: the
// newest request wins, and an older one still lands while nothing newer has.
export class LatestAnswer {
  #issued = 0;
  #shown = 0;
  #key: string | null = null;

  /** A new request for `key` (the view's path): its ticket. A new key forgets the old one's answers. */
  issue(key: string): number {
    if (key !== this.#key) {
      this.#key = key;
      this.#shown = this.#issued;
    }
    return ++this.#issued;
  }

  /** Whether the answer to `ticket` for `key` should be shown (and is now the one shown). */
  accept(key: string, ticket: number): boolean {
    if (key !== this.#key || ticket <= this.#shown) return false;
    this.#shown = ticket;
    return true;
  }
}
