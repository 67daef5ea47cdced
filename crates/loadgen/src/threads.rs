//! `--watch-threads`: what the server's threads did in each 100 ms slice of the window, from
//! the kernel's own accounting, sampled every 10 ms.
//!
//! Each thread's `/proc/<pid>/task/<tid>/schedstat` gives the time it ran and the time it
//! waited runnable on a run queue (the kernel's `sched_info`), and `/proc/stat` the time each
//! CPU was busy, whoever ran. So a slow slice reads as one of:
//!
//! - the server's threads waited to run (`server_wait_ms` up): something else had its CPU;
//! - they ran more than usual (`server_run_ms` up): the server itself had more to do;
//! - neither: they were not runnable, i.e. waiting for something outside (a socket, a lock
//!   held elsewhere, a timer).
//!
//! `others_run_ms` is each CPU's busy time (`/proc/stat`, in ticks of 10 ms) less the
//! server's run time on it (each thread's run between two samples counted on the CPU it was
//! last seen on): the load generator, Redis, the watchers, and whatever else the machine ran.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::drive::{SLICE, Window, round};

/// How often the threads are read.
const PERIOD: Duration = Duration::from_millis(10);

/// A slice counts as slow above this (its slowest answer), as in [`crate::stalls`].
const SLOW_US: u32 = crate::stalls::SLOW_US;

/// One reading of one thread: (pid, tid), its name group, ns run, ns waited, last CPU.
#[derive(Debug, Clone)]
struct ThreadReading {
    id: (u32, u32),
    group: String,
    run_ns: u64,
    wait_ns: u64,
    cpu: usize,
}

/// One reading of everything.
#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    threads: Vec<ThreadReading>,
    /// Busy ticks per CPU (`/proc/stat`: all but idle and iowait).
    cpu_busy_ticks: BTreeMap<usize, u64>,
    /// Every [`PROCESS_EVERY`]th sample: every process's name and CPU ticks (user and system).
    processes: Option<Processes>,
}

/// Every process of the machine: its name and CPU ticks, by pid.
type Processes = HashMap<u32, (String, u64)>;

/// How often, in samples, every process of the machine is read too (100 ms): the slices
/// name what else ran.
const PROCESS_EVERY: usize = 10;

/// How many of the other processes each slice names.
const BUSIEST: usize = 3;

/// The sampler thread; [`ThreadWatch::stop`] joins it.
pub(crate) struct ThreadWatch {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Vec<Sample>>>,
}

impl ThreadWatch {
    pub(crate) fn start(pids: &[u32]) -> anyhow::Result<Self> {
        if pids.is_empty() {
            anyhow::bail!("--watch-threads needs --server-pid");
        }
        let pids = pids.to_vec();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("loadgen-threads".into())
            .spawn(move || {
                let mut samples = Vec::new();
                let mut names = HashMap::new();
                let mut n = 0;
                while !flag.load(Ordering::Relaxed) {
                    samples.push(sample(&pids, &mut names, n % PROCESS_EVERY == 0));
                    n += 1;
                    std::thread::sleep(PERIOD);
                }
                samples.push(sample(&pids, &mut names, true));
                samples
            })?;
        Ok(Self {
            stop,
            handle: Some(handle),
        })
    }

    pub(crate) fn stop(mut self) -> anyhow::Result<Watched> {
        self.stop.store(true, Ordering::Relaxed);
        let samples = self
            .handle
            .take()
            .map(JoinHandle::join)
            .transpose()
            .map_err(|_| anyhow::anyhow!("the thread sampler panicked"))?
            .unwrap_or_default();
        Ok(Watched { samples })
    }
}

impl Drop for ThreadWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The samples of a run.
#[derive(Debug, Default)]
pub(crate) struct Watched {
    samples: Vec<Sample>,
}

fn sample(pids: &[u32], names: &mut HashMap<(u32, u32), String>, processes: bool) -> Sample {
    let at = Instant::now();
    let mut threads = Vec::new();
    for &pid in pids {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let Some(tid) = task
                .file_name()
                .to_str()
                .and_then(|t| t.parse::<u32>().ok())
            else {
                continue;
            };
            let dir = task.path();
            let Some((run_ns, wait_ns)) = std::fs::read_to_string(dir.join("schedstat"))
                .ok()
                .and_then(|s| parse_schedstat(&s))
            else {
                continue;
            };
            let cpu = std::fs::read_to_string(dir.join("stat"))
                .ok()
                .and_then(|s| last_cpu(&s))
                .unwrap_or(usize::MAX);
            let group = names
                .entry((pid, tid))
                .or_insert_with(|| {
                    std::fs::read_to_string(dir.join("comm"))
                        .map(|c| group_of(c.trim()))
                        .unwrap_or_default()
                })
                .clone();
            threads.push(ThreadReading {
                id: (pid, tid),
                group,
                run_ns,
                wait_ns,
                cpu,
            });
        }
    }
    let cpu_busy_ticks = std::fs::read_to_string("/proc/stat")
        .map(|s| parse_cpu_busy(&s))
        .unwrap_or_default();
    Sample {
        at,
        threads,
        cpu_busy_ticks,
        processes: processes.then(every_process),
    }
}

/// Every process's name and CPU ticks (`/proc/<pid>/stat`), kernel threads included.
fn every_process() -> Processes {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    dir.flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            Some((pid, process_ticks(&stat)?))
        })
        .collect()
}

/// A process's name and its user plus system ticks (fields 2, 14 and 15 of its `stat`).
fn process_ticks(stat: &str) -> Option<(String, u64)> {
    let name = &stat[stat.find('(')? + 1..stat.rfind(')')?];
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((name.to_owned(), user + system))
}

/// `<ns run> <ns waited on a run queue> <slices>`.
fn parse_schedstat(text: &str) -> Option<(u64, u64)> {
    let mut fields = text.split_whitespace();
    Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
}

/// Field 39 of `/proc/<pid>/task/<tid>/stat`, the CPU the thread last ran on (after the
/// name in parentheses, which may hold spaces).
fn last_cpu(stat: &str) -> Option<usize> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Fields from 3 (the state) on; field 39 is the 37th of them.
    after_name.split_whitespace().nth(36)?.parse().ok()
}

/// Busy ticks per CPU from `/proc/stat`'s `cpuN` lines: every column but idle and iowait
/// (and guest time, already in user).
fn parse_cpu_busy(text: &str) -> BTreeMap<usize, u64> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let cpu: usize = fields.next()?.strip_prefix("cpu")?.parse().ok()?;
            let ticks: Vec<u64> = fields.filter_map(|f| f.parse().ok()).collect();
            // user nice system idle iowait irq softirq steal guest guest_nice: not steal,
            // the time the host took (this project's VMs report none).
            let busy = ticks
                .iter()
                .take(7)
                .enumerate()
                .filter(|(i, _)| *i != 3 && *i != 4);
            Some((cpu, busy.map(|(_, t)| t).sum()))
        })
        .collect()
}

/// A thread's name without its number: `argon2-1` → `argon2`, `tokio-runtime-w` as it is.
fn group_of(comm: &str) -> String {
    let trimmed = comm.trim_end_matches(|c: char| c.is_ascii_digit());
    let trimmed = trimmed.trim_end_matches(['-', '_', ' ', '#']);
    if trimmed.is_empty() {
        comm.to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// What the server's threads did, slice by slice, beside the answers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct ThreadReport {
    /// Every 100 ms slice of the window, in order.
    pub(crate) slices: Vec<ThreadSlice>,
    /// Medians over the slices whose slowest answer took over 5 ms.
    pub(crate) slow: Option<SliceMedians>,
    /// Medians over the other slices.
    pub(crate) usual: Option<SliceMedians>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct ThreadSlice {
    pub(crate) index: usize,
    /// The slowest answer to the requests due in the slice, ms.
    pub(crate) slowest_ms: f64,
    /// The server's threads: time run, and time waited runnable, ms.
    pub(crate) server_run_ms: f64,
    pub(crate) server_wait_ms: f64,
    /// The same by thread name (`tokio-runtime-w`, `argon2`, ...): [run, wait] ms.
    pub(crate) groups: BTreeMap<String, [f64; 2]>,
    /// Per CPU (`"0"`, `"1"`, ...): its busy time less the server's run on it, ms (10 ms
    /// ticks).
    pub(crate) others_run_ms: BTreeMap<String, f64>,
    /// The other processes that ran most in the slice (every process is read every 100 ms
    /// or so, and what it ran between two readings is shared among the slices that interval
    /// covers): `[name, ms]`, at most three, busiest first.
    #[serde(default)]
    pub(crate) busiest_others: Vec<(String, f64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct SliceMedians {
    pub(crate) slices: usize,
    pub(crate) server_run_ms: f64,
    pub(crate) server_wait_ms: f64,
    /// Summed over the CPUs.
    pub(crate) others_run_ms: f64,
}

/// Sets the samples beside the answers: one [`ThreadSlice`] per slice of the window.
/// `slowest` is the slowest answer of each slice, µs ([`crate::drive::slowest_per_slice`]).
pub(crate) fn report(watched: &Watched, window: &Window, slowest: &[u64]) -> ThreadReport {
    let ticks_ms = 1_000.0 / clock_ticks_per_second();
    let mut slices: Vec<ThreadSlice> = (0..slowest.len())
        .map(|index| ThreadSlice {
            index,
            slowest_ms: round(slowest[index] as f64 / 1_000.0, 3),
            server_run_ms: 0.0,
            server_wait_ms: 0.0,
            groups: BTreeMap::new(),
            others_run_ms: BTreeMap::new(),
            busiest_others: Vec::new(),
        })
        .collect();
    let n = slices.len();
    let server: HashSet<u32> = watched
        .samples
        .iter()
        .flat_map(|s| s.threads.iter().map(|t| t.id.0))
        .collect();
    let snapshots: Vec<(Instant, &Processes)> = watched
        .samples
        .iter()
        .filter_map(|s| Some((s.at, s.processes.as_ref()?)))
        .collect();
    let mut others: Vec<HashMap<&str, f64>> = vec![HashMap::new(); n];
    for pair in snapshots.windows(2) {
        let ((from, before), (to, after)) = (pair[0], pair[1]);
        let covered = shares(window, from, to, n);
        for (pid, (name, ticks)) in after {
            let was = before.get(pid).map_or(0, |(_, t)| *t);
            let ms = ticks.saturating_sub(was) as f64 * ticks_ms;
            if ms > 0.0 && !server.contains(pid) {
                for &(i, share) in &covered {
                    *others[i].entry(name.as_str()).or_default() += ms * share;
                }
            }
        }
    }
    for (slice, ran) in slices.iter_mut().zip(others) {
        let mut ran: Vec<(String, f64)> = ran
            .into_iter()
            .map(|(name, ms)| (name.to_owned(), round(ms, 1)))
            .collect();
        ran.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        ran.truncate(BUSIEST);
        slice.busiest_others = ran;
    }
    for pair in watched.samples.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        let covered = shares(window, before.at, after.at, n);
        if covered.is_empty() {
            continue;
        }
        let earlier: HashMap<(u32, u32), &ThreadReading> =
            before.threads.iter().map(|t| (t.id, t)).collect();
        let mut server_on_cpu: BTreeMap<usize, f64> = BTreeMap::new();
        for thread in &after.threads {
            // A thread born between the samples counts from 0.
            let (run0, wait0) = earlier
                .get(&thread.id)
                .map_or((0, 0), |t| (t.run_ns, t.wait_ns));
            let run = thread.run_ns.saturating_sub(run0) as f64 / 1e6;
            let wait = thread.wait_ns.saturating_sub(wait0) as f64 / 1e6;
            *server_on_cpu.entry(thread.cpu).or_default() += run;
            for &(i, share) in &covered {
                let slice = &mut slices[i];
                slice.server_run_ms += run * share;
                slice.server_wait_ms += wait * share;
                let group = slice.groups.entry(thread.group.clone()).or_insert([0.0; 2]);
                group[0] += run * share;
                group[1] += wait * share;
            }
        }
        for (cpu, busy) in &after.cpu_busy_ticks {
            let ticks =
                busy.saturating_sub(before.cpu_busy_ticks.get(cpu).copied().unwrap_or(*busy));
            let others = ticks as f64 * ticks_ms - server_on_cpu.get(cpu).copied().unwrap_or(0.0);
            for &(i, share) in &covered {
                *slices[i].others_run_ms.entry(cpu.to_string()).or_default() += others * share;
            }
        }
    }
    for slice in &mut slices {
        slice.server_run_ms = round(slice.server_run_ms, 2);
        slice.server_wait_ms = round(slice.server_wait_ms, 2);
        for v in slice.groups.values_mut() {
            *v = [round(v[0], 2), round(v[1], 2)];
        }
        for v in slice.others_run_ms.values_mut() {
            *v = round(*v, 1);
        }
    }
    let slow_ms = f64::from(SLOW_US) / 1_000.0;
    let (slow, usual): (Vec<&ThreadSlice>, Vec<&ThreadSlice>) =
        slices.iter().partition(|s| s.slowest_ms > slow_ms);
    ThreadReport {
        slow: medians(&slow),
        usual: medians(&usual),
        slices,
    }
}

/// The slices of the window (of `n`) that the interval `[from, to)` covers, each with its
/// share of the interval; the part before the window, or past its last slice, has none.
/// A reading late by more than a period spreads what it read over the slices it spans.
fn shares(window: &Window, from: Instant, to: Instant, n: usize) -> Vec<(usize, f64)> {
    let span = to.saturating_duration_since(from).as_secs_f64();
    let start = from
        .saturating_duration_since(window.measure_from)
        .as_secs_f64();
    let end = to
        .saturating_duration_since(window.measure_from)
        .as_secs_f64();
    let width = SLICE.as_secs_f64();
    let mut out = Vec::new();
    if span <= 0.0 {
        return out;
    }
    let mut i = (start / width) as usize;
    while i < n && (i as f64) * width < end {
        let lo = (i as f64 * width).max(start);
        let hi = ((i + 1) as f64 * width).min(end);
        if hi > lo {
            out.push((i, (hi - lo) / span));
        }
        i += 1;
    }
    out
}

fn medians(slices: &[&ThreadSlice]) -> Option<SliceMedians> {
    if slices.is_empty() {
        return None;
    }
    let median = |f: &dyn Fn(&ThreadSlice) -> f64| {
        let mut v: Vec<f64> = slices.iter().map(|s| f(s)).collect();
        v.sort_by(f64::total_cmp);
        round(v[v.len() / 2], 2)
    };
    Some(SliceMedians {
        slices: slices.len(),
        server_run_ms: median(&|s| s.server_run_ms),
        server_wait_ms: median(&|s| s.server_wait_ms),
        others_run_ms: median(&|s| s.others_run_ms.values().sum()),
    })
}

#[cfg(target_os = "linux")]
fn clock_ticks_per_second() -> f64 {
    rustix::param::clock_ticks_per_second() as f64
}

#[cfg(not(target_os = "linux"))]
fn clock_ticks_per_second() -> f64 {
    100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_files_are_read_for_run_wait_and_cpu() {
        assert_eq!(
            parse_schedstat("7925658141 1529004480 39893\n"),
            Some((7_925_658_141, 1_529_004_480))
        );
        assert_eq!(parse_schedstat("garbage"), None);
        // A name with spaces and a parenthesis; field 39 is 1.
        let stat = "42 (tokio (w) 1) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 0 1 0 0";
        assert_eq!(last_cpu(stat), Some(1));
        let proc_stat = "cpu  10 0 10 100 5 0 0 0 0 0\ncpu0 1 2 3 100 50 4 5 6 7 0\ncpu1 0 0 0 9 0 0 0 0 0 0\nintr 1\n";
        let busy = parse_cpu_busy(proc_stat);
        assert_eq!(busy, BTreeMap::from([(0, 15), (1, 0)]));
        assert_eq!(group_of("argon2-1"), "argon2");
        let stat = "7 (beam (x)) S 1 2 3 4 5 6 7 8 9 10 120 30 0 0";
        assert_eq!(process_ticks(stat), Some(("beam (x)".into(), 150)));
        assert_eq!(group_of("tokio-runtime-w"), "tokio-runtime-w");
        assert_eq!(group_of("12"), "12");
    }

    fn reading(tid: u32, run_ms: u64, wait_ms: u64, cpu: usize) -> ThreadReading {
        ThreadReading {
            id: (1, tid),
            group: if tid == 1 {
                "main".into()
            } else {
                "worker".into()
            },
            run_ns: run_ms * 1_000_000,
            wait_ns: wait_ms * 1_000_000,
            cpu,
        }
    }

    #[test]
    fn each_slice_gets_the_threads_run_and_wait_and_what_else_ran_on_their_cpus() {
        let window = Window::begin(0.0, 1.0).unwrap();
        let t0 = window.measure_from;
        let ticks = |cpu0: u64| BTreeMap::from([(0, cpu0), (1, 0)]);
        let per_tick = (1_000.0 / clock_ticks_per_second()) as u64;
        let samples = vec![
            Sample {
                at: t0,
                threads: vec![reading(1, 0, 0, 0)],
                cpu_busy_ticks: ticks(0),
                processes: None,
            },
            // Slice 0: the main thread runs 40 ms, and a worker is born having run 10 ms.
            Sample {
                at: t0 + Duration::from_millis(100),
                threads: vec![reading(1, 40, 1, 0), reading(2, 10, 0, 0)],
                cpu_busy_ticks: ticks(90 / per_tick),
                processes: Some(HashMap::from([
                    (1, ("auth-center".into(), 0)),
                    (7, ("beam.smp".into(), 3)),
                ])),
            },
            // Slice 1: the main thread waits 30 ms to run, runs 5.
            Sample {
                at: t0 + Duration::from_millis(200),
                threads: vec![reading(1, 45, 31, 0), reading(2, 10, 0, 1)],
                cpu_busy_ticks: ticks(190 / per_tick),
                // Another process ran 80 ms, a new one 10; the server's own pid is not named.
                processes: Some(HashMap::from([
                    (1, ("auth-center".into(), 100)),
                    (7, ("beam.smp".into(), 3 + 80 / per_tick)),
                    (8, ("kworker/0:1".into(), 10 / per_tick)),
                ])),
            },
        ];
        // The slowest answer of slice 1 took 9 ms.
        let report = report(&Watched { samples }, &window, &[800, 9_000]);
        assert_eq!(report.slices.len(), 2);
        let (a, b) = (&report.slices[0], &report.slices[1]);
        assert_eq!((a.server_run_ms, a.server_wait_ms), (50.0, 1.0));
        assert_eq!(a.groups["worker"], [10.0, 0.0]);
        assert_eq!(a.others_run_ms["0"], 40.0);
        assert_eq!(
            (b.server_run_ms, b.server_wait_ms, b.slowest_ms),
            (5.0, 30.0, 9.0)
        );
        assert_eq!(b.others_run_ms["0"], 95.0);
        assert!(a.busiest_others.is_empty());
        assert_eq!(
            b.busiest_others,
            [
                ("beam.smp".to_owned(), 80.0),
                ("kworker/0:1".to_owned(), 10.0)
            ]
        );
        assert_eq!(
            report.slow.as_ref().map(|m| (m.slices, m.server_wait_ms)),
            Some((1, 30.0))
        );
        assert_eq!(report.usual.as_ref().map(|m| m.server_run_ms), Some(50.0));
        // As the table reads it back.
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            serde_json::from_value::<ThreadReport>(json).unwrap(),
            report
        );
    }

    #[test]
    fn a_reading_interval_over_two_slices_is_shared_between_them_by_time() {
        let window = Window::begin(0.0, 1.0).unwrap();
        let t0 = window.measure_from;
        let samples = vec![
            Sample {
                at: t0 + Duration::from_millis(50),
                threads: vec![reading(1, 0, 0, 0)],
                cpu_busy_ticks: BTreeMap::new(),
                processes: None,
            },
            // A late reading: 100 ms that straddle slices 0 and 1 evenly.
            Sample {
                at: t0 + Duration::from_millis(150),
                threads: vec![reading(1, 20, 60, 0)],
                cpu_busy_ticks: BTreeMap::new(),
                processes: None,
            },
        ];
        let report = report(&Watched { samples }, &window, &[800, 800]);
        let (a, b) = (&report.slices[0], &report.slices[1]);
        assert_eq!((a.server_run_ms, a.server_wait_ms), (10.0, 30.0));
        assert_eq!((b.server_run_ms, b.server_wait_ms), (10.0, 30.0));
    }

    #[test]
    fn the_sampler_reads_this_process_own_threads() {
        let watch = ThreadWatch::start(&[std::process::id()]).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        let watched = watch.stop().unwrap();
        assert!(watched.samples.len() >= 2);
        let last = watched.samples.last().unwrap();
        assert!(last.threads.iter().any(|t| t.group == "loadgen-threads"));
        assert!(!last.cpu_busy_ticks.is_empty());
        assert!(ThreadWatch::start(&[]).is_err());
    }
}
