//! `loadgen revocation`: how long after a `DEL` of the session key in Redis the service
//! starts answering 401.
//!
//! Each trial: get a live session, warm `/me` up (200s; in tracked mode this fills the
//! verifier's client-side cache), then — the clock starts — `DEL` the session key over
//! this tool's own Redis connection and poll `/me` on one keep-alive connection until the
//! first 401. The latency is DEL sent → 401 received, so it includes the DEL round trip
//! and at least one HTTP round trip.
//!
//! With `--background-connections N`, N more keep-alive connections hammer the service
//! during each trial (closed loop, from before the warm-up until the poller's first 401
//! and their own request in flight then): half with the trial's own token, half with
//! another live session's. A stale answer is a 200 to a request of the trial's token
//! (poller or background) that was sent after the `DEL` reply was received. The `DEL` is
//! sent and its reply read with a blocking call on this tool's one thread, so no request
//! is sent while it is on its way: every request was sent either before the `DEL` or
//! after its reply, never in between (the service stays busy with the requests already
//! sent meanwhile).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hdrhistogram::Histogram;
use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::auth::{AuthCenter, LoginError, Session};
use crate::client::{Conn, RawConn, Target};

/// Arguments of `loadgen revocation`.
#[derive(Debug, clap::Args)]
pub(crate) struct RevocationArgs {
    /// The protected URL (loopback only), e.g. `http://127.0.0.1:8081/me`.
    #[arg(long)]
    pub url: String,
    /// The Redis that holds the sessions (loopback only).
    #[arg(long, required_unless_present = "redis_cluster_urls")]
    pub redis_url: Option<String>,
    /// Instead: the Redis Cluster that holds the sessions, its seed nodes comma-separated
    /// (loopback only). The `DEL` goes to the master serving the key's slot.
    #[arg(long, conflicts_with = "redis_url")]
    pub redis_cluster_urls: Option<String>,
    /// The session-key prefix shared by the auth-center and the verifier.
    #[arg(long, default_value = "auth")]
    pub prefix: String,
    /// The auth-center's base URL: each trial logs in for a fresh session.
    #[arg(long)]
    pub auth_url: Option<String>,
    /// The user to log in as, or several comma-separated, one per trial in turn (on a Redis
    /// Cluster each user's sessions share one slot, so several users spread the trials over
    /// the masters). The password is the same for all.
    #[arg(long)]
    pub username: Option<String>,
    #[arg(long, env = "LOADGEN_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Instead of logging in: a file with one access token per line, one per trial.
    #[arg(long)]
    pub tokens_file: Option<PathBuf>,
    /// Use one session for every trial: its key is saved (DUMP) and restored (RESTORE)
    /// before each trial instead of a new login. Also used automatically when logins are
    /// rate-limited.
    #[arg(long)]
    pub reuse_session: bool,
    /// Number of trials.
    #[arg(long, short = 'k', default_value_t = 200)]
    pub trials: usize,
    /// 200 answers required before each DEL.
    #[arg(long, default_value_t = 3)]
    pub warmup_requests: usize,
    /// A trial without a 401 after this many milliseconds counts as a timeout.
    #[arg(long, default_value_t = 2000)]
    pub timeout_ms: u64,
    /// Keep-alive connections hammering the service during every trial (closed loop), half
    /// with the trial's own token, half with another session's (one more login at the start,
    /// or the first token of --tokens-file); 0: none.
    #[arg(long, default_value_t = 0)]
    pub background_connections: usize,
    /// The URL the background connections GET (loopback only; default: --url).
    #[arg(long)]
    pub background_url: Option<String>,
    /// A name for this run in the output.
    #[arg(long, default_value = "")]
    pub label: String,
}

/// The result of one `revocation` run (also read back by `loadgen table`).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RevocationResult {
    pub kind: String,
    pub label: String,
    pub url: String,
    pub session_source: String,
    pub trials: u64,
    /// DEL sent → first 401 received, µs.
    pub min_us: f64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    /// The DEL round trip alone, µs.
    pub del_rtt_p50_us: f64,
    pub del_rtt_p99_us: f64,
    /// A warm `/me` round trip (the last warm-up request of each trial), µs.
    pub me_rtt_p50_us: f64,
    /// Trials whose first request after the DEL already got 401.
    pub first_poll_401: u64,
    /// The poller's 200 answers to requests sent after the DEL had been acknowledged.
    pub stale_200_after_del: u64,
    /// Trials with at least one stale 200 (poller or background connections).
    pub trials_with_stale: u64,
    /// Keep-alive connections hammering the service during each trial.
    #[serde(default)]
    pub background_connections: usize,
    /// 200 answers to requests with a trial's token sent after its DEL reply was received,
    /// poller and background connections together, over all trials.
    #[serde(default)]
    pub stale_total: u64,
    /// The most such stale 200s in one trial.
    #[serde(default)]
    pub max_stale_in_a_trial: u64,
    /// For each of those stale 200s, how long after the DEL reply its request was sent, µs,
    /// in ascending order: a revocation bound leaves a window of microseconds after the
    /// reply, and this tells an answer inside it from one after it.
    #[serde(default)]
    pub stale_sent_after_del_us: Vec<f64>,
    /// Requests the background connections completed, over all trials.
    #[serde(default)]
    pub background_requests: u64,
    /// DEL sent → first 401 received of every trial, in order, µs.
    #[serde(default)]
    pub samples_us: Vec<f64>,
    /// Trials that saw no 401 within the timeout.
    pub timeouts: u64,
    /// Time to get each trial's session (a login, or a RESTORE), median, ms.
    pub session_p50_ms: f64,
    /// Wall time of the whole run, s.
    pub seconds: f64,
    /// Answers other than 200/401 after the DEL (e.g. 503).
    pub other_status: u64,
}

enum Source {
    Login {
        auth: AuthCenter,
        /// Logged in one per trial, in turn.
        usernames: Vec<String>,
        next: usize,
        password: String,
    },
    Tokens(std::vec::IntoIter<String>),
}

/// The one session reused in DUMP/RESTORE mode.
struct Saved {
    session: Session,
    key: String,
    dump: Vec<u8>,
    pttl: i64,
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1_000, 60_000_000_000, 3)?)
}

/// Runs the trials.
pub(crate) async fn run(args: RevocationArgs) -> anyhow::Result<RevocationResult> {
    if args.trials == 0 || args.trials > 100_000 {
        bail!("--trials must be 1..=100000");
    }
    if args.background_connections > 4096 {
        bail!("--background-connections must be 0..=4096");
    }
    let timeout = Duration::from_millis(args.timeout_ms.clamp(1, 60_000));
    let target = Target::parse(&args.url)?;
    let background_target = Target::parse(args.background_url.as_deref().unwrap_or(&args.url))?;
    // Blocking (see the module's documentation): nothing else is sent while the DEL is on
    // its way.
    let mut redis = Sessions::connect(&args)?;

    let mut source = match (&args.tokens_file, &args.auth_url) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("read {}", path.display()))?;
            let tokens: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect();
            Source::Tokens(tokens.into_iter())
        }
        (None, Some(url)) => Source::Login {
            auth: AuthCenter::new(url)?,
            usernames: usernames(args.username.as_deref().context("--username is required")?)?,
            next: 0,
            password: args.password.clone().context("--password is required")?,
        },
        (None, None) => bail!("give --auth-url (with --username/--password) or --tokens-file"),
    };
    let mut reuse = args.reuse_session;
    let mut saved: Option<Saved> = None;
    // The background connections' other live session, never revoked.
    let other = if args.background_connections > 0 {
        let other = next_session(&mut source)
            .await
            .map_err(|e| anyhow::anyhow!("the background connections' session: {e}"))?;
        Some(other.access_token)
    } else {
        None
    };
    let mut other_conns = Vec::new();
    if let Some(token) = &other {
        for _ in 0..args.background_connections / 2 {
            other_conns.push(RawConn::new(&background_target, Some(token))?);
        }
    }

    let mut conn = Conn::new(target, None)?;
    let mut latency = histogram()?;
    let mut del_rtt = histogram()?;
    let mut me_rtt = histogram()?;
    let mut session_time = histogram()?;
    let run_started = Instant::now();
    let (mut first_poll_401, mut stale, mut trials_with_stale) = (0, 0, 0);
    let (mut timeouts, mut other_status) = (0, 0);
    let (mut stale_total, mut max_stale_in_a_trial, mut background_requests) = (0, 0, 0);
    let mut stale_sent_after_del_us = Vec::new();
    let mut samples_us = Vec::with_capacity(args.trials);

    for _ in 0..args.trials {
        // 1. A live session.
        let session_started = Instant::now();
        let session = match (&saved, reuse) {
            (Some(s), true) => {
                restore(&mut redis, s)?;
                s.session.clone()
            }
            _ => match next_session(&mut source).await {
                Ok(session) => session,
                Err(NextError::RateLimited) if saved.is_some() => {
                    eprintln!(
                        "loadgen: logins are rate-limited; reusing one session (DUMP/RESTORE)"
                    );
                    reuse = true;
                    let s = saved.as_ref().context("no saved session")?;
                    restore(&mut redis, s)?;
                    s.session.clone()
                }
                Err(NextError::Exhausted) => break,
                Err(e) => return Err(anyhow::anyhow!("{e}")),
            },
        };
        session_time.saturating_record(nanos(session_started.elapsed()));
        let key = session.key(&args.prefix)?;
        if saved.is_none() {
            let dump: Option<Vec<u8>> = redis.query(redis::cmd("DUMP").arg(&key))?;
            let pttl: i64 = redis.query(redis::cmd("PTTL").arg(&key))?;
            let dump = dump.with_context(|| {
                format!("session key {key} not found in Redis (wrong --prefix?)")
            })?;
            saved = Some(Saved {
                session: session.clone(),
                key: key.clone(),
                dump,
                pttl,
            });
        }
        conn.set_bearer(&session.access_token)?;

        // The background load, until the poller's first 401.
        let trial = Arc::new(Trial::default());
        let mut background = Vec::with_capacity(args.background_connections);
        if args.background_connections > 0 {
            let revoked = args.background_connections - other_conns.len();
            for _ in 0..revoked {
                let conn = RawConn::new(&background_target, Some(&session.access_token))?;
                background.push(tokio::spawn(hammer(conn, true, trial.clone())));
            }
            for conn in other_conns.drain(..) {
                background.push(tokio::spawn(hammer(conn, false, trial.clone())));
            }
        }

        // 2. Warm up: the service must answer 200 (a restored key may take a moment to
        //    reach a tracking verifier's cache).
        let mut ok = 0;
        let started = Instant::now();
        while ok < args.warmup_requests.max(1) {
            let sent = Instant::now();
            let status = conn.get().await?;
            if status == StatusCode::OK {
                ok += 1;
                if ok == args.warmup_requests.max(1) {
                    me_rtt.saturating_record(nanos(sent.elapsed()));
                }
            } else if started.elapsed() > Duration::from_secs(5) {
                bail!("warm-up: {status} instead of 200 for 5 s (session {key})");
            } else {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }

        // 3. DEL (blocking: nothing else is sent until its reply is read), then poll until
        //    the first 401.
        let t0 = Instant::now();
        let deleted: i64 = redis.query(redis::cmd("DEL").arg(&key))?;
        let replied = Instant::now();
        let _ = trial.del_replied.set(replied);
        del_rtt.saturating_record(nanos(replied - t0));
        if deleted != 1 {
            bail!("DEL {key} deleted {deleted} keys");
        }
        let mut polls = 0u64;
        let mut stale_here = 0u64;
        loop {
            let sent = Instant::now();
            let status = conn.get().await?;
            polls += 1;
            if status == StatusCode::UNAUTHORIZED {
                let ns = nanos(t0.elapsed());
                latency.saturating_record(ns);
                samples_us.push(us(ns));
                if polls == 1 {
                    first_poll_401 += 1;
                }
                break;
            }
            if status == StatusCode::OK {
                stale_here += 1;
                stale_sent_after_del_us.extend(sent_after_reply_us(sent, Some(&replied)));
            } else {
                other_status += 1;
            }
            if t0.elapsed() > timeout {
                timeouts += 1;
                break;
            }
        }
        // Each background connection finishes the request it has in flight.
        trial.stop.store(true, Ordering::Relaxed);
        let mut stale_in_trial = stale_here;
        for task in background {
            let done = task.await??;
            stale_in_trial += done.stale_sent_after_us.len() as u64;
            stale_sent_after_del_us.extend(done.stale_sent_after_us);
            background_requests += done.requests;
            if !done.revoked {
                other_conns.push(done.conn);
            }
        }
        stale += stale_here;
        stale_total += stale_in_trial;
        max_stale_in_a_trial = max_stale_in_a_trial.max(stale_in_trial);
        if stale_in_trial > 0 {
            trials_with_stale += 1;
        }
    }

    stale_sent_after_del_us.sort_by(f64::total_cmp);
    Ok(RevocationResult {
        kind: "revocation".into(),
        label: args.label,
        url: args.url,
        session_source: match (&source, reuse) {
            (_, true) => "one session, DUMP/RESTORE".into(),
            (Source::Login { usernames, .. }, false) if usernames.len() > 1 => {
                format!("login per trial, {} users in turn", usernames.len())
            }
            (Source::Login { .. }, false) => "login per trial".into(),
            (Source::Tokens(_), false) => "token file".into(),
        },
        trials: latency.len(),
        min_us: us(latency.min()),
        mean_us: (latency.mean() / 100.0).round() / 10.0,
        p50_us: us(latency.value_at_quantile(0.50)),
        p90_us: us(latency.value_at_quantile(0.90)),
        p99_us: us(latency.value_at_quantile(0.99)),
        max_us: us(latency.max()),
        del_rtt_p50_us: us(del_rtt.value_at_quantile(0.50)),
        del_rtt_p99_us: us(del_rtt.value_at_quantile(0.99)),
        me_rtt_p50_us: us(me_rtt.value_at_quantile(0.50)),
        first_poll_401,
        stale_200_after_del: stale,
        trials_with_stale,
        timeouts,
        session_p50_ms: (session_time.value_at_quantile(0.5) as f64 / 10_000.0).round() / 100.0,
        seconds: (run_started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        other_status,
        background_connections: args.background_connections,
        stale_total,
        max_stale_in_a_trial,
        stale_sent_after_del_us,
        background_requests,
        samples_us,
    })
}

/// How long after the DEL reply (`replied`, unset before the DEL) a request was sent, µs;
/// `None` for a request sent before the reply, whose 200 is not stale.
fn sent_after_reply_us(sent: Instant, replied: Option<&Instant>) -> Option<f64> {
    let replied = *replied?;
    (sent > replied).then(|| us(nanos(sent - replied)))
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Nanoseconds as microseconds, to 0.1 µs.
fn us(ns: u64) -> f64 {
    (ns as f64 / 100.0).round() / 10.0
}

/// What a trial's background connections share.
#[derive(Default)]
struct Trial {
    /// When the DEL reply was read.
    del_replied: OnceLock<Instant>,
    /// Set at the poller's first 401: stop after the request in flight.
    stop: AtomicBool,
}

/// A background connection's count of one trial.
struct Hammered {
    conn: RawConn,
    /// Whether it carried the trial's (revoked) token.
    revoked: bool,
    requests: u64,
    /// Each 200 to a request sent after the DEL reply (counted for the trial's token only):
    /// how long after the reply the request was sent, µs.
    stale_sent_after_us: Vec<f64>,
}

/// GETs on `conn` back to back until the trial stops.
async fn hammer(mut conn: RawConn, revoked: bool, trial: Arc<Trial>) -> anyhow::Result<Hammered> {
    let (mut requests, mut errors) = (0, 0);
    let mut stale_sent_after_us = Vec::new();
    while !trial.stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        let status = match conn.get().await {
            Ok(status) => status,
            Err(e) => {
                errors += 1;
                if errors > 100 {
                    return Err(e.context("a background connection failed 100 times"));
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        };
        requests += 1;
        if revoked && status == StatusCode::OK {
            stale_sent_after_us.extend(sent_after_reply_us(sent, trial.del_replied.get()));
        }
    }
    Ok(Hammered {
        conn,
        revoked,
        requests,
        stale_sent_after_us,
    })
}

#[derive(Debug, thiserror::Error)]
enum NextError {
    #[error("login rate-limited")]
    RateLimited,
    #[error("no more tokens")]
    Exhausted,
    #[error("{0:#}")]
    Other(anyhow::Error),
}

async fn next_session(source: &mut Source) -> Result<Session, NextError> {
    match source {
        Source::Login {
            auth,
            usernames,
            next,
            password,
        } => {
            let username = &usernames[*next % usernames.len()];
            *next += 1;
            auth.login(username, password).await
        }
        .map_err(|e| match e {
            LoginError::RateLimited => NextError::RateLimited,
            LoginError::Other(e) => NextError::Other(e),
        }),
        Source::Tokens(tokens) => {
            let token = tokens.next().ok_or(NextError::Exhausted)?;
            Session::from_token(&token).map_err(NextError::Other)
        }
    }
}

/// `--username`'s list: comma-separated, none empty.
fn usernames(list: &str) -> anyhow::Result<Vec<String>> {
    let names: Vec<String> = list.split(',').map(|n| n.trim().to_owned()).collect();
    if names.iter().any(String::is_empty) {
        bail!("--username: an empty name in {list:?}");
    }
    Ok(names)
}

/// Puts the saved session key back (with its remaining TTL).
fn restore(redis: &mut Sessions, saved: &Saved) -> anyhow::Result<()> {
    let ttl = if saved.pttl > 0 { saved.pttl } else { 0 };
    redis
        .query::<()>(
            redis::cmd("RESTORE")
                .arg(&saved.key)
                .arg(ttl)
                .arg(&saved.dump)
                .arg("REPLACE"),
        )
        .context("RESTORE the session key")
}

/// A blocking connection to the Redis that holds the sessions: a standalone server, or a
/// cluster (each command routed to the master serving its key's slot).
enum Sessions {
    Standalone(redis::Connection),
    Cluster(Box<redis::cluster::ClusterConnection>),
}

impl Sessions {
    fn connect(args: &RevocationArgs) -> anyhow::Result<Self> {
        match (&args.redis_url, &args.redis_cluster_urls) {
            (Some(url), _) => {
                crate::redis_stats::check_loopback(url)?;
                let conn = redis::Client::open(url.as_str())?
                    .get_connection()
                    .context("connect to redis")?;
                Ok(Self::Standalone(conn))
            }
            (None, Some(urls)) => {
                let seeds: Vec<&str> = urls.split(',').map(str::trim).collect();
                for url in &seeds {
                    crate::redis_stats::check_loopback(url)?;
                }
                let conn = redis::cluster::ClusterClient::new(seeds)?
                    .get_connection()
                    .context("connect to the redis cluster")?;
                Ok(Self::Cluster(Box::new(conn)))
            }
            (None, None) => bail!("give --redis-url or --redis-cluster-urls"),
        }
    }

    fn query<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        match self {
            Self::Standalone(conn) => cmd.query(conn),
            Self::Cluster(conn) => cmd.query(conn.as_mut()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: RevocationArgs,
    }

    fn parse(extra: &[&str]) -> Result<RevocationArgs, clap::Error> {
        let base = ["loadgen", "--url", "http://127.0.0.1:1/me"];
        Cli::try_parse_from(base.iter().chain(extra)).map(|cli| cli.args)
    }

    #[test]
    fn the_sessions_redis_is_one_server_or_one_cluster_never_both_nor_neither() {
        assert!(parse(&[]).is_err());
        assert!(
            parse(&[
                "--redis-url",
                "redis://127.0.0.1:1",
                "--redis-cluster-urls",
                "redis://127.0.0.1:2"
            ])
            .is_err()
        );
        assert!(parse(&["--redis-cluster-urls", "redis://127.0.0.1:2"]).is_ok());
    }

    #[test]
    fn only_a_request_sent_after_the_del_reply_counts_as_stale_with_its_delay() {
        let replied = Instant::now();
        let before = replied
            .checked_sub(Duration::from_micros(5))
            .expect("an earlier instant");
        assert_eq!(sent_after_reply_us(before, Some(&replied)), None);
        assert_eq!(sent_after_reply_us(replied, Some(&replied)), None);
        assert_eq!(sent_after_reply_us(replied, None), None, "no DEL yet");
        let after = replied + Duration::from_micros(1_500);
        assert_eq!(sent_after_reply_us(after, Some(&replied)), Some(1_500.0));
    }

    #[test]
    fn several_users_are_taken_in_turn_and_an_empty_name_is_refused() {
        assert_eq!(usernames("alice").unwrap(), ["alice"]);
        assert_eq!(
            usernames("alice, bob,carol").unwrap(),
            ["alice", "bob", "carol"]
        );
        assert!(usernames("alice,,bob").is_err());
        assert!(usernames("").is_err());
    }

    #[test]
    fn a_cluster_seed_off_the_loopback_is_refused() {
        let args = parse(&[
            "--redis-cluster-urls",
            "redis://127.0.0.1:2,redis://10.0.0.1:7000",
        ])
        .expect("parses");
        let refused = Sessions::connect(&args).err().expect("refused");
        assert!(refused.to_string().contains("loopback"), "{refused:#}");
    }

    #[test]
    fn on_a_cluster_each_key_is_deleted_on_the_master_that_serves_its_slot() {
        let urls = test_support::shared_cluster_urls().join(",");
        let args = parse(&["--redis-cluster-urls", &urls]).expect("parses");
        let mut redis = Sessions::connect(&args).expect("connects");
        // Hash tags spread over the three masters' slots; a connection that did not route
        // would get MOVED for two of them.
        let keys: Vec<String> = (0..12)
            .map(|i| format!("loadgen-test:{{user-{i}-{}}}", std::process::id()))
            .collect();
        for key in &keys {
            redis
                .query::<()>(redis::cmd("SET").arg(key).arg("v"))
                .expect("SET");
        }
        for key in &keys {
            let dump: Option<Vec<u8>> = redis.query(redis::cmd("DUMP").arg(key)).expect("DUMP");
            assert!(dump.is_some(), "{key} is where it was written");
            let deleted: i64 = redis.query(redis::cmd("DEL").arg(key)).expect("DEL");
            assert_eq!(deleted, 1, "{key}");
        }
    }
}
