//! Usernames that look alike (Unicode Technical Standard #39, through `unicode-security`).
//!
//! Two rules, for new usernames only (login is by canonical username and unchanged):
//!
//! - A mixed-script username is refused: `bіgbird` with a Cyrillic `і` among Latin letters
//!   (UTS #39 "single script", with augmented script sets, so Japanese Han + Kana is one
//!   script; digits and punctuation go with any script).
//! - A username whose *skeleton* equals an existing user's is taken. The skeleton maps every
//!   character to a prototype it can be confused with, so whole-script look-alikes such as
//!   Cyrillic `аре` and Latin `ape` share one. It is stored next to the username under a
//!   UNIQUE index, so two look-alikes racing each other cannot both get in.
//!
//! Rows from before the skeleton existed get theirs at startup (`backfill_skeletons`).

use unicode_security::MixedScript as _;

use super::error::{AuthError, StoreError, Unique};
use super::ports::Database;

/// Refuses a canonical username that mixes scripts.
pub fn check_single_script(canonical: &str) -> Result<(), AuthError> {
    if canonical.is_single_script() {
        Ok(())
    } else {
        Err(AuthError::InvalidInput(
            "username mixes letters of different scripts (such as Latin and Cyrillic); \
             use one script"
                .into(),
        ))
    }
}

/// The UTS #39 skeleton of a canonical username: equal for usernames that look alike.
pub fn username_skeleton(canonical: &str) -> String {
    unicode_security::skeleton(canonical).collect()
}

/// Rows read per round of the backfill.
const BACKFILL_BATCH: i64 = 500;

/// Stores the skeleton of every user who has none yet, oldest first, and returns how many
/// were stored. When an older user already holds the same skeleton (two look-alikes created
/// before the rule), the younger one keeps working without a skeleton; that is logged, on
/// every start, and does not stop the start. Safe to run on several instances at once.
pub async fn backfill_skeletons(db: &dyn Database) -> Result<u64, StoreError> {
    let mut after = (i64::MIN, String::new());
    let mut stored = 0;
    loop {
        let batch = db
            .users_without_skeleton(after.0, &after.1, BACKFILL_BATCH)
            .await?;
        for user in &batch {
            match db
                .set_username_skeleton(&user.id, &username_skeleton(&user.username))
                .await
            {
                Ok(()) => stored += 1,
                Err(StoreError::Conflict(Unique::UsernameSkeleton)) => tracing::warn!(
                    user_id = %user.id,
                    username = %user.username,
                    "this username looks like an older user's (same UTS #39 skeleton); it keeps \
                     working, but has no skeleton stored"
                ),
                Err(e) => return Err(e),
            }
        }
        match batch.last() {
            Some(last) if i64::try_from(batch.len()).unwrap_or(i64::MAX) >= BACKFILL_BATCH => {
                after = (last.created_ms, last.id.clone());
            }
            _ => break,
        }
    }
    if stored > 0 {
        tracing::info!(stored, "stored the UTS #39 skeleton of existing usernames");
    }
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::credentials::canonical_username;

    fn skeleton_of(raw: &str) -> String {
        username_skeleton(&canonical_username(raw).unwrap())
    }

    #[test]
    fn look_alikes_across_and_within_scripts_share_a_skeleton() {
        for (a, b) in [
            ("ape", "\u{430}\u{440}\u{435}"), // Cyrillic аре
            ("APE", "\u{410}\u{420}\u{415}"), // Cyrillic АРЕ, after case folding
            ("op", "\u{3bf}\u{3c1}"),         // Greek ορ
            ("bigbird", "b\u{456}gbird"),     // a Cyrillic і
            ("ape1", "apel"),                 // 1 and l
            ("modern", "rnodern"),            // m and rn
        ] {
            assert_eq!(skeleton_of(a), skeleton_of(b), "{a} / {b}");
        }
        for (a, b) in [("ape", "apex"), ("user0", "usero"), ("straße", "strasse")] {
            assert_ne!(skeleton_of(a), skeleton_of(b), "{a} / {b}");
        }
    }

    #[test]
    fn only_single_script_usernames_are_accepted() {
        for ok in [
            "alice",
            "alice_1.x@example.com",
            "\u{44e}\u{440}\u{438}\u{439}", // юрий
            "山田",
            "やまだ太郎", // Han and Hiragana are one script (Japanese)
            "0123",
        ] {
            assert!(check_single_script(ok).is_ok(), "{ok}");
        }
        for mixed in [
            "b\u{456}gbird",                        // Latin with a Cyrillic і
            "\u{440}\u{430}\u{443}\u{440}\u{430}l", // Cyrillic with a Latin l
            "tanaka山田",
            "alpha\u{3b2}", // Latin with a Greek β
        ] {
            assert!(
                matches!(check_single_script(mixed), Err(AuthError::InvalidInput(_))),
                "{mixed}"
            );
        }
    }
}
