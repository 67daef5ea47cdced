//! The serve loop: hyper HTTP/1.1 connections (the protocol `axum::serve` speaks), with
//! bounded patience for slow and idle clients, a cap on open connections, a shutdown with a
//! deadline and, optionally, TLS.
//!
//! * **Header read and idle.** Each connection has a watchdog. With no request in flight it
//!   closes the connection when a request head takes longer than `header_read_timeout`
//!   (counted from the accept on a new connection, so a TLS handshake counts too, and from
//!   the first byte of the next request on a kept-alive one) or when a kept-alive connection
//!   stays silent for `idle_timeout`. hyper's own `header_read_timeout` is switched off: its
//!   clock also runs while a kept-alive connection waits for the next request (hyper#3185),
//!   so it cannot tell the two apart.
//! * **Cap.** A semaphore holds `max_connections` slots. A slot is taken before `accept`, so
//!   over the cap new connections wait in the listen backlog until one closes.
//! * **Shutdown.** The listener is closed, every connection is told to finish (hyper's
//!   graceful shutdown: idle ones close at once, in-flight requests are answered, then the
//!   connection closes), a half-sent request head or TLS handshake is dropped, and whatever
//!   is still open after `shutdown_grace` is dropped.
//! * **TLS.** With a [`ListenerTls`], every connection is a TLS connection; the handshake
//!   uses the certificate current at that moment (see [`crate::tls`] for reloading), and
//!   every response carries the `Strict-Transport-Security` header it configures.

// Connection timeouts are real time, not domain time.
#![allow(clippy::disallowed_methods)]

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::HeaderValue;
use axum::http::header::STRICT_TRANSPORT_SECURITY;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;
use tower::ServiceExt as _;

use crate::tls::ListenerTls;

/// How the server treats connections.
///
/// ```
/// let options = service_kit::ServeOptions::default();
/// assert_eq!(options.max_connections, 10_000);
/// ```
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// A request head (request line and headers; on a new TLS connection the handshake too)
    /// must arrive within this time: counted from the accept for a new connection, from its
    /// first byte on a kept-alive one.
    pub header_read_timeout: Duration,
    /// A kept-alive connection with no request in flight and no new request started is
    /// closed after this time.
    pub idle_timeout: Duration,
    /// On shutdown, requests in flight get this long to finish; then every remaining
    /// connection is dropped.
    pub shutdown_grace: Duration,
    /// Most connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for ServeOptions {
    /// 10 s header read, 60 s idle, 10 s shutdown grace, 10 000 connections.
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
            max_connections: 10_000,
        }
    }
}

/// A bound listener and its TLS, if any: binding and serving in two steps, so that a caller
/// learns the address (port 0) before serving.
///
/// ```no_run
/// # async fn run() -> anyhow::Result<()> {
/// let tls = service_kit::TlsSettings::default();
/// let bound = service_kit::Bound::bind("127.0.0.1:0".parse()?, &tls).await?;
/// println!("listening on {}", bound.local_addr()?);
/// bound
///     .serve(axum::Router::new(), &Default::default(), service_kit::shutdown_signal())
///     .await?;
/// # Ok(()) }
/// ```
pub struct Bound {
    listener: TcpListener,
    tls: Option<ListenerTls>,
}

/// Why a listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The TLS settings or files cannot be used.
    #[error(transparent)]
    Tls(#[from] crate::TlsError),
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
}

impl Bound {
    /// Loads the TLS certificate of `tls` (if any), then binds `addr`.
    pub async fn bind(addr: SocketAddr, tls: &crate::TlsSettings) -> Result<Self, BindError> {
        let tls = ListenerTls::from_settings(tls)?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| BindError::Listen { addr, source })?;
        Ok(Self { listener, tls })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// [`serve`]s `router` until `shutdown` completes, watching the certificate files for a
    /// change meanwhile.
    pub async fn serve(
        self,
        router: Router,
        options: &ServeOptions,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()> {
        let reloader = self.tls.as_ref().map(ListenerTls::spawn_reloader);
        let served = serve(self.listener, router, options, self.tls, shutdown).await;
        if let Some(reloader) = reloader {
            reloader.abort();
        }
        served
    }
}

/// Serves `router` on `listener` (over TLS when `tls` is given) until `shutdown` completes,
/// then drains within the grace. Each request carries `ConnectInfo<SocketAddr>`, the peer.
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let router = axum::Router::new();
/// service_kit::serve(listener, router, &Default::default(), None, std::future::pending()).await
/// # }
/// ```
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: &ServeOptions,
    tls: Option<ListenerTls>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    // Turns every handler into its final service once, here, rather than on each request
    // (what `axum::serve` does through `into_make_service`): a router served as it is
    // re-erases and re-layers the matched handler per request (12 more allocations and ~15 %
    // more instructions per request behind one `route_layer`, measured with callgrind).
    let router = router.with_state(());
    let slots = Arc::new(Semaphore::new(options.max_connections));
    let patience = Patience {
        header_read: options.header_read_timeout,
        idle: options.idle_timeout,
    };
    let mut builder = http1::Builder::new();
    // The watchdog times request heads; see the module docs.
    builder.header_read_timeout(None);
    let builder = Arc::new(builder);
    let (stop, stopped) = watch::channel(());
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(ended) = connections.join_next() => report(ended),
            (stream, peer, slot) = accept(&listener, &slots) => {
                connections.spawn(serve_connection(
                    stream,
                    Connection {
                        peer,
                        router: router.clone(),
                        builder: builder.clone(),
                        patience,
                        stopped: stopped.clone(),
                    },
                    tls.clone(),
                    slot,
                ));
            }
        }
    }
    drop(listener);
    tracing::info!(
        connections = connections.len(),
        "stopped accepting connections; finishing the open ones"
    );
    stop.send_replace(());
    let drain = async {
        while let Some(ended) = connections.join_next().await {
            report(ended);
        }
    };
    if tokio::time::timeout(options.shutdown_grace, drain)
        .await
        .is_err()
    {
        tracing::warn!(
            connections = connections.len(),
            "shutdown grace period over; dropping the remaining connections"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM (what `docker stop` and Kubernetes send), logging
/// "shutting down": the `shutdown` future of [`serve`] for a process's main server. A
/// process that is PID 1 in a container gets no default action for SIGTERM, so without this
/// it would be killed only after the stop timeout.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
    tracing::info!("shutting down");
}

/// Takes a connection slot, then the next connection (with `TCP_NODELAY`). Cancel-safe: a
/// dropped call gives the slot back and loses no connection.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> (TcpStream, SocketAddr, OwnedSemaphorePermit) {
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            // The semaphore is never closed.
            return std::future::pending().await;
        };
        match listener.accept().await {
            Ok((stream, peer)) => {
                // Each response goes out as it is written, not held back (Nagle's algorithm)
                // until the client acknowledges the one before. A socket that refuses the
                // option still serves.
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(error = %e, "TCP_NODELAY refused");
                }
                return (stream, peer, slot);
            }
            // The peer gave up before the accept: nothing to do.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionRefused
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::ConnectionReset
                ) => {}
            // Out of file descriptors or similar: wait instead of spinning.
            Err(e) => {
                tracing::error!(error = %e, "accepting a connection failed; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

fn report(ended: Result<(), JoinError>) {
    if let Err(e) = ended
        && e.is_panic()
    {
        tracing::error!(error = %e, "a connection task panicked");
    }
}

/// How long a connection may take over a request head, and stay idle.
#[derive(Clone, Copy)]
struct Patience {
    header_read: Duration,
    idle: Duration,
}

/// What serving one connection needs besides its socket.
struct Connection {
    peer: SocketAddr,
    router: Router,
    builder: Arc<http1::Builder>,
    patience: Patience,
    stopped: watch::Receiver<()>,
}

/// Serves one connection until it ends, its watchdog fires, or shutdown drops it. The
/// slot is given back after the socket is closed.
async fn serve_connection(
    stream: TcpStream,
    connection: Connection,
    tls: Option<ListenerTls>,
    slot: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new());
    let watched = Watched {
        inner: stream,
        activity: activity.clone(),
    };
    match tls {
        None => serve_http(TokioIo::new(watched), connection, &activity, None).await,
        Some(tls) => serve_tls(watched, connection, &activity, &tls).await,
    }
    drop(slot);
}

/// The TLS handshake, within the header-read timeout (the watchdog's clock has run since
/// the accept), then HTTP over the TLS stream.
async fn serve_tls(
    watched: Watched,
    mut connection: Connection,
    activity: &Arc<Activity>,
    tls: &ListenerTls,
) {
    let peer = connection.peer;
    let watchdog = activity.watchdog(connection.patience);
    let handshake = tls.acceptor().accept(watched);
    let stream = tokio::select! {
        accepted = handshake => match accepted {
            Ok(stream) => stream,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
        },
        reason = watchdog => {
            tracing::debug!(%peer, reason, "closing the connection during the TLS handshake");
            return;
        }
        _ = connection.stopped.changed() => return,
    };
    serve_http(TokioIo::new(stream), connection, activity, tls.hsts()).await;
}

/// HTTP/1.1 on `io` until the connection ends, its watchdog fires or shutdown drops it.
/// `hsts` is added to every response (TLS connections only).
async fn serve_http<I>(
    io: TokioIo<I>,
    connection: Connection,
    activity: &Arc<Activity>,
    hsts: Option<HeaderValue>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Connection {
        peer,
        router,
        builder,
        patience,
        mut stopped,
    } = connection;
    let service = hyper::service::service_fn({
        let activity = activity.clone();
        move |mut request: hyper::Request<Incoming>| {
            let in_flight = activity.request_started();
            // What `into_make_service_with_connect_info::<SocketAddr>` would insert.
            request.extensions_mut().insert(ConnectInfo(peer));
            let response = router.clone().oneshot(request);
            let hsts = hsts.clone();
            async move {
                let mut response = response.await;
                drop(in_flight);
                if let (Ok(response), Some(hsts)) = (&mut response, hsts) {
                    response
                        .headers_mut()
                        .insert(STRICT_TRANSPORT_SECURITY, hsts);
                }
                response
            }
        }
    });
    let connection = builder.serve_connection(io, service);
    let watchdog = activity.watchdog(patience);
    tokio::pin!(connection, watchdog);
    let mut stopping = false;
    loop {
        tokio::select! {
            ended = connection.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                break;
            }
            reason = &mut watchdog => {
                tracing::debug!(%peer, reason, "closing the connection");
                break;
            }
            _ = stopped.changed(), if !stopping => {
                stopping = true;
                activity.stopping();
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// What a connection is doing, as far as its watchdog cares.
struct Activity {
    state: Mutex<State>,
    changed: Notify,
}

struct State {
    /// Requests handed to the router and not yet answered.
    in_flight: usize,
    /// When the current request head started: the accept for a new connection, the first
    /// byte after an answer on a kept-alive one. `None` while requests are in flight and
    /// while a kept-alive connection is silent.
    head_started: Option<Instant>,
    /// When the latest request was answered.
    idle_since: Instant,
    /// Shutdown has begun.
    stopping: bool,
}

impl Activity {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            state: Mutex::new(State {
                in_flight: 0,
                head_started: Some(now),
                idle_since: now,
                stopping: false,
            }),
            changed: Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes arrived: with no request in flight, they start a request head.
    fn bytes_arrived(&self) {
        let mut state = self.state();
        if state.in_flight == 0 && state.head_started.is_none() {
            state.head_started = Some(Instant::now());
            self.changed.notify_one();
        }
    }

    /// A complete head reached the router; the guard marks its answer.
    fn request_started(self: &Arc<Self>) -> InFlight {
        let mut state = self.state();
        state.in_flight += 1;
        state.head_started = None;
        self.changed.notify_one();
        InFlight(self.clone())
    }

    fn stopping(&self) {
        self.state().stopping = true;
        self.changed.notify_one();
    }

    /// When the connection is to be closed, and why; `None` while a request is in flight.
    fn deadline(&self, patience: Patience) -> Option<(Instant, &'static str)> {
        let state = self.state();
        if state.in_flight > 0 {
            return None;
        }
        Some(match state.head_started {
            Some(_) if state.stopping => (Instant::now(), "half-sent request at shutdown"),
            Some(started) => (started + patience.header_read, "header read timeout"),
            None => (state.idle_since + patience.idle, "idle timeout"),
        })
    }

    /// Completes when the connection has overstayed; returns why.
    async fn watchdog(&self, patience: Patience) -> &'static str {
        loop {
            // `notify_one` leaves a permit when nobody waits, so no change is missed.
            let changed = self.changed.notified();
            let Some((deadline, _)) = self.deadline(patience) else {
                changed.await;
                continue;
            };
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep_until(deadline) => {
                    if let Some((deadline, reason)) = self.deadline(patience)
                        && deadline <= Instant::now()
                    {
                        return reason;
                    }
                }
            }
        }
    }
}

/// Marks a request in flight until dropped (answered or cancelled).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.in_flight = state.in_flight.saturating_sub(1);
        if state.in_flight == 0 {
            state.idle_since = Instant::now();
        }
        self.0.changed.notify_one();
    }
}

/// The socket, reporting arriving bytes to the watchdog.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.bytes_arrived();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[tokio::test]
    async fn accepted_connections_send_without_nagle_delays() {
        // Nagle's algorithm would hold the second small write of a response (a body sent
        // after its head, a streamed chunk) until the client acknowledged the first, which a
        // client delays by up to 40 ms.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let slots = Arc::new(Semaphore::new(1));
        let _client = TcpStream::connect(addr).await.unwrap();
        let (stream, _, _slot) = accept(&listener, &slots).await;
        assert!(stream.nodelay().unwrap());
    }
}
