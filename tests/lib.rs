//! The end-to-end tests live in `e2e/` (one test binary, `cargo test -p e2e-tests`); this
//! library is empty.
