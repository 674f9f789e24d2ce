// Opens the hub's database, SQLite or PostgreSQL, and brings its schema up
// to date.
//
// SQLite: WAL lets the HTTP API read while agents write; synchronous=FULL
// because an acknowledgement lets an agent delete its copy, so a report the
// hub acknowledged must survive a power cut. That makes each commit an
// fsync, so the hub commits rarely: report batches share one commit
// (group-commit.ts) and lease renewals are flushed once a second
// (cluster-repo.ts). The file holds public keys and hashes, not secrets, but
// also the fleet's inventory and reports: it and its -wal/-shm companions
// are 0600 (SQLite gives the companions the main file's mode). secure_delete
// zeroes freed pages, so a value the hub dropped (a legacy credential) does
// not linger in the file; a checkpoint after migrating empties the WAL of
// what they replaced.
//
// PostgreSQL: several replicas may start at once; the first to take the
// migration lock migrates, the others wait for it and find nothing to do.
import { chmodSync, closeSync, existsSync, openSync } from 'node:fs';
import Database from 'better-sqlite3';
import { migrations } from './migrations.ts';
import { postgresMigrations } from './postgres-migrations.ts';
import { PostgresSql, type PostgresSqlOptions } from './postgres-sql.ts';
import { HubDatabaseError, type Sql } from './sql.ts';
import { SqliteSql } from './sqlite-sql.ts';

export { HubDatabaseError };

const PRIVATE = 0o600;

/** Where the hub keeps its state: a SQLite file (one machine) or a PostgreSQL database (several replicas). */
export type HubDatabaseLocation = { kind: 'sqlite'; path: string } | ({ kind: 'postgres' } & PostgresSqlOptions);

export async function openHubDatabase(where: HubDatabaseLocation): Promise<Sql> {
  return where.kind === 'sqlite' ? openSqlite(where.path) : openPostgres(where);
}

export function openSqlite(path: string): SqliteSql {
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
  if (migrateSqlite(db)) db.pragma('wal_checkpoint(TRUNCATE)');
  return new SqliteSql(db);
}

class SchemaTooNew extends HubDatabaseError {}

function tooNew(current: number, known: number): HubDatabaseError {
  return new SchemaTooNew(`database schema version ${current} is newer than this hub knows (${known}): run a newer hub or restore a backup`);
}

/** True when it ran any migration. */
function migrateSqlite(db: Database.Database): boolean {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > migrations.length) {
    db.close();
    throw tooNew(current, migrations.length);
  }
  for (let v = current; v < migrations.length; v++) {
    db.transaction(() => {
      db.exec(migrations[v] ?? '');
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
  return current < migrations.length;
}

/** Any 64-bit number, the same in every replica: the advisory lock migrations run under. */
const MIGRATION_LOCK = 0x666c65_01;

export async function openPostgres(o: PostgresSqlOptions): Promise<PostgresSql> {
  const sql = new PostgresSql(o);
  try {
    await sql.transaction(async () => {
      // Held until COMMIT: a replica starting meanwhile waits here, then sees the version this one wrote.
      await sql.run('SELECT pg_advisory_xact_lock(?)', [MIGRATION_LOCK]);
      await sql.run('CREATE TABLE IF NOT EXISTS hub_schema (version INTEGER NOT NULL)');
      const row = await sql.get<{ version: number }>('SELECT version FROM hub_schema');
      const current = row?.version ?? 0;
      if (current > postgresMigrations.length) throw tooNew(current, postgresMigrations.length);
      for (let v = current; v < postgresMigrations.length; v++) await sql.run(postgresMigrations[v] ?? '');
      if (row === undefined) await sql.run('INSERT INTO hub_schema (version) VALUES (?)', [postgresMigrations.length]);
      else await sql.run('UPDATE hub_schema SET version = ?', [postgresMigrations.length]);
    });
  } catch (err) {
    await sql.close().catch(() => undefined);
    if (err instanceof SchemaTooNew) throw err;
    const why = err instanceof HubDatabaseError ? err.reason : err instanceof Error ? err.message : String(err);
    throw new HubDatabaseError(`cannot open the hub database at ${redact(o.connectionString)}: ${why}`);
  }
  return sql;
}

/** The connection string as it may be logged: without a password. */
export function redact(connectionString: string): string {
  try {
    const u = new URL(connectionString);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable connection string)';
  }
}
