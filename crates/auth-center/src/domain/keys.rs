//! Signing keys: Ed25519, persisted in SQL so restarts and replicas share them, published
//! as a JWKS (public members only) until the last token they signed has expired.

use std::sync::{Arc, RwLock};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::EncodingKey;
use serde::Serialize;
use tokio::sync::Mutex;
use verifier::{Clock, KeySet, VerifyingKey};

use super::crypto::random_id;
use super::error::AuthError;
use super::ports::{Database, StoredKey};

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

struct Loaded {
    signing_kid: String,
    signing_key: EncodingKey,
    verifying: KeySet,
    jwks: Jwks,
    loaded_ms: i64,
}

/// Holds the current signing key and every still-published public key.
pub struct KeyManager {
    db: Arc<dyn Database>,
    clock: Arc<dyn Clock>,
    /// Keys retired longer ago than this are no longer published (ms).
    publish_after_retire_ms: i64,
    loaded: RwLock<Arc<Loaded>>,
    reload_lock: Mutex<()>,
}

/// How often every instance re-reads the keys (another may have rotated). A retired key
/// stays published this much longer, since peers may sign with it until they reload.
pub const KEY_RELOAD_SECS: u64 = 30;

/// Minimum time between two reloads triggered by an unknown `kid`.
const RELOAD_COOLDOWN_MS: i64 = 1000;

impl KeyManager {
    /// Loads the keys, generating and persisting the first one on first start.
    /// `publish_after_retire_ms` is how long a retired key stays published: the
    /// access-token lifetime plus leeway plus [`KEY_RELOAD_SECS`].
    pub async fn load(
        db: Arc<dyn Database>,
        clock: Arc<dyn Clock>,
        publish_after_retire_ms: i64,
    ) -> Result<Self, AuthError> {
        let mut stored = db.signing_keys().await?;
        if !stored.iter().any(|k| k.retired_ms.is_none()) {
            let key = generate_ed25519(clock.now_millis())?;
            tracing::info!(kid = %key.kid, "generated the first signing key");
            db.insert_signing_key(&key).await?;
            // Another instance may have raced us; everyone converges on the newest key.
            stored = db.signing_keys().await?;
        }
        let loaded = build(&stored, clock.now_millis(), publish_after_retire_ms)?;
        Ok(Self {
            db,
            clock,
            publish_after_retire_ms,
            loaded: RwLock::new(Arc::new(loaded)),
            reload_lock: Mutex::new(()),
        })
    }

    fn current(&self) -> Arc<Loaded> {
        match self.loaded.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The key id and key that sign new tokens.
    pub fn signing_key(&self) -> (String, EncodingKey) {
        let l = self.current();
        (l.signing_kid.clone(), l.signing_key.clone())
    }

    /// The keys that verify tokens.
    pub fn verifying_keys(&self) -> KeySet {
        self.current().verifying.clone()
    }

    /// The JWKS to publish.
    pub fn jwks(&self) -> Jwks {
        self.current().jwks.clone()
    }

    /// Starts signing with a new key. The old public keys stay published (and keep
    /// verifying) until the last token they signed has expired. Returns the new `kid`.
    pub async fn rotate(&self) -> Result<String, AuthError> {
        let _guard = self.reload_lock.lock().await;
        let now = self.clock.now_millis();
        let key = generate_ed25519(now)?;
        self.db.insert_signing_key(&key).await?;
        self.db.retire_signing_keys(&key.kid, now).await?;
        self.install_from_db(now).await?;
        tracing::info!(kid = %key.kid, "signing key rotated");
        Ok(key.kid)
    }

    /// Re-reads the keys from the database (another instance may have rotated), at most
    /// once per cooldown. Returns whether a reload happened.
    pub async fn reload_if_stale(&self) -> Result<bool, AuthError> {
        let _guard = self.reload_lock.lock().await;
        let now = self.clock.now_millis();
        if now - self.current().loaded_ms < RELOAD_COOLDOWN_MS {
            return Ok(false);
        }
        self.install_from_db(now).await?;
        Ok(true)
    }

    /// Every stored key, newest first (for `keys list`).
    pub async fn stored_keys(&self) -> Result<Vec<StoredKey>, AuthError> {
        Ok(self.db.signing_keys().await?)
    }

    async fn install_from_db(&self, now: i64) -> Result<(), AuthError> {
        let stored = self.db.signing_keys().await?;
        let loaded = build(&stored, now, self.publish_after_retire_ms)?;
        if let Ok(mut guard) = self.loaded.write() {
            *guard = Arc::new(loaded);
        }
        Ok(())
    }
}

fn build(
    stored: &[StoredKey],
    now_ms: i64,
    publish_after_retire_ms: i64,
) -> Result<Loaded, AuthError> {
    // `stored` is newest first; the newest unretired key signs.
    let signing = stored
        .iter()
        .find(|k| k.retired_ms.is_none())
        .ok_or_else(|| AuthError::Internal("no current signing key".into()))?;
    let published: Vec<&StoredKey> = stored
        .iter()
        .filter(|k| k.alg == "EdDSA")
        .filter(|k| {
            k.retired_ms
                .is_none_or(|r| now_ms < r + publish_after_retire_ms)
        })
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
    Ok(Loaded {
        signing_kid: signing.kid.clone(),
        signing_key: EncodingKey::from_ed_der(&signing.private_der),
        verifying,
        jwks: Jwks { keys },
        loaded_ms: now_ms,
    })
}

/// A new Ed25519 key pair with a random `kid`.
pub fn generate_ed25519(now_ms: i64) -> Result<StoredKey, AuthError> {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|_| AuthError::Internal("key generation failed".into()))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|_| AuthError::Internal("generated key rejected".into()))?;
    Ok(StoredKey {
        kid: random_id()?,
        alg: "EdDSA".into(),
        private_der: pkcs8.as_ref().to_vec(),
        public_key: pair.public_key().as_ref().to_vec(),
        created_ms: now_ms,
        retired_ms: None,
    })
}
