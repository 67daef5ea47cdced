-- The UTS #39 skeleton of the canonical username (domain/confusables.rs). Usernames that look
-- alike, such as Latin "ape" and Cyrillic "аре", share a skeleton, and the UNIQUE index lets
-- only one of them exist. The application computes it: for new users on insert, and at
-- startup for rows that have none yet. It stays NULL for a row whose skeleton an older user
-- already holds (look-alikes created before this rule); NULLs never collide.
ALTER TABLE users ADD COLUMN username_skeleton TEXT;
CREATE UNIQUE INDEX users_username_skeleton ON users (username_skeleton);
