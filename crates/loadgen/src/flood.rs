//! `loadgen login-flood`: starts an auth-center binary on a private SQLite file and a free
//! loopback port, floods it with concurrent logins of one user for a bounded time, and
//! reports its resident memory (`VmRSS`, `VmHWM` from `/proc/<pid>/status`) before, during
//! and after, with the answers by status and how quickly refusals came back.
//!
//! Only the environment given with `--env` (plus the database, the listen address and
//! raised login limits, so the flood reaches the password hashing) is passed on; the
//! child's environment is otherwise cleared, so no `MALLOC_ARENA_MAX` or `AUTH_*` leaks in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::json;
use tokio::sync::Mutex;

/// Arguments of `loadgen login-flood`.
#[derive(Debug, clap::Args)]
pub(crate) struct FloodArgs {
    /// The auth-center binary to start, e.g. `target/release/auth-center`.
    #[arg(long)]
    pub binary: PathBuf,
    /// Logins in flight at once.
    #[arg(long, short = 'c', default_value_t = 300)]
    pub concurrency: usize,
    /// Seconds of flooding (each worker sends its next login as soon as one is answered).
    #[arg(long, short = 'd', default_value_t = 20.0)]
    pub duration: f64,
    /// Seconds to wait after the last answer before reading the memory "after".
    #[arg(long, default_value_t = 5.0)]
    pub settle: f64,
    /// Client timeout per login, seconds (above the server's 15 s request timeout).
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
    /// Extra environment for the server, `KEY=VALUE` (repeatable).
    #[arg(long = "env", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

/// Memory of the server process, KiB.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
    pub threads: u64,
}

/// The result, printed as one JSON object.
#[derive(Debug, Serialize)]
pub(crate) struct FloodResult {
    pub binary: String,
    pub concurrency: usize,
    pub seconds: f64,
    pub env: BTreeMap<String, String>,
    /// After start-up, before any request.
    pub idle: Memory,
    /// After registering the flood's user (one hash).
    pub after_register: Memory,
    /// Highest `VmRSS` seen while flooding (sampled every 50 ms).
    pub during_max_rss_kib: u64,
    /// Most threads of the server at once while flooding.
    pub during_max_threads: u64,
    /// Most server threads in state R (running or runnable) in one sample: an outside view
    /// of how many hashes ran at once.
    pub during_max_runnable_threads: u64,
    /// `settle` seconds after the last answer; `hwm_kib` is the peak over the whole run.
    pub after: Memory,
    /// Answers by status (`error` for transport failures and client timeouts).
    pub status: BTreeMap<String, u64>,
    /// Latency of successful logins, ms.
    pub ok_p50_ms: f64,
    pub ok_p99_ms: f64,
    /// Latency of refused logins (429 and 503), ms.
    pub refused_p50_ms: f64,
    pub refused_p99_ms: f64,
    pub refused_max_ms: f64,
    /// A refused answer's `Retry-After` and body, as seen first.
    pub refused_example: Option<String>,
}

const USERNAME: &str = "flood";
const PASSWORD: &str = "flood password for the memory test";

/// Runs the flood and stops the server again, however it ends.
pub(crate) async fn run(args: FloodArgs) -> anyhow::Result<FloodResult> {
    let binary = std::fs::canonicalize(&args.binary)
        .with_context(|| format!("{} not found", args.binary.display()))?;
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let log = std::fs::File::create(dir.path().join("server.log"))?;
    let mut env: BTreeMap<String, String> = [
        (
            "DATABASE_URL".to_string(),
            format!("sqlite:{}", dir.path().join("flood.db").display()),
        ),
        ("LISTEN_ADDR".into(), format!("127.0.0.1:{port}")),
        // One client IP and one account: lift the login limits so the flood reaches the
        // hasher instead of the rate limiter.
        ("AUTH_LIMITS__LOGIN_IP_MAX".into(), "1000000000".into()),
        ("AUTH_LOG_FORMAT".into(), "json".into()),
        ("RUST_LOG".into(), "warn".into()),
    ]
    .into_iter()
    .collect();
    env.extend(args.env.iter().cloned());
    let mut command = tokio::process::Command::new(&binary);
    command
        .arg("serve")
        .env_clear()
        .envs(&env)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true);
    if let Ok(path) = std::env::var("PATH") {
        command.env("PATH", path);
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("start {}", args.binary.display()))?;
    let pid = child.id().context("server exited at once")?;
    let outcome = flood(&args, pid, &base, env).await;
    child.kill().await.ok();
    outcome.with_context(|| {
        let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
        format!(
            "server log:\n{}",
            log.lines().take(20).collect::<Vec<_>>().join("\n")
        )
    })
}

async fn flood(
    args: &FloodArgs,
    pid: u32,
    base: &str,
    env: BTreeMap<String, String>,
) -> anyhow::Result<FloodResult> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs_f64(args.timeout))
        .build()?;
    wait_healthy(&http, base).await?;
    let idle = memory(pid)?;
    let response = http
        .post(format!("{base}/v1/register"))
        .json(&json!({ "username": USERNAME, "password": PASSWORD }))
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("register: {}", response.status());
    }
    let after_register = memory(pid)?;

    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(Mutex::new(Stats::new()?));
    let sampler = tokio::spawn(sample(pid, stop.clone()));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.duration);
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| {
            tokio::spawn(worker(
                http.clone(),
                base.to_string(),
                deadline,
                stats.clone(),
            ))
        })
        .collect();
    for w in workers {
        w.await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let during = sampler.await??;
    tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
    let after = memory(pid)?;
    let stats = stats.lock().await;
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    Ok(FloodResult {
        binary: args.binary.display().to_string(),
        concurrency: args.concurrency,
        seconds,
        env,
        idle,
        after_register,
        during_max_rss_kib: during.rss_kib,
        during_max_threads: during.threads,
        during_max_runnable_threads: during.runnable,
        after,
        status: stats.status.clone(),
        ok_p50_ms: ms(&stats.ok, 0.5),
        ok_p99_ms: ms(&stats.ok, 0.99),
        refused_p50_ms: ms(&stats.refused, 0.5),
        refused_p99_ms: ms(&stats.refused, 0.99),
        refused_max_ms: stats.refused.max() as f64 / 1000.0,
        refused_example: stats.refused_example.clone(),
    })
}

struct Stats {
    status: BTreeMap<String, u64>,
    ok: Histogram<u64>,
    refused: Histogram<u64>,
    refused_example: Option<String>,
}

impl Stats {
    fn new() -> anyhow::Result<Self> {
        let h = || Histogram::<u64>::new_with_bounds(1, 120_000_000, 3);
        Ok(Self {
            status: BTreeMap::new(),
            ok: h()?,
            refused: h()?,
            refused_example: None,
        })
    }
}

async fn worker(http: reqwest::Client, base: String, deadline: Instant, stats: Arc<Mutex<Stats>>) {
    let url = format!("{base}/v1/login");
    let body = json!({ "username": USERNAME, "password": PASSWORD });
    while Instant::now() < deadline {
        let sent = Instant::now();
        let outcome = http.post(&url).json(&body).send().await;
        let (status, example) = match outcome {
            Ok(response) => {
                let status = response.status();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body = response.text().await.unwrap_or_default();
                let example = format!(
                    "{} retry-after={} {body}",
                    status.as_u16(),
                    retry_after.as_deref().unwrap_or("-")
                );
                (Some(status), example)
            }
            Err(_) => (None, String::new()),
        };
        let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
        let mut stats = stats.lock().await;
        let key = status.map_or_else(|| "error".to_string(), |s| s.as_u16().to_string());
        *stats.status.entry(key).or_default() += 1;
        match status.map(|s| s.as_u16()) {
            Some(200) => stats.ok.saturating_record(micros),
            Some(429 | 503) => {
                stats.refused.saturating_record(micros);
                if stats.refused_example.is_none() {
                    stats.refused_example = Some(example);
                }
            }
            _ => {}
        }
        if status.is_none() {
            // A transport error (refused connection, client timeout): do not spin.
            drop(stats);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn wait_healthy(http: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    for _ in 0..600 {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the server did not become healthy within 60 s")
}

#[derive(Default)]
struct Peaks {
    rss_kib: u64,
    threads: u64,
    runnable: u64,
}

async fn sample(pid: u32, stop: Arc<AtomicBool>) -> anyhow::Result<Peaks> {
    let mut peaks = Peaks::default();
    while !stop.load(Ordering::Relaxed) {
        let m = memory(pid)?;
        peaks.rss_kib = peaks.rss_kib.max(m.rss_kib);
        peaks.threads = peaks.threads.max(m.threads);
        peaks.runnable = peaks.runnable.max(runnable_threads(pid));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(peaks)
}

/// `VmRSS`, `VmHWM` and `Threads` of a process.
pub(crate) fn memory(pid: u32) -> anyhow::Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status (did the server exit?)"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(Memory {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
        threads: field("Threads:"),
    })
}

/// Threads of `pid` whose state is R (running or waiting for a CPU).
fn runnable_threads(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|t| thread_state(&t.path().join("stat")) == Some('R'))
        .count() as u64
}

fn thread_state(stat: &Path) -> Option<char> {
    let text = std::fs::read_to_string(stat).ok()?;
    // The state follows the parenthesised name, which may itself contain ") ".
    text.rsplit_once(") ")?.1.chars().next()
}
