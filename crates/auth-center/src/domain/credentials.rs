//! Usernames and passwords: canonical forms, policy and Argon2id hashing.

use std::sync::Arc;

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier as _, Version,
};
use precis_profiles::UsernameCaseMapped;
use precis_profiles::precis_core::profile::Profile as _;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use super::common_passwords::CommonPasswords;
use super::error::AuthError;
use crate::config::PasswordConfig;

/// Longest username accepted, in characters, after canonicalisation.
pub const MAX_USERNAME_CHARS: usize = 64;
/// Shortest password accepted, in Unicode code points (NIST 800-63B).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted, in Unicode code points; checked before hashing.
pub const MAX_PASSWORD_CHARS: usize = 128;

/// Canonicalises a username with the RFC 8265 UsernameCaseMapped profile (width mapping,
/// case folding, NFC; spaces, controls and other disallowed code points are refused).
/// The result is idempotent: canonicalising it again gives the same string.
pub fn canonical_username(raw: &str) -> Result<String, AuthError> {
    if raw.is_empty() {
        return Err(AuthError::InvalidInput("username must not be empty".into()));
    }
    if raw.chars().count() > MAX_USERNAME_CHARS {
        return Err(AuthError::InvalidInput(format!(
            "username must be at most {MAX_USERNAME_CHARS} characters"
        )));
    }
    let canonical = UsernameCaseMapped::new().enforce(raw).map_err(|_| {
        AuthError::InvalidInput(
            "username may not contain spaces, control or other disallowed characters".into(),
        )
    })?;
    if canonical.chars().count() > MAX_USERNAME_CHARS {
        return Err(AuthError::InvalidInput(format!(
            "username must be at most {MAX_USERNAME_CHARS} characters"
        )));
    }
    Ok(canonical.into_owned())
}

/// Checks a new password against the policy (NIST 800-63B): 8 to 128 code points, not on
/// the common and breached password list (case-insensitively), not the username or the
/// product name. No composition rules, no trimming.
pub fn check_new_password(password: &SecretString, username: &str) -> Result<(), AuthError> {
    check_password_length(password)?;
    let password = password.expose_secret();
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AuthError::InvalidInput(format!(
            "password must be at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    let folded = password.to_lowercase();
    if CommonPasswords::get()?.contains(&folded) {
        return Err(AuthError::InvalidInput(
            "password is too common; choose another".into(),
        ));
    }
    if folded == username || folded.contains("auth-center") || folded.contains("authcenter") {
        return Err(AuthError::InvalidInput(
            "password must not be the username or the service name".into(),
        ));
    }
    Ok(())
}

/// Refuses empty and over-long passwords before any hashing (a DoS guard).
pub fn check_password_length(password: &SecretString) -> Result<(), AuthError> {
    let chars = password.expose_secret().chars().count();
    if chars == 0 {
        return Err(AuthError::InvalidInput("password must not be empty".into()));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(AuthError::InvalidInput(format!(
            "password must be at most {MAX_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

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
        })
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
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| AuthError::Internal(format!("hash task failed: {e}")))?
    }
}

fn argon(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_case_folded_width_mapped_and_idempotent() {
        let a = canonical_username("ＡliCE").unwrap();
        assert_eq!(a, "alice");
        assert_eq!(canonical_username(&a).unwrap(), a);
        assert_eq!(
            canonical_username("Straße").unwrap(),
            canonical_username("straße").unwrap()
        );
    }

    #[test]
    fn usernames_with_spaces_controls_or_nothing_are_refused() {
        for bad in ["", "al ice", "bob\u{0007}", "\u{200b}eve", &"x".repeat(65)] {
            assert!(canonical_username(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn passwords_are_checked_by_length_and_commonness_and_never_trimmed() {
        let check = |p: &str| check_new_password(&SecretString::from(p.to_string()), "alice");
        assert!(check("short").is_err());
        assert!(check("        ").is_ok());
        assert!(check(&"x".repeat(64)).is_ok());
        assert!(check(&"x".repeat(128)).is_ok());
        assert!(check(&"x".repeat(129)).is_err());
        assert!(check(&"ü".repeat(8)).is_ok());
        assert!(check("Password123").is_err());
        assert!(check("qwertyuiop").is_err());
        assert!(check("ALICE").is_err() || check("alice").is_err());
        assert!(check("my auth-center pw").is_err());
    }
}
