//! Signing keys: Ed25519, persisted in SQL so restarts and replicas share them.
//!
//! A key's life:
//!
//! 1. **pending**: published in the JWKS from its creation, not signing yet;
//! 2. **signing**: from its activation time, `publish_delay_secs` after its creation (at
//!    once for an emergency rotation), until the next key activates;
//! 3. **retired**: still published, so that the tokens it signed verify until they expire
//!    (access-token TTL + leeway + [`KEY_RELOAD_SECS`] after it stopped signing);
//! 4. **unpublished**: out of the JWKS, kept in SQL for `keys list`.
//!
//! An emergency rotation may instead **revoke** keys: out of the JWKS at once.
//!
//! Every state is derived from the stored times (created, activates, revoked) and the
//! injected clock. Every instance that has loaded the same rows therefore switches to a
//! new key at the same moment, without waiting for a reload.

use std::sync::{Arc, RwLock};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Header};
use serde::Serialize;
use tokio::sync::Mutex;
use verifier::{Claims, Clock, KeySet, VerifyingKey};

use super::admin::ADMIN_ROLE;
use super::crypto::random_id;
use super::error::{AuthError, StoreError, Unique};
use super::ports::{Database, StoredKey};
use super::service::{AuthService, ClientInfo};
use crate::config::Config;

/// A public key as published in the JWKS.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PublicJwk {
    /// Key type: `OKP`.
    pub kty: &'static str,
    /// Curve: `Ed25519`.
    pub crv: &'static str,
    /// The public key, base64url.
    pub x: String,
    /// Key id.
    pub kid: String,
    /// Algorithm: `EdDSA`.
    pub alg: &'static str,
    /// Use: `sig`.
    #[serde(rename = "use")]
    pub use_: &'static str,
}

/// The JWKS document.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Jwks {
    /// Published keys, current signing key first.
    pub keys: Vec<PublicJwk>,
}

/// How often every instance re-reads the keys (another may have rotated). A new key is
/// published by every instance within this time; a retired key stays published this
/// much longer, since an instance may sign with it until it reloads.
pub const KEY_RELOAD_SECS: u64 = 30;

/// Minimum time between two reloads triggered by an unknown `kid`.
const RELOAD_COOLDOWN_MS: i64 = 1000;

/// The timing of key rotation, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPolicy {
    /// A new key is published this long before it signs (ms).
    pub publish_delay_ms: i64,
    /// A key stays published this long after it stopped signing (ms): the access-token
    /// lifetime plus leeway plus [`KEY_RELOAD_SECS`].
    pub keep_published_ms: i64,
    /// Scheduled rotation: a key signs for this long (ms); `None`: off.
    pub rotate_every_ms: Option<i64>,
}

impl KeyPolicy {
    /// The policy of a (validated) configuration.
    pub fn from_config(config: &Config) -> Result<Self, AuthError> {
        let ms = |secs: u64| {
            secs.checked_mul(1000)
                .and_then(|ms| i64::try_from(ms).ok())
                .ok_or_else(|| AuthError::internal("key timing out of range"))
        };
        let tokens = &config.tokens;
        Ok(Self {
            publish_delay_ms: ms(config.keys.publish_delay_secs)?,
            keep_published_ms: ms(tokens.access_ttl_secs + tokens.leeway_secs + KEY_RELOAD_SECS)?,
            rotate_every_ms: match config.keys.rotate_every_days {
                0 => None,
                days => Some(ms(days.saturating_mul(86_400))?),
            },
        })
    }
}

/// How a rotation takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRotation {
    /// The new key is published now and signs after the publication delay, by which time
    /// every verifier has it. The normal case.
    Delayed,
    /// The new key signs at once, and keys still pending are revoked. Verifiers that
    /// cached the JWKS do not know the new `kid` yet: they refuse new tokens until they
    /// refetch (the project's verifier refetches on an unknown `kid`, at most once per
    /// cooldown).
    Immediate,
    /// [`KeyRotation::Immediate`], and every earlier key is revoked: out of the JWKS at once,
    /// so every access token it signed fails (for a compromised key; clients refresh).
    RevokePrevious,
}

impl KeyRotation {
    /// A short name for logs and the audit log.
    pub fn describe(self) -> &'static str {
        match self {
            KeyRotation::Delayed => "delayed",
            KeyRotation::Immediate => "immediate",
            KeyRotation::RevokePrevious => "immediate, previous keys revoked",
        }
    }
}

/// Where a key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Published, not signing yet.
    Pending,
    /// Signs new tokens.
    Signing,
    /// Stopped signing; published until its last token has expired.
    Retired,
    /// Out of the JWKS.
    Unpublished,
    /// Withdrawn by an emergency rotation: neither signs nor is published.
    Revoked,
}

impl KeyState {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Pending => "pending",
            KeyState::Signing => "signing",
            KeyState::Retired => "retired",
            KeyState::Unpublished => "unpublished",
            KeyState::Revoked => "revoked",
        }
    }

    fn is_published(self) -> bool {
        matches!(
            self,
            KeyState::Pending | KeyState::Signing | KeyState::Retired
        )
    }
}

/// A key and its state at one moment (`keys list`, the admin API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatus {
    /// Key id.
    pub kid: String,
    /// Algorithm.
    pub alg: String,
    /// Created and first published, ms.
    pub created_ms: i64,
    /// Starts signing, ms.
    pub activates_ms: i64,
    /// The state at the moment asked about.
    pub state: KeyState,
    /// When it stops (or stopped) signing: the next key's activation or its revocation;
    /// `None` while no successor is due, or if it never signs.
    pub retires_ms: Option<i64>,
    /// When it leaves (or left) the JWKS; `None` while no successor is due.
    pub unpublished_ms: Option<i64>,
    /// When it was revoked, if it was.
    pub revoked_ms: Option<i64>,
}

/// A key's life as far as the stored rows tell it.
struct Life<'a> {
    key: &'a StoredKey,
    retires_ms: Option<i64>,
    unpublished_ms: Option<i64>,
}

impl Life<'_> {
    fn state(&self, now_ms: i64) -> KeyState {
        let key = self.key;
        if key.revoked_ms.is_some_and(|r| r <= now_ms) {
            KeyState::Revoked
        } else if now_ms < key.activates_ms {
            KeyState::Pending
        } else if self.retires_ms.is_none_or(|r| now_ms < r) {
            KeyState::Signing
        } else if self.unpublished_ms.is_none_or(|u| now_ms < u) {
            KeyState::Retired
        } else {
            KeyState::Unpublished
        }
    }

    fn status(&self, now_ms: i64) -> KeyStatus {
        KeyStatus {
            kid: self.key.kid.clone(),
            alg: self.key.alg.clone(),
            created_ms: self.key.created_ms,
            activates_ms: self.key.activates_ms,
            state: self.state(now_ms),
            retires_ms: self.retires_ms,
            unpublished_ms: self.unpublished_ms,
            revoked_ms: self.key.revoked_ms,
        }
    }

    /// The moments at which this key's state changes.
    fn events(&self) -> impl Iterator<Item = i64> + '_ {
        [
            Some(self.key.activates_ms),
            self.retires_ms,
            self.unpublished_ms,
            self.key.revoked_ms,
        ]
        .into_iter()
        .flatten()
    }
}

/// Every key's life, in the order of `stored`. Keys sign one after the other in order
/// of activation (then creation, then `kid`); each stops when the next one activates. A
/// key revoked before its activation never signs and is skipped.
fn lives(stored: &[StoredKey], keep_published_ms: i64) -> Vec<Life<'_>> {
    let signs = |k: &StoredKey| k.revoked_ms.is_none_or(|r| r > k.activates_ms);
    let mut order: Vec<&StoredKey> = stored.iter().filter(|k| signs(k)).collect();
    order.sort_by(|a, b| {
        (a.activates_ms, a.created_ms, &a.kid).cmp(&(b.activates_ms, b.created_ms, &b.kid))
    });
    stored
        .iter()
        .map(|key| {
            let successor = order
                .iter()
                .skip_while(|k| k.kid != key.kid)
                .nth(1)
                .map(|k| k.activates_ms);
            let retires_ms = match (signs(key), successor, key.revoked_ms) {
                (false, _, _) => None,
                (true, Some(s), Some(r)) => Some(s.min(r)),
                (true, s, r) => s.or(r),
            };
            let after_last_token = retires_ms.map(|r| r + keep_published_ms);
            let unpublished_ms = match (key.revoked_ms, after_last_token) {
                (Some(r), Some(u)) => Some(r.min(u)),
                (r, u) => r.or(u),
            };
            Life {
                key,
                retires_ms,
                unpublished_ms,
            }
        })
        .collect()
}

/// What one instance signs with and publishes during one stretch of time.
struct View {
    signing: Arc<SigningKey>,
    verifying: KeySet,
    jwks: Jwks,
}

/// The key that signs new tokens, parsed once per loaded view. Parsing an Ed25519 PKCS#8 key
/// derives its public key (about 110 000 instructions, a fifth of a refresh's), which
/// `jsonwebtoken::encode` did again for every token it signed.
pub struct SigningKey {
    kid: String,
    /// A stored key that does not parse fails each signing, as it did before.
    pair: Result<Ed25519KeyPair, aws_lc_rs::error::KeyRejected>,
}

/// A JWS part: `value` as JSON, base64url without padding.
fn json_part<T: Serialize + ?Sized>(value: &T) -> Result<String, AuthError> {
    let json = serde_json::to_vec(value)
        .map_err(|e| AuthError::internal_because("serializing a token part", e))?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

impl SigningKey {
    fn parse(key: &StoredKey) -> Self {
        Self {
            kid: key.kid.clone(),
            pair: Ed25519KeyPair::from_pkcs8(&key.private_der),
        }
    }

    /// The key id, for the tokens' `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The compact JWS of `claims` under `header` (whose `alg` must be `EdDSA`): the same
    /// string `jsonwebtoken::encode` makes with this key (Ed25519 signatures are
    /// deterministic).
    pub fn sign<T: Serialize>(&self, header: &Header, claims: &T) -> Result<String, AuthError> {
        if header.alg != Algorithm::EdDSA {
            return Err(AuthError::internal("an Ed25519 key signs EdDSA only"));
        }
        let pair = self
            .pair
            .as_ref()
            .map_err(|e| AuthError::internal_because("parsing the signing key", *e))?;
        let mut jws = json_part(header)?;
        jws.push('.');
        jws.push_str(&json_part(claims)?);
        let signature = pair
            .try_sign(jws.as_bytes())
            .map_err(|e| AuthError::internal_because("signing an access token", e))?;
        jws.push('.');
        jws.push_str(&URL_SAFE_NO_PAD.encode(signature.as_ref()));
        Ok(jws)
    }
}

/// The stored keys as loaded: a [`View`] for each stretch of time between two state
/// changes, so activations and unpublications happen on time between reloads.
struct Loaded {
    /// The view from `loaded_ms` on.
    first: Arc<View>,
    /// The views after each later state change: `(from_ms, view)`, ascending.
    later: Vec<(i64, Arc<View>)>,
    loaded_ms: i64,
}

impl Loaded {
    fn build(stored: &[StoredKey], now_ms: i64, keep_published_ms: i64) -> Result<Self, AuthError> {
        let lives = lives(stored, keep_published_ms);
        let mut events: Vec<i64> = lives
            .iter()
            .flat_map(Life::events)
            .filter(|&t| t > now_ms)
            .collect();
        events.sort_unstable();
        events.dedup();
        let first =
            view_at(&lives, now_ms).ok_or_else(|| AuthError::internal("no key signs now"))?;
        // A moment with no signing key (only after odd concurrent revocations) keeps the
        // previous view.
        let later = events
            .into_iter()
            .filter_map(|at| view_at(&lives, at).map(|view| (at, Arc::new(view))))
            .collect();
        Ok(Self {
            first: Arc::new(first),
            later,
            loaded_ms: now_ms,
        })
    }

    fn at(&self, now_ms: i64) -> Arc<View> {
        let passed = self.later.partition_point(|(from, _)| *from <= now_ms);
        match passed.checked_sub(1).and_then(|i| self.later.get(i)) {
            Some((_, view)) => Arc::clone(view),
            None => Arc::clone(&self.first),
        }
    }
}

fn view_at(lives: &[Life<'_>], now_ms: i64) -> Option<View> {
    let signing = lives
        .iter()
        .find(|l| l.state(now_ms) == KeyState::Signing)?
        .key;
    let published: Vec<&StoredKey> = lives
        .iter()
        .filter(|l| l.key.alg == "EdDSA" && l.state(now_ms).is_published())
        .map(|l| l.key)
        .collect();
    let verifying = KeySet::from_keys(
        published
            .iter()
            .map(|k| VerifyingKey::ed25519(&k.kid, &k.public_key)),
    );
    let mut keys: Vec<PublicJwk> = published
        .iter()
        .map(|k| PublicJwk {
            kty: "OKP",
            crv: "Ed25519",
            x: URL_SAFE_NO_PAD.encode(&k.public_key),
            kid: k.kid.clone(),
            alg: "EdDSA",
            use_: "sig",
        })
        .collect();
    keys.sort_by_key(|k| k.kid != signing.kid);
    Some(View {
        signing: Arc::new(SigningKey::parse(signing)),
        verifying,
        jwks: Jwks { keys },
    })
}

/// Holds the keys: the one that signs and every published public key.
pub struct KeyManager {
    db: Arc<dyn Database>,
    clock: Arc<dyn Clock>,
    policy: KeyPolicy,
    loaded: RwLock<Arc<Loaded>>,
    reload_lock: Mutex<()>,
}

impl KeyManager {
    /// Loads the keys. When no key signs now (first start), generates one that signs at
    /// once and persists it.
    pub async fn load(
        db: Arc<dyn Database>,
        clock: Arc<dyn Clock>,
        policy: KeyPolicy,
    ) -> Result<Self, AuthError> {
        let now = clock.now_millis();
        let mut stored = db.signing_keys().await?;
        let signs_now = lives(&stored, policy.keep_published_ms)
            .iter()
            .any(|l| l.state(now) == KeyState::Signing);
        if !signs_now {
            let key = generate_ed25519(now, now, None)?;
            tracing::info!(kid = %key.kid, "generated a signing key (none was signing)");
            db.insert_signing_key(&key).await?;
            // Another instance may have raced us; everyone converges on the same key.
            stored = db.signing_keys().await?;
        }
        let loaded = Loaded::build(&stored, now, policy.keep_published_ms)?;
        Ok(Self {
            db,
            clock,
            policy,
            loaded: RwLock::new(Arc::new(loaded)),
            reload_lock: Mutex::new(()),
        })
    }

    fn loaded(&self) -> Arc<Loaded> {
        match self.loaded.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn view(&self) -> Arc<View> {
        self.loaded().at(self.clock.now_millis())
    }

    /// The key that signs new tokens now.
    pub fn signing_key(&self) -> Arc<SigningKey> {
        Arc::clone(&self.view().signing)
    }

    /// The keys that verify tokens now (the published ones).
    pub fn verifying_keys(&self) -> KeySet {
        self.view().verifying.clone()
    }

    /// The JWKS to publish now.
    pub fn jwks(&self) -> Jwks {
        self.view().jwks.clone()
    }

    /// The timing of rotations.
    pub fn policy(&self) -> KeyPolicy {
        self.policy
    }

    /// Creates a new key, published at once, signing as `rotation` says. Returns its
    /// status.
    pub async fn rotate(&self, rotation: KeyRotation) -> Result<KeyStatus, AuthError> {
        let _guard = self.reload_lock.lock().await;
        let now = self.clock.now_millis();
        let wanted = match rotation {
            KeyRotation::Delayed => now + self.policy.publish_delay_ms,
            KeyRotation::Immediate | KeyRotation::RevokePrevious => now,
        };
        let stored = self.db.signing_keys().await?;
        let activates = activation_after(&stored, wanted, rotation == KeyRotation::Delayed, now);
        let key = generate_ed25519(now, activates, None)?;
        self.db.insert_signing_key(&key).await?;
        // Withdrawn keys go when the new key takes over (now, unless a key activated in
        // this very millisecond), so that some key always signs.
        match rotation {
            KeyRotation::Delayed => {}
            KeyRotation::Immediate => {
                self.db
                    .revoke_signing_keys(&key.kid, activates, true)
                    .await?
            }
            KeyRotation::RevokePrevious => {
                self.db
                    .revoke_signing_keys(&key.kid, activates, false)
                    .await?
            }
        }
        let stored = self.install_from_db(now).await?;
        tracing::info!(kid = %key.kid, rotation = rotation.describe(), activates_ms = activates, "signing key rotated");
        self.status_of(&stored, &key.kid, now)
    }

    /// Scheduled rotation, when on and due: creates the next key as pending. Due means
    /// that no key is pending and the signing key has signed for `rotate_every` minus the
    /// publication delay (so that keys change every `rotate_every`). The decision is read
    /// from SQL, and the new key records the key it succeeds in a unique column, so
    /// instances that decide at the same moment insert one key between them. Returns the
    /// new key, if this instance created it.
    pub async fn rotate_if_due(&self) -> Result<Option<KeyStatus>, AuthError> {
        let Some(every) = self.policy.rotate_every_ms else {
            return Ok(None);
        };
        let _guard = self.reload_lock.lock().await;
        let now = self.clock.now_millis();
        let stored = self.db.signing_keys().await?;
        let lives = lives(&stored, self.policy.keep_published_ms);
        if lives.iter().any(|l| l.state(now) == KeyState::Pending) {
            return Ok(None);
        }
        let Some(signing) = lives.iter().find(|l| l.state(now) == KeyState::Signing) else {
            return Ok(None);
        };
        if now < signing.key.activates_ms + every - self.policy.publish_delay_ms {
            return Ok(None);
        }
        let key = generate_ed25519(
            now,
            now + self.policy.publish_delay_ms,
            Some(signing.key.kid.clone()),
        )?;
        match self.db.insert_signing_key(&key).await {
            Ok(()) => {}
            Err(StoreError::Conflict(Unique::KeySuccessor)) => {
                // Another instance scheduled this rotation first.
                self.install_from_db(now).await?;
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        }
        let stored = self.install_from_db(now).await?;
        tracing::info!(kid = %key.kid, activates_ms = key.activates_ms, "scheduled signing-key rotation");
        self.status_of(&stored, &key.kid, now).map(Some)
    }

    /// Re-reads the keys from the database (another instance may have rotated), at most
    /// once per cooldown. Returns whether a reload happened.
    pub async fn reload_if_stale(&self) -> Result<bool, AuthError> {
        let _guard = self.reload_lock.lock().await;
        let now = self.clock.now_millis();
        if now - self.loaded().loaded_ms < RELOAD_COOLDOWN_MS {
            return Ok(false);
        }
        self.install_from_db(now).await?;
        Ok(true)
    }

    /// Every stored key with its state now, newest first: by creation, then activation
    /// (read from SQL).
    pub async fn statuses(&self) -> Result<Vec<KeyStatus>, AuthError> {
        let stored = self.db.signing_keys().await?;
        let now = self.clock.now_millis();
        let mut statuses: Vec<KeyStatus> = lives(&stored, self.policy.keep_published_ms)
            .iter()
            .map(|l| l.status(now))
            .collect();
        statuses.sort_by(|a, b| {
            (b.created_ms, b.activates_ms, &b.kid).cmp(&(a.created_ms, a.activates_ms, &a.kid))
        });
        Ok(statuses)
    }

    fn status_of(&self, stored: &[StoredKey], kid: &str, now: i64) -> Result<KeyStatus, AuthError> {
        lives(stored, self.policy.keep_published_ms)
            .iter()
            .find(|l| l.key.kid == kid)
            .map(|l| l.status(now))
            .ok_or_else(|| AuthError::internal("the new key was not stored"))
    }

    async fn install_from_db(&self, now: i64) -> Result<Vec<StoredKey>, AuthError> {
        let stored = self.db.signing_keys().await?;
        let loaded = Loaded::build(&stored, now, self.policy.keep_published_ms)?;
        if let Ok(mut guard) = self.loaded.write() {
            *guard = Arc::new(loaded);
        }
        Ok(stored)
    }
}

/// `wanted`, or just after the latest activation among the keys that will still sign (a
/// pending key stays only if `keep_pending`), so that the new key comes last in the order
/// of activation even within one millisecond: the newest rotation wins.
fn activation_after(stored: &[StoredKey], wanted: i64, keep_pending: bool, now_ms: i64) -> i64 {
    stored
        .iter()
        .filter(|k| k.revoked_ms.is_none_or(|r| r > k.activates_ms))
        .filter(|k| keep_pending || k.activates_ms <= now_ms)
        .map(|k| k.activates_ms + 1)
        .fold(wanted, i64::max)
}

/// A new Ed25519 key pair with a random `kid`, created at `now_ms`, signing from
/// `activates_ms`.
pub fn generate_ed25519(
    now_ms: i64,
    activates_ms: i64,
    scheduled_after: Option<String>,
) -> Result<StoredKey, AuthError> {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|e| AuthError::internal_because("generating a signing key", e))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|e| AuthError::internal_because("reading a generated signing key", e))?;
    Ok(StoredKey {
        kid: random_id()?,
        alg: "EdDSA".into(),
        private_der: pkcs8.as_ref().to_vec(),
        public_key: pair.public_key().as_ref().to_vec(),
        created_ms: now_ms,
        activates_ms,
        revoked_ms: None,
        scheduled_after,
    })
}

impl AuthService {
    /// Admin: rotates the signing key (audited with the mode).
    pub async fn admin_rotate_key(
        &self,
        admin: &Claims,
        rotation: KeyRotation,
        client: &ClientInfo,
    ) -> Result<KeyStatus, AuthError> {
        self.require_role(admin, ADMIN_ROLE)?;
        let status = self.keys().rotate(rotation).await?;
        let detail = match rotation {
            KeyRotation::Delayed => status.kid.clone(),
            other => format!("{} ({})", status.kid, other.describe()),
        };
        self.audit_admin_action(
            admin,
            "admin.key_rotated",
            None,
            None,
            client,
            Some(&detail),
        )
        .await;
        Ok(status)
    }

    /// Admin: every key with its state, newest first.
    pub async fn admin_list_keys(&self, admin: &Claims) -> Result<Vec<KeyStatus>, AuthError> {
        self.require_role(admin, ADMIN_ROLE)?;
        self.keys().statuses().await
    }

    /// The key task's tick (every [`KEY_RELOAD_SECS`]): re-reads the keys, then runs
    /// scheduled rotation. Returns the key it scheduled, if any.
    pub async fn maintain_keys(&self) -> Result<Option<KeyStatus>, AuthError> {
        self.keys().reload_if_stale().await?;
        let scheduled = self.keys().rotate_if_due().await?;
        if let Some(key) = &scheduled {
            self.audit(
                "key.rotation_scheduled",
                Some("scheduler"),
                None,
                None,
                &ClientInfo::default(),
                Some(&key.kid),
            )
            .await;
        }
        Ok(scheduled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_signed_with_the_parsed_key_is_the_one_jsonwebtoken_makes() {
        let stored = generate_ed25519(0, 0, None).unwrap();
        let key = SigningKey::parse(&stored);
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some("at+jwt".into());
        header.kid = Some(key.kid().to_owned());
        let claims = serde_json::json!({"sub": "u1", "sid": "s1", "exp": 1_700_000_000, "roles": ["a", "b"]});
        let expected = jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_ed_der(&stored.private_der),
        )
        .unwrap();
        assert_eq!(key.sign(&header, &claims).unwrap(), expected);
    }

    #[test]
    fn a_key_that_does_not_parse_or_another_algorithm_fails_the_signing() {
        let mut stored = generate_ed25519(0, 0, None).unwrap();
        let claims = serde_json::json!({"sub": "u1"});
        let good = SigningKey::parse(&stored);
        assert!(good.sign(&Header::new(Algorithm::ES256), &claims).is_err());
        stored.private_der.truncate(10);
        let bad = SigningKey::parse(&stored);
        assert!(bad.sign(&Header::new(Algorithm::EdDSA), &claims).is_err());
    }
}
