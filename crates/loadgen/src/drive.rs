//! What `login`, `refresh` and `paced` share: one [`Client`] per connection driven in a
//! closed loop (each request sent when the previous answer is in) or an open loop (each sent
//! when its [`Pacing`] says, late or not: the latency counts from that intended time, so a
//! stalled server is not hidden by the clients waiting for it, "coordinated omission"),
//! over a warm-up and a measured [`Window`]; the per-client [`Tally`], the server's CPU and
//! Redis's command counts over the window, and the latency summary with its percentile
//! spectrum ([`Latency`]) for plotting.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::bail;
use hdrhistogram::Histogram;
use redis::aio::MultiplexedConnection;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::server_side::{Scraper, SeriesDelta};
use crate::stalls::{StallReport, Watched, Watchers};
use crate::threads::{ThreadReport, ThreadWatch};

/// A latency distribution in µs: the usual percentiles plus the spectrum to plot.
///
/// Serialised flat into each result (`"p99_us": 812.0, "percentile_spectrum": [[0.0, 95.0],
/// [50.0, 240.0], [75.0, 310.0], ...]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Latency {
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    /// `[percentile, value_us]` pairs from `iter_quantiles(1)`: 0, 50, 75, 87.5, ... 100,
    /// dense toward the tail (for a log-scale "1/(1-q)" plot).
    pub percentile_spectrum: Vec<[f64; 2]>,
}

impl Latency {
    /// The summary of a histogram of µs values (see [`histogram`]).
    pub(crate) fn of(hist: &Histogram<u64>) -> Self {
        let us = |v: u64| v as f64;
        Self {
            mean_us: (hist.mean() * 10.0).round() / 10.0,
            p50_us: us(hist.value_at_quantile(0.50)),
            p90_us: us(hist.value_at_quantile(0.90)),
            p99_us: us(hist.value_at_quantile(0.99)),
            p999_us: us(hist.value_at_quantile(0.999)),
            max_us: us(hist.max()),
            percentile_spectrum: hist
                .iter_quantiles(1)
                .map(|v| [v.quantile_iterated_to() * 100.0, us(v.value_iterated_to())])
                .collect(),
        }
    }
}

/// Latencies in µs, 1 µs .. 1 h, 3 significant digits.
pub(crate) fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 3_600_000_000, 3)?)
}

/// Elapsed µs from `from` to `to` (0 when `to` is earlier).
pub(crate) fn micros(from: Instant, to: Instant) -> u64 {
    u64::try_from(to.saturating_duration_since(from).as_micros()).unwrap_or(u64::MAX)
}

/// The run's clock: load from `start`, measured from `measure_from` to `stop_at`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub start: Instant,
    pub measure_from: Instant,
    pub stop_at: Instant,
}

impl Window {
    /// Checks `duration` (0, 3600] and `warmup` [0, 600] seconds, and starts the clock now.
    pub(crate) fn begin(warmup: f64, duration: f64) -> anyhow::Result<Self> {
        let valid = duration > 0.0 && duration <= 3600.0 && (0.0..=600.0).contains(&warmup);
        if !valid {
            bail!("--duration must be in (0, 3600] and --warmup in [0, 600] seconds");
        }
        let start = Instant::now();
        let measure_from = start + Duration::from_secs_f64(warmup);
        Ok(Self {
            start,
            measure_from,
            stop_at: measure_from + Duration::from_secs_f64(duration),
        })
    }

    /// Whether `t` lies in the measured window.
    pub(crate) fn contains(&self, t: Instant) -> bool {
        t >= self.measure_from && t < self.stop_at
    }

    /// Length of the measured window, seconds.
    pub(crate) fn seconds(&self) -> f64 {
        (self.stop_at - self.measure_from).as_secs_f64()
    }
}

/// Open-loop schedule of one of `clients` clients that share `rate` sends per second: the
/// sends of all clients together are evenly spaced, 1/rate apart, and each client sends
/// every `clients/rate` seconds, client `i` starting `i/rate` after the start.
///
/// ```text
/// rate 4/s, 2 clients: client 0 at 0.00 0.50 1.00 ...; client 1 at 0.25 0.75 1.25 ...
/// ```
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pacing {
    rate: f64,
    clients: u64,
    client: u64,
}

impl Pacing {
    pub(crate) fn new(rate: f64, clients: usize, client: usize) -> anyhow::Result<Self> {
        if !(rate.is_finite() && rate > 0.0) || clients == 0 || client >= clients {
            bail!("a pacing needs a positive rate and a client among the clients");
        }
        Ok(Self {
            rate,
            clients: clients as u64,
            client: client as u64,
        })
    }

    /// When this client's `k`-th send is due, after the start.
    pub(crate) fn due(&self, k: u64) -> Duration {
        let slot = self.client.saturating_add(k.saturating_mul(self.clients));
        Duration::from_secs_f64(slot as f64 / self.rate)
    }

    /// The first `k` whose send is due at `elapsed` after the start or later.
    pub(crate) fn first_due_at_or_after(&self, elapsed: Duration) -> u64 {
        let slots = elapsed.as_secs_f64() * self.rate - self.client as f64;
        let mut k = (slots / self.clients as f64).ceil().max(0.0) as u64;
        // Float rounding: step to the exact boundary.
        while k > 0 && self.due(k - 1) >= elapsed {
            k -= 1;
        }
        while self.due(k) < elapsed {
            k += 1;
        }
        k
    }

    /// How many of this client's sends from the `k`-th on are due before `end` (after the
    /// start).
    pub(crate) fn due_before(&self, k: u64, end: Duration) -> u64 {
        self.first_due_at_or_after(end).saturating_sub(k)
    }
}

/// One client's counts; [`Tally::merge`] adds them up.
#[derive(Debug)]
pub(crate) struct Tally {
    /// Latency (µs, from the intended send time) of the 200 answers to requests due in the
    /// window.
    pub hist: Histogram<u64>,
    /// How late requests due in the window were sent (µs after their intended time): the
    /// timer's granularity, or the client still waiting for its previous answer.
    pub lag: Histogram<u64>,
    /// Answers to requests due in the window: `"200"`, `"429"`, `"401 invalid_refresh_token"`,
    /// `"error"` (transport failure or client timeout).
    pub status: BTreeMap<String, u64>,
    /// 200 answers received inside the window (the throughput).
    pub ok_in_window: u64,
    /// Sends due in the window that were skipped while the client got ready again (a new
    /// login after a failed refresh).
    pub skipped: u64,
    /// Sends due in the window that were never made: the client was still behind its
    /// schedule when the window ended.
    pub behind_at_end: u64,
    /// Connections opened.
    pub connects: u64,
    /// Each 200 answer to a request due in the window: the [`SLICE`] of the window it was
    /// due in and its latency: when in the window a tail came, and whether the machine
    /// itself had stopped then ([`crate::stalls`]).
    pub answers: Vec<Answer>,
}

/// A 200 answer: the slice of the window its request was due in, and its latency, µs (at most
/// `u32::MAX`, over an hour).
pub(crate) type Answer = (u32, u32);

/// The slices of the window in [`Tally::answers`].
pub(crate) const SLICE: Duration = Duration::from_millis(100);

/// The slowest answer of each slice, µs, in order up to the last slice with an answer (0: a
/// slice without one).
pub(crate) fn slowest_per_slice(answers: &[Answer]) -> Vec<u64> {
    let mut slowest = Vec::new();
    for &(slice, latency) in answers {
        let i = slice as usize;
        if slowest.len() <= i {
            slowest.resize(i + 1, 0);
        }
        slowest[i] = slowest[i].max(u64::from(latency));
    }
    slowest
}

impl Tally {
    pub(crate) fn new() -> anyhow::Result<Self> {
        Ok(Self {
            hist: histogram()?,
            lag: histogram()?,
            status: BTreeMap::new(),
            ok_in_window: 0,
            skipped: 0,
            behind_at_end: 0,
            connects: 0,
            answers: Vec::new(),
        })
    }

    /// Counts one answer to a request due at `due` (its intended send time), sent at `sent`
    /// and answered at `done`; `status` is `None` for a transport error. Requests due outside
    /// the window only count toward the throughput.
    pub(crate) fn record(
        &mut self,
        window: &Window,
        due: Instant,
        sent: Instant,
        done: Instant,
        status: Option<&str>,
    ) {
        let ok = status == Some("200");
        if ok && window.contains(done) {
            self.ok_in_window += 1;
        }
        if !window.contains(due) {
            return;
        }
        if ok {
            let latency = micros(due, done);
            self.hist.saturating_record(latency);
            // The window is at most an hour: 36 000 slices.
            let slice = (due - window.measure_from).as_nanos() / SLICE.as_nanos();
            self.answers.push((
                u32::try_from(slice).unwrap_or(u32::MAX),
                u32::try_from(latency).unwrap_or(u32::MAX),
            ));
        }
        self.lag.saturating_record(micros(due, sent));
        *self
            .status
            .entry(status.unwrap_or("error").to_string())
            .or_insert(0) += 1;
    }

    pub(crate) fn merge(&mut self, other: &Tally) -> anyhow::Result<()> {
        self.hist.add(&other.hist)?;
        self.lag.add(&other.lag)?;
        for (key, n) in &other.status {
            *self.status.entry(key.clone()).or_insert(0) += n;
        }
        self.ok_in_window += other.ok_in_window;
        self.skipped += other.skipped;
        self.behind_at_end += other.behind_at_end;
        self.connects += other.connects;
        self.answers.extend_from_slice(&other.answers);
        Ok(())
    }

    /// Answers with this status code (any error code).
    pub(crate) fn with_code(&self, code: u16) -> u64 {
        let code = code.to_string();
        self.status
            .iter()
            .filter(|(key, _)| key.split(' ').next() == Some(code.as_str()))
            .map(|(_, n)| n)
            .sum()
    }
}

/// Whether a client can send its next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Readiness {
    /// Ready, nothing was done.
    Ready,
    /// Ready after some work (a new login): the open loop resumes at the next due send.
    Recovered,
    /// Not ready (the work failed): tried again after a pause.
    Failed,
}

/// One connection's requests, as the drivers send them.
pub(crate) trait Client: Send + 'static {
    /// Gets ready for the next request when needed (a refresh client without a token logs
    /// in again).
    fn prepare(&mut self) -> impl Future<Output = Readiness> + Send {
        async { Readiness::Ready }
    }

    /// Sends one request: the answer's status key (`"200"`, `"401 invalid_refresh_token"`),
    /// `None` on a transport error or timeout.
    fn send(&mut self) -> impl Future<Output = Option<String>> + Send;

    /// Connections opened so far.
    fn connects(&self) -> u64;
}

/// Requests in flight over all clients, and the most at once inside the window.
#[derive(Debug, Default)]
struct InFlight {
    now: AtomicUsize,
    max: AtomicUsize,
}

/// Drives `client` until the window ends: closed loop without `pacing`, open loop with it
/// (woken by the [`pace`] thread through `wake`). The request in flight when the window ends
/// is still awaited (its latency counts).
async fn drive<C: Client>(
    mut client: C,
    window: Window,
    pacing: Option<Pacing>,
    wake: Arc<Notify>,
    in_flight: Arc<InFlight>,
) -> anyhow::Result<(C, Tally)> {
    let mut tally = Tally::new()?;
    let since_start = |t: Instant| t.saturating_duration_since(window.start);
    let mut k = 0;
    loop {
        let now = Instant::now();
        if now >= window.stop_at {
            if let Some(p) = pacing {
                let from = p.first_due_at_or_after(since_start(window.measure_from));
                tally.behind_at_end += p.due_before(k.max(from), since_start(window.stop_at));
            }
            break;
        }
        match client.prepare().await {
            Readiness::Ready => {}
            readiness => {
                if let Some(p) = pacing {
                    // Sends due meanwhile are skipped; those due in the window are counted.
                    let next = p.first_due_at_or_after(since_start(Instant::now()));
                    let first = p.first_due_at_or_after(since_start(window.measure_from));
                    let end = p.first_due_at_or_after(since_start(window.stop_at));
                    tally.skipped += next.min(end).saturating_sub(k.max(first));
                    k = k.max(next);
                }
                if readiness == Readiness::Failed {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                continue;
            }
        }
        let due = match pacing {
            Some(p) => window.start + p.due(k),
            None => Instant::now(),
        };
        if due >= window.stop_at {
            break;
        }
        while due > Instant::now() {
            // Woken at `due` by the pacer (a wake left over from a send made late returns
            // early: wait again); tokio's timer, 1 ms coarse, only as a fallback.
            let fallback = due + Duration::from_millis(20);
            let _ = tokio::time::timeout_at(fallback.into(), wake.notified()).await;
        }
        let sent = Instant::now();
        let n = in_flight.now.fetch_add(1, Ordering::Relaxed) + 1;
        if window.contains(sent) {
            in_flight.max.fetch_max(n, Ordering::Relaxed);
        }
        let status = client.send().await;
        in_flight.now.fetch_sub(1, Ordering::Relaxed);
        let done = Instant::now();
        tally.record(&window, due, sent, done, status.as_deref());
        if status.is_none() && pacing.is_none() {
            // A dead connection or server: do not spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        k += 1;
    }
    tally.connects = client.connects();
    Ok((client, tally))
}

/// The open loop's clock: a thread that sleeps (`std::thread::sleep`, late by tens of µs
/// where tokio's timer is late by up to 1 ms) until each send of the whole schedule is due,
/// 1/rate apart, and wakes the client it belongs to (send `j` is client `j mod n`'s, as in
/// [`Pacing`]), until the window ends or `stop` is set.
fn pace(window: Window, rate: f64, wakes: &[Arc<Notify>], stop: &AtomicBool) {
    let n = wakes.len() as u64;
    for j in 0u64.. {
        let due = window.start + Duration::from_secs_f64(j as f64 / rate);
        if due >= window.stop_at {
            return;
        }
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let left = due.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(10)));
        }
        if let Some(wake) = usize::try_from(j % n).ok().and_then(|i| wakes.get(i)) {
            wake.notify_one();
        }
    }
}

/// Sets the flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What [`run`] measured.
pub(crate) struct Outcome<C> {
    pub window: Window,
    pub tally: Tally,
    pub in_flight_max: usize,
    /// Server CPU seconds over the window (`--server-pid`).
    pub server_cpu_secs: Option<f64>,
    /// Redis calls per command over the window (`INFO commandstats` deltas, without the
    /// `INFO` calls that read them).
    pub redis_calls: Option<BTreeMap<String, u64>>,
    /// The server's histograms over the window (`--server-metrics`).
    pub server_histograms: Vec<SeriesDelta>,
    /// What the `--watch-cpus` watchers saw over the run.
    pub watched: Option<Watched>,
    /// What the server's threads did over the run (`--watch-threads`).
    pub threads: Option<crate::threads::Watched>,
    /// The clients, as the run left them.
    pub clients: Vec<C>,
}

/// The run's options shared by `login`, `refresh` and `paced`.
#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// Measured duration, seconds.
    #[arg(long, short = 'd', default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// PID of the server under test: its CPU over the window is reported. Repeat it for a
    /// path through several processes: their CPU time is added up.
    #[arg(long)]
    pub server_pid: Vec<u32>,
    /// Watch these CPUs (`0,1`) over the run: a thread pinned to each, real-time when
    /// allowed, notes when it wakes up 2 ms or more late, and the result says whether the
    /// slow answers came with such stalls (`machine_stalls`).
    #[arg(long, value_delimiter = ',')]
    pub watch_cpus: Vec<usize>,
    /// The server's Prometheus metrics (`http://127.0.0.1:PORT/metrics`), read at the
    /// window's edges: the result's `server_histograms` say what share of the window's
    /// requests, and of the server's own calls, took longer than each bucket bound.
    #[arg(long)]
    pub server_metrics: Option<String>,
    /// Read the `--server-pid` processes' threads every 10 ms (the kernel's run and
    /// run-queue wait per thread) and each CPU's busy time: the result's `server_threads`
    /// says, slice by slice, whether the server ran, waited for a CPU, or neither.
    #[arg(long)]
    pub watch_threads: bool,
    /// A name for this run in the output.
    #[arg(long, default_value = "")]
    pub label: String,
}

impl RunArgs {
    /// The plan for `rate` sends per second in all (0: closed loop).
    pub(crate) fn plan(&self, rate: f64) -> Plan<'_> {
        Plan {
            warmup: self.warmup,
            duration: self.duration,
            rate,
            server_pids: &self.server_pid,
            watch_cpus: &self.watch_cpus,
            server_metrics: self.server_metrics.as_deref(),
            watch_threads: self.watch_threads,
            redis: None,
        }
    }
}

/// How to run the clients.
pub(crate) struct Plan<'a> {
    pub warmup: f64,
    pub duration: f64,
    /// Total sends per second over all clients (open loop); 0: closed loop.
    pub rate: f64,
    pub server_pids: &'a [u32],
    /// CPUs to watch for stalls ([`crate::stalls`]); none: no watchers.
    pub watch_cpus: &'a [usize],
    /// The server's metrics URL ([`crate::server_side`]); none: not read.
    pub server_metrics: Option<&'a str>,
    /// Sample the server's threads ([`crate::threads`]).
    pub watch_threads: bool,
    pub redis: Option<MultiplexedConnection>,
}

/// Starts the clock, drives every client on its own task, reads the server's CPU and
/// Redis's counters at the window's edges, and adds the tallies up.
pub(crate) async fn run<C: Client>(clients: Vec<C>, plan: Plan<'_>) -> anyhow::Result<Outcome<C>> {
    if plan.rate < 0.0 || !plan.rate.is_finite() {
        bail!("--rate must be 0 (closed loop) or positive");
    }
    let n = clients.len();
    let mut redis = plan.redis;
    let scraper = plan.server_metrics.map(Scraper::new).transpose()?;
    if let Some(scraper) = &scraper {
        // Reachable before any load, not only after the warm-up.
        scraper.scrape().await?;
    }
    let watchers = match plan.watch_cpus {
        [] => None,
        cpus => Some(Watchers::start(cpus)?),
    };
    let thread_watch = plan
        .watch_threads
        .then(|| ThreadWatch::start(plan.server_pids))
        .transpose()?;
    let window = Window::begin(plan.warmup, plan.duration)?;
    let in_flight = Arc::new(InFlight::default());
    let wakes: Vec<Arc<Notify>> = (0..n).map(|_| Arc::new(Notify::new())).collect();
    let mut tasks = Vec::with_capacity(n);
    for (i, client) in clients.into_iter().enumerate() {
        let pacing = match plan.rate {
            0.0 => None,
            rate => Some(Pacing::new(rate, n, i)?),
        };
        tasks.push(tokio::spawn(drive(
            client,
            window,
            pacing,
            Arc::clone(&wakes[i]),
            Arc::clone(&in_flight),
        )));
    }
    let stop_pacer = Arc::new(AtomicBool::new(false));
    let pacer = (plan.rate > 0.0).then(|| {
        let stop = Arc::clone(&stop_pacer);
        tokio::task::spawn_blocking(move || pace(window, plan.rate, &wakes, &stop))
    });
    // However the run ends, the pacer stops (within 10 ms).
    let _stop_pacer = StopOnDrop(stop_pacer);
    tokio::time::sleep_until(window.measure_from.into()).await;
    let calls_before = match redis.as_mut() {
        Some(r) => Some(crate::redis_stats::command_calls(r).await?),
        None => None,
    };
    let cpu = ServerCpu::start(plan.server_pids);
    // After the CPU reading, so that the scrape does not shift the CPU window; a failed
    // scrape leaves the histograms out rather than losing the run.
    let histograms_before = match &scraper {
        Some(s) => scrape_or_warn(s).await,
        None => None,
    };
    tokio::time::sleep_until(window.stop_at.into()).await;
    let server_cpu_secs = cpu.used();
    let server_histograms = match (&scraper, histograms_before) {
        (Some(s), Some(before)) => match scrape_or_warn(s).await {
            Some(after) => s.window(&before, &after),
            None => Vec::new(),
        },
        _ => Vec::new(),
    };
    let redis_calls = match (redis.as_mut(), calls_before) {
        (Some(r), Some(before)) => {
            let after = crate::redis_stats::command_calls(r).await?;
            Some(
                after
                    .into_iter()
                    .filter(|(command, _)| command != "info")
                    .map(|(command, n)| {
                        let delta = n.saturating_sub(before.get(&command).copied().unwrap_or(0));
                        (command, delta)
                    })
                    .filter(|(_, delta)| *delta > 0)
                    .collect(),
            )
        }
        _ => None,
    };
    if let Some(pacer) = pacer {
        pacer.await?;
    }
    let mut tally = Tally::new()?;
    let mut clients = Vec::with_capacity(n);
    for task in tasks {
        let (client, t) = task.await??;
        tally.merge(&t)?;
        clients.push(client);
    }
    // Joined (a blocking wait of up to a nap) only once every answer is in.
    let watched = watchers.map(Watchers::stop).transpose()?;
    let threads = thread_watch.map(ThreadWatch::stop).transpose()?;
    Ok(Outcome {
        window,
        tally,
        in_flight_max: in_flight.max.load(Ordering::Relaxed),
        server_cpu_secs,
        redis_calls,
        server_histograms,
        watched,
        threads,
        clients,
    })
}

/// A scrape, or `None` with a warning on stderr.
async fn scrape_or_warn(scraper: &Scraper) -> Option<crate::server_side::Scrape> {
    match scraper.scrape().await {
        Ok(scrape) => Some(scrape),
        Err(e) => {
            eprintln!(
                "loadgen: the server's metrics were not read, so no server_histograms: {e:#}"
            );
            None
        }
    }
}

/// The part of every `login`, `refresh` and `paced` result that [`run`] measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Measured {
    /// The measured window, s.
    pub seconds: f64,
    /// 200 answers received in the window.
    pub ok: u64,
    /// 200 answers per second over the window: logins/s, refreshes/s, requests/s.
    pub ok_per_s: f64,
    /// Answers (by status and error code) to the requests due in the window; `error`: no
    /// answer (transport failure, client timeout).
    pub status: BTreeMap<String, u64>,
    /// Requests due in the window not answered 200.
    pub not_ok: u64,
    /// Most requests in flight at once during the window.
    pub in_flight_max: usize,
    /// Open loop: sends due in the window that were skipped while a client logged in again.
    pub skipped: u64,
    /// Open loop: sends due in the window never made because the client was behind.
    pub behind_at_end: u64,
    /// Latency of the 200 answers, from the intended send time.
    #[serde(flatten)]
    pub latency: Latency,
    /// How late the requests were sent (open loop: the pacer thread's and the runtime's
    /// wake-up, or a client still waiting for its previous answer), µs.
    pub send_lag_p50_us: f64,
    pub send_lag_p99_us: f64,
    /// CPU used by the server during the window, % of one core.
    pub server_cpu_pct: Option<f64>,
    /// Server CPU time per 200 answer in the window, µs.
    pub server_cpu_us_per_ok: Option<f64>,
    /// Connections opened beyond one per client.
    pub reconnects: u64,
    /// The slowest 200 answer to the requests due in each 100 ms of the window, µs, in order
    /// (0: none): whether a tail is one stall, and when.
    #[serde(default)]
    pub slowest_us_per_100ms: Vec<u64>,
    /// When the window began, ms since the Unix epoch: to set the slices beside other
    /// timestamped records (Redis's `LATENCY HISTORY`, the server's logs).
    #[serde(default)]
    pub window_start_unix_ms: u64,
    /// With `--watch-cpus`: the machine's stalls beside the answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_stalls: Option<StallReport>,
    /// With `--server-metrics`: the server's own histograms over the window (its request
    /// durations, and its calls' where it times them), as shares over each bucket bound.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_histograms: Vec<SeriesDelta>,
    /// With `--watch-threads`: the server's threads slice by slice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_threads: Option<ThreadReport>,
}

impl Measured {
    /// The summary of an [`Outcome`].
    pub(crate) fn of<C>(outcome: &Outcome<C>) -> Self {
        let t = &outcome.tally;
        let seconds = outcome.window.seconds();
        let requests: u64 = t.status.values().sum();
        let slowest = slowest_per_slice(&t.answers);
        Self {
            seconds: round(seconds, 3),
            ok: t.ok_in_window,
            ok_per_s: round(t.ok_in_window as f64 / seconds, 1),
            status: t.status.clone(),
            not_ok: requests - t.status.get("200").copied().unwrap_or(0),
            in_flight_max: outcome.in_flight_max,
            skipped: t.skipped,
            behind_at_end: t.behind_at_end,
            latency: Latency::of(&t.hist),
            send_lag_p50_us: t.lag.value_at_quantile(0.5) as f64,
            send_lag_p99_us: t.lag.value_at_quantile(0.99) as f64,
            server_cpu_pct: outcome
                .server_cpu_secs
                .map(|cpu| round(cpu / seconds * 100.0, 1)),
            server_cpu_us_per_ok: outcome
                .server_cpu_secs
                .filter(|_| t.ok_in_window > 0)
                .map(|cpu| round(cpu * 1e6 / t.ok_in_window as f64, 2)),
            reconnects: t.connects.saturating_sub(outcome.clients.len() as u64),
            server_threads: outcome
                .threads
                .as_ref()
                .map(|w| crate::threads::report(w, &outcome.window, &slowest)),
            slowest_us_per_100ms: slowest,
            window_start_unix_ms: unix_ms(outcome.window.measure_from),
            machine_stalls: outcome
                .watched
                .as_ref()
                .map(|w| crate::stalls::report(w, &outcome.window, &t.answers)),
            server_histograms: outcome.server_histograms.clone(),
        }
    }

    /// Redis calls per 200 answer (`{"evalsha": 1.0}`) and their sum, from
    /// [`Outcome::redis_calls`].
    pub(crate) fn redis_per_ok<C>(
        &self,
        outcome: &Outcome<C>,
    ) -> (Option<f64>, Option<BTreeMap<String, f64>>) {
        let Some(calls) = &outcome.redis_calls else {
            return (None, None);
        };
        if self.ok == 0 {
            return (None, None);
        }
        let per = |n: u64| round(n as f64 / self.ok as f64, 4);
        (
            Some(per(calls.values().sum())),
            Some(calls.iter().map(|(c, n)| (c.clone(), per(*n))).collect()),
        )
    }
}

/// CPU seconds of the server processes (see `--server-pid`) since a start.
struct ServerCpu {
    pids: Vec<u32>,
    start: Option<f64>,
}

impl ServerCpu {
    /// Reads the CPU time of `pids` now.
    fn start(pids: &[u32]) -> Self {
        Self {
            pids: pids.to_vec(),
            start: crate::load::servers_cpu_secs(pids),
        }
    }

    /// CPU seconds used since [`ServerCpu::start`]; `None` without PIDs or when one exited.
    fn used(&self) -> Option<f64> {
        Some(crate::load::servers_cpu_secs(&self.pids)? - self.start?)
    }
}

/// The wall-clock time of `t`, ms since the Unix epoch (0 before it).
fn unix_ms(t: Instant) -> u64 {
    let now = SystemTime::now();
    let then = match Instant::now().checked_duration_since(t) {
        Some(ago) => now.checked_sub(ago),
        None => now.checked_add(t.duration_since(Instant::now())),
    };
    then.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `x` rounded to `digits` decimals.
pub(crate) fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

/// A window measuring from 1 s to 2 s after its start, and the instant `ms` after it.
#[cfg(test)]
pub(crate) fn one_second_window() -> (Window, impl Fn(u64) -> Instant) {
    let start = Instant::now();
    let window = Window {
        start,
        measure_from: start + Duration::from_secs(1),
        stop_at: start + Duration::from_secs(2),
    };
    (window, move |ms| start + Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_clients_together_send_evenly_spaced() {
        let (rate, clients) = (400.0, 7);
        let mut times: Vec<Duration> = (0..clients)
            .flat_map(|c| {
                let p = Pacing::new(rate, clients, c).unwrap();
                (0..p.due_before(0, Duration::from_secs(2))).map(move |k| p.due(k))
            })
            .collect();
        times.sort();
        assert_eq!(times.len(), 800, "rate × seconds sends in all");
        for (j, t) in times.iter().enumerate() {
            let expected = j as f64 / rate;
            assert!(
                (t.as_secs_f64() - expected).abs() < 1e-9,
                "send {j} at {t:?}"
            );
        }
    }

    #[test]
    fn each_client_sends_every_clients_over_rate_seconds_staggered() {
        let p = Pacing::new(4.0, 2, 1).unwrap();
        let due: Vec<f64> = (0..3).map(|k| p.due(k).as_secs_f64()).collect();
        assert_eq!(due, vec![0.25, 0.75, 1.25]);
        assert!(Pacing::new(0.0, 2, 0).is_err());
        assert!(Pacing::new(1.0, 2, 2).is_err());
        assert!(Pacing::new(f64::NAN, 2, 0).is_err());
    }

    #[test]
    fn a_late_client_skips_to_the_next_due_send() {
        let p = Pacing::new(10.0, 2, 1).unwrap(); // due at 0.1, 0.3, 0.5, ...
        assert_eq!(p.first_due_at_or_after(Duration::ZERO), 0);
        assert_eq!(p.first_due_at_or_after(Duration::from_millis(100)), 0);
        assert_eq!(p.first_due_at_or_after(Duration::from_millis(101)), 1);
        assert_eq!(p.first_due_at_or_after(Duration::from_millis(450)), 2);
        assert_eq!(p.due_before(1, Duration::from_millis(500)), 1);
        assert_eq!(p.due_before(3, Duration::from_millis(500)), 0);
    }

    #[test]
    fn the_latency_summary_has_percentiles_and_a_spectrum() {
        let mut hist = histogram().unwrap();
        for us in 1..=1000 {
            hist.record(us).unwrap();
        }
        let latency = Latency::of(&hist);
        assert_eq!(latency.p50_us, 500.0);
        assert_eq!(latency.p99_us, 990.0);
        assert_eq!(latency.max_us, 1000.0);
        let spectrum = &latency.percentile_spectrum;
        assert!(spectrum.len() > 5);
        assert_eq!(spectrum.first().unwrap()[0], 0.0);
        assert_eq!(spectrum.last().unwrap(), &[100.0, 1000.0]);
        assert!(
            spectrum
                .windows(2)
                .all(|w| w[0][0] <= w[1][0] && w[0][1] <= w[1][1])
        );

        let json = serde_json::to_value(&latency).unwrap();
        for field in ["mean_us", "p50_us", "p90_us", "p99_us", "p999_us", "max_us"] {
            assert!(json[field].is_f64(), "{field}");
        }
        assert_eq!(json["percentile_spectrum"][0].as_array().unwrap().len(), 2);
        assert_eq!(serde_json::from_value::<Latency>(json).unwrap(), latency);

        let empty = Latency::of(&histogram().unwrap());
        assert!(empty.percentile_spectrum.is_empty());
        assert_eq!(empty.max_us, 0.0);
    }

    #[test]
    fn the_slowest_answer_of_each_100_ms_of_the_window_says_when_a_tail_came() {
        let (window, at) = one_second_window();
        let (mut a, mut b) = (Tally::new().unwrap(), Tally::new().unwrap());
        a.record(&window, at(900), at(900), at(1500), Some("200")); // due before the window
        a.record(&window, at(1000), at(1000), at(1001), Some("200"));
        a.record(&window, at(1050), at(1050), at(1052), Some("200"));
        b.record(&window, at(1099), at(1099), at(1100), Some("200"));
        b.record(&window, at(1310), at(1310), at(1460), Some("200")); // a 150 ms stall
        a.record(&window, at(1320), at(1320), at(1330), Some("200"));
        b.record(&window, at(1400), at(1400), at(1900), None); // no answer: not a latency
        let mut total = Tally::new().unwrap();
        total.merge(&a).unwrap();
        total.merge(&b).unwrap();
        assert_eq!(slowest_per_slice(&total.answers), [2_000, 0, 0, 150_000]);
        let outcome = Outcome {
            window,
            tally: total,
            in_flight_max: 1,
            server_cpu_secs: None,
            redis_calls: None,
            server_histograms: Vec::new(),
            watched: None,
            threads: None,
            clients: vec![()],
        };
        let json = serde_json::to_value(Measured::of(&outcome)).unwrap();
        assert_eq!(
            json["slowest_us_per_100ms"],
            serde_json::json!([2_000, 0, 0, 150_000])
        );
        // The window began a second after the test's start, on the wall clock too.
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let began = json["window_start_unix_ms"].as_i64().unwrap();
        assert!(
            (began - (now_ms + 1_000)).abs() < 200,
            "{began} against {now_ms}"
        );
    }

    #[test]
    fn the_tally_counts_requests_due_in_the_window() {
        let (window, at) = one_second_window();
        let mut tally = Tally::new().unwrap();
        tally.record(&window, at(900), at(900), at(1100), Some("200")); // throughput only
        tally.record(&window, at(1500), at(1501), at(1502), Some("200"));
        tally.record(
            &window,
            at(1600),
            at(1600),
            at(1601),
            Some("401 invalid_refresh_token"),
        );
        tally.record(&window, at(1700), at(1700), at(1800), None);
        tally.record(&window, at(1990), at(1990), at(2100), Some("200")); // latency only
        let mut total = Tally::new().unwrap();
        total.merge(&tally).unwrap();
        assert_eq!(total.ok_in_window, 2);
        assert_eq!(total.hist.len(), 2);
        assert!(total.hist.equivalent(total.hist.max(), 110_000));
        assert_eq!(total.lag.len(), 4);
        assert!(total.lag.equivalent(total.lag.max(), 1000));
        assert_eq!(total.with_code(200), 2);
        assert_eq!(total.with_code(401), 1);
        assert_eq!(total.status.get("error"), Some(&1));

        let outcome = Outcome {
            window,
            tally: total,
            in_flight_max: 3,
            server_cpu_secs: Some(0.5),
            redis_calls: Some([("evalsha".to_string(), 2)].into()),
            server_histograms: Vec::new(),
            watched: None,
            threads: None,
            clients: vec![(), ()],
        };
        let measured = Measured::of(&outcome);
        assert_eq!(
            (measured.ok, measured.ok_per_s, measured.not_ok),
            (2, 2.0, 2)
        );
        assert_eq!(measured.server_cpu_us_per_ok, Some(250_000.0));
        assert_eq!(measured.server_cpu_pct, Some(50.0));
        let (total, per_command) = measured.redis_per_ok(&outcome);
        assert_eq!(total, Some(1.0));
        assert_eq!(per_command.unwrap()["evalsha"], 1.0);
        let json = serde_json::to_value(&measured).unwrap();
        assert!(
            json["p99_us"].is_f64(),
            "the latency is flattened in: {json}"
        );
        assert!(json["percentile_spectrum"].is_array());
        assert_eq!(json["status"]["401 invalid_refresh_token"], 1);
        let back: Measured = serde_json::from_value(json).unwrap();
        assert_eq!(back.latency, measured.latency);
    }

    /// Answers at once; every `fail_every`-th request with a 401 that a new "login" (the
    /// next `prepare`) recovers from.
    struct Fake {
        sent: u64,
        fail_every: u64,
        logged_out: bool,
    }

    impl Client for Fake {
        async fn prepare(&mut self) -> Readiness {
            if std::mem::take(&mut self.logged_out) {
                Readiness::Recovered
            } else {
                Readiness::Ready
            }
        }

        async fn send(&mut self) -> Option<String> {
            self.sent += 1;
            if self.fail_every > 0 && self.sent.is_multiple_of(self.fail_every) {
                self.logged_out = true;
                return Some("401 session_revoked".into());
            }
            Some("200".into())
        }

        fn connects(&self) -> u64 {
            1
        }
    }

    fn fakes(n: usize, fail_every: u64) -> Vec<Fake> {
        (0..n)
            .map(|_| Fake {
                sent: 0,
                fail_every,
                logged_out: false,
            })
            .collect()
    }

    fn plan(rate: f64) -> Plan<'static> {
        Plan {
            warmup: 0.05,
            duration: 0.2,
            rate,
            server_pids: &[],
            watch_cpus: &[],
            server_metrics: None,
            watch_threads: false,
            redis: None,
        }
    }

    #[tokio::test]
    async fn every_send_due_in_the_window_is_answered_skipped_or_left_behind() {
        // 1000/s over 0.2 s: 200 sends due in the window, however late the timer fires.
        for fail_every in [0, 7] {
            let outcome = run(fakes(4, fail_every), plan(1000.0)).await.unwrap();
            let t = &outcome.tally;
            let answered: u64 = t.status.values().sum();
            assert_eq!(
                answered + t.skipped + t.behind_at_end,
                200,
                "{:?}",
                t.status
            );
            assert!(outcome.in_flight_max <= 4);
            let m = Measured::of(&outcome);
            assert_eq!(m.reconnects, 0);
            assert_eq!(m.ok, t.ok_in_window);
            if fail_every > 0 {
                assert!(t.with_code(401) > 0);
            }
        }
    }

    #[tokio::test]
    async fn the_closed_loop_sends_back_to_back() {
        let outcome = run(fakes(2, 0), plan(0.0)).await.unwrap();
        let t = &outcome.tally;
        assert!(t.ok_in_window > 0);
        assert_eq!((t.skipped, t.behind_at_end), (0, 0));
        assert_eq!(t.with_code(200), t.hist.len());
        assert!(run(fakes(1, 0), plan(-1.0)).await.is_err());
    }
}
