// Schema history of the hub's PostgreSQL database (the SQLite one is
// migrations.ts; the repositories' SQL runs on both). Append only, like
// SQLite's: a migration that shipped is never edited. hub_schema records
// how many have run; replicas starting together take an advisory lock first
// (database.ts), so each migration runs once.
//
// Timestamps are ISO-8601 text, as in SQLite, so both backends hand the
// repositories the same values; JSON documents are text for the same reason.

export const postgresMigrations: readonly string[] = [
  `
  CREATE TABLE clusters (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('Pending', 'Accepted')),
    labels TEXT NOT NULL DEFAULT '{}',
    -- sha256 of a bearer credential from before keys (docs/security.md)
    credential_hash TEXT UNIQUE,
    public_key TEXT,
    revoked_at TEXT,
    requested_at TEXT NOT NULL,
    accepted_at TEXT,
    -- the lease: replicas only ever move it forward (GREATEST), see cluster-repo.ts
    last_seen TEXT,
    connected_at TEXT,
    agent_version TEXT,
    inventory TEXT,
    kubernetes_version TEXT,
    target_infrastructure TEXT,
    agent_revision BIGINT NOT NULL DEFAULT 0,
    -- every report up to here is stored and applied, without a hole; ingest locks this row (report-repo.ts)
    acked_seq BIGINT NOT NULL DEFAULT 0
  );

  CREATE TABLE cluster_key_conflicts (
    cluster_id TEXT NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    public_key TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1,
    remote_address TEXT,
    PRIMARY KEY (cluster_id, public_key)
  );

  CREATE TABLE desired_releases (
    cluster_id TEXT NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    revision BIGINT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    envelope TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (cluster_id, revision)
  );

  CREATE TABLE reports (
    cluster_id TEXT NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    prev_seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    problem TEXT,
    PRIMARY KEY (cluster_id, seq)
  );
  CREATE INDEX reports_chain ON reports (cluster_id, prev_seq);

  CREATE TABLE cluster_upgrade (
    cluster_id TEXT PRIMARY KEY REFERENCES clusters (id) ON DELETE CASCADE,
    attempt_id TEXT,
    release_name TEXT,
    release_version TEXT,
    revision BIGINT,
    phase TEXT,
    status TEXT,
    stage INTEGER,
    reason TEXT,
    message TEXT,
    at TEXT,
    running_name TEXT,
    running_version TEXT,
    last_refusal TEXT
  );

  -- Not tied to clusters: telemetry outlives a deregistered cluster. No key
  -- on (cluster_id, seq): a cluster registered again under its old id may
  -- count from 1 again. A report is applied once because ingest locks the
  -- cluster's row (report-repo.ts), telemetry included.
  CREATE TABLE telemetry (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    cluster_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    body TEXT NOT NULL,
    received_at TEXT NOT NULL
  );
  CREATE INDEX telemetry_cluster ON telemetry (cluster_id, id);

  CREATE TABLE rollouts (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    phase TEXT NOT NULL CHECK (phase IN ('Progressing', 'Paused', 'Succeeded', 'Completed', 'Cancelled')),
    reason TEXT,
    message TEXT,
    acknowledged_failures INTEGER NOT NULL DEFAULT 0,
    acknowledged_mandatory_failures INTEGER NOT NULL DEFAULT 0,
    rollback_of TEXT,
    rolled_back_by TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    ended_at TEXT,
    updated_at TEXT NOT NULL
  );
  CREATE INDEX rollouts_active ON rollouts (phase);

  CREATE TABLE rollout_groups (
    rollout TEXT NOT NULL REFERENCES rollouts (name) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    name TEXT NOT NULL,
    mandatory INTEGER NOT NULL,
    PRIMARY KEY (rollout, idx)
  );

  CREATE TABLE rollout_clusters (
    rollout TEXT NOT NULL REFERENCES rollouts (name) ON DELETE CASCADE,
    cluster_id TEXT NOT NULL,
    group_idx INTEGER NOT NULL,
    position INTEGER NOT NULL,
    sent_revision BIGINT,
    sent_at TEXT,
    previous_revision BIGINT,
    succeeded_at TEXT,
    skipped_at TEXT,
    failure TEXT,
    PRIMARY KEY (rollout, cluster_id)
  );
  CREATE INDEX rollout_clusters_order ON rollout_clusters (rollout, position);
  CREATE INDEX rollout_clusters_cluster ON rollout_clusters (cluster_id);

  CREATE TABLE overrides (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    withdrawn INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
  );

  CREATE TABLE override_documents (
    cluster_id TEXT NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    revision BIGINT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    withdrawn INTEGER NOT NULL,
    envelope TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (cluster_id, revision)
  );
  CREATE INDEX override_documents_name ON override_documents (cluster_id, name, revision);

  CREATE TABLE bootstrap_tokens (
    ord BIGINT GENERATED ALWAYS AS IDENTITY,
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL CHECK (source IN ('config', 'api')),
    description TEXT,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    max_uses INTEGER,
    uses INTEGER NOT NULL DEFAULT 0,
    revoked_at TEXT
  );

  CREATE TABLE operator_tokens (
    ord BIGINT GENERATED ALWAYS AS IDENTITY,
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    revoked_at TEXT
  );

  CREATE TABLE audit_log (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    role TEXT,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status INTEGER NOT NULL,
    remote_address TEXT
  );
  `,
  `
  -- What one replica told the others (replicas/replica-bus.ts), kept a few
  -- minutes so a replica whose listening connection dropped replays what it
  -- missed. at: the database's clock, in epoch milliseconds.
  CREATE TABLE hub_events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at BIGINT NOT NULL DEFAULT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT,
    origin TEXT NOT NULL,
    event TEXT NOT NULL
  );
  CREATE INDEX hub_events_at ON hub_events (at);
  `,
  // The last override refusal each cluster reported (override-refused), beside the last release refusal.
  `
  ALTER TABLE cluster_upgrade ADD COLUMN last_override_refusal TEXT;
  `,
  // The dashboard (store/dashboard-repo.ts), as SQLite's migrations 5 and 7
  // do it: labels and reported overrides as rows kept by triggers, the
  // indexes its counts and lists read, and its change counter. The counter is
  // a sequence (not transactional, so writers on every replica bump it
  // without waiting on one another), bumped by deferred triggers, at commit:
  // a page told of a change reads it committed.
  `
  CREATE TABLE cluster_labels (
    cluster_id TEXT NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (cluster_id, key)
  );
  CREATE INDEX cluster_labels_pair ON cluster_labels (key, value, cluster_id);

  CREATE TABLE cluster_overrides (
    cluster_id TEXT NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    version TEXT,
    component TEXT,
    PRIMARY KEY (cluster_id, name)
  );
  CREATE INDEX cluster_overrides_name ON cluster_overrides (name, cluster_id);

  CREATE FUNCTION cluster_rows_sync() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    IF TG_OP = 'INSERT' OR NEW.labels IS DISTINCT FROM OLD.labels THEN
      DELETE FROM cluster_labels WHERE cluster_id = NEW.id;
      INSERT INTO cluster_labels (cluster_id, key, value) SELECT NEW.id, l.key, l.value FROM jsonb_each_text(NEW.labels::jsonb) l;
    END IF;
    IF TG_OP = 'INSERT' OR NEW.inventory IS DISTINCT FROM OLD.inventory THEN
      DELETE FROM cluster_overrides WHERE cluster_id = NEW.id;
      IF jsonb_typeof(NEW.inventory::jsonb -> 'overrides') = 'array' THEN
        INSERT INTO cluster_overrides (cluster_id, name, version, component)
          SELECT NEW.id, o ->> 'name', o ->> 'version', o ->> 'component' FROM jsonb_array_elements(NEW.inventory::jsonb -> 'overrides') o
          WHERE o ->> 'name' IS NOT NULL
          ON CONFLICT DO NOTHING;
      END IF;
    END IF;
    RETURN NULL;
  END $$;
  CREATE TRIGGER cluster_rows_sync AFTER INSERT OR UPDATE OF labels, inventory ON clusters FOR EACH ROW EXECUTE FUNCTION cluster_rows_sync();
  INSERT INTO cluster_labels (cluster_id, key, value) SELECT c.id, l.key, l.value FROM clusters c, jsonb_each_text(c.labels::jsonb) l;
  INSERT INTO cluster_overrides (cluster_id, name, version, component)
    SELECT c.id, o ->> 'name', o ->> 'version', o ->> 'component' FROM clusters c, jsonb_array_elements(c.inventory::jsonb -> 'overrides') o
    WHERE jsonb_typeof(c.inventory::jsonb -> 'overrides') = 'array' AND o ->> 'name' IS NOT NULL
    ON CONFLICT DO NOTHING;

  CREATE INDEX clusters_state ON clusters (status, last_seen, id);
  CREATE INDEX cluster_upgrade_status ON cluster_upgrade (status, at);
  CREATE INDEX cluster_upgrade_phase ON cluster_upgrade (phase, at);
  CREATE INDEX cluster_upgrade_running ON cluster_upgrade (running_name, running_version);

  CREATE SEQUENCE dashboard_changes;
  CREATE FUNCTION dashboard_changed() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    PERFORM nextval('dashboard_changes');
    RETURN NULL;
  END $$;
  CREATE CONSTRAINT TRIGGER dashboard_clusters_rows AFTER INSERT OR DELETE ON clusters DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION dashboard_changed();
  CREATE CONSTRAINT TRIGGER dashboard_clusters_update AFTER UPDATE ON clusters DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.labels IS DISTINCT FROM NEW.labels OR OLD.inventory IS DISTINCT FROM NEW.inventory
      OR OLD.agent_version IS DISTINCT FROM NEW.agent_version OR OLD.kubernetes_version IS DISTINCT FROM NEW.kubernetes_version
      OR OLD.target_infrastructure IS DISTINCT FROM NEW.target_infrastructure OR OLD.public_key IS DISTINCT FROM NEW.public_key
      OR OLD.revoked_at IS DISTINCT FROM NEW.revoked_at)
    EXECUTE FUNCTION dashboard_changed();
  CREATE CONSTRAINT TRIGGER dashboard_upgrade AFTER INSERT OR UPDATE ON cluster_upgrade DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION dashboard_changed();
  CREATE CONSTRAINT TRIGGER dashboard_reports AFTER INSERT ON reports DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (NEW.kind = 'attempt-transition') EXECUTE FUNCTION dashboard_changed();
  CREATE CONSTRAINT TRIGGER dashboard_rollouts AFTER INSERT OR UPDATE OR DELETE ON rollouts DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION dashboard_changed();
  CREATE CONSTRAINT TRIGGER dashboard_members AFTER INSERT OR UPDATE OR DELETE ON rollout_clusters DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION dashboard_changed();
  CREATE CONSTRAINT TRIGGER dashboard_overrides AFTER INSERT OR UPDATE OR DELETE ON overrides DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION dashboard_changed();
  CREATE CONSTRAINT TRIGGER dashboard_releases AFTER INSERT ON desired_releases DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION dashboard_changed();
  CREATE CONSTRAINT TRIGGER dashboard_documents AFTER INSERT ON override_documents DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION dashboard_changed();
  `,
  // Each committed hello takes the next connection epoch of its cluster:
  // replicas order an agent's connections by it, not by when they hear of them.
  `
  ALTER TABLE clusters ADD COLUMN connection_epoch BIGINT NOT NULL DEFAULT 0;
  `,
  // The maintenance window each agent last reported (migrations.ts has the why).
  `
  ALTER TABLE clusters ADD COLUMN maintenance_window TEXT;
  DROP TRIGGER dashboard_clusters_update ON clusters;
  CREATE CONSTRAINT TRIGGER dashboard_clusters_update AFTER UPDATE ON clusters DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.labels IS DISTINCT FROM NEW.labels OR OLD.inventory IS DISTINCT FROM NEW.inventory
      OR OLD.agent_version IS DISTINCT FROM NEW.agent_version OR OLD.kubernetes_version IS DISTINCT FROM NEW.kubernetes_version
      OR OLD.target_infrastructure IS DISTINCT FROM NEW.target_infrastructure OR OLD.public_key IS DISTINCT FROM NEW.public_key
      OR OLD.revoked_at IS DISTINCT FROM NEW.revoked_at OR OLD.maintenance_window IS DISTINCT FROM NEW.maintenance_window)
    EXECUTE FUNCTION dashboard_changed();
  `,
];
