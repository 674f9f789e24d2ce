// Journal schema, as an ordered list of migrations. PRAGMA user_version holds
// how many have run; each runs in its own transaction, so a crash during an
// upgrade of the agent leaves the file on the old or the new schema, never
// between. Append only: never edit a migration that has shipped.
import type Database from 'better-sqlite3';

export const migrations: readonly string[] = [
  `
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
  // 2: hotfix overrides (signed like releases), the newest document per name.
  `
  CREATE TABLE overrides (
    name          TEXT PRIMARY KEY,
    revision      INTEGER NOT NULL,
    envelope_json TEXT NOT NULL,
    override_json TEXT NOT NULL,
    received_at   TEXT NOT NULL
  );
  `,
  // 3: the step column (a finer position inside a phase) was never written: every action is idempotent, so the phase is enough.
  `
  ALTER TABLE attempts DROP COLUMN step;
  ALTER TABLE transitions DROP COLUMN step;
  `,
  // 4: reports the hub could not take (too deep, too large, invalid), kept with the reason instead of blocking the outbox.
  `
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
  // 5: refused override documents, once per (name, revision, reason), or per envelope before the signature verified.
  `
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
];

export function migrate(db: Database.Database): number {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > migrations.length) {
    throw new Error(`journal schema version ${current} is newer than this agent knows (${migrations.length}): refusing to run an older agent on a newer journal`);
  }
  for (let v = current; v < migrations.length; v++) {
    db.transaction(() => {
      db.exec(migrations[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
  return migrations.length;
}
