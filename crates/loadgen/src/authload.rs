//! `loadgen login` and `loadgen refresh`: the auth-center's two token endpoints under
//! concurrent load, each client on its own keep-alive connection ([`JsonConn`]).
//!
//! * `login`: C clients log in back to back (closed loop) for D seconds: logins per
//!   second against the password hasher's capacity, with 429 (rate limit) and 503
//!   (`overloaded`: every hashing slot stayed busy) counted apart.
//! * `refresh`: N sessions are opened first (a login shed with `503` is sent again, for up to
//!   ~15 s: setting up is not measured), then each client rotates its own refresh token
//!   (`POST /v1/refresh` → a new token pair), back to back (`--rate 0`) or at a fixed total
//!   rate spread evenly over the clients (open loop, latency from the intended send time).
//!   A client whose refresh is refused with 401 logs in again and goes on (counted).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Barrier;

use crate::auth::{AuthCenter, Credentials};
use crate::drive::{self, Client, Measured, Plan, Readiness, RunArgs};
use crate::post::JsonConn;

/// The account both commands log in as.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Account {
    #[command(flatten)]
    pub credentials: Credentials,
    /// Client timeout per request, seconds.
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
}

impl Account {
    /// Registers the user when asked; the login request body.
    async fn prepare(&self) -> anyhow::Result<Bytes> {
        if !(self.timeout > 0.0 && self.timeout <= 600.0) {
            bail!("--timeout must be in (0, 600] seconds");
        }
        let c = &self.credentials;
        if c.register {
            AuthCenter::new(&c.auth_url)?
                .register(&c.username, &c.password)
                .await?;
        }
        Ok(Bytes::from(serde_json::to_vec(
            &json!({ "username": c.username, "password": c.password }),
        )?))
    }

    fn conn(&self) -> anyhow::Result<JsonConn> {
        JsonConn::new(
            self.credentials.auth_url.trim_end_matches('/'),
            Duration::from_secs_f64(self.timeout),
        )
    }
}

/// Arguments of `loadgen login`.
#[derive(Debug, clap::Args)]
pub(crate) struct LoginArgs {
    #[command(flatten)]
    pub account: Account,
    /// Concurrent clients (keep-alive connections), each logging in back to back.
    #[arg(long, short = 'c', default_value_t = 4)]
    pub connections: usize,
    #[command(flatten)]
    pub run: RunArgs,
}

/// The result of a `login` run.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct LoginResult {
    pub kind: String,
    pub label: String,
    pub auth_url: String,
    pub connections: usize,
    /// Logins answered 429 (a rate limit) and 503 (hashing slots busy, or unavailable).
    pub rate_limited_429: u64,
    pub refused_503: u64,
    /// `ok` are the successful logins, `ok_per_s` logins per second, the latency theirs.
    #[serde(flatten)]
    pub measured: Measured,
}

/// Closed-loop logins on one connection.
struct LoginClient {
    conn: JsonConn,
    body: Bytes,
}

impl Client for LoginClient {
    async fn send(&mut self) -> Option<String> {
        let answer = self.conn.post("/v1/login", self.body.clone()).await.ok()?;
        Some(answer.key())
    }

    fn connects(&self) -> u64 {
        self.conn.connects
    }
}

/// Runs `loadgen login`.
pub(crate) async fn login(args: LoginArgs) -> anyhow::Result<LoginResult> {
    if args.connections == 0 || args.connections > 4096 {
        bail!("--connections must be 1..=4096");
    }
    let body = args.account.prepare().await?;
    let mut clients = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        clients.push(LoginClient {
            conn: args.account.conn()?,
            body: body.clone(),
        });
    }
    // Fail fast (wrong password, limits not raised) before the clock starts.
    if let Some(first) = clients.first_mut() {
        open_session(&mut first.conn, &body, "the first login", Patience::SETUP).await?;
    }
    let outcome = drive::run(clients, args.run.plan(0.0)).await?;
    let measured = Measured::of(&outcome);
    Ok(LoginResult {
        kind: "login".into(),
        label: args.run.label.clone(),
        auth_url: args.account.credentials.auth_url,
        connections: args.connections,
        rate_limited_429: outcome.tally.with_code(429),
        refused_503: outcome.tally.with_code(503),
        measured,
    })
}

/// Arguments of `loadgen refresh`.
#[derive(Debug, clap::Args)]
pub(crate) struct RefreshArgs {
    #[command(flatten)]
    pub account: Account,
    /// Sessions (= clients, keep-alive connections), each rotating its own refresh token.
    #[arg(long, default_value_t = 100)]
    pub sessions: usize,
    /// Total refreshes per second over all sessions (open loop); 0: closed loop, each
    /// session refreshing back to back.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    #[command(flatten)]
    pub run: RunArgs,
    /// Logins in flight at once while opening the sessions.
    #[arg(long, default_value_t = 4)]
    pub login_concurrency: usize,
    /// The auth-center's Redis (loopback): its commands per refresh over the window.
    #[arg(long)]
    pub redis_url: Option<String>,
    /// Runtime worker threads (1: a current-thread runtime).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Created once every session is open (their logins are over), before the run starts.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// Wait until this file exists before the run starts (at most 10 minutes): a script
    /// opens the sessions, starts other load once `--ready-file` is there, then lets the
    /// refreshes start, so the session logins never overlap what it measures.
    #[arg(long)]
    pub start_file: Option<PathBuf>,
}

/// The result of a `refresh` run.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RefreshResult {
    pub kind: String,
    pub label: String,
    pub auth_url: String,
    pub sessions: usize,
    /// Refreshes per second asked for (0: closed loop).
    pub rate: f64,
    /// New logins by clients whose refresh was refused with 401, and those that failed.
    pub relogins: u64,
    pub relogin_failures: u64,
    /// Redis commands per successful refresh over the window (commands run by scripts
    /// included), and per command.
    pub redis_commands_per_refresh: Option<f64>,
    pub redis_calls_per_refresh: Option<BTreeMap<String, f64>>,
    /// `ok` are the successful refreshes, `ok_per_s` refreshes per second, the latency theirs
    /// (from the intended send time in the open loop).
    #[serde(flatten)]
    pub measured: Measured,
}

/// One session: its connection and current refresh token.
struct RefreshClient {
    conn: JsonConn,
    login_body: Bytes,
    refresh_token: Option<String>,
    relogins: u64,
    relogin_failures: u64,
}

impl Client for RefreshClient {
    async fn prepare(&mut self) -> Readiness {
        if self.refresh_token.is_some() {
            return Readiness::Ready;
        }
        match open_session(
            &mut self.conn,
            &self.login_body,
            "a new login",
            Patience::NONE,
        )
        .await
        {
            Ok(token) => {
                self.refresh_token = Some(token);
                self.relogins += 1;
                Readiness::Recovered
            }
            Err(_) => {
                self.relogin_failures += 1;
                Readiness::Failed
            }
        }
    }

    async fn send(&mut self) -> Option<String> {
        let token = self.refresh_token.as_deref()?;
        let body = serde_json::to_vec(&json!({ "refresh_token": token })).ok()?;
        let answer = self.conn.post("/v1/refresh", body.into()).await.ok()?;
        let key = answer.key();
        if answer.status.is_success() {
            match refresh_token_of(&answer.body) {
                Some(token) => self.refresh_token = Some(token),
                None => {
                    self.refresh_token = None;
                    return Some("200 without refresh_token".into());
                }
            }
        } else if answer.status == http::StatusCode::UNAUTHORIZED {
            self.refresh_token = None; // the session ended: log in again
        }
        Some(key)
    }

    fn connects(&self) -> u64 {
        self.conn.connects
    }
}

/// The refresh token of a token response.
fn refresh_token_of(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct TokenResponse {
        refresh_token: String,
    }
    serde_json::from_slice::<TokenResponse>(body)
        .ok()
        .map(|t| t.refresh_token)
}

/// How many times a login shed with `503` (the auth-center's hashing slots stayed busy) is
/// sent, and the pause before each retry.
#[derive(Debug, Clone, Copy)]
struct Patience {
    tries: u32,
    pause: Duration,
}

impl Patience {
    /// Once: a login that is part of what is measured.
    const NONE: Patience = Patience {
        tries: 1,
        pause: Duration::ZERO,
    };
    /// Setting up, before the clock starts: a machine busy with something else (or still
    /// hashing for the run before) sheds logins for a while; up to ~15 s of them.
    const SETUP: Patience = Patience {
        tries: 30,
        pause: Duration::from_millis(500),
    };
}

/// Logs in on `conn`: the new session's refresh token. A login shed with `503` is sent again
/// as `patience` allows. `what` names the login in errors, which say which limit to raise.
async fn open_session(
    conn: &mut JsonConn,
    login_body: &Bytes,
    what: &str,
    patience: Patience,
) -> anyhow::Result<String> {
    let mut tries = 1;
    loop {
        let answer = conn
            .post("/v1/login", login_body.clone())
            .await
            .with_context(|| format!("{what}: no answer"))?;
        match answer.status.as_u16() {
            200 => {
                return refresh_token_of(&answer.body).with_context(|| {
                    format!("{what}: a token response without refresh_token (cookie mode?)")
                });
            }
            429 => bail!(
                "{what}: login rate-limited (429): raise AUTH_LIMITS__LOGIN_IP_MAX on the auth-center"
            ),
            503 if tries < patience.tries => {
                tries += 1;
                tokio::time::sleep(patience.pause).await;
            }
            503 => bail!("{what}: {} ({tries} tries)", answer.key()),
            _ => bail!("{what}: {}", answer.key()),
        }
    }
}

/// Runs `loadgen refresh`.
pub(crate) async fn refresh(args: RefreshArgs) -> anyhow::Result<RefreshResult> {
    if args.sessions == 0 || args.sessions > 4096 {
        bail!("--sessions must be 1..=4096");
    }
    let login_body = args.account.prepare().await?;
    let redis = match &args.redis_url {
        Some(url) => Some(crate::redis_stats::connect(url).await?),
        None => None,
    };
    let mut clients = Vec::with_capacity(args.sessions);
    for _ in 0..args.sessions {
        clients.push(RefreshClient {
            conn: args.account.conn()?,
            login_body: login_body.clone(),
            refresh_token: None,
            relogins: 0,
            relogin_failures: 0,
        });
    }
    let clients = open_sessions(clients, args.login_concurrency).await?;
    ready_then_wait(
        args.ready_file.as_deref(),
        args.start_file.as_deref(),
        START_FILE_WAIT,
    )
    .await?;
    let outcome = drive::run(
        clients,
        Plan {
            redis,
            ..args.run.plan(args.rate)
        },
    )
    .await?;
    let measured = Measured::of(&outcome);
    let (redis_commands_per_refresh, redis_calls_per_refresh) = measured.redis_per_ok(&outcome);
    Ok(RefreshResult {
        kind: "refresh".into(),
        label: args.run.label.clone(),
        auth_url: args.account.credentials.auth_url,
        sessions: args.sessions,
        rate: args.rate,
        relogins: outcome.clients.iter().map(|c| c.relogins).sum(),
        relogin_failures: outcome.clients.iter().map(|c| c.relogin_failures).sum(),
        redis_commands_per_refresh,
        redis_calls_per_refresh,
        measured,
    })
}

/// The longest `--start-file` wait.
const START_FILE_WAIT: Duration = Duration::from_secs(600);

/// Creates `ready` (when given), then waits until `start` exists (when given), at most
/// `limit`.
async fn ready_then_wait(
    ready: Option<&Path>,
    start: Option<&Path>,
    limit: Duration,
) -> anyhow::Result<()> {
    if let Some(ready) = ready {
        std::fs::write(ready, b"")
            .with_context(|| format!("create the ready file {}", ready.display()))?;
    }
    let Some(start) = start else { return Ok(()) };
    let deadline = tokio::time::Instant::now() + limit;
    while !start.exists() {
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "the start file {} did not appear within {} s",
                start.display(),
                limit.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Logs every client in (`concurrency` at a time), then, once all sessions exist, has each
/// refresh once: a session the auth-center already ended again (more sessions than it keeps
/// per user) is found here rather than as 401s in the measurement.
async fn open_sessions(
    clients: Vec<RefreshClient>,
    concurrency: usize,
) -> anyhow::Result<Vec<RefreshClient>> {
    let groups = concurrency.clamp(1, 64).min(clients.len());
    let total = clients.len();
    let mut chunks: Vec<Vec<RefreshClient>> = (0..groups).map(|_| Vec::new()).collect();
    for (i, client) in clients.into_iter().enumerate() {
        chunks[i % groups].push(client);
    }
    let barrier = std::sync::Arc::new(Barrier::new(groups));
    let tasks: Vec<_> = chunks
        .into_iter()
        .map(|mut chunk| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let mut opened = Ok(());
                for client in &mut chunk {
                    let opening = "opening the sessions";
                    match open_session(
                        &mut client.conn,
                        &client.login_body,
                        opening,
                        Patience::SETUP,
                    )
                    .await
                    {
                        Ok(token) => client.refresh_token = Some(token),
                        Err(e) => {
                            opened = Err(e);
                            break;
                        }
                    }
                }
                // Every group waits here, failed or not, so that none waits forever.
                barrier.wait().await;
                opened?;
                for client in &mut chunk {
                    match client.send().await.as_deref() {
                        Some("200") => {}
                        Some(key) if key.starts_with("401") => bail!(
                            "a session's first refresh: {key}: the auth-center ended it again, \
                             it keeps at most AUTH_SESSIONS__MAX_PER_USER sessions per user \
                             (default 50): raise that above --sessions {total}"
                        ),
                        Some(key) if key.starts_with("429") => bail!(
                            "a session's first refresh: {key}: raise AUTH_LIMITS__REFRESH_IP_MAX \
                             on the auth-center (0: no limit)"
                        ),
                        Some(key) => bail!("a session's first refresh: {key}"),
                        None => bail!("a session's first refresh: no answer"),
                    }
                }
                Ok(chunk)
            })
        })
        .collect();
    let mut clients = Vec::with_capacity(total);
    for task in tasks {
        clients.extend(task.await??);
    }
    Ok(clients)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refresh_token_is_read_from_the_token_response() {
        let body = br#"{"access_token":"a","refresh_token":"r1","token_type":"Bearer","expires_in":900,"session_id":"s"}"#;
        assert_eq!(refresh_token_of(body).as_deref(), Some("r1"));
        assert_eq!(refresh_token_of(br#"{"access_token":"a"}"#), None);
    }

    /// A stub auth-center on a loopback port that answers each request on one keep-alive
    /// connection with the next of `answers` (status, JSON body), then closes it; the number of
    /// requests it read comes back when it is done.
    async fn stub_server(
        answers: Vec<(u16, &'static str)>,
    ) -> (String, tokio::task::JoinHandle<usize>) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let served = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut read = 0;
            for (status, body) in answers {
                // One whole request: its head, then Content-Length bytes of body.
                let consumed = loop {
                    let mut headers = [httparse::EMPTY_HEADER; 32];
                    let mut request = httparse::Request::new(&mut headers);
                    if let httparse::Status::Complete(head) = request.parse(&buf).unwrap() {
                        let length = request
                            .headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                            .map_or(0, |h| {
                                std::str::from_utf8(h.value).unwrap().parse().unwrap()
                            });
                        if buf.len() >= head + length {
                            break head + length;
                        }
                    }
                    let mut chunk = [0u8; 4096];
                    let n = stream.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "the client closed the connection");
                    buf.extend_from_slice(&chunk[..n]);
                };
                buf.drain(..consumed);
                read += 1;
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(response.as_bytes()).await.unwrap();
            }
            read
        });
        (url, served)
    }

    const SHED: (u16, &str) = (503, r#"{"error":"overloaded","error_description":"busy"}"#);
    const TOKENS: (u16, &str) = (200, r#"{"access_token":"a","refresh_token":"r1"}"#);
    const QUICK: Patience = Patience {
        tries: 3,
        pause: Duration::from_millis(10),
    };

    /// Opens a session with `patience` against a stub answering `answers`: the outcome, and
    /// how many logins the stub read.
    async fn open_against(
        answers: Vec<(u16, &'static str)>,
        patience: Patience,
    ) -> (anyhow::Result<String>, usize) {
        let (url, served) = stub_server(answers).await;
        let mut conn = JsonConn::new(&url, Duration::from_secs(5)).unwrap();
        let opened = open_session(&mut conn, &Bytes::from_static(b"{}"), "opening", patience).await;
        drop(conn);
        (opened, served.await.unwrap())
    }

    #[tokio::test]
    async fn opening_a_session_tries_a_shed_login_again_within_its_patience() {
        let (opened, logins) = open_against(vec![SHED, SHED, TOKENS], QUICK).await;
        assert_eq!(opened.unwrap(), "r1");
        assert_eq!(logins, 3);
    }

    #[tokio::test]
    async fn a_login_shed_more_often_than_the_patience_allows_is_an_error_that_says_so() {
        let (opened, logins) = open_against(vec![SHED, SHED, SHED], QUICK).await;
        let err = opened.unwrap_err().to_string();
        assert!(
            err.contains("503 overloaded") && err.contains("3 tries"),
            "{err}"
        );
        assert_eq!(logins, 3);
    }

    #[tokio::test]
    async fn a_new_login_during_the_measurement_is_not_tried_again() {
        let (opened, logins) = open_against(vec![SHED], Patience::NONE).await;
        assert!(opened.unwrap_err().to_string().contains("503 overloaded"));
        assert_eq!(logins, 1);
    }

    #[tokio::test]
    async fn the_run_waits_for_the_start_file_after_announcing_it_is_ready() {
        let dir = tempfile::tempdir().unwrap();
        let (ready, start) = (dir.path().join("ready"), dir.path().join("start"));
        let waiting = tokio::spawn({
            let (ready, start) = (ready.clone(), start.clone());
            async move { ready_then_wait(Some(&ready), Some(&start), Duration::from_secs(60)).await }
        });
        for _ in 0..500 {
            if ready.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(ready.exists(), "the ready file was never created");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !waiting.is_finished(),
            "the run started before the start file existed"
        );
        std::fs::write(&start, b"").unwrap();
        waiting.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_start_file_that_never_comes_ends_the_run_with_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("never");
        let err = ready_then_wait(None, Some(&missing), Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("did not appear"), "{err}");
    }
}
