//! The common and breached password list of the password policy (NIST 800-63B, ASVS 5
//! 6.2.4 and 6.2.12): SecLists' 10-million-password-list-top-1000000, without the entries
//! the length rules refuse anyway, plus a few additions (`common_passwords/README.md` has
//! the source, the licence and how the file is built).
//!
//! The list is embedded gzip-compressed (about 2 MB) and decompressed once, at the first
//! check, into one string of sorted lines (about 4.7 MB). A check is a binary search over
//! that string: no index and no per-entry allocation.

use std::io::Read as _;
use std::sync::{Arc, OnceLock};

use super::error::AuthError;

/// The corpus, lower-cased, 8 to 128 code points, sorted by bytes, one entry per line, every
/// line ending in `\n`; built by `scripts/common-passwords.py`.
const CORPUS_GZ: &[u8] = include_bytes!("common_passwords/xato-top-1m.txt.gz");
/// Hand-picked additions, one per line; `#` starts a comment line.
const EXTRA: &str = include_str!("common_passwords/extra.txt");

/// The decompressed list.
#[derive(Debug)]
pub struct CommonPasswords {
    sorted_lines: String,
}

impl CommonPasswords {
    /// Decompresses the embedded list (what the first check does once).
    pub fn load() -> Result<Self, std::io::Error> {
        // The gzip trailer ends with the decompressed size: one allocation, no regrowing.
        let size = CORPUS_GZ
            .last_chunk::<4>()
            .map_or(0, |n| u32::from_le_bytes(*n) as usize);
        let mut sorted_lines = String::with_capacity(size + 1);
        flate2::read::GzDecoder::new(CORPUS_GZ).read_to_string(&mut sorted_lines)?;
        if !sorted_lines.is_empty() && !sorted_lines.ends_with('\n') {
            sorted_lines.push('\n');
        }
        Ok(Self { sorted_lines })
    }

    /// The list, loaded at the first call.
    pub fn get() -> Result<&'static Self, AuthError> {
        static LIST: OnceLock<Result<CommonPasswords, Arc<std::io::Error>>> = OnceLock::new();
        LIST.get_or_init(|| Self::load().map_err(Arc::new))
            .as_ref()
            .map_err(|e| {
                AuthError::internal_because(
                    "the embedded common-password list is unreadable",
                    Arc::clone(e),
                )
            })
    }

    /// Whether `lower_case` (a password already lower-cased with `str::to_lowercase`) is on
    /// the list.
    pub fn contains(&self, lower_case: &str) -> bool {
        contains_line(&self.sorted_lines, lower_case)
            || EXTRA
                .lines()
                .map(str::trim)
                .any(|l| !l.starts_with('#') && l == lower_case)
    }

    /// The number of corpus entries.
    pub fn len(&self) -> usize {
        self.sorted_lines.lines().count()
    }

    /// Whether the corpus is empty.
    pub fn is_empty(&self) -> bool {
        self.sorted_lines.is_empty()
    }

    /// Bytes held in memory.
    pub fn heap_bytes(&self) -> usize {
        self.sorted_lines.capacity()
    }
}

/// Binary search for a whole line in `text`: lines sorted by bytes, each ending in `\n`.
/// Each step takes the line around the middle of the remaining range, so it needs no index.
fn contains_line(text: &str, needle: &str) -> bool {
    let bytes = text.as_bytes();
    let needle = needle.as_bytes();
    // `lo` and `hi` are line starts (or the end); a match would start a line in [lo, hi).
    let (mut lo, mut hi) = (0, bytes.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let start = bytes[lo..mid]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(lo, |i| lo + i + 1);
        let end = bytes[start..hi]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(hi, |i| start + i);
        match bytes[start..end].cmp(needle) {
            std::cmp::Ordering::Equal => return true,
            std::cmp::Ordering::Less => lo = end + 1,
            std::cmp::Ordering::Greater => hi = start,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::credentials::{MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS};

    #[test]
    fn the_embedded_list_is_sorted_lower_case_and_within_the_length_rules() {
        let list = CommonPasswords::load().unwrap();
        assert_eq!(list.len(), 474_743);
        let mut previous: Option<&str> = None;
        let mut shortest = usize::MAX;
        for entry in list.sorted_lines.lines() {
            let chars = entry.chars().count();
            shortest = shortest.min(chars);
            assert!(chars <= MAX_PASSWORD_CHARS, "{entry:?}");
            assert_eq!(entry, entry.to_lowercase(), "{entry:?}");
            if let Some(p) = previous {
                assert!(p.as_bytes() < entry.as_bytes(), "{p:?} before {entry:?}");
            }
            previous = Some(entry);
        }
        // Built for the current minimum: shorter entries were left out because the length
        // rule refuses them first. A lower minimum needs the list rebuilt.
        assert_eq!(shortest, MIN_PASSWORD_CHARS);
        for extra in EXTRA.lines().filter(|l| !l.starts_with('#')) {
            assert_eq!(extra, extra.to_lowercase(), "{extra:?}");
            assert!(extra.chars().count() >= MIN_PASSWORD_CHARS, "{extra:?}");
        }
    }

    #[test]
    fn every_entry_is_found_and_nothing_else_is() {
        let list = CommonPasswords::load().unwrap();
        let entries: Vec<&str> = list.sorted_lines.lines().collect();
        for entry in entries.iter().step_by(97).chain([
            &entries[0],
            &entries[1],
            &entries[entries.len() - 1],
        ]) {
            assert!(list.contains(entry), "{entry:?}");
            // A prefix, an extension or a neighbour is not the entry.
            for near in [
                format!("{entry}\u{0}"),
                format!("\u{0}{entry}"),
                entry.chars().take(entry.chars().count() - 1).collect(),
            ] {
                if entries.binary_search(&near.as_str()).is_err() {
                    assert!(!list.contains(&near), "{near:?}");
                }
            }
        }
        for strong in [
            "",
            "correct horse battery staple",
            "violet kettle drums at noon",
            "\u{10ffff}\u{10ffff}\u{10ffff}\u{10ffff}",
        ] {
            assert!(!list.contains(strong), "{strong:?}");
        }
        for extra in ["summer2025", "correcthorsebatterystaple"] {
            assert!(list.contains(extra), "{extra:?}");
        }
    }

    #[test]
    fn the_search_finds_whole_lines_in_a_small_sorted_text() {
        let text = "a\nab\nabc\nb\nzz\n";
        for line in ["a", "ab", "abc", "b", "zz"] {
            assert!(contains_line(text, line), "{line}");
        }
        for other in ["", "aa", "abcd", "c", "z", "zzz", "\n", "b\nzz"] {
            assert!(!contains_line(text, other), "{other:?}");
        }
        assert!(!contains_line("", "a"));
        assert!(contains_line("only\n", "only"));
    }
}
