//! How a client gets into Redis beyond its URL: TLS ([`RedisTls`]: the CA that signed the
//! server's certificate, a client certificate for mutual TLS) and ACL credentials
//! ([`RedisCredentials`]), and which failures to connect are a mistake in them rather than an
//! outage ([`refused_for_good`]).

use std::fmt;
use std::path::Path;

use redis::{ClientTlsConfig, ErrorKind, RedisError, TlsCertificates};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// TLS to Redis for `rediss://` URLs: which CA to trust and, for mutual TLS, the client
/// certificate to present. Without a CA, the server's certificate must chain to a public CA
/// (Mozilla's list, built in); with one, to that CA only. The server's host name is always
/// checked against its certificate.
///
/// The PEM files are read and checked when the value is made, so a missing or malformed file
/// is an error at start-up that names the file.
///
/// ```
/// use verifier::RedisTls;
/// let error = RedisTls::new().ca_file("/nonexistent/ca.pem").unwrap_err();
/// assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
/// let refused = RedisTls::new().ca_pem("not a certificate").unwrap_err();
/// assert!(refused.to_string().contains("no PEM certificate"), "{refused}");
/// assert_eq!(format!("{:?}", RedisTls::new()), "RedisTls { ca: false, client_certificate: false }");
/// ```
#[derive(Clone, Default)]
pub struct RedisTls {
    ca_pem: Option<Vec<u8>>,
    client: Option<ClientTlsConfig>,
}

/// A TLS file or PEM text that cannot be used.
///
/// ```
/// use verifier::{RedisTls, RedisTlsError};
/// let error = RedisTls::new().client_identity_pem("x", "y").unwrap_err();
/// assert!(matches!(error, RedisTlsError::Pem { .. }));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum RedisTlsError {
    /// A file could not be read.
    #[error("cannot read the {what} {path}: {source}")]
    Read {
        /// What the file should hold, e.g. "Redis CA file".
        what: &'static str,
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The PEM text holds no usable certificate or key.
    #[error("the {what} is unusable: {detail}")]
    Pem {
        /// What the text should hold, with the file it came from if any.
        what: String,
        /// What is wrong.
        detail: String,
    },
}

impl RedisTls {
    /// TLS with the built-in public CAs and no client certificate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts only the CA certificates in `pem` (one or more `CERTIFICATE` blocks).
    pub fn ca_pem(self, pem: impl Into<Vec<u8>>) -> Result<Self, RedisTlsError> {
        self.with_ca(pem.into(), "Redis CA certificate".into())
    }

    /// Trusts only the CA certificates in the PEM file at `path`.
    pub fn ca_file(self, path: impl AsRef<Path>) -> Result<Self, RedisTlsError> {
        let path = path.as_ref();
        let pem = read(path, "Redis CA file")?;
        self.with_ca(pem, format!("Redis CA file {}", path.display()))
    }

    /// Presents the client certificate (chain) `cert_pem` with its private key `key_pem`
    /// (PKCS#8, PKCS#1 or SEC1), for servers that ask for one (`tls-auth-clients`).
    pub fn client_identity_pem(
        self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Result<Self, RedisTlsError> {
        self.with_client(
            cert_pem.into(),
            key_pem.into(),
            "Redis client certificate".into(),
            "Redis client key".into(),
        )
    }

    /// [`client_identity_pem`](Self::client_identity_pem) from two PEM files.
    pub fn client_identity_files(
        self,
        cert_path: impl AsRef<Path>,
        key_path: impl AsRef<Path>,
    ) -> Result<Self, RedisTlsError> {
        let (cert_path, key_path) = (cert_path.as_ref(), key_path.as_ref());
        let cert = read(cert_path, "Redis client certificate file")?;
        let key = read(key_path, "Redis client key file")?;
        self.with_client(
            cert,
            key,
            format!("Redis client certificate file {}", cert_path.display()),
            format!("Redis client key file {}", key_path.display()),
        )
    }

    fn with_ca(mut self, pem: Vec<u8>, what: String) -> Result<Self, RedisTlsError> {
        check_certificates(&pem, &what)?;
        self.ca_pem = Some(pem);
        Ok(self)
    }

    fn with_client(
        mut self,
        cert: Vec<u8>,
        key: Vec<u8>,
        cert_what: String,
        key_what: String,
    ) -> Result<Self, RedisTlsError> {
        check_certificates(&cert, &cert_what)?;
        PrivateKeyDer::from_pem_slice(&key).map_err(|e| RedisTlsError::Pem {
            what: key_what,
            detail: format!("no PEM private key: {e}"),
        })?;
        self.client = Some(ClientTlsConfig {
            client_cert: cert,
            client_key: key,
        });
        Ok(self)
    }

    /// What redis-rs takes.
    pub(crate) fn certificates(&self) -> TlsCertificates {
        TlsCertificates {
            client_tls: self.client.clone(),
            root_cert: self.ca_pem.clone(),
        }
    }
}

/// Says which parts are set, never their contents.
impl fmt::Debug for RedisTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTls")
            .field("ca", &self.ca_pem.is_some())
            .field("client_certificate", &self.client.is_some())
            .finish()
    }
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, RedisTlsError> {
    std::fs::read(path).map_err(|source| RedisTlsError::Read {
        what,
        path: path.display().to_string(),
        source,
    })
}

/// At least one certificate, and every `CERTIFICATE` block well-formed.
fn check_certificates(pem: &[u8], what: &str) -> Result<(), RedisTlsError> {
    let bad = |detail: String| RedisTlsError::Pem {
        what: what.to_owned(),
        detail,
    };
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("malformed PEM: {e}")))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in it".into()));
    }
    Ok(())
}

/// An ACL user and its password (`AUTH <username> <password>`), or the password alone for
/// the `default` user (`requirepass`). They take the place of any user and password in the
/// URL. `Debug` never prints the password.
///
/// ```
/// use verifier::RedisCredentials;
/// let credentials = RedisCredentials::new(Some("verifier"), "s3cret");
/// assert_eq!(format!("{credentials:?}"), r#"RedisCredentials { username: Some("verifier"), password: "[redacted]" }"#);
/// ```
#[derive(Clone)]
pub struct RedisCredentials {
    pub(crate) username: Option<String>,
    pub(crate) password: String,
}

impl RedisCredentials {
    /// The user `username` (`None`: the `default` user) with `password`.
    pub fn new(username: Option<&str>, password: impl Into<String>) -> Self {
        Self {
            username: username.map(str::to_owned),
            password: password.into(),
        }
    }
}

impl fmt::Debug for RedisCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCredentials")
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .finish()
    }
}

/// How a service's settings say to get into Redis: the settings every binary of this
/// workspace reads beside `REDIS_URL` and `REDIS_CLUSTER_URLS` (`REDIS_TLS_CA_FILE`,
/// `REDIS_TLS_CLIENT_CERT_FILE`, `REDIS_TLS_CLIENT_KEY_FILE`, `REDIS_USERNAME`,
/// `REDIS_PASSWORD`), checked against the Redis they go with. The one place these rules live:
/// the auth-center's configuration and [`crate::settings`] both ask it, and its errors name
/// the settings.
///
/// ```
/// use verifier::{RedisAccessSettings, RedisTarget};
/// let target = RedisTarget::Standalone("redis://cache:6379".into());
/// let settings = RedisAccessSettings { tls_ca_file: Some("ca.pem".as_ref()), ..Default::default() };
/// let error = settings.tls(Some(&target)).unwrap_err();
/// assert!(error.contains("REDIS_URL") && error.contains("rediss://"), "{error}");
/// let user = RedisAccessSettings { username: Some("verifier"), ..Default::default() };
/// assert!(user.credentials(Some(&target)).unwrap_err().contains("REDIS_PASSWORD"));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct RedisAccessSettings<'a> {
    /// `redis_tls_ca_file` (`REDIS_TLS_CA_FILE`).
    pub tls_ca_file: Option<&'a Path>,
    /// `redis_tls_client_cert_file` (`REDIS_TLS_CLIENT_CERT_FILE`).
    pub tls_client_cert_file: Option<&'a Path>,
    /// `redis_tls_client_key_file` (`REDIS_TLS_CLIENT_KEY_FILE`).
    pub tls_client_key_file: Option<&'a Path>,
    /// `redis_username` (`REDIS_USERNAME`).
    pub username: Option<&'a str>,
    /// `redis_password` (`REDIS_PASSWORD`); `Debug` of the settings that hold it must hide it.
    pub password: Option<&'a str>,
    /// `redis_sentinel_username` (`REDIS_SENTINEL_USERNAME`): the sentinels' own ACL user.
    pub sentinel_username: Option<&'a str>,
    /// `redis_sentinel_password` (`REDIS_SENTINEL_PASSWORD`); hidden as `password` is.
    pub sentinel_password: Option<&'a str>,
}

impl RedisAccessSettings<'_> {
    /// The environment variables, read without a prefix, of where Redis is and how to get in:
    /// the same names in every binary of this workspace, so one environment serves them all.
    ///
    /// ```
    /// assert!(verifier::RedisAccessSettings::ENVIRONMENT.contains(&"REDIS_TLS_CA_FILE"));
    /// ```
    pub const ENVIRONMENT: [&'static str; 11] = [
        "REDIS_URL",
        "REDIS_CLUSTER_URLS",
        "REDIS_SENTINEL_URLS",
        "REDIS_SENTINEL_MASTER",
        "REDIS_SENTINEL_USERNAME",
        "REDIS_SENTINEL_PASSWORD",
        "REDIS_TLS_CA_FILE",
        "REDIS_TLS_CLIENT_CERT_FILE",
        "REDIS_TLS_CLIENT_KEY_FILE",
        "REDIS_USERNAME",
        "REDIS_PASSWORD",
    ];
}

const REDIS_URL: &str = "redis_url (REDIS_URL)";
const REDIS_CLUSTER_URLS: &str = "redis_cluster_urls (REDIS_CLUSTER_URLS)";
const REDIS_SENTINEL_URLS: &str = "redis_sentinel_urls (REDIS_SENTINEL_URLS)";
const REDIS_SENTINEL_MASTER: &str = "redis_sentinel_master (REDIS_SENTINEL_MASTER)";
const NO_REDIS: &str = "set redis_url (REDIS_URL), redis_cluster_urls (REDIS_CLUSTER_URLS) or \
                        redis_sentinel_urls (REDIS_SENTINEL_URLS)";

/// Where the settings say Redis is, as written: exactly one of a server (`REDIS_URL`), a
/// cluster's seed nodes (`REDIS_CLUSTER_URLS`) or the sentinels (`REDIS_SENTINEL_URLS`, with
/// the master's name in `REDIS_SENTINEL_MASTER`), or none. The one place these rules live:
/// the auth-center's configuration and [`crate::settings`] both ask it.
///
/// ```
/// use verifier::{RedisTarget, RedisTopologySettings};
/// let sentinel = RedisTopologySettings {
///     sentinel_urls: Some("redis://s1:26379, redis://s2:26379"),
///     sentinel_master: Some("auth"),
///     ..Default::default()
/// };
/// assert_eq!(sentinel.target().unwrap(), Some(RedisTarget::sentinel_from_csv("redis://s1:26379,redis://s2:26379", "auth")));
/// let two = RedisTopologySettings { url: Some("redis://a"), sentinel_urls: Some("redis://s1"), ..Default::default() };
/// assert!(two.target().unwrap_err().contains("only one"));
/// let nameless = RedisTopologySettings { sentinel_urls: Some("redis://s1"), ..Default::default() };
/// assert!(nameless.target().unwrap_err().contains("REDIS_SENTINEL_MASTER"));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct RedisTopologySettings<'a> {
    /// `redis_url` (`REDIS_URL`).
    pub url: Option<&'a str>,
    /// `redis_cluster_urls` (`REDIS_CLUSTER_URLS`), comma-separated.
    pub cluster_urls: Option<&'a str>,
    /// `redis_sentinel_urls` (`REDIS_SENTINEL_URLS`), comma-separated.
    pub sentinel_urls: Option<&'a str>,
    /// `redis_sentinel_master` (`REDIS_SENTINEL_MASTER`).
    pub sentinel_master: Option<&'a str>,
}

impl RedisTopologySettings<'_> {
    /// The target; `None` when no Redis is set. Refused: more than one topology, a list that
    /// names no node, sentinels without a master name or a master name without sentinels.
    pub fn target(&self) -> Result<Option<crate::RedisTarget>, String> {
        use crate::RedisTarget;
        let set = [self.url, self.cluster_urls, self.sentinel_urls]
            .iter()
            .filter(|s| s.is_some())
            .count();
        if set > 1 {
            return Err(format!("{NO_REDIS}: only one of them"));
        }
        let master = self
            .sentinel_master
            .map(str::trim)
            .filter(|m| !m.is_empty());
        match (self.url, self.cluster_urls, self.sentinel_urls) {
            (Some(url), _, _) => Ok(Some(RedisTarget::Standalone(url.trim().to_owned()))),
            (_, Some(urls), _) => match RedisTarget::cluster_from_csv(urls) {
                RedisTarget::Cluster(seeds) if seeds.is_empty() => {
                    Err(format!("{REDIS_CLUSTER_URLS} names no seed node"))
                }
                target => Ok(Some(target)),
            },
            (_, _, Some(urls)) => {
                let Some(master) = master else {
                    return Err(format!(
                        "{REDIS_SENTINEL_URLS} needs the master's name in {REDIS_SENTINEL_MASTER}"
                    ));
                };
                let target = RedisTarget::sentinel_from_csv(urls, master);
                if target.urls().is_empty() {
                    return Err(format!("{REDIS_SENTINEL_URLS} names no sentinel"));
                }
                Ok(Some(target))
            }
            (None, None, None) if self.sentinel_master.is_some() => Err(format!(
                "{REDIS_SENTINEL_MASTER} is set, but {REDIS_SENTINEL_URLS} is not"
            )),
            (None, None, None) => Ok(None),
        }
    }
}
const CA_FILE: &str = "redis_tls_ca_file (REDIS_TLS_CA_FILE)";
const CLIENT_CERT_FILE: &str = "redis_tls_client_cert_file (REDIS_TLS_CLIENT_CERT_FILE)";
const CLIENT_KEY_FILE: &str = "redis_tls_client_key_file (REDIS_TLS_CLIENT_KEY_FILE)";
const ANY_TLS: &str = "a Redis TLS setting (REDIS_TLS_CA_FILE, REDIS_TLS_CLIENT_CERT_FILE, \
                       REDIS_TLS_CLIENT_KEY_FILE)";

impl RedisAccessSettings<'_> {
    /// The TLS settings, their files read and checked; `None` when none is set. Refused: a
    /// client certificate without its key (or the reverse), TLS settings without a Redis
    /// (`target` `None`) or with a `redis://` URL, a file that cannot be read or holds no PEM
    /// certificate or key.
    pub fn tls(&self, target: Option<&crate::RedisTarget>) -> Result<Option<RedisTls>, String> {
        let (ca, cert, key) = (
            self.tls_ca_file,
            self.tls_client_cert_file,
            self.tls_client_key_file,
        );
        if ca.is_none() && cert.is_none() && key.is_none() {
            return Ok(None);
        }
        let not_tls = |url: &String| {
            !url.get(..9)
                .is_some_and(|scheme| scheme.eq_ignore_ascii_case("rediss://"))
        };
        match target {
            None => {
                return Err(format!("{ANY_TLS} is set, but no Redis is: {NO_REDIS}"));
            }
            Some(crate::RedisTarget::Standalone(url)) if not_tls(url) => {
                return Err(format!(
                    "{ANY_TLS} is set, but {REDIS_URL} is not a rediss:// (TLS) URL"
                ));
            }
            Some(crate::RedisTarget::Cluster(urls)) => {
                if let Some(n) = urls.iter().position(not_tls) {
                    return Err(format!(
                        "{ANY_TLS} is set, but {REDIS_CLUSTER_URLS}, seed node {}, is not a \
                         rediss:// (TLS) URL",
                        n + 1
                    ));
                }
            }
            Some(crate::RedisTarget::Sentinel { sentinels, .. }) => {
                if let Some(n) = sentinels.iter().position(not_tls) {
                    return Err(format!(
                        "{ANY_TLS} is set, but {REDIS_SENTINEL_URLS}, sentinel {}, is not a \
                         rediss:// (TLS) URL (the sentinels and the data nodes share the scheme)",
                        n + 1
                    ));
                }
            }
            Some(_) => {}
        }
        let mut tls = RedisTls::new();
        if let Some(ca) = ca {
            tls = tls.ca_file(ca).map_err(|e| format!("{CA_FILE}: {e}"))?;
        }
        match (cert, key) {
            (None, None) => {}
            (Some(cert), Some(key)) => {
                tls = tls
                    .client_identity_files(cert, key)
                    .map_err(|e| format!("{CLIENT_CERT_FILE} / {CLIENT_KEY_FILE}: {e}"))?;
            }
            _ => {
                return Err(format!(
                    "{CLIENT_CERT_FILE} and {CLIENT_KEY_FILE} go together: set both or neither"
                ));
            }
        }
        Ok(Some(tls))
    }

    /// The user and password, if set; a user without a password, or either without a Redis,
    /// is refused.
    pub fn credentials(
        &self,
        target: Option<&crate::RedisTarget>,
    ) -> Result<Option<RedisCredentials>, String> {
        match (self.username, self.password) {
            (None, None) => Ok(None),
            (Some(_), None) => {
                Err("redis_username (REDIS_USERNAME) needs redis_password (REDIS_PASSWORD)".into())
            }
            (_, Some(_)) if target.is_none() => Err(format!(
                "redis_password (REDIS_PASSWORD) is set, but no Redis is: {NO_REDIS}"
            )),
            (username, Some(password)) => Ok(Some(RedisCredentials::new(username, password))),
        }
    }

    /// The sentinels' own user and password, if set; refused without a password, or with a
    /// target that is not [`crate::RedisTarget::Sentinel`].
    ///
    /// ```
    /// use verifier::{RedisAccessSettings, RedisTarget};
    /// let target = RedisTarget::sentinel_from_csv("redis://s1:26379", "auth");
    /// let settings = RedisAccessSettings { sentinel_password: Some("s3cret"), ..Default::default() };
    /// assert!(settings.sentinel_credentials(Some(&target)).unwrap().is_some());
    /// let standalone = RedisTarget::Standalone("redis://cache".into());
    /// assert!(settings.sentinel_credentials(Some(&standalone)).unwrap_err().contains("REDIS_SENTINEL_URLS"));
    /// ```
    pub fn sentinel_credentials(
        &self,
        target: Option<&crate::RedisTarget>,
    ) -> Result<Option<RedisCredentials>, String> {
        match (self.sentinel_username, self.sentinel_password) {
            (None, None) => Ok(None),
            (Some(_), None) => Err("redis_sentinel_username (REDIS_SENTINEL_USERNAME) needs \
                                    redis_sentinel_password (REDIS_SENTINEL_PASSWORD)"
                .into()),
            (_, Some(_)) if !matches!(target, Some(crate::RedisTarget::Sentinel { .. })) => {
                Err(format!(
                    "redis_sentinel_password (REDIS_SENTINEL_PASSWORD) is set, but \
                     {REDIS_SENTINEL_URLS} is not"
                ))
            }
            (username, Some(password)) => Ok(Some(RedisCredentials::new(username, password))),
        }
    }
}

/// Whether a failed first connection is a mistake in the TLS settings or the credentials,
/// which waiting does not fix, rather than an outage: the TLS handshake failed (the server's
/// certificate is not trusted or does not name the host, or the server refused our client
/// certificate), or Redis refused the user or password. Such a failure gets a message that
/// says so; `None` for anything else (refused, timed out, ...).
///
/// ```
/// use verifier::contract::refused_for_good;
/// let refused = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
/// assert!(refused_for_good(&refused).is_none());
/// ```
pub fn refused_for_good(error: &RedisError) -> Option<RedisError> {
    if let Some(tls) = tls_error(error) {
        return Some(RedisError::from((
            ErrorKind::Io,
            "the TLS handshake with Redis failed (check the CA file, the host name in the URL and the client certificate)",
            tls.to_string(),
        )));
    }
    let credentials = error.kind() == ErrorKind::AuthenticationFailed
        || matches!(error.code(), Some("WRONGPASS" | "NOAUTH" | "NOPERM"));
    credentials.then(|| {
        RedisError::from((
            ErrorKind::AuthenticationFailed,
            "Redis refused the credentials (check the user and password)",
            error.to_string(),
        ))
    })
}

/// The rustls error somewhere in `error`'s causes. redis-rs keeps an I/O error behind an
/// `Arc`, and an `io::Error` keeps the rustls error as its inner error, which `source()` skips.
fn tls_error(error: &RedisError) -> Option<&rustls::Error> {
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = next {
        let unshared: &(dyn std::error::Error + 'static) = match e.downcast_ref::<Shared>() {
            Some(shared) => shared.as_ref(),
            None => e,
        };
        let inner = unshared
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|inner| -> &(dyn std::error::Error + 'static) { inner });
        for candidate in [Some(unshared), inner].into_iter().flatten() {
            if let Some(tls) = candidate.downcast_ref::<rustls::Error>() {
                return Some(tls);
            }
        }
        next = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tls_failure_inside_an_io_error_is_refused_for_good() {
        // As redis-rs reports a failed handshake: an io::Error (behind an Arc) holding it.
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        let refused = refused_for_good(&RedisError::from(io)).expect("a TLS failure");
        let message = refused.to_string();
        assert!(message.contains("TLS handshake"), "{message}");
        assert!(message.contains("UnknownIssuer"), "{message}");
    }

    #[test]
    fn a_refused_password_is_refused_for_good() {
        let wrong = RedisError::from((
            ErrorKind::AuthenticationFailed,
            "Password authentication failed",
        ));
        let refused = refused_for_good(&wrong).expect("refused credentials");
        assert!(refused.to_string().contains("credentials"), "{refused}");
    }
}
