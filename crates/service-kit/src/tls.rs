//! TLS on the listener, for deployments without a terminating proxy in front.
//!
//! The certificate chain and the private key are PEM files ([`TlsSettings`]). They are read
//! at start-up (a problem is a start-up error naming the file) and then checked every
//! `reload_ms` and on `SIGHUP`: when their contents changed, the new pair is loaded and every
//! handshake from then on presents it, while connections already open keep theirs. A new
//! pair that cannot be used (unreadable, not PEM, a key that does not match the
//! certificate, a pair caught half-written) is logged as an error and the previous pair
//! stays in use; the next check tries again. This suits certificate managers that replace
//! the files in place (cert-manager, certbot, Kubernetes secret volumes).
//!
//! The handshake uses the rustls `CryptoProvider` installed for the process, or aws-lc-rs
//! when none is installed (the one provider the workspace builds). Only HTTP/1.1 is offered
//! (ALPN `http/1.1`), what the serve loop speaks.
//!
//! Every response served over TLS carries `Strict-Transport-Security: max-age=N`
//! (`hsts_max_age_secs`, 0 for none); a plain-HTTP listener never sends it (RFC 6797 §7.2).

// Reload checks are real time.
#![allow(clippy::disallowed_methods)]

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use axum::http::HeaderValue;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::Deserialize;
use tokio_rustls::TlsAcceptor;

/// The listener's TLS settings, the same in every binary (`[tls]` in a TOML file;
/// `TLS_CERT_FILE` and `TLS_KEY_FILE` in the environment). Neither file set: plain HTTP.
///
/// ```
/// let settings = service_kit::TlsSettings::default();
/// assert!(settings.cert_file.is_none());
/// assert_eq!(settings.hsts_max_age_secs, 31_536_000);
/// settings.validate()?;
/// # Ok::<(), service_kit::TlsError>(())
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM file with the certificate chain, the server's certificate first.
    pub cert_file: Option<PathBuf>,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1) of the first certificate.
    pub key_file: Option<PathBuf>,
    /// How often the two files are checked for a change, milliseconds (default 10 000;
    /// 100 to 86 400 000). `SIGHUP` checks at once.
    pub reload_ms: u64,
    /// `Strict-Transport-Security: max-age` on responses served over TLS, seconds (default
    /// 31 536 000, one year; 0 sends no header). Never sent over plain HTTP.
    pub hsts_max_age_secs: u64,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            cert_file: None,
            key_file: None,
            reload_ms: 10_000,
            hsts_max_age_secs: 31_536_000,
        }
    }
}

/// The keys of [`TlsSettings`] that are file paths although their names end in `_file`,
/// relative to its section: what `verifier::settings::Environment::paths` is told.
pub const PATH_SETTINGS: [&str; 2] = ["cert_file", "key_file"];

/// The key of a raw environment variable of a loader that also reads the short names
/// `TLS_CERT_FILE` and `TLS_KEY_FILE`: those two go to the `[tls]` section, every other name
/// is the top-level setting of its (lower-cased) name.
///
/// ```
/// use service_kit::tls::env_key;
/// assert_eq!(env_key("TLS_CERT_FILE"), "tls.cert_file");
/// assert_eq!(env_key("LISTEN_ADDR"), "listen_addr");
/// ```
pub fn env_key(name: &str) -> String {
    let name = name.to_ascii_lowercase();
    match name.strip_prefix("tls_") {
        Some(field) if PATH_SETTINGS.contains(&field) => format!("tls.{field}"),
        _ => name,
    }
}

impl TlsSettings {
    /// Refuses settings that cannot work: one file without the other, or a reload interval
    /// out of range. Whether the files are usable is checked by [`ListenerTls::load`].
    pub fn validate(&self) -> Result<(), TlsError> {
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(TlsError::Incomplete);
        }
        if !(100..=86_400_000).contains(&self.reload_ms) {
            return Err(TlsError::Setting(
                "tls.reload_ms must be between 100 and 86400000".into(),
            ));
        }
        Ok(())
    }

    /// Whether the listener serves TLS.
    pub fn enabled(&self) -> bool {
        self.cert_file.is_some()
    }

    /// `https` when the listener serves TLS, else `http` (for logs and URLs).
    ///
    /// ```
    /// assert_eq!(service_kit::TlsSettings::default().scheme(), "http");
    /// ```
    pub fn scheme(&self) -> &'static str {
        if self.enabled() { "https" } else { "http" }
    }
}

/// Why the listener's TLS cannot start, or why a new certificate was not taken.
///
/// ```
/// let error = service_kit::ListenerTls::load(&service_kit::TlsSettings {
///     cert_file: Some("/nonexistent/cert.pem".into()),
///     key_file: Some("/nonexistent/key.pem".into()),
///     ..Default::default()
/// })
/// .unwrap_err();
/// assert!(error.to_string().contains("/nonexistent/cert.pem"), "{error}");
/// ```
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Only one of the two files is configured.
    #[error("tls: set both cert_file (TLS_CERT_FILE) and key_file (TLS_KEY_FILE), or neither")]
    Incomplete,
    /// A setting is out of range.
    #[error("{0}")]
    Setting(String),
    /// A file cannot be read.
    #[error("tls: cannot read {what} {}: {source}", path.display())]
    Read {
        /// `certificate file` or `key file`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not what it should be.
    #[error("tls: {}: {message}", path.display())]
    Content {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The files still hold the pair that failed the last reload (its error).
    #[error("{0}")]
    Unchanged(String),
    /// rustls refused the pair (for instance the key does not match the certificate).
    #[error("tls: the certificate {} and the key {} cannot be used together: {source}", cert.display(), key.display())]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason.
        source: rustls::Error,
    },
}

/// A TLS acceptor whose certificate follows its files, and the HSTS header of its
/// responses. Cheap to clone; clones share the certificate.
#[derive(Clone)]
pub struct ListenerTls {
    inner: Arc<Inner>,
}

struct Inner {
    acceptor: TlsAcceptor,
    resolver: Arc<Resolver>,
    cert_file: PathBuf,
    key_file: PathBuf,
    reload: Duration,
    hsts: Option<HeaderValue>,
    provider: Arc<CryptoProvider>,
    /// The file contents last looked at, loaded or not, and the error they gave.
    seen: Mutex<Seen>,
}

#[derive(Default, PartialEq)]
struct Seen {
    files: Option<(Vec<u8>, Vec<u8>)>,
    error: Option<String>,
}

impl fmt::Debug for ListenerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenerTls")
            .field("cert_file", &self.inner.cert_file)
            .field("key_file", &self.inner.key_file)
            .finish_non_exhaustive()
    }
}

/// Hands every handshake the current certificate.
struct Resolver(RwLock<Arc<CertifiedKey>>);

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Resolver")
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.0
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

impl ListenerTls {
    /// The listener TLS of `settings`: `None` when no files are configured, an error when
    /// the settings or the files cannot be used.
    pub fn from_settings(settings: &TlsSettings) -> Result<Option<Self>, TlsError> {
        settings.validate()?;
        if !settings.enabled() {
            return Ok(None);
        }
        Self::load(settings).map(Some)
    }

    /// Reads the certificate and key of `settings` (both must be set) and builds the acceptor.
    pub fn load(settings: &TlsSettings) -> Result<Self, TlsError> {
        let (Some(cert_file), Some(key_file)) = (&settings.cert_file, &settings.key_file) else {
            return Err(TlsError::Incomplete);
        };
        let provider = CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
        let files = read_files(cert_file, key_file)?;
        let key = certified_key(cert_file, key_file, &files, &provider)?;
        let resolver = Arc::new(Resolver(RwLock::new(Arc::new(key))));
        let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsError::Pair {
                cert: cert_file.clone(),
                key: key_file.clone(),
                source,
            })?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let hsts = (settings.hsts_max_age_secs > 0).then(|| {
            HeaderValue::from_str(&format!("max-age={}", settings.hsts_max_age_secs))
                .unwrap_or(HeaderValue::from_static("max-age=31536000"))
        });
        Ok(Self {
            inner: Arc::new(Inner {
                acceptor: TlsAcceptor::from(Arc::new(config)),
                resolver,
                cert_file: cert_file.clone(),
                key_file: key_file.clone(),
                reload: Duration::from_millis(settings.reload_ms),
                hsts,
                provider,
                seen: Mutex::new(Seen {
                    files: Some(files),
                    error: None,
                }),
            }),
        })
    }

    /// The acceptor for new connections.
    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.inner.acceptor
    }

    /// The `Strict-Transport-Security` value of responses, if any.
    pub fn hsts(&self) -> Option<HeaderValue> {
        self.inner.hsts.clone()
    }

    /// Reads the files again and, when they changed, takes the new pair: `Ok(true)` when a
    /// new certificate is now in use, `Ok(false)` when nothing changed, an error (the old
    /// certificate stays) when the new files cannot be used.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let inner = &self.inner;
        let files = read_files(&inner.cert_file, &inner.key_file);
        let mut seen = inner.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let files = match files {
            Ok(files) => files,
            Err(e) => {
                seen.files = None;
                return Err(e);
            }
        };
        if seen.files.as_ref() == Some(&files) {
            return match &seen.error {
                // Still the files that failed: the same error, without another attempt.
                Some(message) => Err(TlsError::Unchanged(message.clone())),
                None => Ok(false),
            };
        }
        let loaded = certified_key(&inner.cert_file, &inner.key_file, &files, &inner.provider);
        seen.files = Some(files);
        match loaded {
            Ok(key) => {
                seen.error = None;
                *inner
                    .resolver
                    .0
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
                Ok(true)
            }
            Err(e) => {
                seen.error = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// Checks the files every `reload_ms` and on `SIGHUP`, for as long as a clone of this
    /// `ListenerTls` lives. Logs a new certificate at info, a failed reload at error (once
    /// per new content).
    pub fn spawn_reloader(&self) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        let every = self.inner.reload;
        tokio::spawn(async move {
            let mut hangup = hangup_signals();
            let mut last_error = None;
            loop {
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    () = next_hangup(&mut hangup) => {}
                }
                let Some(inner) = weak.upgrade() else { return };
                let tls = ListenerTls { inner };
                match tls.reload() {
                    Ok(true) => {
                        last_error = None;
                        tracing::info!(
                            cert_file = %tls.inner.cert_file.display(),
                            "loaded a new TLS certificate; new connections use it"
                        );
                    }
                    Ok(false) => last_error = None,
                    Err(e) => {
                        let message = e.to_string();
                        if last_error.as_ref() != Some(&message) {
                            tracing::error!(
                                error = %message,
                                "could not load the changed TLS certificate or key; \
                                 the previous certificate stays in use"
                            );
                            last_error = Some(message);
                        }
                    }
                }
            }
        })
    }
}

#[cfg(unix)]
fn hangup_signals() -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

#[cfg(unix)]
async fn next_hangup(signals: &mut Option<tokio::signal::unix::Signal>) {
    match signals {
        Some(signals) => {
            if signals.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
fn hangup_signals() -> Option<()> {
    None
}

#[cfg(not(unix))]
async fn next_hangup(_: &mut Option<()>) {
    std::future::pending().await
}

fn read_files(cert_file: &Path, key_file: &Path) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    let read = |what, path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            what,
            path: path.to_owned(),
            source,
        })
    };
    Ok((
        read("certificate file", cert_file)?,
        read("key file", key_file)?,
    ))
}

/// The certificate chain and key in `files`, checked to belong together.
fn certified_key(
    cert_file: &Path,
    key_file: &Path,
    (cert_pem, key_pem): &(Vec<u8>, Vec<u8>),
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let content = |path: &Path, message: String| TlsError::Content {
        path: path.to_owned(),
        message,
    };
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| content(cert_file, format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(content(
            cert_file,
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
        content(
            key_file,
            format!("holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
        )
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|source| TlsError::Pair {
        cert: cert_file.to_owned(),
        key: key_file.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn pair(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn settings(dir: &tempfile::TempDir, (cert, key): &(String, String)) -> TlsSettings {
        let cert_file = dir.path().join("cert.pem");
        let key_file = dir.path().join("key.pem");
        std::fs::write(&cert_file, cert).unwrap();
        std::fs::write(&key_file, key).unwrap();
        TlsSettings {
            cert_file: Some(cert_file),
            key_file: Some(key_file),
            ..TlsSettings::default()
        }
    }

    fn current(tls: &ListenerTls) -> Vec<u8> {
        let key = tls.inner.resolver.0.read().unwrap().clone();
        key.cert[0].to_vec()
    }

    #[test]
    fn no_files_means_plain_http_and_one_file_alone_is_refused() {
        assert!(
            ListenerTls::from_settings(&TlsSettings::default())
                .unwrap()
                .is_none()
        );
        let half = TlsSettings {
            cert_file: Some("cert.pem".into()),
            ..TlsSettings::default()
        };
        let error = ListenerTls::from_settings(&half).unwrap_err();
        assert!(error.to_string().contains("TLS_KEY_FILE"), "{error}");
    }

    #[test]
    fn a_key_that_does_not_match_the_certificate_is_refused_naming_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, _) = pair("a.test");
        let (_, other_key) = pair("b.test");
        let settings = settings(&dir, &(cert, other_key));
        let error = ListenerTls::load(&settings).unwrap_err().to_string();
        assert!(
            error.contains("cert.pem") && error.contains("key.pem"),
            "{error}"
        );
    }

    #[test]
    fn a_file_without_pem_content_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let (_, key) = pair("a.test");
        let settings = settings(&dir, &("not a certificate".into(), key));
        let error = ListenerTls::load(&settings).unwrap_err().to_string();
        assert!(
            error.contains("cert.pem") && error.contains("no PEM certificate"),
            "{error}"
        );
    }

    #[test]
    fn reload_takes_a_new_pair_and_keeps_the_old_one_when_the_new_files_are_bad() {
        let dir = tempfile::tempdir().unwrap();
        let first = pair("a.test");
        let settings = settings(&dir, &first);
        let tls = ListenerTls::load(&settings).unwrap();
        let first_der = current(&tls);
        assert!(!tls.reload().unwrap(), "unchanged files are not a change");

        // A half-written replacement: the new certificate with the old key.
        let second = pair("a.test");
        std::fs::write(settings.cert_file.as_ref().unwrap(), &second.0).unwrap();
        assert!(tls.reload().is_err());
        assert_eq!(current(&tls), first_der, "the old certificate stays");
        assert!(tls.reload().is_err(), "the same bad files fail again");

        std::fs::write(settings.key_file.as_ref().unwrap(), &second.1).unwrap();
        assert!(tls.reload().unwrap());
        assert_ne!(current(&tls), first_der);

        std::fs::remove_file(settings.key_file.as_ref().unwrap()).unwrap();
        let error = tls.reload().unwrap_err().to_string();
        assert!(error.contains("cannot read key file"), "{error}");
        assert_ne!(current(&tls), first_der, "the second certificate stays");
    }

    #[test]
    fn hsts_is_one_year_by_default_and_off_with_zero() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = settings(&dir, &pair("a.test"));
        let tls = ListenerTls::load(&settings).unwrap();
        assert_eq!(tls.hsts().unwrap(), "max-age=31536000");
        settings.hsts_max_age_secs = 0;
        assert!(ListenerTls::load(&settings).unwrap().hsts().is_none());
    }
}
