// The journal across agent versions (src/store/migrations.ts): a migration
// declared additive really is one an older agent cannot trip on, a breaking
// one is a deliberate decision that cuts off the previous release, and the
// format level logic lets an older migration list open a newer journal
// exactly when it should (and refuses it untouched otherwise).
// test/integration/journal-compat.test.ts runs the real previous release.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { JournalError, JournalTooNew } from '../../src/store/errors.ts';
import { Journal } from '../../src/store/journal.ts';
import { formatLevel, migrate, migrations, type Migration } from '../../src/store/migrations.ts';

const tmp = () => join(mkdtempSync(join(tmpdir(), 'journal-format-')), 'journal.db');
const digest = (m: Migration) => createHash('sha256').update(m.sql).digest('hex').slice(0, 16);

/**
 * Releases an agent may be rolled back to, with how many migrations each
 * shipped and the highest format level it reads. Adding a breaking migration
 * makes HEAD's journals unreadable to these: a decision to take on purpose
 * (say it in the release notes, and drop the release from here and from
 * test/integration/journal-compat.test.ts), never by accident.
 */
const rollbackTargets = [{ tag: 'v0.1.0', migrations: 5, readsUpTo: 5 }];

/**
 * The SQL of migrations as they shipped (sha256, 16 hex digits; 1-5 are
 * v0.1.0's, byte for byte): editing one would make two journals at the same
 * level differ. A release adds its new migrations here.
 */
const shipped: Record<number, string> = {
  1: '0647a0e17aebeaf4',
  2: '90553f28d5e4fa83',
  3: 'e57a0909f0a0af7d',
  4: '0303413b31f9b99f',
  5: '0a71e94f72d6a490',
};

test('shipped migrations are never edited or re-kinded', () => {
  for (const [pos, want] of Object.entries(shipped)) {
    const m = migrations[Number(pos) - 1];
    assert.ok(m, `migration ${pos} shipped and must stay`);
    assert.equal(digest(m), want, `migration ${pos} (${m.name}) changed after it shipped: add a new migration instead`);
    // v0.1.0 counted each of its migrations in user_version: they stay level-raising.
    if (Number(pos) <= 5) assert.equal(m.kind, 'breaking', `migration ${pos} raised the level when it shipped`);
  }
  assert.equal(new Set(migrations.map((m) => m.name)).size, migrations.length, 'migration names are unique');
});

test('the journal HEAD writes stays readable by every release it may be rolled back to', () => {
  for (const r of rollbackTargets) {
    assert.ok(
      formatLevel() <= r.readsUpTo,
      `HEAD's journal format level is ${formatLevel()}, but ${r.tag} reads levels up to ${r.readsUpTo}: a migration declared breaking cuts ${r.tag} off (a failed self-upgrade could not be rolled back to it). ` +
        'Make the migration additive (docs/architecture.md, invariant 11) or, on purpose, drop the release from rollbackTargets',
    );
    // The release's own migrations are HEAD's first ones, unchanged, and it counted every one of them in the level.
    assert.equal(formatLevel(migrations.slice(0, r.migrations)), r.readsUpTo, `${r.tag}'s migrations give its level`);
  }
});

// --- what "additive" means, checked against the SQL and the schema it makes ---

function statements(sql: string): string[] {
  return sql
    .replace(/--[^\n]*/g, '')
    .split(';')
    .map((s) => s.replace(/\s+/g, ' ').trim())
    .filter(Boolean);
}

interface Schema {
  db: Database.Database;
  objects: Map<string, { type: string; tbl: string; sql: string | null }>;
}

function schemaOf(list: readonly Migration[]): Schema {
  const db = new Database(':memory:');
  for (const m of list) db.exec(m.sql);
  const rows = db.prepare("SELECT type, name, tbl_name AS tbl, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").all() as { type: string; name: string; tbl: string; sql: string | null }[];
  return { db, objects: new Map(rows.map((r) => [r.name, r])) };
}

const cascades = (onDelete: string) => onDelete === 'CASCADE' || onDelete === 'SET NULL';

/**
 * Why `migration`, run after `before`, is not additive: what an agent that
 * knows only `before` could trip on (its INSERTs, its DELETEs, its reads).
 * Empty when it is additive.
 */
function additiveViolations(before: readonly Migration[], migration: Migration): string[] {
  const out: string[] = [];
  for (const s of statements(migration.sql)) {
    const ok = /^CREATE TABLE (IF NOT EXISTS )?\w+ ?\(/i.test(s) || /^CREATE INDEX /i.test(s) || /^ALTER TABLE \w+ ADD (COLUMN )?\w+/i.test(s);
    if (!ok) out.push(`statement "${s.slice(0, 60)}" is not CREATE TABLE, CREATE INDEX (not UNIQUE) or ALTER TABLE … ADD COLUMN`);
  }
  const a = schemaOf(before);
  const b = schemaOf([...before, migration]);
  try {
    for (const [name, o] of a.objects) {
      const now = b.objects.get(name);
      if (!now) out.push(`${o.type} ${name} is gone`);
      else if (o.type !== 'table' && now.sql !== o.sql) out.push(`${o.type} ${name} changed`);
    }
    for (const [name, o] of b.objects) {
      if (a.objects.has(name)) continue;
      if (o.type === 'trigger' || o.type === 'view') out.push(`new ${o.type} ${name}: it acts on an older agent's statements`);
      if (o.type === 'index' && a.objects.get(o.tbl)?.type === 'table') {
        const unique = (b.db.prepare(`PRAGMA index_list(${o.tbl})`).all() as { name: string; unique: number }[]).find((i) => i.name === name)?.unique === 1;
        if (unique) out.push(`new UNIQUE index ${name} on ${o.tbl}: it can refuse an older agent's INSERT`);
      }
      if (o.type === 'table') {
        for (const fk of b.db.prepare(`PRAGMA foreign_key_list(${name})`).all() as { table: string; on_delete: string }[]) {
          if (a.objects.has(fk.table) && !cascades(fk.on_delete)) out.push(`new table ${name} references ${fk.table} ON DELETE ${fk.on_delete}: an older agent deleting from ${fk.table} (compaction) would be refused`);
        }
      }
    }
    for (const [name, o] of a.objects) {
      if (o.type !== 'table' || !b.objects.has(name)) continue;
      type Col = { name: string; type: string; notnull: number; dflt_value: string | null; pk: number; hidden: number };
      const was = a.db.prepare(`PRAGMA table_xinfo(${name})`).all() as Col[];
      const is = b.db.prepare(`PRAGMA table_xinfo(${name})`).all() as Col[];
      if (is.length < was.length) out.push(`table ${name} lost columns`);
      was.forEach((c, i) => {
        if (JSON.stringify(c) !== JSON.stringify(is[i])) out.push(`column ${name}.${c.name} changed`);
      });
      for (const c of is.slice(was.length)) {
        if (c.notnull === 1 && c.dflt_value === null) out.push(`new column ${name}.${c.name} is NOT NULL without a default: an older agent's INSERT into ${name} would be refused`);
      }
      const fks = (db: Database.Database) => (db.prepare(`PRAGMA foreign_key_list(${name})`).all() as { table: string; from: string; on_delete: string }[]).map((f) => JSON.stringify(f));
      const oldFks = new Set(fks(a.db));
      for (const f of fks(b.db)) {
        const fk = JSON.parse(f) as { table: string; from: string; on_delete: string };
        if (!oldFks.has(f) && !cascades(fk.on_delete)) out.push(`new reference ${name}.${fk.from} → ${fk.table} ON DELETE ${fk.on_delete}: an older agent deleting from ${fk.table} would be refused`);
      }
    }
  } finally {
    a.db.close();
    b.db.close();
  }
  return out;
}

test('every migration declared additive is one an older agent cannot trip on', () => {
  migrations.forEach((m, i) => {
    if (m.kind !== 'additive') return;
    assert.deepEqual(additiveViolations(migrations.slice(0, i), m), [], `migration ${i + 1} (${m.name}) is declared additive but is not: declare it breaking, or change it`);
  });
});

test('the additive check catches each way a migration can break an older agent', () => {
  const base = migrations.slice(0, 5);
  const additive = (sql: string): Migration => ({ name: 'probe', kind: 'additive', sql });
  const caught = (sql: string, what: RegExp) => {
    const v = additiveViolations(base, additive(sql));
    assert.ok(v.some((x) => what.test(x)), `${sql.trim()}: expected a violation matching ${what}, got ${JSON.stringify(v)}`);
  };
  caught('ALTER TABLE attempts DROP COLUMN reason;', /not CREATE TABLE|gone|lost/);
  caught("ALTER TABLE attempts ADD COLUMN owner TEXT NOT NULL DEFAULT 'x'; UPDATE attempts SET owner = 'y';", /statement "UPDATE/);
  caught('ALTER TABLE outbox ADD COLUMN priority INTEGER NOT NULL;', /NOT NULL without a default/);
  caught('CREATE UNIQUE INDEX outbox_kind ON outbox (kind);', /UNIQUE index/);
  caught('CREATE TABLE attempt_notes (attempt_id TEXT NOT NULL REFERENCES attempts (id), note TEXT);', /ON DELETE NO ACTION/);
  caught('ALTER TABLE installed ADD COLUMN release_id INTEGER REFERENCES releases (id);', /new reference installed.release_id/);
  caught("CREATE TRIGGER t AFTER INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'no'); END;", /trigger/);
  caught('DROP INDEX attempts_finished;', /gone/);
  caught('ALTER TABLE meta RENAME TO settings;', /not CREATE TABLE/);
  // And what is additive passes.
  for (const sql of [
    'CREATE TABLE attempt_notes (attempt_id TEXT NOT NULL REFERENCES attempts (id) ON DELETE CASCADE, note TEXT);',
    'ALTER TABLE attempts ADD COLUMN owner TEXT;',
    "ALTER TABLE outbox ADD COLUMN priority INTEGER NOT NULL DEFAULT 0; CREATE INDEX outbox_priority ON outbox (priority);",
  ]) {
    assert.deepEqual(additiveViolations(base, additive(sql)), [], sql);
  }
});

// --- the format level: which lists open which journals ---

function rawMigrated(list: readonly Migration[], agentVersion: string): string {
  const path = tmp();
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  migrate(db, { agentVersion }, list);
  db.close();
  return path;
}

const fileDigest = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

test('every older migration list opens the newest journal exactly when the level allows, and refuses it untouched otherwise', () => {
  // HEAD's list, then one more additive, one breaking and one more additive:
  // every way a newer agent may have left the journal.
  const future: Migration[] = [
    ...migrations,
    { name: 'future-additive', kind: 'additive', sql: 'CREATE TABLE future_notes (id INTEGER PRIMARY KEY, note TEXT);' },
    { name: 'future-breaking', kind: 'breaking', sql: 'ALTER TABLE attempts DROP COLUMN message;' },
    { name: 'future-additive-2', kind: 'additive', sql: 'ALTER TABLE attempts ADD COLUMN owner TEXT;' },
  ];
  for (let upTo = 1; upTo <= future.length; upTo++) {
    const writer = future.slice(0, upTo);
    for (let knows = 1; knows <= future.length; knows++) {
      const reader = future.slice(0, knows);
      const path = rawMigrated(writer, `writer-${upTo}`);
      const before = fileDigest(path);
      const db = new Database(path);
      try {
        if (formatLevel(reader) >= formatLevel(writer)) {
          const r = migrate(db, { agentVersion: 'reader' }, reader);
          assert.equal(r.level, formatLevel(knows > upTo ? reader : writer), `reader ${knows} on writer ${upTo}: level`);
          assert.deepEqual(r.applied, range(upTo + 1, knows), `a reader knowing ${knows} runs exactly what the writer (${upTo}) lacked`);
          // Recorded ones only: migrations 1-5 leave no record, and what the reader knows is not "newer".
          assert.deepEqual(
            r.fromNewerAgents.map((m) => m.id),
            range(Math.max(knows, 5) + 1, upTo),
            `reader ${knows} on writer ${upTo}: the newer agent's migrations are named, not run`,
          );
        } else {
          assert.throws(
            () => migrate(db, { agentVersion: 'reader', path }, reader),
            (e: unknown) =>
              e instanceof JournalTooNew &&
              e.journalLevel === formatLevel(writer) &&
              e.knownLevel === formatLevel(reader) &&
              // Levels above 5 were raised by a recorded migration, which names its agent.
              e.message.includes(formatLevel(writer) > 5 ? `raised by fleetlet agent writer-${upTo}` : 'raised by a newer fleetlet agent'),
            `a reader knowing ${knows} migrations refuses a journal written with ${upTo}`,
          );
        }
      } finally {
        db.close();
      }
      // Opened at a level it reads, or refused: a reader knowing no more than the writer changes nothing.
      if (knows <= upTo) assert.equal(fileDigest(path), before, `a reader knowing ${knows} left the journal of writer ${upTo} untouched`);
    }
  }
});

/** from..to inclusive; empty when from > to. */
const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);

test('a journal recording another migration at a position this agent knows is refused (two lines of development)', () => {
  const path = rawMigrated(migrations, 'head');
  const other: Migration[] = [...migrations.slice(0, 5), { name: 'something-else', kind: 'additive', sql: 'CREATE TABLE journal_migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL, level INTEGER NOT NULL, agent_version TEXT, applied_at TEXT NOT NULL);' }];
  const db = new Database(path);
  try {
    assert.throws(() => migrate(db, { path }, other), (e: unknown) => e instanceof JournalError && e.reason === 'JournalDiverged' && /records migration 6 as "journal-migrations"/.test(e.message));
  } finally {
    db.close();
  }
});

test('v0.1.0\'s journal is brought to HEAD by the additive migrations only, recorded with the agent that ran them', () => {
  const path = rawMigrated(migrations.slice(0, 5), 'v0.1.0');
  const j = Journal.open(path, { agentVersion: '0.2.0-test', now: () => new Date('2030-01-01T00:00:00Z') });
  try {
    assert.equal(j.settings().schemaVersion, 5, 'the level v0.1.0 reads');
    assert.deepEqual(j.format, { level: 5, knownLevel: 5, fromNewerAgents: [] });
  } finally {
    j.close();
  }
  const db = new Database(path, { readonly: true });
  try {
    assert.deepEqual(db.prepare('SELECT id, name, kind, level, agent_version, applied_at FROM journal_migrations').all(), [
      { id: 6, name: 'journal-migrations', kind: 'additive', level: 5, agent_version: '0.2.0-test', applied_at: '2030-01-01T00:00:00.000Z' },
    ]);
  } finally {
    db.close();
  }
});

test('a journal above this agent\'s level is refused before anything is written, the file untouched', () => {
  const path = rawMigrated([...migrations, { name: 'future-breaking', kind: 'breaking', sql: 'ALTER TABLE attempts DROP COLUMN message;' }], '9.9.9');
  const before = fileDigest(path);
  assert.throws(
    () => Journal.open(path, { agentVersion: '0.2.0' }),
    (e: unknown) => e instanceof JournalTooNew && e.message.includes(`journal ${path} is at format level ${formatLevel() + 1} (raised by fleetlet agent 9.9.9)`) && e.message.includes('Run agent 9.9.9 or a newer one'),
  );
  assert.equal(fileDigest(path), before);
});
