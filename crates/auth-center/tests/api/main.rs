//! auth-center API tests: the real app on port 0 against real SQLite/Postgres and real
//! Redis (standalone and cluster) started by `scripts/test.sh`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods,
    unreachable_pub // helpers shared across this test binary's modules
)] // test code: a panic is a failure report

mod helpers;

mod bad_input;
mod cli;
mod login;
mod logs;
mod outages;
mod pages;
mod refresh;
mod refresh_policy;
mod revocation;
mod secret_files;
mod selftest;
mod tls_listener;
mod usernames;

mod admin;
mod clients;
mod cookies;
mod device_tokens;
mod devices;
mod dpop;
mod faults;
mod forged_refresh;
mod half_made;
mod hardened_responses;
mod hashing;
mod introspection;
mod keys;
mod lifecycle_races;
mod lifetimes;
mod lost_rotation;
mod memory;
mod metrics;
mod oauth;
mod openapi;
mod passwords;
mod rate_limits;
mod slow_clients;
mod sql_errors;
mod tls;
