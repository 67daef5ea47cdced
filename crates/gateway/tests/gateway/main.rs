//! The gateway as the proxies ask it: each dialect, the answers, the rules, revocation,
//! Redis outages, health and metrics. The real gateway on port 0, real Redis.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    missing_docs
)] // test code: a panic is a failure report

mod dialects;
mod health;
mod outages;
mod paths;
mod revocation;
mod rules;
mod support;
mod tokens;
