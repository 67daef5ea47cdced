-- Users, signing keys, server secrets and the audit log (PostgreSQL).
CREATE TABLE users (
    id            TEXT PRIMARY KEY,              -- random UUID v4, never reused
    username      TEXT NOT NULL UNIQUE,          -- RFC 8265 UsernameCaseMapped canonical form
    password_hash TEXT NOT NULL,                 -- Argon2id PHC string
    roles         TEXT NOT NULL DEFAULT '',      -- comma-separated role names
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_ms    BIGINT NOT NULL
);

CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    alg         TEXT NOT NULL,
    private_der BYTEA NOT NULL,
    public_key  BYTEA NOT NULL,
    created_ms  BIGINT NOT NULL,
    retired_ms  BIGINT
);

CREATE TABLE server_secrets (
    name  TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE audit_log (
    id     BIGSERIAL PRIMARY KEY,
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
