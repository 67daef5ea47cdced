//! DPoP proofs (RFC 9449), checked once for the auth-center and every verifier (feature
//! `dpop`, on by default).
//!
//! A client that holds a key pair sends, with each request, a `DPoP` header: a short JWT
//! signed with its private key, naming the request (`htm`, `htu`), the time (`iat`), a unique
//! id (`jti`) and, next to an access token, that token's hash (`ath`), with the public key in
//! its header (`jwk`). [`DpopChecker::check`] verifies one and hands back a
//! [`VerifiedProof`] whose [`thumbprint`](VerifiedProof::thumbprint) (RFC 7638) names the key.
//! A token bound to that thumbprint (`cnf.jkt`, see [`Confirmation`](crate::Confirmation))
//! is then usable only together with proofs from that key: [`check_binding`].
//!
//! The checks, in order, before anything is remembered:
//!
//! 1. at most [`MAX_PROOF_BYTES`], a compact JWS of three base64url segments;
//! 2. header: `typ` `dpop+jwt`; `alg` on the allow-list (a subset of
//!    [`SUPPORTED_ALGORITHMS`]: never `none` or a MAC); a `jwk` that is a public key of the
//!    type and size `alg` needs, without private members; no `jku`, `x5u`, `x5c`, `crit`,
//!    `enc`, `zip` or `b64`; no duplicate member;
//! 3. the signature verifies with that `jwk`;
//! 4. claims `jti`, `htm`, `htu`, `iat` present with their types; `htm` is the request's
//!    method; `htu` is the configured public URL plus the request's path, compared after
//!    RFC 3986 normalisation and without query or fragment; `iat` no older than the maximum
//!    age and not in the future, each with the leeway; `ath` the access token's hash when a
//!    token comes with the proof;
//! 5. `jti` not seen before (per key) while the proof could still be accepted.
//!
//! **Replays.** The cache of seen `jti`s is bounded (default 100 000 proofs) and in the
//! memory of one process; replicas do not share it. A proof is only good for one method
//! and URL, for `max_age` (default 60 s), and next to one access token, so a replay sent to
//! another replica can only repeat, within that minute, the very request it was captured
//! from. When more distinct proofs arrive within one window than the cache holds, the
//! oldest are forgotten first, and a replay of a forgotten proof within its window passes.
//!
//! No server nonces (`use_dpop_nonce`) are issued; a proof's `nonce` claim is ignored.
//!
//! ```
//! use verifier::dpop::{DpopChecker, DpopError, ProofRequest};
//! let checker = DpopChecker::builder()
//!     .public_url("https://auth.example.com")
//!     .build()
//!     .unwrap();
//! let request = ProofRequest::new("POST", "/v1/refresh");
//! assert_eq!(checker.check("not-a-proof", &request).unwrap_err(), DpopError::Malformed("not a compact JWS"));
//! ```

mod jwk;
mod replay;
mod url;

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::claims::Claims;
use crate::clock::{Clock, SystemClock};
use crate::error::VerifyError;
use crate::jws::{compact_parts, typ_is};
use crate::keys::install_crypto_provider;
use jwk::RawJwk;
use replay::ReplayCache;

/// The JOSE `typ` of a DPoP proof (RFC 9449 §4.2).
///
/// ```
/// assert_eq!(verifier::dpop::PROOF_TYP, "dpop+jwt");
/// ```
pub const PROOF_TYP: &str = "dpop+jwt";

/// Longest `DPoP` header accepted, in bytes, checked before anything is decoded: room for a
/// proof signed with a 4096-bit RSA key.
///
/// ```
/// use verifier::dpop::{DpopChecker, DpopError, MAX_PROOF_BYTES, ProofRequest};
/// let checker = DpopChecker::builder().public_url("https://a.example").build().unwrap();
/// let huge = "a".repeat(MAX_PROOF_BYTES + 1);
/// let refused = checker.check(&huge, &ProofRequest::new("GET", "/"));
/// assert_eq!(refused.unwrap_err(), DpopError::TooLong);
/// ```
pub const MAX_PROOF_BYTES: usize = 4 * 1024;

/// Every algorithm a DPoP proof may be signed with here, strongest preference first: the
/// default allow-list, and what `dpop_signing_alg_values_supported` (RFC 9449 §5.1) lists
/// (see [`DpopChecker::signing_alg_values`]). Never `none` or a MAC.
///
/// ```
/// use verifier::Algorithm;
/// use verifier::dpop::SUPPORTED_ALGORITHMS;
/// assert!(SUPPORTED_ALGORITHMS.contains(&Algorithm::ES256));
/// assert!(SUPPORTED_ALGORITHMS.contains(&Algorithm::EdDSA));
/// assert!(!SUPPORTED_ALGORITHMS.contains(&Algorithm::HS256));
/// ```
pub const SUPPORTED_ALGORITHMS: &[Algorithm] = &[
    Algorithm::ES256,
    Algorithm::EdDSA,
    Algorithm::PS256,
    Algorithm::RS256,
];

/// The JOSE name of a supported algorithm (`None` for any other).
fn alg_name(alg: Algorithm) -> Option<&'static str> {
    match alg {
        Algorithm::ES256 => Some("ES256"),
        Algorithm::EdDSA => Some("EdDSA"),
        Algorithm::PS256 => Some("PS256"),
        Algorithm::RS256 => Some("RS256"),
        _ => None,
    }
}

/// The JOSE names of [`SUPPORTED_ALGORITHMS`], space-separated: the `algs` of a `DPoP`
/// challenge.
#[cfg(feature = "axum")]
pub(crate) fn supported_alg_names() -> String {
    SUPPORTED_ALGORITHMS
        .iter()
        .filter_map(|&alg| alg_name(alg))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why a DPoP proof was not accepted. Each is `invalid_dpop_proof` to the client
/// (RFC 9449 §5, §7.1).
///
/// ```
/// use verifier::dpop::DpopError;
/// assert_eq!(DpopError::Replayed.to_string(), "the DPoP proof was used before");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DpopError {
    /// The request needs a proof and has none.
    #[error("a DPoP proof is required")]
    Missing,
    /// More than one `DPoP` header (RFC 9449 §4.3, check 1).
    #[error("more than one DPoP header")]
    Multiple,
    /// Longer than [`MAX_PROOF_BYTES`].
    #[error("the DPoP proof is too long")]
    TooLong,
    /// Not a well-formed proof: structure, JSON, a missing or mistyped member, a forbidden
    /// header.
    #[error("malformed DPoP proof: {0}")]
    Malformed(&'static str),
    /// `typ` is not `dpop+jwt`.
    #[error("not a DPoP proof (typ)")]
    WrongType,
    /// `alg` is not on the allow-list.
    #[error("the DPoP proof's algorithm is not allowed")]
    AlgorithmNotAllowed,
    /// The `jwk` is missing, private, of the wrong type or size for `alg`.
    #[error("unusable DPoP key: {0}")]
    BadKey(&'static str),
    /// The signature does not verify with the `jwk`.
    #[error("the DPoP proof's signature does not verify")]
    BadSignature,
    /// `htm` is not the request's method.
    #[error("the DPoP proof is for another method (htm)")]
    WrongMethod,
    /// `htu` is not the request's URL.
    #[error("the DPoP proof is for another URL (htu)")]
    WrongUrl,
    /// `iat` is older than the maximum age.
    #[error("the DPoP proof is too old (iat)")]
    Stale,
    /// `iat` lies in the future.
    #[error("the DPoP proof was issued in the future (iat)")]
    FromTheFuture,
    /// This proof (its key and `jti`) was accepted before.
    #[error("the DPoP proof was used before")]
    Replayed,
    /// The proof comes with an access token but has no `ath`.
    #[error("the DPoP proof has no access token hash (ath)")]
    MissingAccessTokenHash,
    /// `ath` is not the hash of the access token it comes with.
    #[error("the DPoP proof is for another access token (ath)")]
    WrongAccessTokenHash,
}

/// The settings of a [`DpopChecker`] do not work.
///
/// ```
/// let refused = verifier::dpop::DpopChecker::builder().build();
/// assert!(refused.unwrap_err().to_string().contains("public_url"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("DPoP configuration: {0}")]
pub struct DpopConfigError(pub String);

/// The request a proof must be for: its method, its path (the URL's query is not part of
/// it), and the access token that comes with it, if any.
///
/// ```
/// use verifier::dpop::ProofRequest;
/// let at_refresh = ProofRequest::new("POST", "/v1/refresh");
/// let with_token = ProofRequest::new("GET", "/me").with_access_token("eyJ...");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ProofRequest<'a> {
    method: &'a str,
    path: &'a str,
    access_token: Option<&'a str>,
}

impl<'a> ProofRequest<'a> {
    /// A request with `method` (`GET`, `POST`, ...) to `path` (`/v1/refresh`), relative to
    /// the checker's public URL.
    ///
    /// ```
    /// let request = verifier::dpop::ProofRequest::new("POST", "/v1/login");
    /// ```
    pub fn new(method: &'a str, path: &'a str) -> Self {
        Self {
            method,
            path,
            access_token: None,
        }
    }

    /// The access token that comes with the proof: the proof's `ath` must be its hash.
    ///
    /// ```
    /// let request = verifier::dpop::ProofRequest::new("GET", "/me").with_access_token("eyJ...");
    /// ```
    pub fn with_access_token(mut self, access_token: &'a str) -> Self {
        self.access_token = Some(access_token);
        self
    }
}

/// A proof that passed every check: the key it was signed with, by thumbprint.
///
/// Only [`DpopChecker::check`] makes one, so holding one means the check ran.
///
/// ```
/// fn bound_to(proof: &verifier::dpop::VerifiedProof) -> &str {
///     proof.thumbprint()
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    jkt: String,
    jti: String,
    iat: i64,
}

impl VerifiedProof {
    /// The RFC 7638 SHA-256 thumbprint of the proof's key, base64url: what a bound token's
    /// `cnf.jkt` and a bound session hold.
    ///
    /// ```
    /// # fn demo(proof: verifier::dpop::VerifiedProof) {
    /// println!("key {}", proof.thumbprint());
    /// # }
    /// ```
    pub fn thumbprint(&self) -> &str {
        &self.jkt
    }

    /// The proof's `jti`.
    ///
    /// ```
    /// # fn demo(proof: verifier::dpop::VerifiedProof) {
    /// println!("proof {}", proof.jti());
    /// # }
    /// ```
    pub fn jti(&self) -> &str {
        &self.jti
    }

    /// The proof's `iat`, seconds since the epoch.
    ///
    /// ```
    /// # fn demo(proof: verifier::dpop::VerifiedProof) {
    /// println!("made at {}", proof.issued_at());
    /// # }
    /// ```
    pub fn issued_at(&self) -> i64 {
        self.iat
    }
}

/// Checks DPoP proofs against one public URL, an algorithm allow-list, an `iat` window and
/// a replay cache. Cheap to clone; clones share the replay cache.
///
/// ```
/// use std::time::Duration;
/// use verifier::Algorithm;
/// use verifier::dpop::DpopChecker;
/// let checker = DpopChecker::builder()
///     .public_url("https://api.example.com")   // required: where clients reach this service
///     .algorithms([Algorithm::ES256, Algorithm::EdDSA]) // default: SUPPORTED_ALGORITHMS
///     .max_age(Duration::from_secs(60))        // how old a proof may be (default 60 s)
///     .leeway(Duration::from_secs(5))          // clock skew (default 5 s)
///     .replay_cache_capacity(100_000)          // proofs remembered (default 100 000)
///     .build()
///     .unwrap();
/// assert_eq!(checker.signing_alg_values(), ["ES256", "EdDSA"]);
/// ```
#[derive(Clone)]
pub struct DpopChecker {
    inner: Arc<Inner>,
}

struct Inner {
    /// The public URL, normalised, without a trailing `/`.
    public_url: String,
    algorithms: Vec<Algorithm>,
    max_age_secs: i64,
    leeway_secs: i64,
    replay: ReplayCache,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for DpopChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopChecker")
            .field("public_url", &self.inner.public_url)
            .field("algorithms", &self.inner.algorithms)
            .field("max_age_secs", &self.inner.max_age_secs)
            .field("leeway_secs", &self.inner.leeway_secs)
            .field("replay_cache_capacity", &self.inner.replay.capacity())
            .finish()
    }
}

/// Builds a [`DpopChecker`]; see there for the settings and their defaults.
///
/// ```
/// let builder = verifier::dpop::DpopChecker::builder().public_url("https://api.example.com");
/// ```
pub struct DpopCheckerBuilder {
    public_url: Option<String>,
    algorithms: Vec<Algorithm>,
    max_age: Duration,
    leeway: Duration,
    replay_capacity: usize,
    clock: Arc<dyn Clock>,
}

/// Longest `max_age` accepted: a proof is meant for one request, now.
const MAX_MAX_AGE: Duration = Duration::from_secs(300);

impl DpopCheckerBuilder {
    /// The URL this service is reachable under, as clients see it (scheme, host, port and
    /// any path prefix a proxy adds): a proof's `htu` must be it plus the request's path.
    /// Required; taken from configuration, never from request headers.
    ///
    /// ```
    /// // Behind a proxy that serves this service under /api:
    /// let builder = verifier::dpop::DpopChecker::builder().public_url("https://example.com/api");
    /// ```
    pub fn public_url(mut self, url: impl Into<String>) -> Self {
        self.public_url = Some(url.into());
        self
    }

    /// The algorithms a proof may be signed with: a subset of [`SUPPORTED_ALGORITHMS`]
    /// (the default).
    ///
    /// ```
    /// use verifier::Algorithm;
    /// let builder = verifier::dpop::DpopChecker::builder().algorithms([Algorithm::ES256]);
    /// ```
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// How old a proof's `iat` may be (default 60 s, at most 5 min). Also how long a `jti`
    /// is remembered.
    ///
    /// ```
    /// let builder = verifier::dpop::DpopChecker::builder().max_age(std::time::Duration::from_secs(30));
    /// ```
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// Clock skew allowed on `iat`, both ways (default 5 s, at most 60 s).
    ///
    /// ```
    /// let builder = verifier::dpop::DpopChecker::builder().leeway(std::time::Duration::from_secs(2));
    /// ```
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// How many proofs the replay cache remembers (default 100 000; at least 1).
    ///
    /// ```
    /// let builder = verifier::dpop::DpopChecker::builder().replay_cache_capacity(1_000_000);
    /// ```
    pub fn replay_cache_capacity(mut self, capacity: usize) -> Self {
        self.replay_capacity = capacity;
        self
    }

    /// Where "now" comes from (default the system clock).
    ///
    /// ```
    /// use std::sync::Arc;
    /// let clock = verifier::contract::ManualClock::starting_now();
    /// let builder = verifier::dpop::DpopChecker::builder().clock(Arc::new(clock));
    /// ```
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The checker, or why these settings do not work: no or an unreadable public URL (it
    /// must be an absolute `http(s)` URL without query or fragment), an algorithm that is
    /// not supported or none at all, a `max_age` of 0 or over 5 min, a leeway over 60 s, a
    /// replay cache of 0.
    ///
    /// ```
    /// use verifier::{Algorithm, dpop::DpopChecker};
    /// let hs = DpopChecker::builder().public_url("https://a.example").algorithms([Algorithm::HS256]);
    /// assert!(hs.build().is_err());
    /// ```
    pub fn build(self) -> Result<DpopChecker, DpopConfigError> {
        let bad = |m: &str| Err(DpopConfigError(m.into()));
        let Some(public_url) = self.public_url else {
            return bad("public_url is required");
        };
        if public_url.contains(['?', '#']) {
            return bad("public_url must not have a query or fragment");
        }
        let Some(normal) = url::normalize(&public_url) else {
            return bad("public_url must be an absolute http(s) URL");
        };
        let public_url = normal.trim_end_matches('/').to_string();
        if self.algorithms.is_empty()
            || self
                .algorithms
                .iter()
                .any(|a| !SUPPORTED_ALGORITHMS.contains(a))
        {
            return bad("algorithms must be a non-empty subset of ES256, EdDSA, PS256, RS256");
        }
        if self.max_age.is_zero() || self.max_age > MAX_MAX_AGE {
            return bad("max_age must be between 1 s and 300 s");
        }
        if self.leeway > Duration::from_secs(60) {
            return bad("leeway must be at most 60 s");
        }
        if self.replay_capacity == 0 {
            return bad("the replay cache needs room for at least one proof");
        }
        install_crypto_provider();
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        Ok(DpopChecker {
            inner: Arc::new(Inner {
                public_url,
                algorithms: self.algorithms,
                max_age_secs: secs(self.max_age),
                leeway_secs: secs(self.leeway),
                replay: ReplayCache::new(self.replay_capacity),
                clock: self.clock,
            }),
        })
    }
}

/// The header as sent. Derived deserialisation refuses a duplicate of any member named.
#[derive(Deserialize)]
struct RawHeader {
    typ: Option<String>,
    alg: String,
    jwk: Option<RawJwk>,
    jku: Option<IgnoredAny>,
    x5u: Option<IgnoredAny>,
    x5c: Option<IgnoredAny>,
    crit: Option<IgnoredAny>,
    enc: Option<IgnoredAny>,
    zip: Option<IgnoredAny>,
    b64: Option<IgnoredAny>,
}

/// The claims as sent: required ones with their types; a duplicate is refused.
#[derive(Deserialize)]
struct RawClaims {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    ath: Option<String>,
}

/// Longest `jti` accepted, in bytes.
const MAX_JTI_BYTES: usize = 256;

impl DpopChecker {
    /// A builder with the defaults; the public URL is required.
    ///
    /// ```
    /// let checker = verifier::dpop::DpopChecker::builder()
    ///     .public_url("https://auth.example.com")
    ///     .build()
    ///     .unwrap();
    /// ```
    pub fn builder() -> DpopCheckerBuilder {
        DpopCheckerBuilder {
            public_url: None,
            algorithms: SUPPORTED_ALGORITHMS.to_vec(),
            max_age: Duration::from_secs(60),
            leeway: Duration::from_secs(5),
            replay_capacity: 100_000,
            clock: Arc::new(SystemClock),
        }
    }

    /// Checks `proof` (the value of the one `DPoP` header) for `request`; see the [module
    /// documentation](self) for the checks. A proof that passes is remembered, and the same
    /// proof again is [`DpopError::Replayed`].
    ///
    /// ```
    /// use verifier::dpop::{DpopChecker, DpopError, ProofRequest};
    /// let checker = DpopChecker::builder().public_url("https://auth.example.com").build().unwrap();
    /// // {"typ":"dpop+jwt","alg":"none"}.{}.
    /// let none = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6Im5vbmUifQ.e30.AA";
    /// let refused = checker.check(none, &ProofRequest::new("POST", "/v1/refresh"));
    /// assert_eq!(refused.unwrap_err(), DpopError::AlgorithmNotAllowed);
    /// ```
    pub fn check(
        &self,
        proof: &str,
        request: &ProofRequest<'_>,
    ) -> Result<VerifiedProof, DpopError> {
        let inner = &self.inner;
        if proof.len() > MAX_PROOF_BYTES {
            return Err(DpopError::TooLong);
        }
        let (header, payload, signature) =
            compact_parts(proof).ok_or(DpopError::Malformed("not a compact JWS"))?;
        let header: RawHeader = decode_json(header, "malformed header")?;
        if header.jku.is_some()
            || header.x5u.is_some()
            || header.x5c.is_some()
            || header.crit.is_some()
            || header.enc.is_some()
            || header.zip.is_some()
            || header.b64.is_some()
        {
            return Err(DpopError::Malformed("forbidden header parameter"));
        }
        if !typ_is(header.typ.as_deref(), PROOF_TYP) {
            return Err(DpopError::WrongType);
        }
        // Exact, case-sensitive match against the allow-list: "none", "HS256" never pass.
        let alg = inner
            .algorithms
            .iter()
            .copied()
            .find(|&a| alg_name(a) == Some(header.alg.as_str()))
            .ok_or(DpopError::AlgorithmNotAllowed)?;
        let key = header
            .jwk
            .ok_or(DpopError::BadKey("no jwk in the header"))?
            .public_key()?;
        let decoding_key = key.decoding_key(alg)?;
        let signed = &proof[..header_and_payload_len(proof)];
        let verified =
            jsonwebtoken::crypto::verify(signature, signed.as_bytes(), &decoding_key, alg)
                .map_err(|_| DpopError::BadSignature)?;
        if !verified {
            return Err(DpopError::BadSignature);
        }
        // Signed by the key it carries: now the claims can be read.
        let claims: RawClaims = decode_json(payload, "malformed claims")?;
        if claims.jti.is_empty() || claims.jti.len() > MAX_JTI_BYTES {
            return Err(DpopError::Malformed("jti must be 1 to 256 bytes"));
        }
        if claims.htm != request.method {
            return Err(DpopError::WrongMethod);
        }
        let expected = url::normalize(&format!("{}{}", inner.public_url, request.path));
        if expected.is_none() || url::normalize(&claims.htu) != expected {
            return Err(DpopError::WrongUrl);
        }
        let now = inner.clock.now_secs();
        if claims.iat > now + inner.leeway_secs {
            return Err(DpopError::FromTheFuture);
        }
        if claims.iat < now - inner.max_age_secs - inner.leeway_secs {
            return Err(DpopError::Stale);
        }
        if let Some(token) = request.access_token {
            let ath = claims.ath.ok_or(DpopError::MissingAccessTokenHash)?;
            if ath != access_token_hash(token) {
                return Err(DpopError::WrongAccessTokenHash);
            }
        }
        let jkt = key.thumbprint();
        // Remembered until the proof is stale anyway: iat + max age + leeway.
        let stale_after = claims.iat + inner.max_age_secs + inner.leeway_secs;
        if !inner
            .replay
            .first_use(&format!("{jkt} {}", claims.jti), stale_after, now)
        {
            return Err(DpopError::Replayed);
        }
        Ok(VerifiedProof {
            jkt,
            jti: claims.jti,
            iat: claims.iat,
        })
    }

    /// The algorithms proofs may be signed with, by JOSE name: the value of
    /// `dpop_signing_alg_values_supported` in authorization-server metadata (RFC 9449 §5.1).
    ///
    /// ```
    /// let checker = verifier::dpop::DpopChecker::builder().public_url("https://a.example").build().unwrap();
    /// assert_eq!(checker.signing_alg_values(), ["ES256", "EdDSA", "PS256", "RS256"]);
    /// ```
    pub fn signing_alg_values(&self) -> Vec<&'static str> {
        self.inner
            .algorithms
            .iter()
            .filter_map(|&alg| alg_name(alg))
            .collect()
    }

    /// The public URL proofs are checked against, normalised.
    ///
    /// ```
    /// let checker = verifier::dpop::DpopChecker::builder().public_url("HTTPS://A.example:443/").build().unwrap();
    /// assert_eq!(checker.public_url(), "https://a.example");
    /// ```
    pub fn public_url(&self) -> &str {
        &self.inner.public_url
    }
}

/// The bytes of `<header>.<payload>`: what the signature covers.
fn header_and_payload_len(proof: &str) -> usize {
    proof.rfind('.').unwrap_or(0)
}

fn decode_json<T: serde::de::DeserializeOwned>(
    segment: &str,
    what: &'static str,
) -> Result<T, DpopError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| DpopError::Malformed(what))?;
    serde_json::from_slice(&bytes).map_err(|_| DpopError::Malformed(what))
}

/// The `ath` of a proof sent with `access_token`: base64url(SHA-256(token)) (RFC 9449 §4.2).
///
/// ```
/// assert_eq!(
///     verifier::dpop::access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
///     "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo", // RFC 9449 §7.1
/// );
/// ```
pub fn access_token_hash(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, access_token.as_bytes()))
}

/// The RFC 7638 SHA-256 thumbprint of a public JWK given as JSON (an `EC` P-256, `OKP`
/// Ed25519 or `RSA` key of 2048 to 4096 bits); a key with private members is refused.
///
/// ```
/// // RFC 7638 §3.1
/// let jwk = r#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#;
/// assert_eq!(verifier::dpop::jwk_thumbprint(jwk).unwrap(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
/// ```
pub fn jwk_thumbprint(jwk: &str) -> Result<String, DpopError> {
    let raw: RawJwk =
        serde_json::from_str(jwk).map_err(|_| DpopError::BadKey("not a JWK object"))?;
    Ok(raw.public_key()?.thumbprint())
}

/// Whether `claims` may be used on a request that presented them with `proof` (`None`: as
/// a bearer token). RFC 9449 §7: a DPoP-bound token (`cnf.jkt`) needs a proof from exactly
/// that key and is refused as a bearer token (§7.2); a token presented with the DPoP scheme
/// must be bound, to the proof's key.
///
/// ```
/// use verifier::dpop::check_binding;
/// # let unbound: verifier::Claims = serde_json::from_str(r#"{"iss":"i","sub":"u","aud":"a",
/// #     "exp":2,"iat":1,"jti":"j","sid":"s"}"#).unwrap();
/// let mut bound = unbound.clone();
/// bound.cnf = Some(verifier::Confirmation { jkt: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into() });
/// assert!(check_binding(&unbound, None).is_ok()); // a bearer token
/// assert!(check_binding(&bound, None).is_err());  // a bound token used as a bearer token
/// ```
pub fn check_binding(claims: &Claims, proof: Option<&VerifiedProof>) -> Result<(), VerifyError> {
    match (&claims.cnf, proof) {
        (None, None) => Ok(()),
        (Some(_), None) => Err(VerifyError::DpopBinding(
            "a DPoP-bound token presented as a bearer token",
        )),
        (None, Some(_)) => Err(VerifyError::DpopBinding(
            "a token that is not DPoP-bound presented with the DPoP scheme",
        )),
        (Some(cnf), Some(proof)) if cnf.jkt == proof.jkt => Ok(()),
        (Some(_), Some(_)) => Err(VerifyError::DpopBinding(
            "the DPoP proof is from another key than the token is bound to",
        )),
    }
}

/// The value of the request's one `DPoP` header: `Ok(None)` without one,
/// [`DpopError::Multiple`] for two or more (RFC 9449 §4.3), [`DpopError::Malformed`] for a
/// value that is not visible ASCII (feature `axum`).
///
/// ```
/// use verifier::dpop::{DpopError, proof_header};
/// let mut headers = http::HeaderMap::new();
/// assert_eq!(proof_header(&headers), Ok(None));
/// headers.insert("dpop", "eyJ...".parse().unwrap());
/// assert_eq!(proof_header(&headers), Ok(Some("eyJ...")));
/// headers.append("dpop", "eyJ...".parse().unwrap());
/// assert_eq!(proof_header(&headers), Err(DpopError::Multiple));
/// ```
#[cfg(feature = "axum")]
pub fn proof_header(headers: &http::HeaderMap) -> Result<Option<&str>, DpopError> {
    let mut values = headers.get_all("dpop").iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(_), Some(_)) => Err(DpopError::Multiple),
        (Some(value), None) => value
            .to_str()
            .map(|v| Some(v.trim()))
            .map_err(|_| DpopError::Malformed("the DPoP header is not ASCII")),
    }
}
