//! `--watch-cpus`: whether a run's tail came while the machine itself had stopped.
//!
//! One thread per listed CPU, pinned to it at the real-time priority (`SCHED_FIFO` 1) when
//! that is allowed, sleeps [`NAP`] at a time and notes every wake-up that comes [`STALL`] or
//! more late: time the machine did not run a thread that had every right to the core (on a
//! virtual machine, mostly the host not running the virtual CPU; a real-time thread waits
//! for no other thread of the guest). [`report`] then sets these stalls beside the run's
//! answers, [`SLICE`] by slice: how many slow slices came with a stall, and the p99 of the
//! answers due in slices no stall touched, so that a missed tail target can be told apart
//! as the machine's or the software's. Every tenth wake-up a watcher also times a fixed unit
//! of work ([`crate::pace`]), so that a slice in which the machine ran a CPU slower without
//! stopping it is told apart too; a stall that falls inside such a unit (about 1 % of the
//! time) is counted as a stall when the unit took 2 ms or more.
//!
//! The watchers cost their cores a wake-up per millisecond each: on the benchmarks' KVM guest,
//! a 1 ms sleep loop alone on an idle vCPU used 26–38 µs of CPU per wake-up, 3–4 % of the
//! core. And a stop of L ms shows as L − 1 to L ms late, depending on where in a nap it
//! falls, so a stop just over [`STALL`] may go uncounted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::drive::{Answer, SLICE, Window, histogram, round, slowest_per_slice};
use crate::hiccups::lateness;
use crate::pace::{Chase, SLOWER, Unit, median_unit_us, pace_per_slice};

/// How long a watcher sleeps between two clock reads.
const NAP: Duration = Duration::from_millis(1);
/// Late wake-ups from this long on are the stalls a watcher keeps and the report counts.
pub(crate) const STALL: Duration = Duration::from_millis(2);
/// An answer slower than this makes its slice slow: issue 14's refresh tail bound.
pub(crate) const SLOW_US: u32 = 5_000;
/// At most this many stalls are kept per watcher (the rest are counted as dropped), and
/// listed in a report.
const KEPT: usize = 100_000;
const LISTED: usize = 500;

/// A late wake-up: the watcher on `cpu` should have run at `at` and ran `late` after it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Stall {
    pub cpu: usize,
    pub at: Instant,
    pub late: Duration,
}

/// What the watchers saw.
#[derive(Debug, Default)]
pub(crate) struct Watched {
    pub cpus: Vec<usize>,
    /// The priority each watcher got, in the order of `cpus`.
    pub priorities: Vec<String>,
    pub wakeups: u64,
    /// Wake-ups on another CPU than the watcher's own (0 unless pinning did not hold).
    pub off_cpu_wakeups: u64,
    pub stalls: Vec<Stall>,
    /// Stalls not kept, past [`KEPT`] per watcher.
    pub dropped: u64,
    /// The timed units of work ([`crate::pace`]), at most [`KEPT`] per watcher.
    pub units: Vec<Unit>,
}

/// The running watchers; [`Watchers::stop`] ends them and gathers what they saw, and
/// dropping them ends them too.
pub(crate) struct Watchers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Watched>>,
}

impl Watchers {
    /// Starts one watcher pinned to each of `cpus` (a CPU listed twice is watched once), and
    /// returns once each is pinned: a CPU that cannot be watched fails here, before any load.
    pub(crate) fn start(cpus: &[usize]) -> anyhow::Result<Self> {
        let mut cpus = cpus.to_vec();
        cpus.sort_unstable();
        cpus.dedup();
        let mut watchers = Self {
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::with_capacity(cpus.len()),
        };
        for cpu in cpus {
            let stop = Arc::clone(&watchers.stop);
            let (pinned_tx, pinned_rx) = std::sync::mpsc::channel();
            let thread = std::thread::Builder::new()
                .name(format!("watch-cpu{cpu}"))
                .spawn(move || match pin_to(cpu) {
                    Ok(()) => {
                        let _ = pinned_tx.send(Ok(()));
                        watch(cpu, &stop)
                    }
                    Err(e) => {
                        let _ = pinned_tx.send(Err(e));
                        Watched::default()
                    }
                })
                .context("start a watcher thread")?;
            watchers.threads.push(thread);
            // On an error the watchers started so far end when `watchers` is dropped.
            pinned_rx
                .recv()
                .map_err(|_| anyhow::anyhow!("a watcher thread ended before pinning itself"))?
                .with_context(|| format!("pin a watcher to cpu {cpu}"))?;
        }
        Ok(watchers)
    }

    /// Stops the watchers (each within a nap) and gathers what they saw.
    pub(crate) fn stop(mut self) -> anyhow::Result<Watched> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Watched::default();
        for thread in std::mem::take(&mut self.threads) {
            let one = thread
                .join()
                .map_err(|_| anyhow::anyhow!("a watcher thread panicked"))?;
            all.cpus.extend(one.cpus);
            all.priorities.extend(one.priorities);
            all.wakeups += one.wakeups;
            all.off_cpu_wakeups += one.off_cpu_wakeups;
            all.stalls.extend(one.stalls);
            all.dropped += one.dropped;
            all.units.extend(one.units);
        }
        all.stalls.sort_by_key(|s| s.at);
        Ok(all)
    }
}

impl Drop for Watchers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Watched {
    /// Keeps a timed unit of work. A unit is well under a millisecond: one that took a
    /// stall's length was stopped, and counts as a stall too.
    fn note_unit(&mut self, unit: Unit) {
        self.units.push(unit);
        if unit.took >= STALL && self.stalls.len() < KEPT {
            self.stalls.push(Stall {
                cpu: unit.cpu,
                at: unit.at,
                late: unit.took,
            });
        }
    }
}

/// One watcher, pinned to `cpu`: naps until `stop`, and keeps its late wake-ups.
fn watch(cpu: usize, stop: &AtomicBool) -> Watched {
    let priority = raise_priority();
    let mut watched = Watched {
        cpus: vec![cpu],
        priorities: vec![priority],
        ..Watched::default()
    };
    let mut chase = Chase::new(cpu as u64 + 1);
    let mut previous = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(NAP);
        let now = Instant::now();
        watched.wakeups += 1;
        if current_cpu() != Some(cpu) {
            watched.off_cpu_wakeups += 1;
        }
        let late = lateness(now.duration_since(previous), Some(NAP));
        if late >= STALL {
            if watched.stalls.len() < KEPT {
                watched.stalls.push(Stall {
                    cpu,
                    at: previous + NAP,
                    late,
                });
            } else {
                watched.dropped += 1;
            }
        }
        previous = now;
        if watched.wakeups.is_multiple_of(crate::pace::EVERY) && watched.units.len() < KEPT {
            let took = chase.unit();
            watched.note_unit(Unit { cpu, at: now, took });
            // The next nap starts after the unit.
            previous = Instant::now();
        }
    }
    watched
}

#[cfg(target_os = "linux")]
fn current_cpu() -> Option<usize> {
    Some(rustix::thread::sched_getcpu())
}

#[cfg(not(target_os = "linux"))]
fn current_cpu() -> Option<usize> {
    None
}

#[cfg(target_os = "linux")]
fn pin_to(cpu: usize) -> std::io::Result<()> {
    if cpu >= rustix::thread::CpuSet::MAX_CPU {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "no such cpu",
        ));
    }
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    Ok(rustix::thread::sched_setaffinity(None, &set)?)
}

#[cfg(not(target_os = "linux"))]
fn pin_to(_cpu: usize) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "watching a cpu needs Linux",
    ))
}

/// `SCHED_FIFO` 1 when allowed (root, or `RLIMIT_RTPRIO` ≥ 1); says what the thread got.
fn raise_priority() -> String {
    use thread_priority::{
        RealtimeThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    match set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Min,
        ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo),
    ) {
        Ok(()) => "SCHED_FIFO 1".into(),
        Err(e) => format!("SCHED_OTHER (SCHED_FIFO refused: {e:?})"),
    }
}

/// The stalls of a run beside its answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StallReport {
    pub cpus: Vec<usize>,
    pub priorities: Vec<String>,
    /// The watchers' wake-ups over the whole run (warm-up included), all CPUs.
    pub wakeups: u64,
    /// Stalls (late wake-ups of at least 2 ms) that overlap the window, all CPUs; and stalls
    /// of the whole run not kept (past 100 000 per watcher).
    pub stalls: u64,
    #[serde(default)]
    pub dropped: u64,
    pub longest_stall_us: f64,
    /// The share of the window's time on the watched CPUs lost in those stalls.
    pub stalled_fraction: f64,
    /// The window's 100 ms slices, and those a stall touched: from the slice of the moment
    /// 6 ms before the stall was seen to begin (it may have begun up to a nap earlier, and a
    /// request due up to 5 ms before it can be slow because of it) to the one after the slice
    /// it ended in (an open-loop backlog drains after a stall).
    pub slices: usize,
    pub touched_slices: usize,
    /// Slices with an answer slower than 5 ms, and how many of them a stall touched.
    pub slow_slices: usize,
    pub slow_slices_touched: usize,
    /// The 200 answers to requests due in slices no stall touched, and their p99, µs.
    pub untouched_answers: u64,
    pub untouched_p99_us: Option<f64>,
    /// The first stalls: `[cpu, ms into the window (negative: before it), µs late]`.
    pub list: Vec<(usize, f64, f64)>,
    /// The CPUs' pace ([`crate::pace`]): units of work timed in the window, all CPUs, and
    /// each CPU's median unit time in µs (in the order of `cpus`), to compare runs.
    #[serde(default)]
    pub pace_units: u64,
    #[serde(default)]
    pub pace_median_us: Vec<f64>,
    /// Per slice: the slowest CPU's median unit time over that CPU's median over the window
    /// (1.0: its usual pace; 0: no unit timed in the slice).
    #[serde(default)]
    pub pace_per_slice: Vec<f64>,
    /// Slices that ran 1.2 times slower than usual or more, and how many of the slow slices
    /// did.
    #[serde(default)]
    pub slices_paced_slow: usize,
    #[serde(default)]
    pub slow_slices_paced_slow: usize,
    /// Slow slices with neither a stall nor a slower pace.
    #[serde(default)]
    pub slow_slices_unexplained: usize,
}

impl StallReport {
    /// Whether every watcher got the real-time class: if not, a "stall" may also be other
    /// threads of the guest running.
    pub(crate) fn real_time(&self) -> bool {
        self.priorities.iter().all(|p| p.starts_with("SCHED_FIFO"))
    }
}

/// Sets the watchers' stalls beside `answers` (slice of the window, latency µs).
pub(crate) fn report(watched: &Watched, window: &Window, answers: &[Answer]) -> StallReport {
    let span = window.stop_at.duration_since(window.measure_from);
    let slices = span.as_nanos().div_ceil(SLICE.as_nanos()).max(1);
    let slices = usize::try_from(slices).unwrap_or(usize::MAX);
    let slice_of = |t: Instant| {
        let i = t.saturating_duration_since(window.measure_from).as_nanos() / SLICE.as_nanos();
        usize::try_from(i).unwrap_or(usize::MAX).min(slices - 1)
    };
    let stalls: Vec<&Stall> = watched
        .stalls
        .iter()
        .filter(|s| s.late >= STALL && s.at < window.stop_at && s.at + s.late > window.measure_from)
        .collect();
    let mut touched = vec![false; slices];
    let lead = NAP + Duration::from_micros(u64::from(SLOW_US));
    for s in &stalls {
        let first = slice_of(s.at.checked_sub(lead).unwrap_or(s.at));
        let last = (slice_of(s.at + s.late) + 1).min(slices - 1);
        for t in &mut touched[first..=last] {
            *t = true;
        }
    }
    let mut clean = histogram().ok();
    let mut untouched_answers = 0;
    for &(slice, latency) in answers {
        let Some(i) = usize::try_from(slice).ok().filter(|&i| i < slices) else {
            continue;
        };
        if !touched[i] {
            untouched_answers += 1;
            if let Some(h) = clean.as_mut() {
                h.saturating_record(u64::from(latency));
            }
        }
    }
    let slowest = slowest_per_slice(answers);
    let slow: Vec<usize> = (0..slices.min(slowest.len()))
        .filter(|&i| slowest[i] > u64::from(SLOW_US))
        .collect();
    let lost: Duration = stalls
        .iter()
        .map(|s| {
            let from = s.at.max(window.measure_from);
            (s.at + s.late)
                .min(window.stop_at)
                .saturating_duration_since(from)
        })
        .sum();
    let cpu_time = span.as_secs_f64() * watched.cpus.len().max(1) as f64;
    let pace: Vec<f64> = pace_per_slice(&watched.units, window, slices)
        .into_iter()
        .map(|p| round(p, 3))
        .collect();
    let paced_slow = |i: usize| pace.get(i).is_some_and(|&p| p >= SLOWER);
    StallReport {
        cpus: watched.cpus.clone(),
        priorities: watched.priorities.clone(),
        wakeups: watched.wakeups,
        stalls: stalls.len() as u64,
        dropped: watched.dropped,
        longest_stall_us: stalls
            .iter()
            .map(|s| round(s.late.as_secs_f64() * 1e6, 0))
            .fold(0.0, f64::max),
        stalled_fraction: round(lost.as_secs_f64() / cpu_time, 6),
        slices,
        touched_slices: touched.iter().filter(|&&t| t).count(),
        slow_slices: slow.len(),
        slow_slices_touched: slow.iter().filter(|&&i| touched[i]).count(),
        untouched_answers,
        untouched_p99_us: clean
            .filter(|h| !h.is_empty())
            .map(|h| h.value_at_quantile(0.99) as f64),
        list: stalls
            .iter()
            .take(LISTED)
            .map(|s| {
                let ms = if s.at >= window.measure_from {
                    s.at.duration_since(window.measure_from).as_secs_f64() * 1e3
                } else {
                    -(window.measure_from.duration_since(s.at).as_secs_f64() * 1e3)
                };
                (s.cpu, round(ms, 1), round(s.late.as_secs_f64() * 1e6, 0))
            })
            .collect(),
        pace_median_us: median_unit_us(&watched.units, window, &watched.cpus)
            .into_iter()
            .map(|us| round(us, 1))
            .collect(),
        pace_units: watched.units.iter().filter(|u| u.in_window(window)).count() as u64,
        slices_paced_slow: (0..slices).filter(|&i| paced_slow(i)).count(),
        slow_slices_paced_slow: slow.iter().filter(|&&i| paced_slow(i)).count(),
        slow_slices_unexplained: slow
            .iter()
            .filter(|&&i| !touched[i] && !paced_slow(i))
            .count(),
        pace_per_slice: pace,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drive::one_second_window as window;

    fn stall(cpu: usize, at: Instant, late_ms: u64) -> Stall {
        Stall {
            cpu,
            at,
            late: Duration::from_millis(late_ms),
        }
    }

    #[test]
    fn a_stall_touches_its_slices_and_the_next_and_the_p99_of_the_rest_is_apart() {
        let (window, at) = window();
        let watched = Watched {
            cpus: vec![0, 1],
            priorities: vec!["SCHED_FIFO 1".into(); 2],
            wakeups: 4_000,
            stalls: vec![
                stall(0, at(990), 30),  // across the window's start: touches 0 and 1
                stall(0, at(1250), 20), // slice 2, touches 2 and 3
                stall(1, at(1595), 10), // slices 5 and 6, touches 5..=7
                stall(1, at(1800), 1),  // too short to count
                stall(0, at(500), 30),  // before the window
                stall(1, at(1995), 50), // runs past the window: touches 9 only
            ],
            ..Watched::default()
        };
        // 100 answers of 300 µs in each slice, and slow ones in slices 3, 7 and 8.
        let mut answers: Vec<Answer> = (0..10u32)
            .flat_map(|slice| std::iter::repeat_n((slice, 300), 100))
            .collect();
        answers.extend([(3, 40_000), (7, 9_000), (8, 6_000), (8, 5_000)]);
        let r = report(&watched, &window, &answers);
        assert_eq!(r.slices, 10);
        assert_eq!(r.stalls, 4);
        assert!(r.real_time());
        assert_eq!(r.longest_stall_us, 50_000.0);
        assert_eq!(r.touched_slices, 8, "slices 0, 1, 2, 3, 5, 6, 7 and 9");
        assert_eq!((r.slow_slices, r.slow_slices_touched), (3, 2));
        assert_eq!(r.untouched_answers, 202, "slices 4 and 8");
        assert_eq!(r.untouched_p99_us, Some(300.0), "two slow answers of 202");
        // The parts inside the window: 20 + 20 + 10 + 5 ms, over 2 CPU-seconds.
        assert!(
            (r.stalled_fraction - 0.0275).abs() < 1e-9,
            "{}",
            r.stalled_fraction
        );
        assert_eq!(
            r.list,
            vec![
                (0, -10.0, 30_000.0),
                (0, 250.0, 20_000.0),
                (1, 595.0, 10_000.0),
                (1, 995.0, 50_000.0)
            ]
        );
    }

    #[test]
    fn a_stall_seen_just_after_a_slice_began_also_touches_the_slice_before() {
        let (window, at) = window();
        // Seen at 302 ms into the window: it may have begun at 301 ms, and a request due at
        // 298 ms can be 5 ms slow because of it.
        let watched = Watched {
            cpus: vec![0],
            priorities: vec!["SCHED_OTHER".into()],
            stalls: vec![stall(0, at(1302), 3)],
            ..Watched::default()
        };
        let answers: Vec<Answer> = vec![(2, 6_000), (4, 300), (5, 7_000)];
        let r = report(&watched, &window, &answers);
        assert_eq!(r.touched_slices, 3, "slices 2, 3 and 4");
        assert_eq!((r.slow_slices, r.slow_slices_touched), (2, 1));
        let p99 = r.untouched_p99_us.unwrap();
        assert!((p99 - 7_000.0).abs() < 10.0, "slice 5 only: {p99}");
        assert!(!r.real_time(), "a watcher without the real-time class");
    }

    #[test]
    fn a_unit_of_work_that_took_a_stalls_length_counts_as_a_stall() {
        let at = Instant::now();
        let mut watched = Watched::default();
        watched.note_unit(Unit {
            cpu: 1,
            at,
            took: Duration::from_micros(70),
        });
        assert!(watched.stalls.is_empty());
        watched.note_unit(Unit {
            cpu: 1,
            at,
            took: STALL,
        });
        assert_eq!(watched.units.len(), 2);
        assert_eq!(watched.stalls.len(), 1);
        assert_eq!((watched.stalls[0].cpu, watched.stalls[0].late), (1, STALL));
    }

    #[test]
    fn a_run_without_stalls_has_every_answer_untouched() {
        let (window, _) = window();
        let watched = Watched {
            cpus: vec![0],
            priorities: vec!["SCHED_FIFO 1".into()],
            wakeups: 2_000,
            ..Watched::default()
        };
        let answers: Vec<Answer> = (0..1_000u32).map(|i| (i % 10, 100 + i)).collect();
        let r = report(&watched, &window, &answers);
        assert_eq!((r.stalls, r.touched_slices, r.slow_slices), (0, 0, 0));
        assert_eq!(r.untouched_answers, 1_000);
        assert_eq!(
            r.untouched_p99_us,
            Some(1_089.0),
            "the 990th of 100..=1099 µs"
        );
        assert_eq!(r.stalled_fraction, 0.0);
    }

    #[test]
    fn a_slow_slice_at_a_slower_pace_is_told_apart_from_one_nothing_explains() {
        let (window, at) = window();
        // cpu 0 times a unit every 10 ms: 100 µs, but 200 µs in slice 4.
        let units = (1_000..2_000)
            .step_by(10)
            .map(|ms| Unit {
                cpu: 0,
                at: at(ms),
                took: Duration::from_micros(if (1_400..1_500).contains(&ms) {
                    200
                } else {
                    100
                }),
            })
            .collect();
        let watched = Watched {
            cpus: vec![0],
            priorities: vec!["SCHED_FIFO 1".into()],
            wakeups: 1_000,
            units,
            ..Watched::default()
        };
        let answers: Vec<Answer> = vec![(0, 300), (4, 9_000), (6, 8_000), (9, 300)];
        let r = report(&watched, &window, &answers);
        assert_eq!(r.pace_units, 100);
        assert_eq!(r.pace_median_us, vec![100.0]);
        assert_eq!(r.pace_per_slice.len(), 10);
        assert_eq!(r.pace_per_slice[4], 2.0);
        assert_eq!(r.pace_per_slice[6], 1.0);
        assert_eq!((r.slow_slices, r.slow_slices_touched), (2, 0));
        assert_eq!((r.slices_paced_slow, r.slow_slices_paced_slow), (1, 1));
        assert_eq!(r.slow_slices_unexplained, 1, "slice 6");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_watcher_pinned_to_a_cpu_this_process_may_use_wakes_up_and_keeps_only_late_wake_ups() {
        let allowed = rustix::thread::sched_getaffinity(None).unwrap();
        let cpu = (0..rustix::thread::CpuSet::MAX_CPU)
            .find(|&c| allowed.is_set(c))
            .unwrap();
        let watchers = Watchers::start(&[cpu]).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let watched = watchers.stop().unwrap();
        assert_eq!(watched.cpus, vec![cpu]);
        assert_eq!(watched.priorities.len(), 1);
        assert!(watched.wakeups >= 1, "{} wake-ups", watched.wakeups);
        // A unit of work every 10 wake-ups, on this CPU.
        assert_eq!(
            watched.units.len() as u64,
            watched.wakeups / crate::pace::EVERY
        );
        assert!(
            watched
                .units
                .iter()
                .all(|u| u.cpu == cpu && u.took > Duration::ZERO)
        );
        assert_eq!(watched.off_cpu_wakeups, 0, "every wake-up on cpu {cpu}");
        assert!(
            watched
                .stalls
                .iter()
                .all(|s| s.cpu == cpu && s.late >= STALL)
        );
    }

    #[test]
    fn a_cpu_the_machine_does_not_have_fails_the_start_and_names_the_cpu() {
        let Err(err) = Watchers::start(&[100_000]) else {
            panic!("a watcher pinned to cpu 100000");
        };
        assert!(format!("{err:#}").contains("cpu 100000"), "{err:#}");
    }
}
