//! The domain: auth use cases, credentials, tokens and the storage ports. No axum, no
//! sqlx, no Redis types here.

pub mod account;
pub mod client_ip;
pub mod common_passwords;
pub mod confusables;
pub mod credentials;
pub mod crypto;
pub mod device_token;
pub mod error;
pub mod hasher;
pub mod keys;
pub mod limits;
pub mod ports;
pub mod refresh_token;
pub mod service;

pub use error::{AuthError, StoreError};
pub use service::{AuthService, ClientInfo, IssuedTokens, UserView};
