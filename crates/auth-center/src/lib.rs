//! # auth-center
//!
//! Logs users in over REST and issues short-lived access JWTs plus rotating refresh
//! tokens whose sessions live in Redis. See ARCHITECTURE.md for the map.
//!
//! Layers: `http` (axum) → `domain` (use cases, no framework types) → `storage`
//! (sqlx, Redis).

pub mod cli;
pub mod config;
pub mod domain;
pub mod http;
pub mod startup;
pub mod storage;
pub mod telemetry;

pub use config::Config;
pub use startup::Application;
