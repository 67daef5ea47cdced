-- The id of the HTTP request behind an audit event (X-Request-Id, see docs/operations.md),
-- so an event can be matched with the access log. NULL for the CLI, scheduled tasks and
-- events written before this migration.
ALTER TABLE audit_log ADD COLUMN request_id TEXT;
