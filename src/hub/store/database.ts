// Opens the hub's SQLite file. WAL lets the HTTP API read while agents write;
// synchronous=FULL because an acknowledgement lets an agent delete its copy,
// so a report the hub acknowledged must survive a power cut. That makes each
// commit an fsync, so the hub commits rarely: report batches share one commit
// (group-commit.ts) and lease renewals are flushed once a second (clusters.ts).
import Database from 'better-sqlite3';
import { migrations } from './migrations.ts';

export type HubDatabase = Database.Database;

export class HubDatabaseError extends Error {
  override readonly name = 'HubDatabaseError';
  readonly reason: string;
  constructor(reason: string) {
    super(reason);
    this.reason = reason;
  }
}

export function openHubDatabase(path: string): HubDatabase {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  migrate(db);
  return db;
}

function migrate(db: HubDatabase): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > migrations.length) {
    db.close();
    throw new HubDatabaseError(`database schema version ${current} is newer than this hub knows (${migrations.length}): run a newer hub or restore a backup`);
  }
  for (let v = current; v < migrations.length; v++) {
    db.transaction(() => {
      db.exec(migrations[v] ?? '');
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}
