//! What the workspace's HTTP servers (auth-center, demo-service, gateway) share, so each rule
//! is written once:
//!
//! * [`serve`]: the serve loop on hyper's HTTP/1.1 connection builder, with a header-read
//!   and an idle timeout, a connection cap and a shutdown deadline ([`ServeOptions`]), and
//!   [`shutdown_signal`] (Ctrl-C or SIGTERM) to end it;
//! * [`tls`]: optional TLS on the listener ([`TlsSettings`], [`ListenerTls`]): a PEM
//!   certificate chain and key, re-read when they change without a restart, and HSTS on
//!   every response served over TLS;
//! * [`metrics`]: Prometheus metrics through the `metrics` facade: the registry (global or
//!   private), request duration and in-flight metrics per route template, `/metrics` on the
//!   main listener or on a separate one (`METRICS_ADDR`);
//! * [`access`]: request ids (`X-Request-Id`) and one access-log line per request;
//! * [`ready`]: the `/readyz` body, naming each check and its state;
//! * [`healthcheck`]: the probe behind each binary's `healthcheck` subcommand (container
//!   `HEALTHCHECK`s without curl in the image).

pub mod access;
pub mod healthcheck;
pub mod metrics;
pub mod ready;
mod route;
pub mod serve;
pub mod tls;

/// The unprefixed environment variables of a server's listeners, shared by the
/// demo-service and the gateway: the main listener, the separate metrics listener
/// ([`metrics::Exporter`]) and the listener's TLS files (mapped to settings by
/// [`tls::env_key`]).
///
/// ```
/// assert!(service_kit::LISTENER_ENV.contains(&"METRICS_ADDR"));
/// ```
pub const LISTENER_ENV: [&str; 4] = [
    "LISTEN_ADDR",
    "METRICS_ADDR",
    "TLS_CERT_FILE",
    "TLS_KEY_FILE",
];

pub use route::wrap_router;
pub use serve::{BindError, Bound, ServeOptions, serve, shutdown_signal};
pub use tls::{ListenerTls, TlsError, TlsSettings};
