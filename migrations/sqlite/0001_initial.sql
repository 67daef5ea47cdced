-- Users, signing keys, server secrets and the audit log (SQLite, the embedded default).
CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,     -- random UUID v4, never reused (not a rowid)
    username      TEXT NOT NULL UNIQUE,          -- RFC 8265 UsernameCaseMapped canonical form
    password_hash TEXT NOT NULL,                 -- Argon2id PHC string
    roles         TEXT NOT NULL DEFAULT '',      -- comma-separated role names
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_ms    BIGINT NOT NULL
);

CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY NOT NULL,
    alg         TEXT NOT NULL,
    private_der BLOB NOT NULL,
    public_key  BLOB NOT NULL,
    created_ms  BIGINT NOT NULL,
    retired_ms  BIGINT
);

CREATE TABLE server_secrets (
    name  TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL
);

CREATE TABLE audit_log (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms  BIGINT NOT NULL,
    event  TEXT NOT NULL,
    actor  TEXT,
    target TEXT,
    sid    TEXT,
    ip     TEXT,
    detail TEXT
);
CREATE INDEX audit_log_at ON audit_log (at_ms);
CREATE INDEX audit_log_target ON audit_log (target);
