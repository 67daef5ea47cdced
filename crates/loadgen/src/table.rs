//! `loadgen table`: results as plain-text tables.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;

use crate::authload::{LoginResult, RefreshResult};
use crate::drive::Measured;
use crate::hiccups::{GAP_CLASSES_US, HiccupResult};
use crate::load::HttpResult;
use crate::pace::SLOWER;
use crate::paced::PacedResult;
use crate::revocation::RevocationResult;
use crate::server_side::SeriesDelta;
use crate::stalls::{SLOW_US, STALL, StallReport};
use crate::threads::{SliceMedians, ThreadReport};
use crate::wire::WireResult;

/// Renders the result files: a line per `hiccups` run (the machine), one table for `http`
/// runs (ratios against the first label's best round), one for `revocation` runs, one for
/// `login`, `refresh` and `paced` runs.
pub(crate) fn render(files: &[PathBuf]) -> anyhow::Result<String> {
    let mut http = Vec::new();
    let mut revocation = Vec::new();
    let mut paced = Vec::new();
    let mut capacity = Vec::new();
    let mut instructions = Vec::new();
    let mut hiccups = Vec::new();
    let mut wire = Vec::new();
    for path in files {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        let value: serde_json::Value = serde_json::from_str(text.trim())
            .with_context(|| format!("{}: not JSON", path.display()))?;
        match value.get("kind").and_then(|k| k.as_str()) {
            Some("http") => http.push(serde_json::from_value::<HttpResult>(value)?),
            Some("revocation") => {
                revocation.push(serde_json::from_value::<RevocationResult>(value)?)
            }
            Some("login" | "refresh" | "paced") => paced.push(PacedRow::from_json(value)?),
            // `auth-center passwords capacity --json`, labelled by the bench script.
            Some("capacity") => capacity.push(value),
            // The bench script's callgrind counts (`BENCH_CALLGRIND`).
            Some("instructions") => {
                instructions.push(serde_json::from_value::<InstructionsResult>(value)?)
            }
            Some("hiccups") => hiccups.push(serde_json::from_value::<HiccupResult>(value)?),
            Some("wire") => wire.push(serde_json::from_value::<WireResult>(value)?),
            _ => anyhow::bail!("{}: unknown result kind", path.display()),
        }
    }
    let mut out = String::new();
    for r in &hiccups {
        writeln!(out, "{}", hiccup_line(r))?;
    }
    if !hiccups.is_empty() {
        out.push('\n');
    }
    for r in &wire {
        writeln!(out, "{}", wire_line(r))?;
    }
    if !wire.is_empty() {
        out.push('\n');
    }
    for value in &capacity {
        let label = value.get("label").and_then(|l| l.as_str()).unwrap_or("");
        let numbers: Vec<String> = value
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, v)| v.is_number())
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        out.push_str(&format!("{label}: {}\n", numbers.join(", ")));
    }
    for line in login_against_raw(&capacity, &paced) {
        writeln!(out, "{line}")?;
    }
    if !capacity.is_empty() {
        out.push('\n');
    }
    // Runs with the same label are rounds of one configuration: the best round (most
    // requests per second: interference from other processes only ever slows a run
    // down) represents it, and every round's rps is listed.
    let mut groups: Vec<(String, Vec<&HttpResult>)> = Vec::new();
    for r in &http {
        match groups.iter_mut().find(|(label, _)| *label == r.label) {
            Some((_, runs)) => runs.push(r),
            None => groups.push((r.label.clone(), vec![r])),
        }
    }
    let best = |runs: &[&HttpResult]| -> Option<usize> {
        (0..runs.len()).max_by(|&a, &b| runs[a].rps.total_cmp(&runs[b].rps))
    };
    if let Some((_, baseline_runs)) = groups.first() {
        let base = best(baseline_runs).map_or(1.0, |i| baseline_runs[i].rps.max(1.0));
        let w = column_width(groups.iter().map(|(label, _)| label.as_str()), 32);
        writeln!(
            out,
            "{:<w$} {:>8} {:>6} {:>7} {:>7} {:>8} {:>10} {:>9} {:>8} {:>10} {:>7}  rps of each round",
            "run (best round)",
            "rps",
            "ratio",
            "p50 µs",
            "p99 µs",
            "srv CPU%",
            "srv µs/req",
            "of it usr",
            "gen CPU%",
            "checks/req",
            "non-2xx",
        )?;
        for (label, runs) in &groups {
            let Some(i) = best(runs) else { continue };
            let r = runs[i];
            let non_2xx: u64 = runs
                .iter()
                .map(|r| {
                    r.status
                        .iter()
                        .filter(|(code, _)| !(200..300).contains(*code))
                        .map(|(_, n)| n)
                        .sum::<u64>()
                        + r.errors
                })
                .sum();
            let cpu = |c: Option<f64>| c.map_or("-".to_string(), |c| format!("{c:.0}"));
            let rounds: Vec<String> = runs.iter().map(|r| format!("{:.0}", r.rps)).collect();
            writeln!(
                out,
                "{:<w$} {:>8.0} {:>6.3} {:>7.1} {:>7.1} {:>8} {:>10} {:>9} {:>8} {:>10} {:>7}  {}",
                label,
                r.rps,
                r.rps / base,
                r.p50_us,
                r.p99_us,
                cpu(r.server_cpu_pct),
                r.server_cpu_us_per_request
                    .map_or("-".to_string(), |c| format!("{c:.2}")),
                r.server_user_us_per_request
                    .map_or("-".to_string(), |c| format!("{c:.2}")),
                cpu(r.loadgen_cpu_pct),
                r.redis_checks_per_request
                    .map_or("-".to_string(), |e| format!("{e:.4}")),
                non_2xx,
                rounds.join(" ")
            )?;
        }
    }
    if !instructions.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        render_instructions(&mut out, &instructions, groups.first().map(|(_, r)| &r[..]))?;
    }
    if !revocation.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        let w = column_width(revocation.iter().map(|r| r.label.as_str()), 34);
        writeln!(
            out,
            "{:<w$} {:>6} {:>8} {:>8} {:>8} {:>9} {:>9} {:>8} {:>5} {:>9} {:>7} {:>9} {:>8}",
            "DEL -> first 401",
            "trials",
            "p50 µs",
            "p99 µs",
            "max µs",
            "DEL rtt",
            "/me rtt",
            "1st-poll",
            "bg",
            "stale tr",
            "stale %",
            "max/trial",
            "timeouts"
        )?;
        for r in &revocation {
            let stale_pct = if r.trials > 0 {
                r.trials_with_stale as f64 * 100.0 / r.trials as f64
            } else {
                0.0
            };
            writeln!(
                out,
                "{:<w$} {:>6} {:>8.1} {:>8.1} {:>8.1} {:>9.1} {:>9.1} {:>8} {:>5} {:>9} {:>7.1} {:>9} {:>8}",
                r.label,
                r.trials,
                r.p50_us,
                r.p99_us,
                r.max_us,
                r.del_rtt_p50_us,
                r.me_rtt_p50_us,
                r.first_poll_401,
                r.background_connections,
                r.trials_with_stale,
                stale_pct,
                r.max_stale_in_a_trial,
                r.timeouts
            )?;
        }
        for r in &revocation {
            writeln!(
                out,
                "  {}: sessions from {} (p50 {:.1} ms each), {} other statuses, {:.1} s; \
                 stale 200s: {} in all ({} to the poller){}, {} background requests",
                r.label,
                r.session_source,
                r.session_p50_ms,
                r.other_status,
                r.seconds,
                r.stale_total.max(r.stale_200_after_del),
                r.stale_200_after_del,
                stale_delays(&r.stale_sent_after_del_us),
                r.background_requests
            )?;
        }
    }
    if !paced.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        render_paced(&mut out, &paced)?;
        for line in probe_tails(&paced) {
            writeln!(out, "{line}")?;
        }
    }
    Ok(out)
}

/// A capture's refreshes: the p99 of each part, and where the slow ones spent their time.
fn wire_line(r: &WireResult) -> String {
    let ms = |part: &str| r.parts.get(part).map_or(0.0, |s| s.p99_us / 1_000.0);
    let pct = |part: &str| r.slow_share.get(part).copied().unwrap_or(0.0) * 100.0;
    let n = |part: &str| r.slow_largest.get(part).copied().unwrap_or(0);
    let mut line = format!(
        "wire, {}: {} refreshes, p99 {:.1} ms (before Redis {:.1}, Redis {:.1}, after {:.1}); \
         {} over {} ms, their time before Redis {:.0} %, in Redis {:.0} %, after {:.0} % \
         (the largest part: {}, {}, {})",
        r.label,
        r.refreshes,
        ms("total"),
        ms("before_redis"),
        ms("redis"),
        ms("after_redis"),
        r.slow,
        r.slow_ms,
        pct("before_redis"),
        pct("redis"),
        pct("after_redis"),
        n("before_redis"),
        n("redis"),
        n("after_redis"),
    );
    if r.unmatched + r.out_of_order + r.streams_cut > 0 {
        line.push_str(&format!(
            "; unmatched {}, out of order {}, streams cut {}",
            r.unmatched, r.out_of_order, r.streams_cut
        ));
    }
    line
}

/// When a run's stale answers' requests were sent after the DEL reply (`us` ascending):
/// ", sent 12.3 µs after the DEL reply" for one delay, ", sent 4.0 to 812.5 µs after ..."
/// for a range; nothing without stale answers (or in results from before the delays were
/// recorded).
fn stale_delays(us: &[f64]) -> String {
    match (us.first(), us.last()) {
        (Some(first), Some(last)) if first == last => {
            format!(", sent {first:.1} µs after the DEL reply")
        }
        (Some(first), Some(last)) => {
            format!(", sent {first:.1} to {last:.1} µs after the DEL reply")
        }
        _ => String::new(),
    }
}

fn hiccup_line(r: &HiccupResult) -> String {
    let long: u64 = GAP_CLASSES_US
        .iter()
        .zip(&r.gaps)
        .filter(|(from, _)| **from >= 1_000)
        .map(|(_, n)| n)
        .sum();
    let classes: Vec<String> = GAP_CLASSES_US
        .iter()
        .zip(&r.gaps)
        .filter(|(_, n)| **n > 0)
        .map(|(from, n)| {
            if *from >= 1_000 {
                format!("≥{} ms {n}", from / 1_000)
            } else {
                format!("≥{from} µs {n}")
            }
        })
        .collect();
    let gaps = if long == 1 { "gap" } else { "gaps" };
    match r.sleep_us {
        None => format!(
            "hiccups, {}: lost {:.2} % of {:.0} s, {long} {gaps} of 1 ms or more (longest {:.2} ms); {}",
            r.label,
            r.lost_fraction * 100.0,
            r.seconds,
            r.max_gap_us / 1000.0,
            classes.join(", ")
        ),
        Some(us) => format!(
            "late wake-ups, {}: sleeps of {us} µs over {:.0} s, {long} late by 1 ms or more \
             (latest {:.2} ms); {}",
            r.label,
            r.seconds,
            r.max_gap_us / 1000.0,
            classes.join(", ")
        ),
    }
}

/// User-space instructions per request of one path in one round, counted under callgrind
/// by the bench script (`BENCH_CALLGRIND`).
#[derive(Debug, serde::Deserialize)]
struct InstructionsResult {
    path: String,
    instructions_per_request: f64,
}

/// The width of a table's label column: its longest label, and at least `min` characters, so
/// that a long label pushes its row's figures no further right than the others'.
fn column_width<'a>(labels: impl Iterator<Item = &'a str>, min: usize) -> usize {
    labels.map(|l| l.chars().count()).fold(min, usize::max)
}

fn median(xs: &[f64]) -> f64 {
    let mut xs = xs.to_vec();
    xs.sort_by(f64::total_cmp);
    let mid = xs.len() / 2;
    match xs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => xs[mid],
        _ => (xs[mid - 1] + xs[mid]) / 2.0,
    }
}

/// The instruction counts per path (the first path is the no-auth baseline), each path's
/// median round against the baseline's, and what that difference costs in server CPU: the
/// instructions scale the user-space part of the baseline's measured CPU per request
/// (`baseline`: its `http` rounds; the median round by CPU per request), while the kernel's
/// part (the sockets: the same system calls on every path) is taken to stay. Callgrind's
/// counts repeat to within about 3 % and the user/kernel split moves less than throughput does
/// on this VM, so the estimate is steadier than the rounds' ratios; it assumes the same
/// instructions per cycle on both paths (no hardware counters on this VM to check it), and
/// the kernel's part equal.
fn render_instructions(
    out: &mut String,
    rows: &[InstructionsResult],
    baseline: Option<&[&HttpResult]>,
) -> anyhow::Result<()> {
    let mut paths: Vec<(&str, Vec<f64>)> = Vec::new();
    for r in rows {
        match paths.iter_mut().find(|(p, _)| *p == r.path) {
            Some((_, counts)) => counts.push(r.instructions_per_request),
            None => paths.push((&r.path, vec![r.instructions_per_request])),
        }
    }
    let Some((base_path, base_counts)) = paths.first() else {
        return Ok(());
    };
    let base = median(base_counts);
    // The baseline's median round by server CPU per request: its CPU in all and in user
    // space, one round's pair (medians taken apart would mix rounds).
    let cpu = baseline.and_then(|runs| {
        let mut split: Vec<(f64, f64, &str)> = runs
            .iter()
            .filter_map(|r| {
                Some((
                    r.server_cpu_us_per_request?,
                    r.server_user_us_per_request?,
                    r.label.as_str(),
                ))
            })
            .filter(|(total, _, _)| *total > 0.0)
            .collect();
        split.sort_by(|a, b| a.0.total_cmp(&b.0));
        split.get(split.len().saturating_sub(1) / 2).copied()
    });
    match cpu {
        Some((total, user, label)) => writeln!(
            out,
            "user-space instructions per request (callgrind) against {base_path}; server CPU \
             estimated from them and the user-space part of \"{label}\" ({user:.2} of \
             {total:.2} µs/req, share {:.2}, its median round):",
            user / total
        )?,
        None => writeln!(
            out,
            "user-space instructions per request (callgrind) against {base_path} (no user/kernel \
             split of the baseline's server CPU: no estimate):"
        )?,
    }
    writeln!(
        out,
        "{:<16} {:>8} {:>9} {:>8} {:>10} {:>10}  instructions of each round",
        "path", "median", "base/path", "+instr", "est. +µs", "est. ratio"
    )?;
    for (path, counts) in &paths {
        let m = median(counts);
        let extra = m - base;
        let (us, ratio) = match cpu {
            Some((total, user, _)) if base > 0.0 => {
                let us = extra / base * user;
                (format!("{us:.2}"), format!("{:.3}", total / (total + us)))
            }
            _ => ("-".into(), "-".into()),
        };
        let rounds: Vec<String> = counts.iter().map(|c| format!("{c:.0}")).collect();
        writeln!(
            out,
            "{:<16} {:>8.0} {:>9.3} {:>+8.0} {:>10} {:>10}  {}",
            path,
            m,
            if m > 0.0 { base / m } else { f64::NAN },
            extra,
            us,
            ratio,
            rounds.join(" ")
        )?;
    }
    Ok(())
}

/// Per setup (the label after its last ", "), the login floods' rates over the raw Argon2
/// rates: the n-th flood alone against the n-th raw round (the bench script alternates
/// them, as the machine's hashing speed drifts), pooled and per round, and the flood beside
/// the probes against the mean raw rate.
fn login_against_raw(capacity: &[serde_json::Value], paced: &[PacedRow]) -> Vec<String> {
    let setup = |label: &str| label.rsplit_once(", ").map_or(label, |(_, s)| s).to_owned();
    let mut setups: Vec<(String, Vec<f64>)> = Vec::new();
    for value in capacity {
        let label = value.get("label").and_then(|l| l.as_str()).unwrap_or("");
        let Some(rate) = value.get("hashes_per_second").and_then(|r| r.as_f64()) else {
            continue;
        };
        match setups.iter_mut().find(|(s, _)| *s == setup(label)) {
            Some((_, raws)) => raws.push(rate),
            None => setups.push((setup(label), vec![rate])),
        }
    }
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len().max(1) as f64;
    let mut lines = Vec::new();
    for (name, raws) in &setups {
        let floods = |prefix: &str| -> Vec<f64> {
            paced
                .iter()
                .filter(|r| r.kind == "login" && r.label.starts_with(prefix))
                .filter(|r| setup(&r.label) == *name)
                .map(|r| r.m.ok_per_s)
                .collect()
        };
        let (alone, beside) = (floods("logins alone"), floods("logins beside"));
        let pairs = alone.len().min(raws.len());
        // A raw round that hashed nothing would divide by zero: no comparison then.
        if pairs == 0 || raws.iter().any(|r| *r <= 0.0) {
            continue;
        }
        let rounds: Vec<String> = (0..pairs)
            .map(|i| format!("{:.2}", alone[i] / raws[i]))
            .collect();
        let mut line = format!(
            "logins/s over raw Argon2 hashes/s, {name}: alone {:.2} (rounds {})",
            mean(&alone[..pairs]) / mean(&raws[..pairs]),
            rounds.join(" ")
        );
        if !beside.is_empty() {
            line.push_str(&format!(
                ", beside the probes {:.2}",
                mean(&beside) / mean(raws)
            ));
        }
        lines.push(line);
    }
    lines
}

/// What ran beside the probes in a phase of their rounds (the label's word after "p99"),
/// as the report names it; "unloaded" is the probes alone, the reference of the others.
const PROBE_PHASES: [(&str, &str); 3] = [
    ("loaded", "a login flood"),
    ("hashing", "raw hashing (SCHED_IDLE, no requests)"),
    (
        "spinning",
        "busy loops (SCHED_IDLE, no requests, no memory traffic)",
    ),
];

/// Per setup and phase, each probe's p99 beside what ran in that phase ("... p99 loaded,
/// <setup>": a login flood; "hashing", "spinning": the controls of `BENCH_PROBE_CONTROLS`)
/// over its p99 alone ("... p99 unloaded, <setup>"): the median round of each, as single
/// rounds of a few thousand answers move by 2x between runs here.
fn probe_tails(paced: &[PacedRow]) -> Vec<String> {
    /// A probe in a setup, and its p99s (ms) alone and in each of `PROBE_PHASES`.
    struct Probe {
        key: (String, String),
        p99s: [Vec<f64>; 1 + PROBE_PHASES.len()],
    }
    let mut probes: Vec<Probe> = Vec::new();
    for r in paced {
        let Some((probe, rest)) = r.label.split_once(" p99 ") else {
            continue;
        };
        let (phase, setup) = rest.split_once(", ").unwrap_or((rest, ""));
        let slot = match PROBE_PHASES.iter().position(|(p, _)| *p == phase) {
            Some(i) => i + 1,
            None if phase == "unloaded" => 0,
            None => continue,
        };
        let key = (setup.to_owned(), probe.to_owned());
        let index = match probes.iter().position(|p| p.key == key) {
            Some(i) => i,
            None => {
                probes.push(Probe {
                    key,
                    p99s: Default::default(),
                });
                probes.len() - 1
            }
        };
        probes[index].p99s[slot].push(r.m.latency.p99_us / 1000.0);
    }
    let mut lines: Vec<(String, Vec<String>)> = Vec::new();
    for (i, (_, beside)) in PROBE_PHASES.iter().enumerate() {
        for Probe {
            key: (setup, probe),
            p99s,
        } in &probes
        {
            let (alone, loaded) = (&p99s[0], &p99s[i + 1]);
            if alone.is_empty() || loaded.is_empty() {
                continue;
            }
            let (a, l) = (median(alone), median(loaded));
            if a <= 0.0 {
                continue;
            }
            let part = format!(
                "{probe} {:.2} (medians {a:.2} → {l:.2} ms, {} rounds)",
                l / a,
                alone.len().min(loaded.len())
            );
            let head = format!("p99 beside {beside} over alone, {setup}");
            match lines.iter_mut().find(|(h, _)| *h == head) {
                Some((_, parts)) => parts.push(part),
                None => lines.push((head, vec![part])),
            }
        }
    }
    lines
        .into_iter()
        .map(|(head, parts)| format!("{head}: {}", parts.join(", ")))
        .collect()
}

/// A `login`, `refresh` or `paced` result, for the third table.
struct PacedRow {
    kind: &'static str,
    label: String,
    clients: usize,
    /// The rate asked for; `None` or 0: closed loop.
    rate: Option<f64>,
    extra: String,
    m: Measured,
}

impl PacedRow {
    fn from_json(value: serde_json::Value) -> anyhow::Result<Self> {
        Ok(match value.get("kind").and_then(|k| k.as_str()) {
            Some("login") => {
                let r: LoginResult = serde_json::from_value(value)?;
                Self {
                    kind: "login",
                    extra: format!("429: {}, 503: {}", r.rate_limited_429, r.refused_503),
                    label: r.label,
                    clients: r.connections,
                    rate: None,
                    m: r.measured,
                }
            }
            Some("refresh") => {
                let r: RefreshResult = serde_json::from_value(value)?;
                // Commands run by scripts count too; the scripts themselves are the
                // round trips they cost.
                let scripts: f64 = r
                    .redis_calls_per_refresh
                    .iter()
                    .flatten()
                    .filter(|(c, _)| matches!(c.as_str(), "evalsha" | "eval" | "fcall"))
                    .map(|(_, n)| n)
                    .sum();
                let redis = r
                    .redis_commands_per_refresh
                    .map_or("-".into(), |n| format!("{n:.2} (scripts {scripts:.2})"));
                Self {
                    kind: "refresh",
                    extra: format!("Redis cmds/refresh {redis}, relogins {}", r.relogins),
                    label: r.label,
                    clients: r.sessions,
                    rate: Some(r.rate),
                    m: r.measured,
                }
            }
            _ => {
                let r: PacedResult = serde_json::from_value(value)?;
                Self {
                    kind: "paced",
                    extra: String::new(),
                    label: r.label,
                    clients: r.connections,
                    rate: Some(r.rate),
                    m: r.measured,
                }
            }
        })
    }
}

fn render_paced(out: &mut String, rows: &[PacedRow]) -> anyhow::Result<()> {
    let w = column_width(rows.iter().map(|r| r.label.as_str()), 24);
    writeln!(
        out,
        "{:<8} {:<w$} {:>7} {:>8} {:>9} {:>8} {:>8} {:>9} {:>9} {:>9} {:>10} {:>7}  other",
        "kind",
        "run",
        "clients",
        "rate/s",
        "200/s",
        "p50 µs",
        "p90 µs",
        "p99 µs",
        "p999 µs",
        "max µs",
        "srv µs/ok",
        "non-200",
    )?;
    for r in rows {
        let rate = match r.rate {
            Some(rate) if rate > 0.0 => format!("{rate:.0}"),
            _ => "closed".into(),
        };
        let m = &r.m;
        writeln!(
            out,
            "{:<8} {:<w$} {:>7} {:>8} {:>9.1} {:>8.0} {:>8.0} {:>9.0} {:>9.0} {:>9.0} {:>10} {:>7}  in flight max {}{}{}{}{}{}{}",
            r.kind,
            r.label,
            r.clients,
            rate,
            m.ok_per_s,
            m.latency.p50_us,
            m.latency.p90_us,
            m.latency.p99_us,
            m.latency.p999_us,
            m.latency.max_us,
            m.server_cpu_us_per_ok
                .map_or("-".to_string(), |c| format!("{c:.1}")),
            m.not_ok,
            m.in_flight_max,
            match m.skipped + m.behind_at_end {
                0 => String::new(),
                n => format!(", {n} sends due never made"),
            },
            if r.extra.is_empty() { "" } else { ", " },
            r.extra,
            m.machine_stalls.as_ref().map_or(String::new(), stalls_note),
            server_note(&m.server_histograms),
            m.server_threads
                .as_ref()
                .map_or(String::new(), threads_note),
        )?;
    }
    Ok(())
}

/// The server's own share of requests and calls over 5 ms (`--server-metrics`), for the end
/// of a row: a slow answer the server did not see was slow outside it.
fn server_note(histograms: &[SeriesDelta]) -> String {
    let shares: Vec<String> = histograms
        .iter()
        .filter_map(|h| {
            let pct = h.over(SLOW_US as f64 / 1e3)?;
            Some(format!("{} {pct:.2} % of {}", h.short_name(), h.count))
        })
        .collect();
    if shares.is_empty() {
        return String::new();
    }
    format!(
        "; server-side over {} ms: {}",
        SLOW_US / 1000,
        shares.join(", ")
    )
}

/// What the server's threads did in the slow slices and in the others (`--watch-threads`),
/// per 100 ms, for the end of a row.
fn threads_note(r: &ThreadReport) -> String {
    let part = |name: &str, m: &Option<SliceMedians>| match m {
        None => format!("{name} none"),
        Some(m) => format!(
            "{name} ({}) ran {:.1}, waited {:.1}, others ran {:.1}",
            m.slices, m.server_run_ms, m.server_wait_ms, m.others_run_ms
        ),
    };
    format!(
        "; server threads, median ms per slice: {}; {}",
        part("slow slices", &r.slow),
        part("other slices", &r.usual)
    )
}

/// What the `--watch-cpus` watchers saw beside the answers, for the end of a row.
fn stalls_note(s: &StallReport) -> String {
    let p99 = s
        .untouched_p99_us
        .map_or("-".to_string(), |us| format!("{us:.0} µs"));
    let pace = if s.pace_units == 0 {
        String::new()
    } else {
        format!(
            ", a pace {SLOWER}× the usual or slower in {} slices ({} of the slow ones), slow slices with neither a stall nor a slower pace {}, usual unit {:?} µs",
            s.slices_paced_slow,
            s.slow_slices_paced_slow,
            s.slow_slices_unexplained,
            s.pace_median_us
        )
    };
    let class = if s.real_time() {
        ""
    } else {
        " (watchers not real-time: other threads count as stalls)"
    };
    format!(
        "; cpus {:?}{class} stalled ≥ {} ms {} times (longest {:.1} ms, {:.2} % of the time), slices slower than {} ms {} of {} ({} with a stall), p99 of the {} answers in slices without a stall {p99}{pace}",
        s.cpus,
        STALL.as_millis(),
        s.stalls,
        s.longest_stall_us / 1e3,
        s.stalled_fraction * 100.0,
        SLOW_US / 1000,
        s.slow_slices,
        s.slices,
        s.slow_slices_touched,
        s.untouched_answers,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_answers_say_how_soon_after_the_del_reply_their_requests_were_sent() {
        assert_eq!(stale_delays(&[]), "");
        assert_eq!(stale_delays(&[12.34]), ", sent 12.3 µs after the DEL reply");
        assert_eq!(
            stale_delays(&[4.0, 30.0, 812.5]),
            ", sent 4.0 to 812.5 µs after the DEL reply"
        );
    }

    #[test]
    fn a_revocation_run_names_its_stale_answers_delays_and_an_older_result_still_reads() {
        // A result written before the delays were recorded has no such field.
        let older = r#"{"kind":"revocation","label":"tracked","url":"u","session_source":"login per trial","trials":2000,"min_us":300.0,"mean_us":1500.0,"p50_us":1450.0,"p90_us":2000.0,"p99_us":3000.0,"max_us":7600.0,"del_rtt_p50_us":110.0,"del_rtt_p99_us":200.0,"me_rtt_p50_us":800.0,"first_poll_401":2000,"stale_200_after_del":0,"trials_with_stale":1,"background_connections":32,"stale_total":1,"max_stale_in_a_trial":1,"background_requests":300000,"timeouts":0,"session_p50_ms":13.7,"seconds":40.0,"other_status":0}"#;
        let table = rendered(&[older.to_owned()]);
        assert!(
            table.contains("stale 200s: 1 in all (0 to the poller), 300000 background requests"),
            "{table}"
        );
        let timed = older.replacen(
            r#""stale_total":1"#,
            r#""stale_total":2,"stale_sent_after_del_us":[73.5,170.9]"#,
            1,
        );
        let table = rendered(&[timed]);
        assert!(
            table.contains(
                "stale 200s: 2 in all (0 to the poller), sent 73.5 to 170.9 µs after the DEL reply, 300000 background requests"
            ),
            "{table}"
        );
    }

    #[test]
    fn login_refresh_and_paced_results_get_a_table() {
        let measured = r#""seconds":5.0,"ok":10,"ok_per_s":2.0,"status":{"200":10,"401 refresh_limit_reached":1},"not_ok":1,"in_flight_max":3,"skipped":2,"behind_at_end":0,"mean_us":1.0,"p50_us":1.0,"p90_us":2.0,"p99_us":3.0,"p999_us":4.0,"max_us":5.0,"percentile_spectrum":[[0.0,1.0],[100.0,5.0]],"send_lag_p50_us":0.0,"send_lag_p99_us":1.0,"server_cpu_pct":null,"server_cpu_us_per_ok":12.5,"reconnects":0"#;
        let results = [
            format!(
                r#"{{"kind":"login","label":"l","auth_url":"u","connections":4,"rate_limited_429":1,"refused_503":2,{measured}}}"#
            ),
            format!(
                r#"{{"kind":"refresh","label":"r","auth_url":"u","sessions":400,"rate":300.0,"relogins":1,"relogin_failures":0,"redis_commands_per_refresh":8.0,"redis_calls_per_refresh":{{"evalsha":1.0,"hset":7.0}},{measured}}}"#
            ),
            format!(
                r#"{{"kind":"paced","label":"p","url":"u","connections":8,"rate":500.0,{measured}}}"#
            ),
        ];
        let table = rendered(&results);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(lines[1].starts_with("login") && lines[1].contains("429: 1, 503: 2"));
        assert!(lines[2].contains("Redis cmds/refresh 8.00 (scripts 1.00), relogins 1"));
        assert!(lines[2].contains("2 sends due never made"));
        assert!(lines[3].starts_with("paced") && lines[3].contains("12.5"));
        assert!(
            !table.contains("stalled"),
            "no watchers, no stalls: {table}"
        );
    }

    #[test]
    fn a_run_with_server_metrics_says_what_share_the_server_itself_took_over_5_ms() {
        let histograms = r#""server_histograms":[{"series":"http_request_duration_seconds{method=\"POST\",route=\"/v1/refresh\",status=\"200\"}","count":73900,"over_ms":[[1.0,4.3],[5.0,2.45]]},{"series":"auth_redis_command_duration_seconds{op=\"session_rotate\"}","count":73900,"over_ms":[[5.0,2.4123]]},{"series":"no_5ms_bound_seconds{op=\"x\"}","count":3,"over_ms":[[10.0,1.0]]}]"#;
        let result = probe("refresh", "r", 9_000.0).replacen("{", &format!("{{{histograms},"), 1);
        let table = rendered(&[result]);
        assert!(
            table.contains("; server-side over 5 ms: http_request POST /v1/refresh 200 2.45 % of 73900, auth_redis_command session_rotate 2.41 % of 73900\n"),
            "{table}"
        );
        // Without the option, no note.
        assert!(!rendered(&[probe("refresh", "r", 9_000.0)]).contains("server-side"));
    }

    #[test]
    fn a_run_with_watched_threads_says_what_the_server_did_in_slow_slices_and_others() {
        let threads = r#""server_threads":{"slices":[],"slow":{"slices":3,"server_run_ms":20.0,"server_wait_ms":41.5,"others_run_ms":60.0},"usual":null}"#;
        let result = probe("refresh", "r", 9_000.0).replacen("{", &format!("{{{threads},"), 1);
        let table = rendered(&[result]);
        assert!(
            table.contains("; server threads, median ms per slice: slow slices (3) ran 20.0, waited 41.5, others ran 60.0; other slices none\n"),
            "{table}"
        );
    }

    #[test]
    fn a_run_with_watched_cpus_says_how_many_slow_slices_came_with_a_stall() {
        let stalls = r#""machine_stalls":{"cpus":[0,1],"priorities":["SCHED_FIFO 1","SCHED_FIFO 1"],"wakeups":22000,"stalls":3,"longest_stall_us":20500.0,"stalled_fraction":0.0025,"slices":100,"touched_slices":7,"slow_slices":2,"slow_slices_touched":2,"untouched_answers":9300,"untouched_p99_us":812.0,"list":[[0,250.0,20500.0]]}"#;
        let result = probe("refresh", "r", 9_000.0).replacen("{", &format!("{{{stalls},"), 1);
        let table = rendered(&[result]);
        assert!(
            table.contains(
                "cpus [0, 1] stalled ≥ 2 ms 3 times (longest 20.5 ms, 0.25 % of the time), slices slower than 5 ms 2 of 100 (2 with a stall), p99 of the 9300 answers in slices without a stall 812 µs"
            ),
            "{table}"
        );
        let other = rendered(&[probe("refresh", "r", 9_000.0).replacen(
            "{",
            &format!("{{{},", stalls.replace("SCHED_FIFO 1", "SCHED_OTHER")),
            1,
        )]);
        assert!(
            other.contains(
                "cpus [0, 1] (watchers not real-time: other threads count as stalls) stalled"
            ),
            "{other}"
        );
        assert!(
            !table.contains("pace"),
            "results from before the pace: {table}"
        );
        let paced = stalls.replace(
            r#""list""#,
            r#""pace_units":2000,"pace_median_us":[81.5,90.0],"pace_per_slice":[1.0,1.3],"slices_paced_slow":4,"slow_slices_paced_slow":1,"slow_slices_unexplained":1,"list""#,
        );
        let table =
            rendered(&[probe("refresh", "r", 9_000.0).replacen("{", &format!("{{{paced},"), 1)]);
        assert!(
            table.contains("812 µs, a pace 1.2× the usual or slower in 4 slices (1 of the slow ones), slow slices with neither a stall nor a slower pace 1, usual unit [81.5, 90.0] µs"),
            "{table}"
        );
    }

    fn login(label: &str, ok_per_s: f64) -> String {
        format!(
            r#"{{"kind":"login","label":"{label}","auth_url":"u","connections":16,"rate_limited_429":0,"refused_503":0,"seconds":5.0,"ok":1,"ok_per_s":{ok_per_s},"status":{{}},"not_ok":0,"in_flight_max":16,"skipped":0,"behind_at_end":0,"mean_us":1.0,"p50_us":1.0,"p90_us":1.0,"p99_us":1.0,"p999_us":1.0,"max_us":1.0,"percentile_spectrum":[],"send_lag_p50_us":0.0,"send_lag_p99_us":0.0,"server_cpu_pct":null,"server_cpu_us_per_ok":null,"reconnects":0}}"#
        )
    }

    fn probe(kind: &str, label: &str, p99_us: f64) -> String {
        let extra = match kind {
            "refresh" => {
                r#""auth_url":"u","sessions":50,"rate":200.0,"relogins":0,"relogin_failures":0,"redis_commands_per_refresh":null,"redis_calls_per_refresh":null"#
            }
            _ => r#""url":"u","connections":8,"rate":1000.0"#,
        };
        format!(
            r#"{{"kind":"{kind}","label":"{label}",{extra},"seconds":5.0,"ok":1,"ok_per_s":1.0,"status":{{}},"not_ok":0,"in_flight_max":1,"skipped":0,"behind_at_end":0,"mean_us":1.0,"p50_us":1.0,"p90_us":1.0,"p99_us":{p99_us},"p999_us":1.0,"max_us":1.0,"percentile_spectrum":[],"send_lag_p50_us":0.0,"send_lag_p99_us":0.0,"server_cpu_pct":null,"server_cpu_us_per_ok":null,"reconnects":0}}"#
        )
    }

    #[test]
    fn the_probes_tails_beside_a_flood_are_compared_by_the_median_of_their_rounds() {
        let results = [
            probe("refresh", "refresh p99 unloaded, 1 core", 1000.0),
            probe("paced", "/me p99 unloaded, 1 core", 400.0),
            probe("refresh", "refresh p99 loaded, 1 core", 1500.0),
            probe("paced", "/me p99 loaded, 1 core", 900.0),
            probe("refresh", "refresh p99 loaded, 1 core", 1100.0),
            probe("paced", "/me p99 loaded, 1 core", 500.0),
            probe("refresh", "refresh p99 unloaded, 1 core", 3000.0),
            probe("paced", "/me p99 unloaded, 1 core", 600.0),
            probe("refresh", "refresh p99 unloaded, 1 core", 1200.0),
            probe("refresh", "refresh p99 loaded, 1 core", 1300.0),
        ];
        let table = rendered(&results);
        // refresh: medians 1.2 (1.0, 3.0, 1.2) and 1.3 (1.5, 1.1, 1.3) ms; /me: medians of
        // two rounds are their means, 0.5 and 0.7 ms.
        assert!(
            table.contains(
                "p99 beside a login flood over alone, 1 core: refresh 1.08 (medians 1.20 → \
                 1.30 ms, 3 rounds), /me 1.40 (medians 0.50 → 0.70 ms, 2 rounds)"
            ),
            "{table}"
        );
    }

    #[test]
    fn a_capture_reads_as_each_parts_p99_and_where_the_slow_refreshes_spent_their_time() {
        let spread =
            |p99: f64| format!(r#"{{"p50_us":1.0,"p99_us":{p99},"p999_us":1.0,"max_us":1.0}}"#);
        let result = format!(
            r#"{{"kind":"wire","label":"0.5 of saturation, 1 core","packets":9,"refreshes":1000,"unmatched":2,"out_of_order":0,"streams_cut":0,"redis_mid_stream":1,"parts":{{"total":{},"before_redis":{},"redis":{},"after_redis":{}}},"slow_ms":5.0,"slow":12,"slow_share":{{"before_redis":0.1,"redis":0.85,"after_redis":0.05}},"slow_largest":{{"before_redis":1,"redis":11,"after_redis":0}},"slices":[]}}"#,
            spread(7_500.0),
            spread(300.0),
            spread(7_000.0),
            spread(200.0)
        );
        let table = rendered(&[result]);
        assert!(
            table.contains(
                "wire, 0.5 of saturation, 1 core: 1000 refreshes, p99 7.5 ms (before Redis 0.3, \
                 Redis 7.0, after 0.2); 12 over 5 ms, their time before Redis 10 %, in Redis \
                 85 %, after 5 % (the largest part: 1, 11, 0); unmatched 2, out of order 0, \
                 streams cut 0"
            ),
            "{table}"
        );
    }

    #[test]
    fn hiccups_read_as_time_lost_or_late_wake_ups_with_the_long_gaps_apart() {
        let results = [
            r#"{"kind":"hiccups","label":"cpu 0 beside a busy cpu 1","seconds":10.0,"gaps":[40,3,1,0,0,2,1,0,1],"lost_fraction":0.0131,"max_gap_us":12050.0}"#.to_owned(),
            r#"{"kind":"hiccups","label":"cpu 1 idle","seconds":10.0,"sleep_us":1000,"gaps":[900,80,0,0,0,1,0,0,0],"lost_fraction":0.01,"max_gap_us":1500.0}"#.to_owned(),
        ];
        let table = rendered(&results);
        assert!(
            table.contains(
                "hiccups, cpu 0 beside a busy cpu 1: lost 1.31 % of 10 s, 4 gaps of 1 ms or \
                 more (longest 12.05 ms); ≥20 µs 40, ≥50 µs 3, ≥100 µs 1, ≥1 ms 2, ≥2 ms 1, \
                 ≥10 ms 1"
            ),
            "{table}"
        );
        assert!(
            table.contains(
                "late wake-ups, cpu 1 idle: sleeps of 1000 µs over 10 s, 1 late by 1 ms or more \
                 (latest 1.50 ms); ≥20 µs 900, ≥50 µs 80, ≥1 ms 1"
            ),
            "{table}"
        );
    }

    #[test]
    fn the_probes_tails_beside_the_controls_that_make_no_requests_get_lines_of_their_own() {
        let results = [
            probe("paced", "/me p99 unloaded, 2 cores", 400.0),
            probe("paced", "/me p99 hashing, 2 cores", 1200.0),
            probe("paced", "/me p99 spinning, 2 cores", 500.0),
            probe("paced", "/me p99 loaded, 2 cores", 1000.0),
            probe("paced", "/me p99 unloaded, 2 cores", 600.0),
            probe("paced", "/me p99 hashing, 2 cores", 800.0),
            probe("paced", "/me p99 spinning, 2 cores", 700.0),
            probe("paced", "/me p99 loaded, 2 cores", 1400.0),
        ];
        let table = rendered(&results);
        for line in [
            "p99 beside a login flood over alone, 2 cores: /me 2.40 (medians 0.50 → 1.20 ms, 2 rounds)",
            "p99 beside raw hashing (SCHED_IDLE, no requests) over alone, 2 cores: /me 2.00 \
             (medians 0.50 → 1.00 ms, 2 rounds)",
            "p99 beside busy loops (SCHED_IDLE, no requests, no memory traffic) over alone, 2 cores: \
             /me 1.20 (medians 0.50 → 0.60 ms, 2 rounds)",
        ] {
            assert!(table.contains(line), "{line}\n{table}");
        }
    }

    fn http(label: &str, rps: f64, total_us: f64, user_us: Option<f64>) -> String {
        let user = user_us.map_or(String::new(), |u| {
            format!(
                r#""server_user_us_per_request":{u},"server_system_us_per_request":{},"#,
                total_us - u
            )
        });
        format!(
            r#"{{"kind":"http","label":"{label}","url":"u","connections":32,"requests":1000,"errors":0,"seconds":5.0,"rps":{rps},"mean_us":1.0,"p50_us":1.0,"p90_us":1.0,"p99_us":1.0,"p999_us":1.0,"max_us":1.0,"status":{{"200":1000}},"server_cpu_pct":97.0,"loadgen_cpu_pct":60.0,"server_cpu_us_per_request":{total_us},{user}"reconnects":0,"redis_checks_per_request":0.0}}"#
        )
    }

    fn instructions(path: &str, count: u64) -> String {
        format!(
            r#"{{"kind":"instructions","label":"{path} round 1","path":"{path}","requests":20000,"instructions_per_request":{count}}}"#
        )
    }

    #[test]
    fn instruction_counts_become_server_cpu_through_the_baselines_user_share() {
        let results = [
            // The median round by CPU is the 11 µs one; the median of the user parts alone
            // (6, 4, 5: 5) would come from another round.
            http("baseline", 50000.0, 10.0, Some(6.0)),
            http("baseline", 60000.0, 12.0, Some(5.0)),
            http("baseline", 55000.0, 11.0, Some(4.0)),
            http("/me tracked", 52000.0, 11.0, Some(5.5)),
            instructions("/baseline/me", 30000),
            instructions("/me", 33000),
            instructions("/baseline/me", 31000),
            instructions("/me", 34100),
            instructions("/baseline/me", 30000),
            instructions("/me", 33300),
        ];
        let table = rendered(&results);
        // Baseline: its median round has 11 µs/req in all, 4 µs in user space; 30 000
        // instructions. /me: 33 300, 11 % more, so 0.44 µs more in user space and 11 / 11.44
        // as the ratio.
        assert!(
            table.contains("the user-space part of \"baseline\" (4.00 of 11.00 µs/req, share 0.36"),
            "{table}"
        );
        // The last `/me` line: the instructions table comes after the throughput table.
        let me = table.lines().rfind(|l| l.starts_with("/me ")).unwrap();
        let cells: Vec<&str> = me.split_whitespace().collect();
        assert_eq!(
            &cells[..6],
            &["/me", "33300", "0.901", "+3300", "0.44", "0.962"],
            "{table}"
        );
        assert!(me.ends_with("33000 34100 33300"), "{me}");
    }

    #[test]
    fn instruction_counts_without_a_user_share_get_no_estimate() {
        let results = [
            http("baseline", 50000.0, 10.0, None),
            instructions("/baseline/me", 30000),
            instructions("/me", 33000),
        ];
        let table = rendered(&results);
        assert!(table.contains("no estimate"), "{table}");
        let me = table.lines().find(|l| l.starts_with("/me ")).unwrap();
        assert_eq!(
            me.split_whitespace().take(6).collect::<Vec<_>>(),
            ["/me", "33000", "0.909", "+3000", "-", "-"]
        );
    }

    #[test]
    fn a_label_longer_than_the_column_widens_it_and_the_figures_stay_aligned() {
        let results = [
            http("baseline", 50000.0, 10.0, None),
            http(
                "/verified/me tracked (extractor, no layer)",
                40000.0,
                12.0,
                None,
            ),
        ];
        let table = rendered(&results);
        let lines: Vec<&str> = table
            .lines()
            .skip_while(|l| !l.starts_with("run (best round)"))
            .take(3)
            .collect();
        // Where each line's "rps" column ends, in characters.
        let rps_end = |line: &str| {
            let header = lines[0];
            let end = header.find(" rps ").unwrap() + " rps".len();
            let column = header[..end].chars().count();
            line.chars().take(column).collect::<String>()
        };
        assert!(rps_end(lines[1]).ends_with(" 50000"), "{table}");
        assert!(rps_end(lines[2]).ends_with(" 40000"), "{table}");
        assert!(
            lines[2].starts_with("/verified/me tracked (extractor, no layer) "),
            "{table}"
        );
    }

    /// The table of the results, each written as a file (`00.json`, `01.json`, ...) first.
    fn rendered(results: &[String]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<PathBuf> = results
            .iter()
            .enumerate()
            .map(|(i, json)| {
                let path = dir.path().join(format!("{i:02}.json"));
                std::fs::write(&path, json).unwrap();
                path
            })
            .collect();
        render(&files).unwrap()
    }

    fn capacity(label: &str, hashes_per_second: f64) -> String {
        format!(
            r#"{{"kind":"capacity","label":"{label}","slots":1,"hashes_per_second":{hashes_per_second}}}"#
        )
    }

    #[test]
    fn each_login_flood_is_compared_with_the_raw_argon2_round_beside_it() {
        let results = [
            capacity("argon2 raw, 1 core", 100.0),
            login("logins alone, 1 core", 90.0),
            login("logins alone, 1 core", 60.0),
            capacity("argon2 raw, 1 core", 75.0),
            login("logins beside the probes, 1 core", 70.0),
            capacity("argon2 raw, 2 cores", 200.0),
            login("logins alone, 2 cores", 190.0),
        ];
        let table = rendered(&results);
        // Pooled: (90 + 60) / (100 + 75); rounds 0.90 and 0.80; beside: 70 / mean raw 87.5.
        assert!(
            table.contains(
                "logins/s over raw Argon2 hashes/s, 1 core: alone 0.86 (rounds 0.90 0.80), \
                 beside the probes 0.80"
            ),
            "{table}"
        );
        assert!(
            table.contains("logins/s over raw Argon2 hashes/s, 2 cores: alone 0.95 (rounds 0.95)"),
            "{table}"
        );
    }
}
