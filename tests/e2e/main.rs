//! End-to-end tests: the real auth-center and the real demo-service, in-process on port 0,
//! sharing a real Redis (standalone and a cluster of 3 masters with replicas, started by
//! `scripts/test.sh`) under a key prefix private to each test. Tests that stop Redis or kill
//! a node start their own.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods,
    unreachable_pub // helpers shared across this test binary's modules
)] // test code: a panic is a failure report

mod helpers;
mod python;

mod browser;
mod caching;
mod contract;
mod dpop;
mod failover;
mod gateway;
mod key_rotation;
mod login;
mod logout;
mod native;
mod oauth_clients;
mod outages;
mod prometheus;
mod report;
mod resharding;
mod revocation;
mod revocation_off;
mod selftest;
mod tls;
