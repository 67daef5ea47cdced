//! Argon2id password hashing off the async runtime, with bounded concurrency.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier as _, Version,
};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use super::error::AuthError;
use crate::config::PasswordConfig;

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordCheck {
    /// The password matched.
    pub valid: bool,
    /// The stored hash uses older parameters and should be replaced.
    pub needs_rehash: bool,
}

/// Argon2id hashing off the async runtime, at most `permits` at once, so a login flood
/// cannot exhaust memory or starve the runtime.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    permits: Arc<Semaphore>,
    dummy_hash: Arc<str>,
    gauge: Arc<Gauge>,
}

/// What the hasher is doing, for tests and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HasherStats {
    /// Hashes running right now.
    pub running: usize,
    /// The most hashes that ever ran at once (a high-water mark).
    pub peak_running: usize,
}

/// Counts the hashes that are running, and the most that ever ran at once.
#[derive(Debug, Default)]
struct Gauge {
    running: AtomicUsize,
    peak: AtomicUsize,
}

impl Gauge {
    /// Marks one hash as running until the guard is dropped.
    fn enter(self: &Arc<Self>) -> Running {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        Running(self.clone())
    }
}

struct Running(Arc<Gauge>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.params)
            .finish()
    }
}

impl PasswordHasher {
    /// A hasher with the configured parameters. Computes one dummy hash up front, used
    /// to spend the same time on unknown users as on known ones.
    pub fn new(config: &PasswordConfig) -> Result<Self, AuthError> {
        let params = Params::new(
            config.memory_kib,
            config.iterations,
            config.parallelism,
            None,
        )
        .map_err(|e| AuthError::Internal(format!("argon2 parameters: {e}")))?;
        let permits = match config.max_concurrent_hashes {
            0 => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            n => n,
        };
        let dummy = argon(&params)
            .hash_password(b"dummy password for unknown users")
            .map_err(|e| AuthError::Internal(format!("argon2: {e}")))?
            .to_string();
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(permits)),
            dummy_hash: dummy.into(),
            gauge: Arc::default(),
        })
    }

    /// Hashes running now and the most that ever ran at once.
    pub fn stats(&self) -> HasherStats {
        HasherStats {
            running: self.gauge.running.load(Ordering::SeqCst),
            peak_running: self.gauge.peak.load(Ordering::SeqCst),
        }
    }

    /// Hashes a password into a PHC string.
    pub async fn hash(&self, password: SecretString) -> Result<String, AuthError> {
        let params = self.params.clone();
        self.run(move || {
            argon(&params)
                .hash_password(password.expose_secret().as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| AuthError::Internal(format!("argon2: {e}")))
        })
        .await
    }

    /// Checks a password against a stored PHC hash, or against a dummy hash when there is
    /// no user, so both cases cost the same.
    pub async fn verify(
        &self,
        password: SecretString,
        stored: Option<String>,
    ) -> Result<PasswordCheck, AuthError> {
        let params = self.params.clone();
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.dummy_hash.to_string());
        self.run(move || {
            let Ok(parsed) = PasswordHash::new(&stored) else {
                return Ok(PasswordCheck {
                    valid: false,
                    needs_rehash: false,
                });
            };
            let valid = argon(&params)
                .verify_password(password.expose_secret().as_bytes(), &parsed)
                .is_ok();
            let current = Params::try_from(&parsed).ok();
            let needs_rehash = parsed.algorithm != argon2::ARGON2ID_IDENT
                || current.is_none_or(|p| {
                    p.m_cost() != params.m_cost()
                        || p.t_cost() != params.t_cost()
                        || p.p_cost() != params.p_cost()
                });
            Ok(PasswordCheck {
                valid: valid && known,
                needs_rehash: valid && known && needs_rehash,
            })
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, AuthError> + Send + 'static,
    ) -> Result<T, AuthError> {
        // The permit is taken before spawning, so at most `permits` hashes hold memory.
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| AuthError::Internal("hasher closed".into()))?;
        let gauge = self.gauge.clone();
        tokio::task::spawn_blocking(move || {
            let _running = gauge.enter();
            work()
        })
        .await
        .map_err(|e| AuthError::Internal(format!("hash task failed: {e}")))?
    }
}

fn argon(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}
