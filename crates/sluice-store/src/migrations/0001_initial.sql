-- Schema version 1: registry, dead-letter queue, device state.
-- Released migrations are never edited; later changes are new files.
-- Times are milliseconds since the Unix epoch.

CREATE TABLE tenants (
    id            TEXT PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
) STRICT;

-- Only the SHA-256 of a token's secret is kept; the secret is shown once, at creation.
CREATE TABLE api_tokens (
    id            TEXT PRIMARY KEY NOT NULL,
    secret_sha256 BLOB NOT NULL CHECK (length(secret_sha256) = 32),
    scope         TEXT NOT NULL CHECK (scope IN ('admin', 'tenant', 'read-only')),
    tenant_id     TEXT REFERENCES tenants(id) ON DELETE CASCADE,
    created_at_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER,
    CHECK (scope <> 'admin' OR tenant_id IS NULL),
    CHECK (scope <> 'tenant' OR tenant_id IS NOT NULL)
) STRICT;
CREATE INDEX api_tokens_by_tenant ON api_tokens (tenant_id);

CREATE TABLE modules (
    id             INTEGER PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    world          TEXT NOT NULL CHECK (world IN ('codec', 'router')),
    -- The version messages run on; NULL until the first activation.
    active_version INTEGER,
    created_at_ms  INTEGER NOT NULL,
    UNIQUE (tenant_id, name),
    FOREIGN KEY (id, active_version) REFERENCES module_versions (module_id, version)
) STRICT;

CREATE TABLE module_versions (
    module_id         INTEGER NOT NULL REFERENCES modules(id) ON DELETE CASCADE,
    version           INTEGER NOT NULL CHECK (version > 0),
    sha256            TEXT NOT NULL,
    size_bytes        INTEGER NOT NULL,
    component         BLOB NOT NULL,
    policy_json       TEXT NOT NULL,
    test_vectors_yaml TEXT,
    created_at_ms     INTEGER NOT NULL,
    PRIMARY KEY (module_id, version)
) STRICT;

-- A version, once written, never changes; it goes only with its module.
CREATE TRIGGER module_versions_are_immutable
BEFORE UPDATE ON module_versions
BEGIN
    SELECT RAISE(ABORT, 'module versions are immutable');
END;
CREATE TRIGGER module_versions_are_deleted_only_with_their_module
BEFORE DELETE ON module_versions
WHEN EXISTS (SELECT 1 FROM modules WHERE id = OLD.module_id)
BEGIN
    SELECT RAISE(ABORT, 'module versions are immutable');
END;

-- Every activation, in order. Rollback marks the newest live row rolled back and activates
-- the live row before it, so repeated rollbacks walk further back.
CREATE TABLE module_activations (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    module_id         INTEGER NOT NULL,
    version           INTEGER NOT NULL,
    activated_at_ms   INTEGER NOT NULL,
    rolled_back_at_ms INTEGER,
    FOREIGN KEY (module_id, version) REFERENCES module_versions (module_id, version)
        ON DELETE CASCADE
) STRICT;
CREATE INDEX module_activations_by_module ON module_activations (module_id, id);

CREATE TABLE bindings (
    id               INTEGER PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    codec_module_id  INTEGER NOT NULL REFERENCES modules(id),
    router_module_id INTEGER REFERENCES modules(id),
    config_json      TEXT NOT NULL,
    sinks_json       TEXT NOT NULL,
    created_at_ms    INTEGER NOT NULL,
    updated_at_ms    INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
) STRICT;
CREATE INDEX bindings_by_codec ON bindings (codec_module_id);
CREATE INDEX bindings_by_router ON bindings (router_module_id);

-- Messages that could not be delivered, with the typed reason. AUTOINCREMENT: ids are never
-- reused, so `after_id` paging and ids handed out by the API stay valid across purges.
CREATE TABLE dead_letters (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    binding        TEXT NOT NULL,
    device_id      TEXT NOT NULL,
    port           INTEGER NOT NULL,
    received_at_ms INTEGER NOT NULL,
    payload        BLOB NOT NULL,
    metadata_json  TEXT NOT NULL,
    failure_kind   TEXT NOT NULL,
    failure_json   TEXT NOT NULL,
    module_id      TEXT NOT NULL,
    module_version TEXT NOT NULL,
    attempts       INTEGER NOT NULL,
    created_at_ms  INTEGER NOT NULL
) STRICT;
CREATE INDEX dead_letters_by_binding ON dead_letters (tenant_id, binding, id);
CREATE INDEX dead_letters_by_tenant ON dead_letters (tenant_id, id);

-- Per-device key/value state of a binding's guests.
CREATE TABLE device_state (
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    binding       TEXT NOT NULL,
    device_id     TEXT NOT NULL,
    key           TEXT NOT NULL,
    value         BLOB NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, binding, device_id, key)
) STRICT, WITHOUT ROWID;
