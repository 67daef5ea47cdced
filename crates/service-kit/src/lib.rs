//! What the workspace's HTTP servers (auth-center, demo-service, gateway) share, so each rule
//! is written once:
//!
//! * [`serve`]: the serve loop on hyper's HTTP/1.1 connection builder, with a header-read
//!   and an idle timeout, a connection cap and a shutdown deadline ([`ServeOptions`]), and
//!   [`shutdown_signal`] (Ctrl-C or SIGTERM) to end it;
//! * [`tls`]: optional TLS on the listener ([`TlsSettings`], [`ListenerTls`]): a PEM
//!   certificate chain and key, re-read when they change without a restart, and HSTS on
//!   every response served over TLS;
//! * [`healthcheck`]: the probe behind each binary's `healthcheck` subcommand (container
//!   `HEALTHCHECK`s without curl in the image).

pub mod healthcheck;
pub mod serve;
pub mod tls;

pub use serve::{BindError, Bound, ServeOptions, serve, shutdown_signal};
pub use tls::{ListenerTls, TlsError, TlsSettings};
