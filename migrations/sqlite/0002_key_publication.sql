-- Signing keys are published before they sign (SQLite, the embedded default).
-- activates_at_ms: when the key starts signing; until then it is only published. Existing
--   keys have signed since they were created.
-- A key stops signing when the next key (in order of activation) activates, so the old
--   retired_ms (always the successor's creation time, which is now its activation time)
--   is derived and dropped.
-- revoked_ms: an emergency rotation withdrew the key: from then on it neither signs nor is
--   published.
-- scheduled_after: set by scheduled rotation to the kid of the key it succeeds. Unique, so
--   instances racing to rotate on schedule insert one key between them.
ALTER TABLE signing_keys ADD COLUMN activates_at_ms BIGINT NOT NULL DEFAULT 0;
UPDATE signing_keys SET activates_at_ms = created_ms;
ALTER TABLE signing_keys ADD COLUMN revoked_ms BIGINT;
ALTER TABLE signing_keys ADD COLUMN scheduled_after TEXT;
CREATE UNIQUE INDEX signing_keys_scheduled_after ON signing_keys (scheduled_after);
ALTER TABLE signing_keys DROP COLUMN retired_ms;
