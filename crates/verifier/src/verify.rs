//! The `Verifier`: signature and claims in-process, then the session's existence in
//! Redis. Built with [`Verifier::builder`](crate::VerifierBuilder).

use std::sync::Arc;

use crate::builder::VerifierBuilder;
use crate::claims::Claims;
use crate::clock::Clock;
use crate::dpop::{DpopChecker, ProofRequest, check_binding};
use crate::error::VerifyError;
use crate::keys::KeySet;
#[cfg(feature = "jwks")]
use crate::keys::jwks::JwksSource;
use crate::metrics::VerifierMetrics;
#[cfg(feature = "redis")]
use crate::revocation::{SessionCheck, reader::ReaderThread, selftest::SelftestTask};
#[cfg(feature = "redis")]
use crate::session_keys::SessionKeys;
#[cfg(feature = "redis")]
use crate::sig_cache::Session;
use crate::sig_cache::{SignatureCache, Verified};
use crate::token::TokenValidator;

/// Verifies access tokens: structure, header, signature, claims, then (unless revocation
/// is explicitly off) that the token's session still exists in Redis. Cheap to clone.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use verifier::{RedisTarget, Verifier};
/// let verifier = Verifier::builder()
///     .issuer("https://auth.example.com")
///     .audience("api")
///     .jwks_url("https://auth.example.com/.well-known/jwks.json")
///     .redis(RedisTarget::Standalone("redis://127.0.0.1:6379".into()))
///     .build()
///     .await?;
/// match verifier.verify("eyJ...").await {
///     Ok(claims) => println!("hello {}", claims.sub),
///     Err(e) => println!("rejected: {e}"),
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Verifier {
    pub(crate) inner: Arc<Inner>,
}

/// What a [`Verifier`] is made of; the builder puts it together.
pub(crate) struct Inner {
    pub(crate) validator: TokenValidator,
    pub(crate) leeway_secs: i64,
    pub(crate) keys: KeySource,
    pub(crate) sig_cache: SignatureCache,
    #[cfg(feature = "redis")]
    pub(crate) session_check: Option<KeyedCheck>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Set with [`VerifierBuilder::dpop`]: DPoP-bound tokens are accepted.
    pub(crate) dpop: Option<DpopChecker>,
    /// Registered once at build: the request path only adds to atomics.
    pub(crate) metrics: Arc<VerifierMetrics>,
}

/// The session check and the key layout it checks.
#[cfg(feature = "redis")]
pub(crate) struct KeyedCheck {
    pub(crate) keys: SessionKeys,
    pub(crate) check: SessionCheck,
    /// The revocation self-test's task (tracked mode, unless switched off); dropping the
    /// verifier stops it.
    pub(crate) selftest: Option<SelftestTask>,
    /// Tracked mode's reader thread: dropping the verifier ends it, and every task on it.
    pub(crate) _reader_thread: Option<ReaderThread>,
}

#[cfg(feature = "redis")]
impl std::ops::Deref for KeyedCheck {
    type Target = SessionCheck;
    fn deref(&self) -> &SessionCheck {
        &self.check
    }
}

pub(crate) enum KeySource {
    Static(KeySet),
    #[cfg(feature = "jwks")]
    Jwks(Arc<JwksSource>),
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("validator", &self.inner.validator)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A builder with safe defaults: EdDSA only, 5 s leeway, tracked revocation,
    /// 5 s max staleness, 200 ms max stall, 500 ms Redis timeout, 10 000 cached signatures.
    ///
    /// ```
    /// let builder = verifier::Verifier::builder();
    /// ```
    pub fn builder() -> VerifierBuilder {
        VerifierBuilder::default()
    }

    /// Verifies `token`, presented as a bearer token, and returns its claims. A DPoP-bound
    /// token (`cnf.jkt`) is refused here ([`VerifyError::DpopBinding`], RFC 9449 §7.2): it
    /// needs [`verify_dpop`](Self::verify_dpop).
    ///
    /// ```
    /// # async fn demo(verifier: verifier::Verifier, token: &str) {
    /// match verifier.verify(token).await {
    ///     Ok(claims) => println!("{} in session {}", claims.sub, claims.sid),
    ///     Err(e) if e.is_unavailable() => println!("retry later: {e}"), // 503
    ///     Err(e) => println!("rejected: {e}"),                            // 401
    /// }
    /// # }
    /// ```
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        self.verify_shared(token).await.map(|c| (*c).clone())
    }

    /// Like [`verify`](Self::verify), without copying the claims.
    ///
    /// ```
    /// # async fn demo(verifier: verifier::Verifier, token: &str) -> Result<(), verifier::VerifyError> {
    /// let claims: std::sync::Arc<verifier::Claims> = verifier.verify_shared(token).await?;
    /// # Ok(()) }
    /// ```
    pub async fn verify_shared(&self, token: &str) -> Result<Arc<Claims>, VerifyError> {
        self.verify_presented(token, None).await
    }

    /// The whole of [`verify_shared`](Self::verify_shared) when it needs no `await`: a bearer
    /// token verified before (its signature cached, not expired) whose session tracked
    /// mode's cache holds, or which needs no session check. `None` when it would have to
    /// check a signature or ask Redis: then call `verify_shared`. Same answers and metrics
    /// as `verify_shared`; the middleware tries it first, so a repeat request costs no
    /// boxed future.
    ///
    /// ```
    /// # async fn demo(verifier: verifier::Verifier, token: &str) -> Result<(), verifier::VerifyError> {
    /// let claims = match verifier.verify_cached(token) {
    ///     Some(answer) => answer?,
    ///     None => verifier.verify_shared(token).await?,
    /// };
    /// # Ok(()) }
    /// ```
    pub fn verify_cached(&self, token: &str) -> Option<Result<Arc<Claims>, VerifyError>> {
        self.verify_cached_bytes(token.as_bytes())
    }

    /// [`verify_cached`](Self::verify_cached) of a token's bytes, not yet checked to be
    /// ASCII: every token in the caches passed the compact-JWS format check and
    /// verification, so a hit is one; anything else (a miss) is left to the full check.
    pub(crate) fn verify_cached_bytes(
        &self,
        token: &[u8],
    ) -> Option<Result<Arc<Claims>, VerifyError>> {
        let inner = &self.inner;
        // One reading for the token's expiry and the tracked entry's freshness.
        let now_millis = inner.clock.now_millis();
        let verified =
            inner
                .sig_cache
                .get(token, now_millis.div_euclid(1000), inner.leeway_secs)?;
        // In verify_presented's order: the binding, then the session.
        if let Err(e) = check_binding(&verified.claims, None) {
            inner.metrics.failed(true, None, &e);
            return Some(Err(e));
        }
        #[cfg_attr(not(feature = "redis"), allow(unused_mut))]
        let mut session_cached = None;
        #[cfg(feature = "redis")]
        if let (Some(check), Some(session)) = (&inner.session_check, &verified.session) {
            if !check.check.cached(&session.key, &session.memo, now_millis) {
                return None;
            }
            session_cached = Some(true);
        }
        inner.metrics.valid(true, session_cached);
        Some(Ok(Arc::clone(&verified.claims)))
    }

    /// Verifies `token`, presented as `Authorization: DPoP <token>` with the DPoP proof
    /// `proof` on a `method` request to `path` (RFC 9449 §7.1): the token as in
    /// [`verify`](Self::verify), the proof with the checker given to
    /// [`VerifierBuilder::dpop`] (its `ath` must be the token's hash), and the token must
    /// be bound (`cnf.jkt`) to the proof's key. Then the session check.
    ///
    /// ```
    /// # async fn demo(verifier: verifier::Verifier, token: &str, proof: &str) {
    /// match verifier.verify_dpop(token, proof, "GET", "/me").await {
    ///     Ok(claims) => println!("{} holds the key {:?}", claims.sub, claims.cnf),
    ///     Err(e) => println!("rejected: {e}"),
    /// }
    /// # }
    /// ```
    pub async fn verify_dpop(
        &self,
        token: &str,
        proof: &str,
        method: &str,
        path: &str,
    ) -> Result<Claims, VerifyError> {
        self.verify_dpop_shared(token, proof, method, path)
            .await
            .map(|c| (*c).clone())
    }

    /// Like [`verify_dpop`](Self::verify_dpop), without copying the claims.
    ///
    /// ```
    /// # async fn demo(verifier: verifier::Verifier, token: &str, proof: &str) -> Result<(), verifier::VerifyError> {
    /// let claims = verifier.verify_dpop_shared(token, proof, "POST", "/orders").await?;
    /// # Ok(()) }
    /// ```
    pub async fn verify_dpop_shared(
        &self,
        token: &str,
        proof: &str,
        method: &str,
        path: &str,
    ) -> Result<Arc<Claims>, VerifyError> {
        self.verify_presented(token, Some((proof, ProofRequest::new(method, path))))
            .await
    }

    /// The token, then (with the DPoP scheme) the proof, then the binding between them, all
    /// in-process; the session check last. The outcome and which caches answered are
    /// counted at the end, the one place they are all known (one async fn, no wrapper: the
    /// hot path stays as short as it was).
    async fn verify_presented(
        &self,
        token: &str,
        proof: Option<(&str, ProofRequest<'_>)>,
    ) -> Result<Arc<Claims>, VerifyError> {
        let inner = &self.inner;
        let now = inner.clock.now_secs();
        let cached = inner
            .sig_cache
            .get(token.as_bytes(), now, inner.leeway_secs);
        let signature_cached = cached.is_some();
        #[cfg_attr(not(feature = "redis"), allow(unused_mut))]
        let mut session_cached = None;
        let failed = |e: VerifyError, session_cached: Option<bool>| {
            inner.metrics.failed(signature_cached, session_cached, &e);
            Err(e)
        };
        let verified = match cached {
            Some(verified) => verified,
            None => match self.verify_signature(token, now).await {
                Ok(verified) => verified,
                Err(e) => return failed(e, None),
            },
        };
        if let Err(e) = self.check_proof(&verified, token, proof) {
            return failed(e, None);
        }
        #[cfg(feature = "redis")]
        if let (Some(check), Some(session)) = (&inner.session_check, &verified.session)
            && let Err(e) = check.check(&session.key, &mut session_cached).await
        {
            return failed(e, session_cached);
        }
        inner.metrics.valid(signature_cached, session_cached);
        Ok(Arc::clone(&verified.claims))
    }

    /// With the DPoP scheme, the proof; then the binding between token and proof.
    #[inline]
    fn check_proof(
        &self,
        verified: &Verified,
        token: &str,
        proof: Option<(&str, ProofRequest<'_>)>,
    ) -> Result<(), VerifyError> {
        let proof = match proof {
            None => None,
            Some((proof, request)) => {
                let checker = self.inner.dpop.as_ref().ok_or(VerifyError::DpopBinding(
                    "this verifier is not set up for DPoP",
                ))?;
                let checked = checker.check(proof, &request.with_access_token(token));
                Some(checked.map_err(VerifyError::InvalidDpopProof)?)
            }
        };
        check_binding(&verified.claims, proof.as_ref())
    }

    async fn verify_signature(&self, token: &str, now: i64) -> Result<Arc<Verified>, VerifyError> {
        let inner = &self.inner;
        let header = inner.validator.check_header(token)?;
        let keys = self.current_keys();
        let claims = match keys.get(&header.kid) {
            Some(key) => inner
                .validator
                .validate_with_key(token, &header, key, now)?,
            None => {
                let keys = self
                    .refetch_keys()
                    .await
                    .ok_or(VerifyError::Invalid("unknown key id"))?;
                let key = keys
                    .get(&header.kid)
                    .ok_or(VerifyError::Invalid("unknown key id"))?;
                inner
                    .validator
                    .validate_with_key(token, &header, key, now)?
            }
        };
        #[cfg(feature = "redis")]
        let session = match &inner.session_check {
            Some(check) => {
                let key = check
                    .keys
                    .session(&claims.sub, &claims.sid)
                    .ok_or(VerifyError::Invalid("malformed sub or sid"))?;
                Some(Session {
                    memo: crate::revocation::SessionMemo::new(&key),
                    key: key.into_boxed_str(),
                })
            }
            None => None,
        };
        let verified = Arc::new(Verified {
            claims: Arc::new(claims),
            #[cfg(feature = "redis")]
            session,
        });
        inner.sig_cache.insert(token, Arc::clone(&verified), now);
        Ok(verified)
    }

    fn current_keys(&self) -> KeySet {
        match &self.inner.keys {
            KeySource::Static(keys) => keys.clone(),
            #[cfg(feature = "jwks")]
            KeySource::Jwks(source) => source.keys(),
        }
    }

    /// On an unknown `kid`: refetch the JWKS (rate-limited); `None` for static keys.
    async fn refetch_keys(&self) -> Option<KeySet> {
        match &self.inner.keys {
            KeySource::Static(_) => None,
            #[cfg(feature = "jwks")]
            KeySource::Jwks(source) => {
                if source.refresh().await {
                    self.inner.sig_cache.clear();
                }
                Some(source.keys())
            }
        }
    }

    /// Whether this verifier can check sessions now, for a readiness probe: `Ok` when Redis
    /// answers a `PING` within the Redis timeout, [`VerifyError::Unavailable`] when it does
    /// not. Without Redis (revocation off) there is nothing to wait for: always `Ok`.
    ///
    /// ```
    /// use verifier::{KeySet, RedisTarget, Verifier, VerifyingKey};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// // Nothing listens on port 1: the verifier builds (Redis is connected lazily), but is
    /// // not ready.
    /// let verifier = Verifier::builder()
    ///     .issuer("https://auth.example.com")
    ///     .audience("api")
    ///     .static_keys(KeySet::from_keys([VerifyingKey::ed25519("k1", &[7u8; 32])]))
    ///     .redis(RedisTarget::Standalone("redis://127.0.0.1:1".into()))
    ///     .build()
    ///     .await
    ///     .unwrap();
    /// assert!(verifier.check_ready().await.unwrap_err().is_unavailable());
    /// # });
    /// ```
    pub async fn check_ready(&self) -> Result<(), VerifyError> {
        #[cfg(feature = "redis")]
        if let Some(check) = &self.inner.session_check {
            return check.ping().await;
        }
        Ok(())
    }

    /// The name this verifier reports to the revocation self-test under, when it takes part
    /// (tracked mode, [`revocation_selftest`](crate::VerifierBuilder::revocation_selftest)
    /// on); `None` otherwise.
    ///
    /// ```
    /// use verifier::{KeySet, RevocationMode, Verifier, VerifyingKey};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let verifier = Verifier::builder()
    ///     .issuer("https://auth.example.com")
    ///     .audience("api")
    ///     .static_keys(KeySet::from_keys([VerifyingKey::ed25519("k1", &[7u8; 32])]))
    ///     .revocation(RevocationMode::Off)
    ///     .build()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(verifier.revocation_selftest_instance(), None);
    /// # });
    /// ```
    #[cfg(feature = "redis")]
    pub fn revocation_selftest_instance(&self) -> Option<&str> {
        let check = self.inner.session_check.as_ref()?;
        check.selftest.as_ref().map(SelftestTask::instance)
    }

    /// Folds the counts of the hot path (repeat tokens answered from the caches) into the
    /// `verifier_*` series now; otherwise that happens at the next verification that takes
    /// another path, and at the latest every second (with the `redis` or `jwks` feature).
    /// For an exporter that renders on demand, or a test. Without the `metrics` feature it
    /// does nothing.
    ///
    /// ```
    /// # fn demo(verifier: verifier::Verifier) {
    /// verifier.flush_metrics();
    /// # }
    /// ```
    pub fn flush_metrics(&self) {
        self.inner.metrics.flush();
    }

    /// The key ids currently trusted.
    ///
    /// ```
    /// # fn demo(verifier: verifier::Verifier) {
    /// println!("trusting keys {:?}", verifier.key_ids());
    /// # }
    /// ```
    pub fn key_ids(&self) -> Vec<String> {
        self.current_keys()
            .kids()
            .into_iter()
            .map(String::from)
            .collect()
    }
}
