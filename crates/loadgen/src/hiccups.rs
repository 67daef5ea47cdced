//! `loadgen hiccups`: how long this core stops running a thread that never blocks.
//!
//! One thread spins reading the monotonic clock for a number of seconds; the gap between two
//! reads is time the thread did not run although it never waited for anything: interrupts,
//! the guest's scheduler giving the core to another thread, or, in a virtual machine, the
//! host not running the virtual CPU at all. Run pinned to one core (`taskset`) at a high
//! priority (`nice -n -20`) with nothing else on that core, it measures the machine: the
//! bench compares one core alone with the same core while the other one is kept busy.
//!
//! With `--sleep-us N` the thread sleeps N µs instead of spinning, and a gap is how late it
//! woke up: what an idle core costs a request that wakes it (in a VM, the host waking a
//! halted virtual CPU). Each wake-up is also late by the thread's timer slack (50 µs by
//! default on Linux), so the classes under 100 µs mostly count that.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Arguments of `loadgen hiccups`.
#[derive(Debug, clap::Args)]
pub(crate) struct HiccupArgs {
    /// How long to run, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Sleep this many µs between two clock reads instead of spinning, and count how late
    /// each wake-up is.
    #[arg(long)]
    pub sleep_us: Option<u64>,
    /// A name for this run in the output.
    #[arg(long, default_value = "")]
    pub label: String,
}

/// The lower bounds of the gap classes, µs; the last class has no upper bound.
pub(crate) const GAP_CLASSES_US: [u64; 9] = [20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000];

/// The result of a `hiccups` run.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct HiccupResult {
    pub kind: String,
    pub label: String,
    pub seconds: f64,
    /// `None`: the thread spun; else it slept this long each time and the gaps are how late
    /// it woke up.
    #[serde(default)]
    pub sleep_us: Option<u64>,
    /// Gaps of at least 20 µs, counted per class of `GAP_CLASSES_US` (from that bound to the
    /// next one).
    pub gaps: Vec<u64>,
    /// The share of the run lost in those gaps.
    pub lost_fraction: f64,
    /// The longest gap, µs.
    pub max_gap_us: f64,
}

/// Counts gaps between successive clock reads (or late wake-ups) for `seconds`.
pub(crate) fn run(args: HiccupArgs) -> HiccupResult {
    let length = Duration::from_secs_f64(args.seconds.max(0.0));
    let nap = args.sleep_us.map(Duration::from_micros);
    let mut counter = GapCounter::default();
    let start = Instant::now();
    let mut previous = start;
    while previous.duration_since(start) < length {
        if let Some(nap) = nap {
            std::thread::sleep(nap);
        }
        let now = Instant::now();
        counter.add(lateness(now.duration_since(previous), nap));
        previous = now;
    }
    counter.result(args.label, args.sleep_us, previous.duration_since(start))
}

/// The gap between two clock reads that counts: all of it when the thread spun, what exceeds
/// the nap when it slept.
pub(crate) fn lateness(between_reads: Duration, nap: Option<Duration>) -> Duration {
    between_reads.saturating_sub(nap.unwrap_or_default())
}

/// Gaps by class, the time they lost and the longest one.
#[derive(Debug, Default)]
struct GapCounter {
    gaps: [u64; GAP_CLASSES_US.len()],
    lost: Duration,
    max: Duration,
}

impl GapCounter {
    fn add(&mut self, gap: Duration) {
        let us = gap.as_micros();
        let Some(class) = GAP_CLASSES_US
            .iter()
            .rposition(|&from| us >= u128::from(from))
        else {
            return;
        };
        self.gaps[class] += 1;
        self.lost += gap;
        self.max = self.max.max(gap);
    }

    fn result(self, label: String, sleep_us: Option<u64>, elapsed: Duration) -> HiccupResult {
        let seconds = elapsed.as_secs_f64();
        HiccupResult {
            kind: "hiccups".into(),
            label,
            seconds,
            sleep_us,
            gaps: self.gaps.to_vec(),
            lost_fraction: if seconds > 0.0 {
                self.lost.as_secs_f64() / seconds
            } else {
                0.0
            },
            max_gap_us: self.max.as_secs_f64() * 1e6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_fall_into_the_class_of_their_lower_bound_and_short_ones_are_not_counted() {
        let mut counter = GapCounter::default();
        for us in [5, 19, 20, 49, 50, 999, 1_000, 12_000] {
            counter.add(Duration::from_micros(us));
        }
        let r = counter.result("x".into(), None, Duration::from_secs(1));
        assert_eq!(r.gaps, vec![2, 1, 0, 0, 1, 1, 0, 0, 1]);
        let lost_us = 20 + 49 + 50 + 999 + 1_000 + 12_000;
        assert!((r.lost_fraction - lost_us as f64 / 1e6).abs() < 1e-12);
        assert!((r.max_gap_us - 12_000.0).abs() < 1e-6);
    }

    #[test]
    fn a_sleeping_thread_counts_only_how_late_it_woke() {
        let ms = Duration::from_millis(1);
        let nap = Some(ms);
        assert_eq!(
            lateness(ms + Duration::from_micros(70), nap),
            Duration::from_micros(70)
        );
        assert_eq!(lateness(ms / 2, nap), Duration::ZERO);
        assert_eq!(
            lateness(Duration::from_micros(70), None),
            Duration::from_micros(70)
        );
    }

    #[test]
    fn a_short_run_counts_no_gap_it_did_not_see() {
        for sleep_us in [None, Some(1_000)] {
            let r = run(HiccupArgs {
                seconds: 0.01,
                sleep_us,
                label: "short".into(),
            });
            assert_eq!(r.kind, "hiccups");
            assert_eq!(r.sleep_us, sleep_us);
            assert_eq!(r.gaps.len(), GAP_CLASSES_US.len());
            assert!(r.seconds >= 0.01);
            assert!((0.0..=1.0).contains(&r.lost_fraction));
        }
    }
}
