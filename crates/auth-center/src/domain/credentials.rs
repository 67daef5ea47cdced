//! Usernames and passwords: canonical forms and policy. Hashing is in `hasher.rs`.

use precis_profiles::UsernameCaseMapped;
use precis_profiles::precis_core::profile::Profile as _;
use secrecy::{ExposeSecret, SecretString};
use unicode_normalization::UnicodeNormalization as _;

use super::common_passwords::CommonPasswords;
use super::error::AuthError;

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
    // Judged as it will be hashed: a full-width or ligature spelling of a common password
    // is that password.
    let password = normalise_password(password.expose_secret());
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

/// A password as it is hashed and judged: NFKC (NIST 800-63B 5.1.1.2), so the same
/// password typed on another keyboard or platform is the same password.
pub fn normalise_password(password: &str) -> String {
    password.nfkc().collect()
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
    fn the_policy_judges_the_password_as_it_will_be_hashed_in_nfkc() {
        let check = |p: &str| check_new_password(&SecretString::from(p.to_string()), "alice");
        // Full-width "password123" and a ligature spelling of "superman": common after NFKC.
        assert!(
            check("\u{ff50}\u{ff41}\u{ff53}\u{ff53}\u{ff57}\u{ff4f}\u{ff52}\u{ff44}123").is_err()
        );
        // Seven typed characters that NFKC makes eight ("ﬃ" is one) are long enough.
        assert!(check("ba\u{fb03}ed q").is_ok());
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
