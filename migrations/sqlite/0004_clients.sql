-- Registered OAuth clients (SQLite, the embedded default); see domain/clients.rs.
-- id: the client_id. Never UUID-shaped, so it can never equal a user id: a client's access
--   tokens have sub = client_id, and their session keys share the users' key space.
-- kind: 'confidential' (a service account: authenticates with a secret or a key) or
--   'public' (an app that cannot keep a secret: identified by its id only).
-- secret_hash: 'hmac-sha256:' || base64url(HMAC-SHA-256(server key, id || ':' || secret));
--   the secret itself is shown once and never stored. NULL for public clients and for
--   clients that authenticate with a key.
-- jwks: the public keys (a JWK Set, JSON) of a private_key_jwt client, else NULL.
-- roles (comma-separated) and scopes (space-separated): what the client's tokens may carry.
-- introspect: whether the client may call the introspection endpoint.
-- redirect_uris, allowed_origins: space-separated, public clients only.
-- secret_rotated_ms: the last replacement of the secret or the keys.
-- The first-party client is the one /v1/login issues tokens to; it is built in.
CREATE TABLE clients (
    id                TEXT PRIMARY KEY NOT NULL,
    name              TEXT NOT NULL,
    kind              TEXT NOT NULL CHECK (kind IN ('confidential', 'public')),
    secret_hash       TEXT,
    jwks              TEXT,
    roles             TEXT NOT NULL DEFAULT '',
    scopes            TEXT NOT NULL DEFAULT '',
    introspect        BOOLEAN NOT NULL DEFAULT FALSE,
    redirect_uris     TEXT NOT NULL DEFAULT '',
    allowed_origins   TEXT NOT NULL DEFAULT '',
    disabled          BOOLEAN NOT NULL DEFAULT FALSE,
    created_ms        BIGINT NOT NULL,
    secret_rotated_ms BIGINT
);
INSERT INTO clients (id, name, kind, created_ms)
VALUES ('first-party', 'First-party login (/v1/login, /v1/refresh)', 'public',
        CAST(strftime('%s', 'now') AS INTEGER) * 1000);
