//! The domain: auth use cases, credentials, tokens and the storage ports. No axum, no
//! sqlx, no Redis types here.
//!
//! `service.rs` holds `AuthService` and what every area shares; the use cases are split by
//! area, one file each, mirrored by the HTTP handlers of the same name in `http/`:
//! `login`, `refresh`, `devices`, `passwords`, `admin`, `keys`, `introspection`, `clients`,
//! `oauth`.

pub mod admin;
pub mod client_assertion;
pub mod client_ip;
pub mod clients;
pub mod common_passwords;
pub mod confusables;
pub mod credentials;
pub mod crypto;
pub mod device_token;
pub mod devices;
pub mod error;
pub mod hasher;
pub mod introspection;
pub mod keys;
pub mod limits;
pub mod login;
pub mod metrics;
pub mod oauth;
pub mod passwords;
pub mod ports;
pub mod refresh;
pub mod refresh_policy;
pub mod refresh_token;
pub mod selftest;
pub mod service;

pub use error::{AuthError, StoreError};
pub use service::{AuthService, ClientInfo, IssuedTokens, UserView};
