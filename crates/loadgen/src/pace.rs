//! The pace of the watched CPUs: whether the machine ran a vCPU slower, not only whether it
//! stopped it ([`crate::stalls`]).
//!
//! A host can slow a virtual CPU without stopping it: a busy hyperthread sibling, another
//! guest evicting the shared last-level cache, a lower clock. Threads then take longer for
//! the same work, and an open-loop queue grows, with no late wake-up to show for it. So
//! every [`EVERY`]th wake-up each watcher (real-time, pinned) times one fixed unit of work:
//! [`STEPS`] steps of a pointer chase through a random cycle over [`BUFFER_BYTES`], bigger
//! than a core's L2 cache and smaller than the last-level cache. Its time follows the
//! core's speed and the cache's latency. [`pace_per_slice`] sets each 100 ms slice's median
//! unit time beside the run's, per CPU.
//!
//! The cost: one unit per CPU every 10 ms, at the watcher's real-time priority. A step
//! costs what a miss to memory costs on these guests (about 160 ns: 4 000 steps took
//! 0.5–0.7 ms in the fourteenth session's runs, 6–7 % of each vCPU), so a unit is 400 steps,
//! about 65 µs, under 1 % of a core; and one buffer per watcher.

use std::time::{Duration, Instant};

use crate::drive::{SLICE, Window};

/// Every this many wake-ups (1 ms naps), a watcher times one unit.
pub(crate) const EVERY: u64 = 10;
/// Steps of one unit.
const STEPS: usize = 400;
/// The chased buffer: larger than the L2 cache of the benchmarks' hosts (up to 2 MiB per
/// core), well under their last-level cache (32 MiB and more).
const BUFFER_BYTES: usize = 8 << 20;
/// One step per cache line.
const LINE_WORDS: usize = 64 / std::mem::size_of::<u32>();
/// A slice whose median unit took this much longer than the run's ran slowly.
pub(crate) const SLOWER: f64 = 1.2;

/// One timed unit: on `cpu`, begun at `at`, taking `took`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Unit {
    pub cpu: usize,
    pub at: Instant,
    pub took: Duration,
}

/// A random cycle through the buffer's cache lines, and where the chase stands.
pub(crate) struct Chase {
    next: Vec<u32>,
    at: usize,
}

impl Chase {
    /// A buffer with one random cycle through all its lines (Sattolo's shuffle), seeded
    /// with `seed` (a fixed seed: the same cycle in every run).
    pub(crate) fn new(seed: u64) -> Self {
        let lines = BUFFER_BYTES / 64;
        let mut order: Vec<u32> = (0..lines as u32).collect();
        let mut state = seed | 1;
        for i in (1..lines).rev() {
            // xorshift64
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let j = (state % i as u64) as usize;
            order.swap(i, j);
        }
        let mut next = vec![0u32; lines * LINE_WORDS];
        for (i, &to) in order.iter().enumerate() {
            // Line `i` points at line `order[i]`: one cycle through every line.
            next[i * LINE_WORDS] = to * LINE_WORDS as u32;
        }
        Self { next, at: 0 }
    }

    /// Times one unit, going on from where the last one stopped.
    pub(crate) fn unit(&mut self) -> Duration {
        let start = Instant::now();
        let mut i = self.at;
        for _ in 0..STEPS {
            i = self.next.get(i).map_or(0, |&n| n as usize);
        }
        self.at = std::hint::black_box(i);
        start.elapsed()
    }
}

impl Unit {
    /// Whether the unit began inside the measured window.
    pub(crate) fn in_window(&self, window: &Window) -> bool {
        self.at >= window.measure_from && self.at < window.stop_at
    }
}

/// Per slice of `window`: the highest, over the CPUs, of the slice's median unit time over
/// that CPU's median over the window (1.0: its usual pace; 0.0: no unit in the slice).
pub(crate) fn pace_per_slice(units: &[Unit], window: &Window, slices: usize) -> Vec<f64> {
    let mut cpus: Vec<usize> = units.iter().map(|u| u.cpu).collect();
    cpus.sort_unstable();
    cpus.dedup();
    let mut worst = vec![0.0f64; slices];
    for cpu in cpus {
        let mut per_slice: Vec<Vec<Duration>> = vec![Vec::new(); slices];
        for u in units.iter().filter(|u| u.cpu == cpu && u.in_window(window)) {
            let i = u.at.duration_since(window.measure_from).as_nanos() / SLICE.as_nanos();
            if let Some(slice) = usize::try_from(i).ok().and_then(|i| per_slice.get_mut(i)) {
                slice.push(u.took);
            }
        }
        let mut all: Vec<Duration> = per_slice.iter().flatten().copied().collect();
        let Some(usual) = median(&mut all).filter(|d| !d.is_zero()) else {
            continue;
        };
        for (w, mut took) in worst.iter_mut().zip(per_slice) {
            if let Some(m) = median(&mut took) {
                *w = w.max(m.as_secs_f64() / usual.as_secs_f64());
            }
        }
    }
    worst
}

/// Per CPU (in the order of `cpus`), the median unit time over `window`, µs (0: none):
/// comparable between runs on the same machine, where [`pace_per_slice`] compares slices
/// within one run.
pub(crate) fn median_unit_us(units: &[Unit], window: &Window, cpus: &[usize]) -> Vec<f64> {
    cpus.iter()
        .map(|&cpu| {
            let mut took: Vec<Duration> = units
                .iter()
                .filter(|u| u.cpu == cpu && u.in_window(window))
                .map(|u| u.took)
                .collect();
            median(&mut took).map_or(0.0, |d| d.as_secs_f64() * 1e6)
        })
        .collect()
}

fn median(durations: &mut [Duration]) -> Option<Duration> {
    if durations.is_empty() {
        return None;
    }
    durations.sort_unstable();
    Some(durations[durations.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drive::one_second_window as window;

    #[test]
    fn the_chase_visits_every_line_once_per_cycle() {
        let mut chase = Chase::new(42);
        let lines = BUFFER_BYTES / 64;
        let mut seen = vec![false; lines];
        let mut i = 0usize;
        for _ in 0..lines {
            assert_eq!(i % LINE_WORDS, 0);
            assert!(!seen[i / LINE_WORDS], "line {} twice", i / LINE_WORDS);
            seen[i / LINE_WORDS] = true;
            i = chase.next[i] as usize;
        }
        assert_eq!(i, 0, "back at the start after every line");
        assert!(chase.unit() > Duration::ZERO);
        assert_ne!(chase.at, 0, "the next unit goes on from here");
    }

    #[test]
    fn a_slice_whose_units_took_longer_than_that_cpus_usual_is_paced_slow() {
        let (window, at) = window();
        let unit = |cpu, ms, us| Unit {
            cpu,
            at: at(ms),
            took: Duration::from_micros(us),
        };
        let mut units = Vec::new();
        for ms in (1_000..2_000).step_by(10) {
            // cpu 0 takes 100 µs, but 150 µs in slice 3; cpu 1 takes 200 µs, but 380 µs
            // (1.9 times its usual) in slice 7.
            let slice = (ms - 1_000) / 100;
            units.push(unit(0, ms, if slice == 3 { 150 } else { 100 }));
            units.push(unit(1, ms, if slice == 7 { 380 } else { 200 }));
        }
        // Units outside the window do not count.
        units.push(unit(0, 500, 10_000));
        units.push(unit(0, 2_500, 10_000));
        let pace = pace_per_slice(&units, &window, 10);
        assert_eq!(pace.len(), 10);
        assert!((pace[3] - 1.5).abs() < 1e-9, "{pace:?}");
        assert!((pace[7] - 1.9).abs() < 1e-9, "{pace:?}");
        assert!(
            pace.iter()
                .enumerate()
                .all(|(i, &p)| i == 3 || i == 7 || (p - 1.0).abs() < 1e-9),
            "{pace:?}"
        );
        // No unit at all: 0 in every slice.
        assert_eq!(pace_per_slice(&[], &window, 3), vec![0.0; 3]);
        // The usual unit time of each CPU, in the order asked; none for a CPU without units.
        let usual = median_unit_us(&units, &window, &[1, 0, 5]);
        assert_eq!(usual, vec![200.0, 100.0, 0.0]);
    }
}
