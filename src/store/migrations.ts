// Journal schema, as an ordered list of migrations, and the rule that lets
// two agent versions share one journal file.
//
// During the agent's own upgrade the old and the new version run on the same
// file (the Deployment's PVC, the DaemonSet's hostPath), and a failed upgrade
// puts the old version back on a journal the new one may have migrated. So
// PRAGMA user_version is the journal's *format level*: the level a reader
// must understand. Only a `breaking` migration raises it; an `additive` one
// (a new table, a new index, a new nullable or defaulted column: nothing an
// older agent's statements can trip on, and no existing column changes its
// meaning) leaves it alone, so an older agent still opens, reads and writes
// the journal, and the newer agent finds its additions again when it comes
// back. docs/architecture.md (invariant 11) has the rules; the journal's
// compatibility tests hold every `additive` migration to them.
//
// Migrations 1-5 shipped in v0.1.0, which counted every migration in
// user_version and refuses a journal above 5; they are `breaking` here for
// that reason (each raised the level by one). Every migration from 6 on,
// whatever its kind, is recorded in journal_migrations (created by 6), since
// an additive one leaves no trace in user_version.
//
// Each migration runs in its own transaction with its record, so a crash
// during an upgrade leaves the file before or after it, never between.
// Append only: never edit, reorder or rename a migration that has shipped.
import type Database from 'better-sqlite3';
import { JournalError, JournalTooNew } from './errors.ts';

/**
 * - `additive`: an older agent keeps working on the journal without knowing
 *   it (CREATE TABLE, CREATE INDEX that is not UNIQUE, ALTER TABLE … ADD
 *   COLUMN that is nullable or has a default); it leaves the format level alone.
 * - `breaking`: anything else (dropping or renaming, a constraint on an
 *   existing table, rewriting rows, a new meaning for an existing column);
 *   it raises the format level, and every older agent refuses the journal.
 */
export type MigrationKind = 'additive' | 'breaking';

export interface Migration {
  /** Recorded in journal_migrations; an agent refuses a journal whose record names another migration at the same position. */
  readonly name: string;
  readonly kind: MigrationKind;
  readonly sql: string;
}

export const migrations: readonly Migration[] = [
  {
    // 1: the tables of the first release.
    name: 'initial',
    kind: 'breaking',
    sql: `
  CREATE TABLE releases (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    revision      INTEGER,
    name          TEXT,
    version       TEXT,
    status        TEXT NOT NULL CHECK (status IN ('accepted', 'refused')),
    reason        TEXT,
    message       TEXT,
    envelope_json TEXT,
    release_json  TEXT,
    received_at   TEXT NOT NULL
  );
  CREATE INDEX releases_status_revision ON releases (status, revision);

  CREATE TABLE attempts (
    id              TEXT PRIMARY KEY,
    release_id      INTEGER NOT NULL REFERENCES releases (id),
    revision        INTEGER NOT NULL,
    release_name    TEXT NOT NULL,
    release_version TEXT NOT NULL,
    phase           TEXT NOT NULL,
    stage           INTEGER,
    step            TEXT,
    reason          TEXT,
    message         TEXT,
    plan_json       TEXT NOT NULL,
    starts          INTEGER NOT NULL DEFAULT 0,
    started_at      TEXT NOT NULL,
    finished_at     TEXT,
    updated_at      TEXT NOT NULL
  );
  CREATE INDEX attempts_finished ON attempts (finished_at);

  -- Append-only: the story of every attempt, one row per state entered.
  CREATE TABLE transitions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    attempt_id TEXT NOT NULL REFERENCES attempts (id) ON DELETE CASCADE,
    phase      TEXT NOT NULL,
    stage      INTEGER,
    step       TEXT,
    reason     TEXT,
    message    TEXT,
    data_json  TEXT,
    at         TEXT NOT NULL
  );
  CREATE INDEX transitions_attempt ON transitions (attempt_id, id);

  -- What an attempt is about to replace, written before it changes anything.
  CREATE TABLE snapshots (
    attempt_id   TEXT NOT NULL REFERENCES attempts (id) ON DELETE CASCADE,
    component    TEXT NOT NULL,
    stage        INTEGER NOT NULL,
    version      TEXT,
    digest       TEXT,
    objects_json TEXT NOT NULL,
    created_json TEXT NOT NULL,
    owned_json   TEXT NOT NULL,
    taken_at     TEXT NOT NULL,
    PRIMARY KEY (attempt_id, component)
  );

  -- What fleetlet has installed, per component: the level the planner compares against.
  CREATE TABLE installed (
    component   TEXT PRIMARY KEY,
    version     TEXT NOT NULL,
    digest      TEXT NOT NULL,
    objects_json TEXT NOT NULL,
    attempt_id  TEXT,
    updated_at  TEXT NOT NULL
  );

  CREATE TABLE stage_timings (
    attempt_id  TEXT NOT NULL REFERENCES attempts (id) ON DELETE CASCADE,
    component   TEXT NOT NULL,
    stage       INTEGER NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    duration_ms INTEGER,
    result      TEXT,
    PRIMARY KEY (attempt_id, component)
  );
  CREATE INDEX stage_timings_component ON stage_timings (component, finished_at);

  CREATE TABLE check_results (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    attempt_id  TEXT NOT NULL REFERENCES attempts (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('preflight', 'postflight')),
    stage       INTEGER,
    name        TEXT NOT NULL,
    result      TEXT NOT NULL,
    message     TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT NOT NULL
  );

  -- Reports for the hub. AUTOINCREMENT so a sequence number is never reused,
  -- even after every row has been acknowledged and deleted.
  CREATE TABLE outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL,
    body_json  TEXT NOT NULL,
    created_at TEXT NOT NULL
  );

  CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );
  `,
  },
  {
    // 2: hotfix overrides (signed like releases), the newest document per name.
    name: 'overrides',
    kind: 'breaking',
    sql: `
  CREATE TABLE overrides (
    name          TEXT PRIMARY KEY,
    revision      INTEGER NOT NULL,
    envelope_json TEXT NOT NULL,
    override_json TEXT NOT NULL,
    received_at   TEXT NOT NULL
  );
  `,
  },
  {
    // 3: the step column (a finer position inside a phase) was never written: every action is idempotent, so the phase is enough.
    name: 'drop-step',
    kind: 'breaking',
    sql: `
  ALTER TABLE attempts DROP COLUMN step;
  ALTER TABLE transitions DROP COLUMN step;
  `,
  },
  {
    // 4: reports the hub could not take (too deep, too large, invalid), kept with the reason instead of blocking the outbox.
    name: 'quarantined-reports',
    kind: 'breaking',
    sql: `
  CREATE TABLE quarantined_reports (
    seq            INTEGER PRIMARY KEY,
    kind           TEXT NOT NULL,
    body_json      TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    reason         TEXT NOT NULL,
    message        TEXT NOT NULL,
    quarantined_at TEXT NOT NULL
  );
  `,
  },
  {
    // 5: refused override documents, once per (name, revision, reason), or per envelope before the signature verified.
    name: 'override-refusals',
    kind: 'breaking',
    sql: `
  CREATE TABLE override_refusals (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT,
    revision      INTEGER,
    reason        TEXT NOT NULL,
    message       TEXT NOT NULL,
    envelope_json TEXT,
    received_at   TEXT NOT NULL
  );
  `,
  },
  {
    // 6: the record of every migration from here on: additive ones leave no trace in user_version.
    name: 'journal-migrations',
    kind: 'additive',
    sql: `
  CREATE TABLE journal_migrations (
    id            INTEGER PRIMARY KEY, -- its position in src/store/migrations.ts, from 1
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    level         INTEGER NOT NULL,    -- the journal's format level once it ran
    agent_version TEXT,                -- the agent that ran it, when it said
    applied_at    TEXT NOT NULL
  );
  `,
  },
];

/** The highest format level an agent with these migrations reads: how many of them are breaking. */
export function formatLevel(list: readonly Migration[] = migrations): number {
  return list.filter((m) => m.kind === 'breaking').length;
}

export interface MigrateOptions {
  /** Recorded with each migration this agent runs. */
  agentVersion?: string;
  now?: () => Date;
  /** The journal's path, for messages. */
  path?: string;
}

export interface MigrateResult {
  /** The journal's format level after migrating. */
  level: number;
  /** Migrations this call ran, by position (from 1). */
  applied: number[];
  /** Additive migrations a newer agent ran that this one does not know; it leaves their tables and columns alone. */
  fromNewerAgents: { id: number; name: string; agentVersion: string | null }[];
}

interface RecordedMigration {
  id: number;
  name: string;
  kind: string;
  level: number;
  agent_version: string | null;
}

const RECORD_TABLE = 'journal_migrations';

function recorded(db: Database.Database): RecordedMigration[] {
  const exists = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(RECORD_TABLE);
  if (!exists) return [];
  return db.prepare(`SELECT id, name, kind, level, agent_version FROM ${RECORD_TABLE} ORDER BY id`).all() as RecordedMigration[];
}

/**
 * Refuses, before anything is written, a journal whose format level is above
 * what `list` knows: reading it would risk misreading it (typed: JournalTooNew).
 * Returns the journal's level.
 */
export function checkFormatLevel(db: Database.Database, opts: MigrateOptions = {}, list: readonly Migration[] = migrations): number {
  const level = db.pragma('user_version', { simple: true }) as number;
  const known = formatLevel(list);
  if (level <= known) return level;
  // Which agent raised the level, if it recorded itself (agents after v0.1.0 do).
  const raisedBy = recorded(db).find((r) => r.level > known && r.kind === 'breaking');
  throw new JournalTooNew({ path: opts.path ?? 'the journal', journalLevel: level, knownLevel: known, agentVersion: opts.agentVersion, writtenBy: raisedBy?.agent_version ?? undefined });
}

/**
 * Brings the journal to every migration in `list` it lacks. A journal at
 * level L holds every migration up to the L-th breaking one (each agent runs
 * its list in order); past that, journal_migrations says which ran.
 */
export function migrate(db: Database.Database, opts: MigrateOptions = {}, list: readonly Migration[] = migrations): MigrateResult {
  let level = checkFormatLevel(db, opts, list);
  // Everything up to and including the level-th breaking migration has run.
  let implied = 0;
  for (let seen = 0; seen < level; implied++) if (list[implied]!.kind === 'breaking') seen++;
  const done = new Map(recorded(db).map((r) => [r.id, r]));
  for (const [id, r] of done) {
    const mine = list[id - 1];
    if (mine && mine.name !== r.name) {
      throw new JournalError(
        'JournalDiverged',
        `${opts.path ? `journal ${opts.path}` : 'the journal'} records migration ${id} as "${r.name}" (by agent ${r.agent_version ?? 'unknown'}), but this agent's migration ${id} is "${mine.name}": the two come from different lines of development; run the agent that wrote the journal`,
      );
    }
  }
  const applied: number[] = [];
  const now = opts.now ?? (() => new Date());
  for (let i = implied; i < list.length; i++) {
    const m = list[i]!;
    if (done.has(i + 1)) continue;
    db.transaction(() => {
      db.exec(m.sql);
      if (m.kind === 'breaking') db.pragma(`user_version = ${++level}`);
      // The record table exists from migration 6 on (its own creation is its first row).
      if (db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(RECORD_TABLE)) {
        db.prepare(`INSERT INTO ${RECORD_TABLE} (id, name, kind, level, agent_version, applied_at) VALUES (?, ?, ?, ?, ?, ?)`).run(
          i + 1,
          m.name,
          m.kind,
          level,
          opts.agentVersion ?? null,
          now().toISOString(),
        );
      }
    })();
    applied.push(i + 1);
  }
  const fromNewerAgents = [...done.values()].filter((r) => r.id > list.length).map((r) => ({ id: r.id, name: r.name, agentVersion: r.agent_version }));
  return { level, applied, fromNewerAgents };
}
