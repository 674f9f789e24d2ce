// Opens the hub's SQLite file. WAL lets the HTTP API read while agents write;
// synchronous=FULL because an acknowledgement lets an agent delete its copy,
// so a report the hub acknowledged must survive a power cut. That makes each
// commit an fsync, so the hub commits rarely: report batches share one commit
// (group-commit.ts) and lease renewals are flushed once a second (cluster-repo.ts).
//
// The file holds public keys and hashes, not secrets, but also the fleet's
// inventory and reports: it and its -wal/-shm companions are 0600 (SQLite
// gives the companions the main file's mode). secure_delete zeroes freed
// pages, so a value the hub dropped (a legacy credential) does not linger in
// the file; a checkpoint after migrating empties the WAL of what they replaced.
import { chmodSync, closeSync, existsSync, openSync } from 'node:fs';
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

const PRIVATE = 0o600;

export function openHubDatabase(path: string): HubDatabase {
  if (path !== ':memory:') {
    closeSync(openSync(path, 'a', PRIVATE));
    // A database created by an older hub (0644): tighten it and its companions.
    for (const f of [path, `${path}-wal`, `${path}-shm`]) if (existsSync(f)) chmodSync(f, PRIVATE);
  }
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  db.pragma('secure_delete = ON');
  if (migrate(db)) db.pragma('wal_checkpoint(TRUNCATE)');
  return db;
}

/** True when it ran any migration. */
function migrate(db: HubDatabase): boolean {
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
  return current < migrations.length;
}
