// Schema history of the hub's database. Append only: a migration that
// shipped is never edited, because a hub that already ran it would not run it
// again. PRAGMA user_version records how many have run. The PostgreSQL
// schema lives in postgres-migrations.ts; the repositories' SQL runs on both.

export const migrations: readonly string[] = [
  `
  CREATE TABLE clusters (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('Pending', 'Accepted')),
    labels TEXT NOT NULL DEFAULT '{}',
    -- sha256 of the bearer credential: the credential is 32 random bytes, so a
    -- slow hash buys nothing and a fast one can be looked up by index.
    credential_hash TEXT UNIQUE,
    -- The issued credential until the agent first uses it, so an acceptance
    -- the agent missed (it was offline) reaches it on its next register.
    undelivered_credential TEXT,
    requested_at TEXT NOT NULL,
    accepted_at TEXT,
    last_seen TEXT,
    connected_at TEXT,
    agent_version TEXT,
    inventory TEXT,
    kubernetes_version TEXT,
    target_infrastructure TEXT,
    -- newest release revision the agent said it holds
    agent_revision INTEGER NOT NULL DEFAULT 0,
    -- every report up to here is stored and applied, without a hole
    acked_seq INTEGER NOT NULL DEFAULT 0
  ) STRICT;

  CREATE TABLE desired_releases (
    cluster_id TEXT NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    revision INTEGER NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    envelope TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (cluster_id, revision)
  ) STRICT;

  CREATE TABLE reports (
    cluster_id TEXT NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    -- the seq before this one in the agent's outbox: reports chain through it
    prev_seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    -- why the body was stored but not aggregated (invalid for its kind, unknown kind)
    problem TEXT,
    PRIMARY KEY (cluster_id, seq)
  ) STRICT;
  CREATE INDEX reports_chain ON reports (cluster_id, prev_seq);

  CREATE TABLE cluster_upgrade (
    cluster_id TEXT PRIMARY KEY REFERENCES clusters (id) ON DELETE CASCADE,
    attempt_id TEXT,
    release_name TEXT,
    release_version TEXT,
    revision INTEGER,
    phase TEXT,
    status TEXT,
    stage INTEGER,
    reason TEXT,
    message TEXT,
    at TEXT,
    -- the release the cluster runs: from its last Succeeded attempt
    running_name TEXT,
    running_version TEXT,
    last_refusal TEXT
  ) STRICT;

  -- Not tied to clusters: telemetry outlives a deregistered cluster.
  CREATE TABLE telemetry (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cluster_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    received_at TEXT NOT NULL
  ) STRICT;
  CREATE INDEX telemetry_cluster ON telemetry (cluster_id, id);
  `,
  // 2: rolling upgrades and hotfix overrides (src/hub/rollout, store/rollout-repo.ts, store/override-repo.ts).
  `
  CREATE TABLE rollouts (
    name TEXT PRIMARY KEY,
    -- the validated create request (or the rollback's), as JSON
    spec TEXT NOT NULL,
    phase TEXT NOT NULL CHECK (phase IN ('Progressing', 'Paused', 'Succeeded', 'Completed', 'Cancelled')),
    reason TEXT,
    message TEXT,
    -- failures an operator accepted by resuming
    acknowledged_failures INTEGER NOT NULL DEFAULT 0,
    acknowledged_mandatory_failures INTEGER NOT NULL DEFAULT 0,
    rollback_of TEXT,
    rolled_back_by TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    ended_at TEXT,
    updated_at TEXT NOT NULL
  ) STRICT;
  CREATE INDEX rollouts_active ON rollouts (phase);

  -- Membership is fixed when the rollout is created; no foreign key to
  -- clusters, so a deregistered cluster still shows (as Skipped) in status.
  CREATE TABLE rollout_groups (
    rollout TEXT NOT NULL REFERENCES rollouts (name) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    name TEXT NOT NULL,
    mandatory INTEGER NOT NULL,
    PRIMARY KEY (rollout, idx)
  ) STRICT;

  CREATE TABLE rollout_clusters (
    rollout TEXT NOT NULL REFERENCES rollouts (name) ON DELETE CASCADE,
    cluster_id TEXT NOT NULL,
    group_idx INTEGER NOT NULL,
    position INTEGER NOT NULL,
    -- bookkeeping: what the rollout sent and when, what it saw and when
    sent_revision INTEGER,
    sent_at TEXT,
    previous_revision INTEGER,
    succeeded_at TEXT,
    skipped_at TEXT,
    -- the failure first seen, kept when a later release supersedes the cluster
    failure TEXT,
    PRIMARY KEY (rollout, cluster_id)
  ) STRICT;
  CREATE INDEX rollout_clusters_order ON rollout_clusters (rollout, position);
  CREATE INDEX rollout_clusters_cluster ON rollout_clusters (cluster_id);

  CREATE TABLE overrides (
    name TEXT PRIMARY KEY,
    -- the operator's request (name, version, appliesTo, component, images, description)
    definition TEXT NOT NULL,
    withdrawn INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
  ) STRICT;

  -- Signed override documents per cluster. One revision counter per
  -- cluster for all its overrides, apart from release revisions.
  CREATE TABLE override_documents (
    cluster_id TEXT NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    revision INTEGER NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    withdrawn INTEGER NOT NULL,
    envelope TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (cluster_id, revision)
  ) STRICT;
  CREATE INDEX override_documents_name ON override_documents (cluster_id, name, revision);
  `,
  `
  -- Registration by proof of possession (docs/security.md): the hub keeps the
  -- agent's public key and never again a secret that authenticates a
  -- cluster. A credential issued before keys stays usable (by its hash)
  -- until that agent binds a key on its next hello.
  ALTER TABLE clusters ADD COLUMN public_key TEXT;
  ALTER TABLE clusters ADD COLUMN revoked_at TEXT;
  UPDATE clusters SET undelivered_credential = NULL;
  ALTER TABLE clusters DROP COLUMN undelivered_credential;

  -- A registrant that proved a key other than the cluster's: refused, and
  -- kept here for an operator to decide which key to trust.
  CREATE TABLE cluster_key_conflicts (
    cluster_id TEXT NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    public_key TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1,
    remote_address TEXT,
    PRIMARY KEY (cluster_id, public_key)
  ) STRICT;

  -- Bootstrap tokens, by sha256 (they are 32 random bytes or more, so a
  -- fast hash is enough and can be looked up by index).
  CREATE TABLE bootstrap_tokens (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    -- 'config' (from the hub's command line or environment) or 'api'
    source TEXT NOT NULL CHECK (source IN ('config', 'api')),
    description TEXT,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    max_uses INTEGER,
    uses INTEGER NOT NULL DEFAULT 0,
    revoked_at TEXT
  ) STRICT;
  `,
  `
  -- Operator tokens with a role (docs/security.md): viewer reads, operator
  -- also accepts clusters, sets releases and runs rollouts, admin also
  -- manages tokens and keys. Stored by sha256 (32 random bytes each).
  CREATE TABLE operator_tokens (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    revoked_at TEXT
  ) STRICT;

  -- Every mutating API call, allowed or not: who, what, when, and the answer.
  CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    role TEXT,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status INTEGER NOT NULL,
    remote_address TEXT
  ) STRICT;
  `,
  // The dashboard's aggregates and pages by index, not by reading every
  // cluster (src/hub/store/dashboard-repo.ts): labels and reported overrides
  // kept as rows beside the JSON they come from (triggers keep them in step
  // with every write, whichever repository makes it), and indexes for the
  // state counts, the newest attempts, offline clusters and running releases.
  `
  CREATE TABLE cluster_labels (
    cluster_id TEXT NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (cluster_id, key)
  ) STRICT, WITHOUT ROWID;
  CREATE INDEX cluster_labels_pair ON cluster_labels (key, value, cluster_id);
  INSERT INTO cluster_labels SELECT c.id, l.key, l.value FROM clusters c, json_each(c.labels) l;
  CREATE TRIGGER cluster_labels_insert AFTER INSERT ON clusters BEGIN
    INSERT INTO cluster_labels SELECT new.id, l.key, l.value FROM json_each(new.labels) l;
  END;
  CREATE TRIGGER cluster_labels_update AFTER UPDATE OF labels ON clusters BEGIN
    DELETE FROM cluster_labels WHERE cluster_id = new.id;
    INSERT INTO cluster_labels SELECT new.id, l.key, l.value FROM json_each(new.labels) l;
  END;

  -- The hotfixes a cluster's latest inventory says it runs.
  CREATE TABLE cluster_overrides (
    cluster_id TEXT NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    version TEXT,
    component TEXT,
    PRIMARY KEY (cluster_id, name)
  ) STRICT, WITHOUT ROWID;
  CREATE INDEX cluster_overrides_name ON cluster_overrides (name, cluster_id);
  INSERT OR IGNORE INTO cluster_overrides
    SELECT c.id, json_extract(o.value, '$.name'), json_extract(o.value, '$.version'), json_extract(o.value, '$.component')
    FROM clusters c, json_each(c.inventory, '$.overrides') o WHERE c.inventory IS NOT NULL AND json_extract(o.value, '$.name') IS NOT NULL;
  CREATE TRIGGER cluster_overrides_insert AFTER INSERT ON clusters WHEN new.inventory IS NOT NULL BEGIN
    INSERT OR IGNORE INTO cluster_overrides
      SELECT new.id, json_extract(o.value, '$.name'), json_extract(o.value, '$.version'), json_extract(o.value, '$.component')
      FROM json_each(new.inventory, '$.overrides') o WHERE json_extract(o.value, '$.name') IS NOT NULL;
  END;
  CREATE TRIGGER cluster_overrides_update AFTER UPDATE OF inventory ON clusters BEGIN
    DELETE FROM cluster_overrides WHERE cluster_id = new.id;
    INSERT OR IGNORE INTO cluster_overrides
      SELECT new.id, json_extract(o.value, '$.name'), json_extract(o.value, '$.version'), json_extract(o.value, '$.component')
      FROM json_each(new.inventory, '$.overrides') o WHERE new.inventory IS NOT NULL AND json_extract(o.value, '$.name') IS NOT NULL;
  END;

  CREATE INDEX clusters_state ON clusters (status, last_seen, id);
  CREATE INDEX cluster_upgrade_status ON cluster_upgrade (status, at);
  CREATE INDEX cluster_upgrade_phase ON cluster_upgrade (phase, at);
  CREATE INDEX cluster_upgrade_running ON cluster_upgrade (running_name, running_version);
  `,
  // The last override refusal each cluster reported (override-refused), beside the last release refusal.
  `
  ALTER TABLE cluster_upgrade ADD COLUMN last_override_refusal TEXT;
  `,
  // The dashboard's change counter (DashboardRepo.fingerprint): bumped by
  // every write the dashboard shows, so open pages learn of a change from one
  // row instead of aggregates over the fleet. Lease renewals (last_seen,
  // connected_at) and report acknowledgements do not bump it: offline
  // clusters are found by the lease index, and the reports that matter
  // (attempt transitions) bump it themselves.
  `
  CREATE TABLE dashboard_changes (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL) STRICT;
  INSERT INTO dashboard_changes VALUES (1, 0);
  CREATE TRIGGER dashboard_clusters_insert AFTER INSERT ON clusters BEGIN UPDATE dashboard_changes SET n = n + 1; END;
  CREATE TRIGGER dashboard_clusters_delete AFTER DELETE ON clusters BEGIN UPDATE dashboard_changes SET n = n + 1; END;
  CREATE TRIGGER dashboard_clusters_update
    AFTER UPDATE OF status, labels, inventory, agent_version, kubernetes_version, target_infrastructure, public_key, revoked_at ON clusters
    WHEN old.status IS NOT new.status OR old.labels IS NOT new.labels OR old.inventory IS NOT new.inventory
      OR old.agent_version IS NOT new.agent_version OR old.kubernetes_version IS NOT new.kubernetes_version
      OR old.target_infrastructure IS NOT new.target_infrastructure OR old.public_key IS NOT new.public_key OR old.revoked_at IS NOT new.revoked_at
    BEGIN UPDATE dashboard_changes SET n = n + 1; END;
  CREATE TRIGGER dashboard_upgrade_insert AFTER INSERT ON cluster_upgrade BEGIN UPDATE dashboard_changes SET n = n + 1; END;
  CREATE TRIGGER dashboard_upgrade_update AFTER UPDATE ON cluster_upgrade BEGIN UPDATE dashboard_changes SET n = n + 1; END;
  CREATE TRIGGER dashboard_reports_insert AFTER INSERT ON reports WHEN new.kind = 'attempt-transition' BEGIN UPDATE dashboard_changes SET n = n + 1; END;
  CREATE TRIGGER dashboard_rollouts_insert AFTER INSERT ON rollouts BEGIN UPDATE dashboard_changes SET n = n + 1; END;
  CREATE TRIGGER dashboard_rollouts_update AFTER UPDATE ON rollouts BEGIN UPDATE dashboard_changes SET n = n + 1; END;
  CREATE TRIGGER dashboard_rollouts_delete AFTER DELETE ON rollouts BEGIN UPDATE dashboard_changes SET n = n + 1; END;
  CREATE TRIGGER dashboard_members_insert AFTER INSERT ON rollout_clusters BEGIN UPDATE dashboard_changes SET n = n + 1; END;
  CREATE TRIGGER dashboard_members_update AFTER UPDATE ON rollout_clusters BEGIN UPDATE dashboard_changes SET n = n + 1; END;
  CREATE TRIGGER dashboard_members_delete AFTER DELETE ON rollout_clusters BEGIN UPDATE dashboard_changes SET n = n + 1; END;
  CREATE TRIGGER dashboard_overrides_insert AFTER INSERT ON overrides BEGIN UPDATE dashboard_changes SET n = n + 1; END;
  CREATE TRIGGER dashboard_overrides_update AFTER UPDATE ON overrides BEGIN UPDATE dashboard_changes SET n = n + 1; END;
  CREATE TRIGGER dashboard_overrides_delete AFTER DELETE ON overrides BEGIN UPDATE dashboard_changes SET n = n + 1; END;
  CREATE TRIGGER dashboard_releases_insert AFTER INSERT ON desired_releases BEGIN UPDATE dashboard_changes SET n = n + 1; END;
  CREATE TRIGGER dashboard_documents_insert AFTER INSERT ON override_documents BEGIN UPDATE dashboard_changes SET n = n + 1; END;
  `,
  // Each committed hello takes the next connection epoch of its cluster:
  // replicas order an agent's connections by it, not by when they hear of them.
  `
  ALTER TABLE clusters ADD COLUMN connection_epoch INTEGER NOT NULL DEFAULT 0;
  `,
  // The maintenance window each agent last reported (heartbeat.maintenanceWindow, JSON;
  // null until an agent that sends it connects). A change shows on the dashboard.
  `
  ALTER TABLE clusters ADD COLUMN maintenance_window TEXT;
  DROP TRIGGER dashboard_clusters_update;
  CREATE TRIGGER dashboard_clusters_update
    AFTER UPDATE OF status, labels, inventory, agent_version, kubernetes_version, target_infrastructure, public_key, revoked_at, maintenance_window ON clusters
    WHEN old.status IS NOT new.status OR old.labels IS NOT new.labels OR old.inventory IS NOT new.inventory
      OR old.agent_version IS NOT new.agent_version OR old.kubernetes_version IS NOT new.kubernetes_version
      OR old.target_infrastructure IS NOT new.target_infrastructure OR old.public_key IS NOT new.public_key OR old.revoked_at IS NOT new.revoked_at
      OR old.maintenance_window IS NOT new.maintenance_window
    BEGIN UPDATE dashboard_changes SET n = n + 1; END;
  `,
];
