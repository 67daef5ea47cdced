//! What the domain needs from storage. `storage/` implements these traits; the domain
//! never sees sqlx or Redis types.

use async_trait::async_trait;

use super::error::StoreError;
use super::refresh_policy::ChangePolicy;

/// A user account. Its `Debug` leaves out the password hash.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// Random, never reused id (UUID v4, the `sub` claim).
    pub id: String,
    /// Canonical username (RFC 8265 UsernameCaseMapped).
    pub username: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Role names.
    pub roles: Vec<String>,
    /// A disabled user cannot log in; disabling ends every session.
    pub disabled: bool,
    /// Creation time, ms since the epoch.
    pub created_ms: i64,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("roles", &self.roles)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// A user's id, username and creation time (for the username-skeleton backfill).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsernameRow {
    /// User id.
    pub id: String,
    /// Canonical username.
    pub username: String,
    /// Creation time, ms since the epoch.
    pub created_ms: i64,
}

/// A signing key as persisted.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// Key id (`kid`).
    pub kid: String,
    /// JOSE algorithm name, e.g. `EdDSA`.
    pub alg: String,
    /// PKCS#8 DER private key.
    pub private_der: Vec<u8>,
    /// Raw public key bytes.
    pub public_key: Vec<u8>,
    /// Creation time (and first publication), ms.
    pub created_ms: i64,
    /// When the key starts signing, ms. It stops when the next key activates.
    pub activates_ms: i64,
    /// When an emergency rotation withdrew it, ms: from then on it neither signs nor is
    /// published.
    pub revoked_ms: Option<i64>,
    /// For a key created by scheduled rotation: the `kid` of the key it succeeds (unique,
    /// so racing instances schedule one successor).
    pub scheduled_after: Option<String>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish()
    }
}

/// One audit-log entry. Never holds a password, token or hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// When, ms.
    pub at_ms: i64,
    /// What happened, e.g. `login.success`, `refresh.reuse_detected`.
    pub event: String,
    /// Who did it (a user id), if known.
    pub actor: Option<String>,
    /// Whom it concerns (a user id), if any.
    pub target: Option<String>,
    /// The session concerned, if any.
    pub sid: Option<String>,
    /// The client IP, if known.
    pub ip: Option<String>,
    /// The id of the HTTP request that caused it (`X-Request-Id`); `None` for the CLI and
    /// scheduled tasks.
    pub request_id: Option<String>,
    /// Extra non-secret detail.
    pub detail: Option<String>,
}

/// Whether a client can keep a secret (RFC 6749 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// A service account: authenticates with a secret or a registered key.
    Confidential,
    /// An app that cannot keep a secret (a SPA, a mobile app): identified by its id only.
    Public,
}

impl ClientKind {
    /// The stored and shown name: `confidential` or `public`.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::Confidential => "confidential",
            ClientKind::Public => "public",
        }
    }
}

/// A registered OAuth client. Its `Debug` leaves out the secret's hash.
#[derive(Clone, PartialEq, Eq)]
pub struct RegisteredClient {
    /// The `client_id`: an identifier that is never UUID-shaped, so never a user id.
    pub id: String,
    /// What it is, for people.
    pub name: String,
    /// Confidential or public.
    pub kind: ClientKind,
    /// The keyed hash of the client secret (see `domain/clients.rs`); `None` for public
    /// clients and clients that authenticate with a key.
    pub secret_hash: Option<String>,
    /// The public keys of a `private_key_jwt` client: a JWK Set as JSON text.
    pub jwks: Option<String>,
    /// Roles its access tokens carry.
    pub roles: Vec<String>,
    /// Scopes it may receive.
    pub scopes: Vec<String>,
    /// Whether it may introspect tokens.
    pub introspect: bool,
    /// Redirect URIs (public clients).
    pub redirect_uris: Vec<String>,
    /// Browser origins (public clients).
    pub allowed_origins: Vec<String>,
    /// A disabled client cannot authenticate; disabling ends its tokens' sessions.
    pub disabled: bool,
    /// Creation time, ms.
    pub created_ms: i64,
    /// When its secret or keys were last replaced, ms.
    pub secret_rotated_ms: Option<i64>,
}

impl std::fmt::Debug for RegisteredClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredClient")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("roles", &self.roles)
            .field("scopes", &self.scopes)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// Users, signing keys, server secrets, registered clients and the audit log, in SQL.
#[async_trait]
pub trait Database: Send + Sync + 'static {
    /// Inserts a user with the UTS #39 skeleton of its username; `StoreError::Conflict` if
    /// the username or the skeleton is taken.
    async fn create_user(&self, user: &User, username_skeleton: &str) -> Result<(), StoreError>;
    /// Up to `limit` users without a stored username skeleton, ordered by creation time and
    /// id, after the user created at `after_created_ms` with id `after_id`.
    async fn users_without_skeleton(
        &self,
        after_created_ms: i64,
        after_id: &str,
        limit: i64,
    ) -> Result<Vec<UsernameRow>, StoreError>;
    /// Stores the username skeleton of a user who has none; `StoreError::Conflict` if
    /// another user holds it.
    async fn set_username_skeleton(&self, id: &str, skeleton: &str) -> Result<(), StoreError>;
    /// The user with this canonical username.
    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError>;
    /// The user with this id.
    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError>;
    /// Replaces a user's password hash.
    async fn set_password_hash(&self, id: &str, hash: &str) -> Result<(), StoreError>;
    /// Replaces a user's password hash with `new` only if it is still `old` (a login's
    /// upgrade of the hash it checked, never over a change that came in between); whether
    /// it did.
    async fn upgrade_password_hash(
        &self,
        id: &str,
        old: &str,
        new: &str,
    ) -> Result<bool, StoreError>;
    /// Users whose username contains `contains` (every user for `""`), ordered by
    /// username, a page at a time.
    async fn list_users(
        &self,
        contains: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<User>, StoreError>;
    /// Replaces a user's roles; whether the user exists.
    async fn set_roles(&self, id: &str, roles: &[String]) -> Result<bool, StoreError>;
    /// Disables or enables a user; whether the user exists.
    async fn set_disabled(&self, id: &str, disabled: bool) -> Result<bool, StoreError>;
    /// All signing keys, newest first.
    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError>;
    /// Stores a new signing key; `Conflict` if its `scheduled_after` is taken.
    async fn insert_signing_key(&self, key: &StoredKey) -> Result<(), StoreError>;
    /// Withdraws, as of `at_ms`, every unrevoked key other than `except`; with
    /// `pending_only`, only those that have not started signing by `at_ms`.
    async fn revoke_signing_keys(
        &self,
        except: &str,
        at_ms: i64,
        pending_only: bool,
    ) -> Result<(), StoreError>;
    /// The server secret `name`, created from `candidate` if absent. Every instance gets
    /// the same value, whoever created it first.
    async fn server_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError>;
    /// Registers a client; `StoreError::Conflict(Unique::ClientId)` if the id is taken.
    async fn create_client(&self, client: &RegisteredClient) -> Result<(), StoreError>;
    /// The client with this id.
    async fn client_by_id(&self, id: &str) -> Result<Option<RegisteredClient>, StoreError>;
    /// Every registered client, ordered by id.
    async fn list_clients(&self) -> Result<Vec<RegisteredClient>, StoreError>;
    /// Replaces a client's credentials (secret hash and keys) as of `at_ms`; whether the
    /// client exists.
    async fn set_client_credentials(
        &self,
        id: &str,
        secret_hash: Option<&str>,
        jwks: Option<&str>,
        at_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Disables or enables a client; whether the client exists.
    async fn set_client_disabled(&self, id: &str, disabled: bool) -> Result<bool, StoreError>;
    /// Appends to the audit log.
    async fn audit(&self, event: &AuditEvent) -> Result<(), StoreError>;
    /// Appends to the audit log only if the user `user.id` is still as `user` says:
    /// enabled, with the same roles and the same password hash. The check and the write are
    /// one statement, so they see the same row (a login's re-read guard and its audit row
    /// in one call). Whether it was written: `false` for a changed or deleted user, and also
    /// for a row that stores the same roles spelt otherwise, so a caller re-reads to tell.
    /// On PostgreSQL the condition reads the statement's snapshot. A row whose commit
    /// outlives its caller (the reply lost, the request cancelled) records a check that
    /// passed for a session the caller then discards: an audited success with no tokens
    /// handed out, as an audit write right before a cancelled answer always could.
    async fn audit_if_user_unchanged(
        &self,
        event: &AuditEvent,
        user: &User,
    ) -> Result<bool, StoreError>;
    /// The most recent audit events, newest first, a page at a time.
    async fn recent_audit(&self, limit: i64, offset: i64) -> Result<Vec<AuditEvent>, StoreError>;
    /// Checks the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// A session as stored (the allowlist entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The session's user.
    pub user_id: String,
    /// Session id.
    pub sid: String,
    /// Created, ms.
    pub created_ms: i64,
    /// Last login or refresh, ms.
    pub last_seen_ms: i64,
    /// Sliding idle expiry, ms; never after `absolute_expiry_ms`.
    pub idle_expiry_ms: i64,
    /// Absolute expiry, ms.
    pub absolute_expiry_ms: i64,
    /// Number of rotations so far.
    pub generation: u64,
    /// Client user agent, length-capped. Set at login and updated by every rotation.
    pub user_agent: String,
    /// Client IP. Set at login and updated by every rotation: where the session was last
    /// seen.
    pub ip: String,
    /// Roles to put into access tokens minted for this session.
    pub roles: Vec<String>,
    /// The RFC 7638 thumbprint of the DPoP key the session is bound to (fixed at login):
    /// every refresh needs a proof from that key. `None`: not bound.
    pub dpop_jkt: Option<String>,
}

/// A refresh attempt, with hashes only.
#[derive(Debug, Clone)]
pub struct Rotation<'a> {
    /// The session's user.
    pub user_id: &'a str,
    /// Session id.
    pub sid: &'a str,
    /// Hash of the presented refresh secret.
    pub presented_hash: &'a str,
    /// Hash of its deterministic successor.
    pub successor_hash: &'a str,
    /// Hash of the successor's successor: stored as the record's `next`, so that if this
    /// rotation is acknowledged and then lost (a Redis failover), the successor the client
    /// holds is recognised as genuine instead of as reuse.
    pub next_successor_hash: &'a str,
    /// Now, ms.
    pub now_ms: i64,
    /// Idle lifetime, ms.
    pub idle_ms: i64,
    /// Grace window, ms.
    pub grace_ms: i64,
    /// Whether the presented token's MAC verified. A token without one (the form from
    /// before MACs) rotates only on a session from before MACs (no `nrt`), and proves theft
    /// only when its hash is the session's stored previous one; otherwise it is merely
    /// invalid. A token with a verified MAC that is neither current nor a grace replay is
    /// theft: the session is revoked.
    pub reuse_revokes: bool,
    /// The thumbprint of the key of the DPoP proof that came with the refresh, already
    /// verified. On a bound session: none is `DpopRequired` and changes nothing; another key
    /// with a genuine token (`reuse_revokes`) is theft, the session is revoked
    /// (`DpopKeyMismatch`). Ignored on a session that is not bound.
    pub dpop_jkt: Option<&'a str>,
    /// Who presents the token: compared with the session's last-seen client under
    /// `policy`, and stored as it when the session rotates.
    pub caller: Caller<'a>,
    /// The rotation cap and the policy on a changed network or user agent, enforced in the
    /// same atomic step as the rotation.
    pub policy: RotationPolicy,
    /// The per-IP refresh limit, counted in the same atomic step before anything else
    /// (`None`: switched off).
    pub limit: Option<RefreshLimit>,
}

/// The per-IP refresh limit as the store counts it inside the rotation: a fixed-window
/// counter of the refreshes of this user from this client network, kept beside the user's
/// sessions (one Redis Cluster slot), checked before anything that could change or end the
/// session. Over `max`, the refresh is refused (`RotateOutcome::RateLimited`) and changes
/// nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshLimit {
    /// The client's network as per-IP limits count it (IPv4 as is, IPv6 by its /64).
    pub ip_bucket: String,
    /// Refreshes allowed in one window (at least 1).
    pub max: u64,
    /// The window, ms.
    pub window_ms: i64,
}

/// The client presenting a refresh token, in the form a session record keeps it.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// Client IP, length-capped like the record's.
    pub ip: &'a str,
    /// User agent, length-capped like the record's.
    pub user_agent: &'a str,
}

/// What the store enforces together with a rotation (`refresh` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationPolicy {
    /// Most rotations of one session; the refresh that would be one more ends the session
    /// instead. 0: no cap.
    pub max_rotations: u64,
    /// What a refresh from another network than the session's last-seen one does.
    pub on_network_change: ChangePolicy,
    /// What a refresh with another user agent than the session's last-seen one does.
    pub on_user_agent_change: ChangePolicy,
    /// Leading bits of an IPv4 address that make its network.
    pub ipv4_prefix: u8,
    /// Leading bits of an IPv6 address that make its network.
    pub ipv6_prefix: u8,
}

/// How the caller differs from the session's last-seen client (`refresh_policy::judge`).
/// Only attributes whose policy is not `allow` are compared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContextChange {
    /// The network changed.
    pub network: bool,
    /// The user agent changed.
    pub user_agent: bool,
    /// The session's last-seen IP before this refresh.
    pub previous_ip: String,
    /// The session's last-seen user agent before this refresh.
    pub previous_user_agent: String,
}

impl ContextChange {
    /// Whether anything changed.
    pub fn any(&self) -> bool {
        self.network || self.user_agent
    }
}

/// What a refresh did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The current token was presented: rotated to the successor, expiry extended, the
    /// caller stored as the last-seen client.
    Rotated {
        /// The session's roles.
        roles: Vec<String>,
        /// The DPoP key the session is bound to, if any.
        dpop_jkt: Option<String>,
        /// How the caller differs from the session's last-seen client (let through).
        change: ContextChange,
    },
    /// The just-rotated token was replayed within the grace window: the successor stands.
    Replayed {
        /// The session's roles.
        roles: Vec<String>,
        /// The DPoP key the session is bound to, if any.
        dpop_jkt: Option<String>,
        /// How the caller differs from the session's last-seen client (let through).
        change: ContextChange,
    },
    /// An older token (or the previous one after the window): the session was revoked.
    Reused,
    /// The session is bound to a DPoP key and no proof came: nothing changed.
    DpopRequired,
    /// A genuine token of a bound session came with a proof from another key: the session
    /// was revoked.
    DpopKeyMismatch,
    /// No such session (never existed, ended or expired).
    NotFound,
    /// The current token of a session already rotated `max_rotations` times: the session
    /// was ended instead of rotated.
    LimitReached {
        /// How the caller differs from the session's last-seen client.
        change: ContextChange,
    },
    /// The caller's network or user agent changed under a `revoke` policy: the session was
    /// ended.
    ContextRevoked {
        /// What changed.
        change: ContextChange,
    },
    /// Over the per-IP refresh limit (`Rotation::limit`): nothing else was looked at or
    /// changed. The counter, this refresh included, and the time to the window's end.
    RateLimited(RateDecision),
}

/// The session store (Redis standalone, Redis Cluster, or process memory).
/// Every operation on one session is atomic.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Creates a session with its first refresh-token hash. If the user then has more
    /// than `max_sessions`, the least recently used ones end (atomically with the create):
    /// how many ended.
    async fn create(
        &self,
        session: &SessionRecord,
        refresh_hash: &str,
        next_refresh_hash: &str,
        now_ms: i64,
        max_sessions: u64,
    ) -> Result<u64, StoreError>;
    /// Check, rotate and extend, all or nothing. Every store checks in one order (written out
    /// at the Redis store's `ROTATE` script): first the per-IP refresh limit, counted whatever
    /// follows (`RateLimited` changes nothing); the session (`NotFound`); what the token is
    /// (current, grace replay, other; genuine or not); the DPoP key of a bound session
    /// (`DpopRequired` changes nothing, `DpopKeyMismatch` ends it), before anything that
    /// could rotate or end the session; the network / user-agent policy (`ContextRevoked`);
    /// the rotation cap, current token only (`LimitReached`); then `Rotated` or `Replayed`,
    /// and for any other genuine token `Reused`.
    async fn rotate(&self, rotation: &Rotation<'_>) -> Result<RotateOutcome, StoreError>;
    /// Whether the session exists and has not expired at `now_ms`.
    async fn is_active(&self, user_id: &str, sid: &str, now_ms: i64) -> Result<bool, StoreError>;
    /// The user's live sessions.
    async fn list(&self, user_id: &str, now_ms: i64) -> Result<Vec<SessionRecord>, StoreError>;
    /// Ends one session; whether it existed.
    async fn delete(&self, user_id: &str, sid: &str) -> Result<bool, StoreError>;
    /// Ends every session of the user atomically, except `keep` if given; how many ended.
    async fn delete_all(&self, user_id: &str, keep: Option<&str>) -> Result<u64, StoreError>;
    /// Checks the store answers.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// What a rate-limit counter said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Hits in the current window, this one included (for `hit`).
    pub count: u64,
    /// Milliseconds until the window resets.
    pub reset_in_ms: i64,
}

/// One fixed-window rate-limit counter: its key and the length of its windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateCounter<'a> {
    /// The counter's name (the store adds its prefix and the window number).
    pub key: &'a str,
    /// Window length, ms.
    pub window_ms: i64,
}

/// Fixed-window counters shared by every instance (Redis) or per process (memory).
/// Windows are aligned to the injected clock, so tests can move past them.
///
/// `hit` and `peek` take several counters and are one step each (one round trip to Redis):
/// the keys of one call must share a hash tag, as Redis Cluster runs a script, or answers
/// a multi-key read in one round trip, only on the keys of one slot.
#[async_trait]
pub trait RateLimitStore: Send + Sync + 'static {
    /// Adds one hit to each counter in its window containing `now_ms`; their decisions, one
    /// per counter, in order.
    async fn hit(
        &self,
        counters: &[RateCounter<'_>],
        now_ms: i64,
    ) -> Result<Vec<RateDecision>, StoreError>;
    /// Reads each counter in its window containing `now_ms` without adding to it; one
    /// decision per counter, in order.
    async fn peek(
        &self,
        counters: &[RateCounter<'_>],
        now_ms: i64,
    ) -> Result<Vec<RateDecision>, StoreError>;
    /// Forgets `key` in the window containing `now_ms`.
    async fn reset(&self, key: &str, window_ms: i64, now_ms: i64) -> Result<(), StoreError>;
    /// Marks `key` as used until `now_ms + ttl_ms`: `true` the first time, `false` while an
    /// earlier mark lasts (a single-use value such as an assertion's `jti`, shared by every
    /// instance when the store is Redis).
    async fn first_use(&self, key: &str, ttl_ms: i64, now_ms: i64) -> Result<bool, StoreError>;
}

/// A verifier's acknowledgement of a probe's deletion, as it recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeAck {
    /// From the deletion (Redis `TIME`) to the verifier learning of it, µs: an upper bound.
    pub lag_us: u64,
    /// How much too high `lag_us` may be (the verifier's latest round trip to Redis), µs.
    pub error_us: u64,
}

/// The revocation self-test's side of Redis (see `domain/selftest.rs`): the steps of one
/// round, each one atomic. Every key it writes has a TTL.
#[async_trait]
pub trait SelftestStore: Send + Sync + 'static {
    /// Takes the round lock for `ttl_ms`, owned by `token`; `false` while another round holds
    /// it.
    async fn lock(&self, token: &str, ttl_ms: u64) -> Result<bool, StoreError>;
    /// Releases the lock if `token` still owns it.
    async fn unlock(&self, token: &str) -> Result<(), StoreError>;
    /// Forgets the verifiers that have not reported in for `stale_ms` and answers the others;
    /// unless there are none, creates probe `sid` (its session and the pointer to it) for
    /// `ttl_ms`.
    async fn start_probe(
        &self,
        sid: &str,
        ttl_ms: u64,
        stale_ms: u64,
    ) -> Result<Vec<String>, StoreError>;
    /// The instances that armed probe `sid`.
    async fn armed(&self, sid: &str) -> Result<Vec<String>, StoreError>;
    /// Deletes probe `sid` and its pointer, recording when (Redis `TIME`, kept for `ttl_ms`).
    async fn delete_probe(&self, sid: &str, ttl_ms: u64) -> Result<(), StoreError>;
    /// The acknowledgements of probe `sid`'s deletion, by instance.
    async fn acks(&self, sid: &str) -> Result<Vec<(String, ProbeAck)>, StoreError>;
}
