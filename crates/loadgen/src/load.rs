//! `loadgen http`: N connections, each sending its next request as soon as the previous
//! answer is read (closed loop), for a duration or a request count.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::client::{Conn, RawConn, Target};

/// Arguments of `loadgen http`.
#[derive(Debug, clap::Args)]
pub(crate) struct HttpArgs {
    /// The URL to GET (loopback only), e.g. `http://127.0.0.1:8081/me`.
    #[arg(long)]
    pub url: String,
    /// Bearer token sent with every request.
    #[arg(long, env = "LOADGEN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Concurrent keep-alive connections.
    #[arg(long, short = 'c', default_value_t = 32)]
    pub connections: usize,
    /// Measured duration, seconds (ignored when --requests is given).
    #[arg(long, short = 'd', default_value_t = 10.0)]
    pub duration: f64,
    /// Stop after this many measured requests instead of after --duration.
    #[arg(long, short = 'n')]
    pub requests: Option<u64>,
    /// Seconds of load before measuring starts (results discarded).
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// HTTP client: `raw` (pre-encoded request, httparse; cheapest per request) or `hyper`.
    #[arg(long, value_enum, default_value_t = ClientKind::Raw)]
    pub client: ClientKind,
    /// Runtime worker threads (1: a current-thread runtime).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// PID of the server under test: its CPU use during the measured window is reported.
    /// Repeat it for a path through several processes (a proxy, the gateway, the
    /// application): their CPU time is added up.
    #[arg(long)]
    pub server_pid: Vec<u32>,
    /// Redis (loopback) whose session checks (`EXISTS`, `PTTL`) are counted during the
    /// window, to show how many requests reached Redis.
    #[arg(long)]
    pub redis_url: Option<String>,
    /// A name for this run in the output.
    #[arg(long, default_value = "")]
    pub label: String,
}

/// Which HTTP client sends the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ClientKind {
    Raw,
    Hyper,
}

enum AnyConn {
    Raw(RawConn),
    Hyper(Conn),
}

impl AnyConn {
    fn new(kind: ClientKind, target: &Target, token: Option<&str>) -> anyhow::Result<Self> {
        Ok(match kind {
            ClientKind::Raw => AnyConn::Raw(RawConn::new(target, token)?),
            ClientKind::Hyper => AnyConn::Hyper(Conn::new(target.clone(), token)?),
        })
    }

    async fn get(&mut self) -> anyhow::Result<http::StatusCode> {
        match self {
            AnyConn::Raw(c) => c.get().await,
            AnyConn::Hyper(c) => c.get().await,
        }
    }

    fn connects(&self) -> u64 {
        match self {
            AnyConn::Raw(c) => c.connects,
            AnyConn::Hyper(c) => c.connects,
        }
    }
}

/// The result of one `http` run (also read back by `loadgen table`).
#[derive(Debug, Serialize, serde::Deserialize)]
pub(crate) struct HttpResult {
    pub kind: String,
    pub label: String,
    pub url: String,
    pub connections: usize,
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    pub rps: f64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    /// Status code → count (measured window only).
    pub status: BTreeMap<u16, u64>,
    /// CPU used by the server process during the window, % of one core.
    pub server_cpu_pct: Option<f64>,
    /// CPU used by the load generator during the window, % of one core.
    pub loadgen_cpu_pct: Option<f64>,
    /// Server CPU time per measured request, µs (its cost per request, whatever the
    /// bottleneck).
    pub server_cpu_us_per_request: Option<f64>,
    /// The user-space part of `server_cpu_us_per_request` (absent in older results): what
    /// an instruction count (callgrind) scales.
    pub server_user_us_per_request: Option<f64>,
    /// The kernel part of `server_cpu_us_per_request` (absent in older results).
    pub server_system_us_per_request: Option<f64>,
    pub reconnects: u64,
    /// Session checks (`EXISTS`, `PTTL`) Redis executed during the window, per measured
    /// request (named `redis_exists_per_request` in results before tracked mode sent `PTTL`).
    #[serde(alias = "redis_exists_per_request")]
    pub redis_checks_per_request: Option<f64>,
    /// The latency's percentile spectrum, `[percentile, µs]` pairs from HdrHistogram's
    /// `iter_quantiles(1)` (a few hundred points), for plots.
    #[serde(default)]
    pub percentile_spectrum: Vec<[f64; 2]>,
}

struct WorkerResult {
    hist: Histogram<u64>,
    status: BTreeMap<u16, u64>,
    errors: u64,
    last_done: Option<Instant>,
    connects: u64,
}

/// Latencies in nanoseconds, 1 µs .. 60 s, 3 significant digits.
fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1_000, 60_000_000_000, 3)?)
}

/// Runs the load and summarises it.
pub(crate) async fn run(args: HttpArgs) -> anyhow::Result<HttpResult> {
    if args.connections == 0 || args.connections > 4096 {
        bail!("--connections must be 1..=4096");
    }
    let duration_ok = args.duration > 0.0 && args.duration <= 3600.0;
    if !duration_ok || !(0.0..=600.0).contains(&args.warmup) {
        bail!("--duration must be in (0, 3600] and --warmup in [0, 600] seconds");
    }
    let target = Target::parse(&args.url)?;
    let mut redis = match &args.redis_url {
        Some(url) => Some(crate::redis_stats::connect(url).await?),
        None => None,
    };
    // Fail fast (and open every connection) before the clock starts.
    let mut conns = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let mut conn = AnyConn::new(args.client, &target, args.token.as_deref())?;
        conn.get().await.context("first request")?;
        conns.push(conn);
    }

    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    // In request-count mode the duration only bounds the run (at most 10 min).
    let stop_at = match args.requests {
        Some(_) => measure_from + Duration::from_secs(600),
        None => measure_from + Duration::from_secs_f64(args.duration),
    };
    let budget = Arc::new(AtomicI64::new(
        args.requests
            .map_or(i64::MAX, |n| i64::try_from(n).unwrap_or(i64::MAX)),
    ));

    let mut tasks = Vec::with_capacity(conns.len());
    for conn in conns {
        let budget = Arc::clone(&budget);
        tasks.push(tokio::spawn(worker(conn, measure_from, stop_at, budget)));
    }

    tokio::time::sleep_until(measure_from.into()).await;
    let checks_start = match redis.as_mut() {
        Some(r) => Some(crate::redis_stats::session_checks(r).await?),
        None => None,
    };
    let cpu_start = (
        servers_cpu_times(&args.server_pid),
        self_cpu_secs(),
        Instant::now(),
    );

    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await??);
    }
    let cpu_end = (
        servers_cpu_times(&args.server_pid),
        self_cpu_secs(),
        Instant::now(),
    );
    let checks_end = match redis.as_mut() {
        Some(r) => Some(crate::redis_stats::session_checks(r).await?),
        None => None,
    };
    let wall = (cpu_end.2 - cpu_start.2).as_secs_f64();
    let pct = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if wall > 0.0 => Some(((b - a) / wall * 1000.0).round() / 10.0),
        _ => None,
    };

    let mut hist = histogram()?;
    let mut status = BTreeMap::new();
    let mut errors = 0;
    let mut last_done = measure_from;
    let mut connects = 0;
    for r in results {
        hist.add(&r.hist)?;
        for (code, n) in r.status {
            *status.entry(code).or_insert(0) += n;
        }
        errors += r.errors;
        connects += r.connects;
        if let Some(t) = r.last_done {
            last_done = last_done.max(t);
        }
    }
    let seconds = (last_done - measure_from).as_secs_f64();
    let requests = hist.len();
    let us = |ns: u64| (ns as f64 / 100.0).round() / 10.0;
    // Server CPU µs per measured request, of all its time or of one part.
    let per_request =
        |a: Option<CpuTimes>, b: Option<CpuTimes>, part: fn(CpuTimes) -> f64| match (a, b) {
            (Some(a), Some(b)) if requests > 0 => {
                Some((part(b - a) * 1e6 / requests as f64 * 100.0).round() / 100.0)
            }
            _ => None,
        };
    Ok(HttpResult {
        kind: "http".into(),
        label: args.label,
        url: args.url,
        connections: args.connections,
        requests,
        errors,
        seconds: (seconds * 1000.0).round() / 1000.0,
        rps: if seconds > 0.0 {
            (requests as f64 / seconds).round()
        } else {
            0.0
        },
        mean_us: (hist.mean() / 100.0).round() / 10.0,
        p50_us: us(hist.value_at_quantile(0.50)),
        p90_us: us(hist.value_at_quantile(0.90)),
        p99_us: us(hist.value_at_quantile(0.99)),
        p999_us: us(hist.value_at_quantile(0.999)),
        max_us: us(hist.max()),
        status,
        server_cpu_pct: pct(
            cpu_start.0.map(CpuTimes::total),
            cpu_end.0.map(CpuTimes::total),
        ),
        server_cpu_us_per_request: per_request(cpu_start.0, cpu_end.0, CpuTimes::total),
        server_user_us_per_request: per_request(cpu_start.0, cpu_end.0, |t| t.user),
        server_system_us_per_request: per_request(cpu_start.0, cpu_end.0, |t| t.system),
        loadgen_cpu_pct: pct(cpu_start.1, cpu_end.1),
        reconnects: connects.saturating_sub(args.connections as u64),
        redis_checks_per_request: match (checks_start, checks_end) {
            (Some(a), Some(b)) if requests > 0 => {
                Some(((b - a) as f64 / requests as f64 * 10_000.0).round() / 10_000.0)
            }
            _ => None,
        },
        percentile_spectrum: hist
            .iter_quantiles(1)
            .map(|v| {
                let percentile = (v.quantile_iterated_to() * 100.0 * 1e6).round() / 1e6;
                [percentile, us(v.value_iterated_to())]
            })
            .collect(),
    })
}

async fn worker(
    mut conn: AnyConn,
    measure_from: Instant,
    stop_at: Instant,
    budget: Arc<AtomicI64>,
) -> anyhow::Result<WorkerResult> {
    let mut hist = histogram()?;
    let mut status = BTreeMap::new();
    let mut errors = 0;
    let mut last_done = None;
    loop {
        let sent = Instant::now();
        if sent >= stop_at {
            break;
        }
        let measured = sent >= measure_from;
        if measured && budget.fetch_sub(1, Ordering::Relaxed) <= 0 {
            break;
        }
        let outcome = conn.get().await;
        let done = Instant::now();
        if !measured {
            continue;
        }
        match outcome {
            Ok(code) => {
                let ns = u64::try_from((done - sent).as_nanos()).unwrap_or(u64::MAX);
                hist.saturating_record(ns);
                *status.entry(code.as_u16()).or_insert(0) += 1;
                last_done = Some(done);
            }
            Err(_) => {
                errors += 1;
                if errors > 1000 {
                    bail!("too many connection errors");
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    Ok(WorkerResult {
        hist,
        status,
        errors,
        last_done,
        connects: conn.connects(),
    })
}

/// CPU seconds a process (all threads) spent in user space and in the kernel, from
/// `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct CpuTimes {
    pub user: f64,
    pub system: f64,
}

impl CpuTimes {
    pub(crate) fn total(self) -> f64 {
        self.user + self.system
    }
}

impl std::ops::Sub for CpuTimes {
    type Output = CpuTimes;
    fn sub(self, rhs: CpuTimes) -> CpuTimes {
        CpuTimes {
            user: self.user - rhs.user,
            system: self.system - rhs.system,
        }
    }
}

impl std::iter::Sum for CpuTimes {
    fn sum<I: Iterator<Item = CpuTimes>>(iter: I) -> CpuTimes {
        iter.fold(CpuTimes::default(), |a, b| CpuTimes {
            user: a.user + b.user,
            system: a.system + b.system,
        })
    }
}

/// The CPU time of all of `pids` together; `None` when there are none or one is gone.
pub(crate) fn servers_cpu_times(pids: &[u32]) -> Option<CpuTimes> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&pid| process_cpu_times(pid)).sum()
}

/// User + system CPU seconds of all of `pids` together; `None` when there are none or one
/// is gone.
pub(crate) fn servers_cpu_secs(pids: &[u32]) -> Option<f64> {
    servers_cpu_times(pids).map(CpuTimes::total)
}

pub(crate) fn process_cpu_times(pid: u32) -> Option<CpuTimes> {
    stat_cpu_times(Path::new(&format!("/proc/{pid}/stat")))
}

fn self_cpu_secs() -> Option<f64> {
    stat_cpu_times(Path::new("/proc/self/stat")).map(CpuTimes::total)
}

/// `utime` and `stime` are fields 14 and 15, in clock ticks (USER_HZ, 100 on Linux).
fn stat_cpu_times(path: &Path) -> Option<CpuTimes> {
    let stat = std::fs::read_to_string(path).ok()?;
    parse_stat_cpu_times(&stat)
}

fn parse_stat_cpu_times(stat: &str) -> Option<CpuTimes> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some(CpuTimes {
        user: utime / 100.0,
        system: stime / 100.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_time_is_readable() {
        assert!(self_cpu_secs().is_some_and(|s| s >= 0.0));
    }

    #[test]
    fn user_and_system_ticks_are_read_apart_even_with_a_parenthesis_in_the_name() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
        // utime stime ...
        let stat = "42 (demo (x)) S 1 42 42 0 -1 4194560 10 0 0 0 250 75 0 0 20 0 3 0";
        assert_eq!(
            parse_stat_cpu_times(stat),
            Some(CpuTimes {
                user: 2.5,
                system: 0.75
            })
        );
        assert_eq!(parse_stat_cpu_times("42 (demo) S 1"), None);
    }

    #[test]
    fn only_loopback_targets_are_accepted() {
        assert!(Target::parse("http://127.0.0.1:8080/me").is_ok());
        assert!(Target::parse("http://localhost:8080/me").is_ok());
        assert!(Target::parse("http://[::1]:8080/").is_ok());
        assert!(Target::parse("http://10.0.0.1:8080/me").is_err());
        assert!(Target::parse("http://example.com/me").is_err());
        assert!(Target::parse("https://127.0.0.1/me").is_err());
    }
}
