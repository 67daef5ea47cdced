//! End-to-end tests: the real auth-center and the real demo-service, in-process on port 0,
//! sharing a real Redis (standalone and a 3-master cluster, started by `scripts/test.sh`)
//! under a key prefix private to each test. Tests that stop Redis start their own.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod helpers;

mod caching;
mod key_rotation;
mod login;
mod logout;
mod outages;
mod revocation;
mod revocation_off;
