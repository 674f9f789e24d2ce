// The agent's journal: one SQLite file holding everything the agent decided
// and did. Opened once per process and passed to whoever needs it; each
// table's access lives in a small repository class next to this file.
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { AttemptRepo } from './attempt-repo.ts';
import { compact, type CompactionPolicy, type CompactionResult } from './compaction.ts';
import { JournalError } from './errors.ts';
import { InstalledRepo } from './installed-repo.ts';
import { checkFormatLevel, formatLevel, migrate, type MigrateResult } from './migrations.ts';
import { OutboxRepo } from './outbox-repo.ts';
import { OverrideRepo } from './override-repo.ts';
import { ReleaseRepo } from './release-repo.ts';

const HUB_URL_KEY = 'hub_url';

/**
 * How hard SQLite works to keep a commit across a power cut.
 * - `full` (default): fsync on every commit. The journal's promise is that a
 *   state is on disk before the action it names starts; edge clusters lose
 *   power, and in WAL mode `normal` may lose the last commits on power loss
 *   (they survive a process crash, not an OS crash). An upgrade step takes
 *   seconds, so the fsync cost (bench/journal.ts) is noise beside it.
 * - `normal`: for tests and benchmarks on throw-away files only.
 */
export type Durability = 'full' | 'normal';

export interface JournalOptions {
  durability?: Durability;
  now?: () => Date;
  /** The running agent's version: recorded with the migrations it runs, named when it refuses a newer journal. */
  agentVersion?: string;
}

/** The journal's format (src/store/migrations.ts): what a reader must understand, and what newer agents added that this one leaves alone. */
export interface JournalFormat {
  level: number;
  /** The highest level this agent reads. */
  knownLevel: number;
  fromNewerAgents: MigrateResult['fromNewerAgents'];
}

/** Refused writes, each error once though it passes both a statement and the transaction around it. */
class WriteErrors {
  count = 0;
  readonly #seen = new WeakSet<object>();

  note(err: unknown): void {
    if (!(err instanceof Database.SqliteError) || this.#seen.has(err)) return;
    this.#seen.add(err);
    this.count++;
  }
}

/**
 * The one place journal writes are counted: every writing statement any
 * repository prepares (inside a transaction or on its own, as releases.accept,
 * outbox.ack and setMeta run) notes the error SQLite refuses it with, so no
 * write path can forget to.
 */
function countWriteErrors(db: Database.Database, errors: WriteErrors): void {
  const prepare = db.prepare.bind(db);
  db.prepare = ((source: string) => {
    const stmt = prepare(source);
    if (stmt.reader) return stmt;
    const run = stmt.run.bind(stmt);
    stmt.run = (...params: unknown[]) => {
      try {
        return run(...params);
      } catch (err) {
        errors.note(err);
        throw err;
      }
    };
    return stmt;
  }) as typeof db.prepare;
}

export class Journal {
  readonly #db: Database.Database;
  readonly path: string;
  readonly releases: ReleaseRepo;
  readonly attempts: AttemptRepo;
  readonly installed: InstalledRepo;
  readonly outbox: OutboxRepo;
  readonly overrides: OverrideRepo;
  readonly now: () => Date;
  readonly format: JournalFormat;
  readonly #writeErrors = new WriteErrors();

  private constructor(db: Database.Database, path: string, now: () => Date, migrated: MigrateResult) {
    countWriteErrors(db, this.#writeErrors);
    this.#db = db;
    this.path = path;
    this.now = now;
    this.format = { level: migrated.level, knownLevel: formatLevel(), fromNewerAgents: migrated.fromNewerAgents };
    const iso = () => now().toISOString();
    this.releases = new ReleaseRepo(db, iso);
    this.attempts = new AttemptRepo(db, iso);
    this.installed = new InstalledRepo(db, iso);
    this.outbox = new OutboxRepo(db, iso);
    this.overrides = new OverrideRepo(db, iso);
  }

  static open(path: string, opts: JournalOptions = {}): Journal {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    let db: Database.Database;
    try {
      db = new Database(path);
    } catch (err) {
      throw new JournalError('JournalUnreadable', `cannot open journal ${path}: ${(err as Error).message}`, { cause: err });
    }
    reuseStatements(db);
    const now = opts.now ?? (() => new Date());
    const versions = { path, now, ...(opts.agentVersion === undefined ? {} : { agentVersion: opts.agentVersion }) };
    let migrated: MigrateResult;
    try {
      // First, before any pragma below writes to the file: a journal a newer
      // agent raised above this agent's format level is refused untouched.
      checkFormatLevel(db, versions);
      // auto_vacuum must be chosen before the first table exists; INCREMENTAL
      // lets compaction give pages back to the filesystem a few at a time.
      db.pragma('auto_vacuum = INCREMENTAL');
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${opts.durability === 'normal' ? 'NORMAL' : 'FULL'}`);
      db.pragma('foreign_keys = ON');
      db.pragma('busy_timeout = 5000');
      // better-sqlite3 builds SQLite with a 16 MB page cache; the agent's hot
      // pages (newest attempt, outbox head, meta) fit in a few. 512 KiB keeps
      // a large journal from filling RSS at open (quick_check reads every
      // page): measured in docs/footprint.md.
      db.pragma('cache_size = -512');
      const check = db.pragma('quick_check', { simple: true });
      if (check !== 'ok') throw new JournalError('JournalCorrupt', `journal ${path} failed its integrity check: ${String(check)}`);
      migrated = migrate(db, versions);
    } catch (err) {
      db.close();
      if (err instanceof JournalError) throw err;
      throw new JournalError('JournalUnusable', `journal ${path}: ${(err as Error).message}`, { cause: err });
    }
    return new Journal(db, path, now, migrated);
  }

  /**
   * Runs fn atomically: a transition and the report about it commit together
   * or not at all. A write SQLite refuses (disk full, I/O error, locked),
   * here or in a statement inside, is counted (writeErrors) and rethrown.
   */
  transaction<T>(fn: () => T): T {
    try {
      return this.#db.transaction(fn)();
    } catch (err) {
      this.#writeErrors.note(err);
      throw err;
    }
  }

  /** Writes SQLite refused since this journal was opened, wherever they ran (for the metrics). */
  get writeErrors(): number {
    return this.#writeErrors.count;
  }

  /** Throws unless the journal answers a query (readiness, a self-upgrade candidate's proof). */
  ping(): void {
    if (!this.#db.open) throw new JournalError('JournalClosed', `journal ${this.path} is closed`);
    this.#db.prepare('SELECT COUNT(*) FROM meta').get();
  }

  getMeta(key: string): string | undefined {
    const row = this.#db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
    return row?.value;
  }

  setMeta(key: string, value: string): void {
    this.#db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(key, value);
  }

  /**
   * The hub this agent runs with (its URL), recorded at start-up, or none:
   * `fleetlet status` reads it to show the outbox of an agent with a hub even
   * before the hub acknowledged anything, and none for an agent without one.
   */
  recordHub(url: string | undefined): void {
    if (url === undefined) this.#db.prepare('DELETE FROM meta WHERE key = ?').run(HUB_URL_KEY);
    else this.setMeta(HUB_URL_KEY, url);
  }

  recordedHub(): string | undefined {
    return this.getMeta(HUB_URL_KEY);
  }

  /** How the file is kept (for diagnostics and the journal's own tests): WAL, the synchronous level (2 = FULL), the schema version (the format level, src/store/migrations.ts). */
  settings(): { journalMode: string; synchronous: number; schemaVersion: number } {
    return {
      journalMode: this.#db.pragma('journal_mode', { simple: true }) as string,
      synchronous: this.#db.pragma('synchronous', { simple: true }) as number,
      schemaVersion: this.#db.pragma('user_version', { simple: true }) as number,
    };
  }

  sizeBytes(): number {
    const pages = this.#db.pragma('page_count', { simple: true }) as number;
    const size = this.#db.pragma('page_size', { simple: true }) as number;
    return pages * size;
  }

  compact(policy: CompactionPolicy): CompactionResult {
    return compact(this, policy);
  }

  reclaim(): void {
    this.#db.pragma('incremental_vacuum');
    this.#db.pragma('wal_checkpoint(TRUNCATE)');
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }
}

/**
 * One prepared statement per SQL text, kept for the database's life. The
 * repositories ask for their statement by its SQL on every call; without
 * this each call prepares a new native statement (SQLite's compiled program,
 * in the C heap) behind a JS handle so small that V8 frees it only in a full
 * collection, which an agent at rest rarely runs. The agent's soak grew by
 * tens of MiB that way (docs/footprint.md). The repositories' SQL is fixed
 * text, so the cache holds a few dozen statements; none is iterated, so a
 * shared statement is never busy when asked for again.
 */
function reuseStatements(db: Database.Database): void {
  const prepare = db.prepare.bind(db);
  const statements = new Map<string, Database.Statement>();
  db.prepare = ((sql: string) => {
    let statement = statements.get(sql);
    if (!statement) statements.set(sql, (statement = prepare(sql)));
    return statement;
  }) as Database.Database['prepare'];
}
