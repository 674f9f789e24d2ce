import type Database from 'better-sqlite3';

/** What every table gateway of the journal holds: the open database and the journal's clock (ISO strings). */
export abstract class Repo {
  protected readonly db: Database.Database;
  protected readonly now: () => string;
  constructor(db: Database.Database, now: () => string) {
    this.db = db;
    this.now = now;
  }
}
