//! `loadgen table`: results as plain-text tables.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;

use crate::load::HttpResult;
use crate::revocation::RevocationResult;

/// Renders the result files: one table for `http` runs (ratios against the first
/// label's best round), one for `revocation` runs.
pub(crate) fn render(files: &[PathBuf]) -> anyhow::Result<String> {
    let mut http = Vec::new();
    let mut revocation = Vec::new();
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
            _ => anyhow::bail!("{}: unknown result kind", path.display()),
        }
    }
    let mut out = String::new();
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
        writeln!(
            out,
            "{:<32} {:>8} {:>6} {:>7} {:>7} {:>8} {:>10} {:>8} {:>10} {:>7}  rps of each round",
            "run (best round)",
            "rps",
            "ratio",
            "p50 µs",
            "p99 µs",
            "srv CPU%",
            "srv µs/req",
            "gen CPU%",
            "EXISTS/req",
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
                "{:<32} {:>8.0} {:>6.3} {:>7.1} {:>7.1} {:>8} {:>10} {:>8} {:>10} {:>7}  {}",
                label,
                r.rps,
                r.rps / base,
                r.p50_us,
                r.p99_us,
                cpu(r.server_cpu_pct),
                r.server_cpu_us_per_request
                    .map_or("-".to_string(), |c| format!("{c:.2}")),
                cpu(r.loadgen_cpu_pct),
                r.redis_exists_per_request
                    .map_or("-".to_string(), |e| format!("{e:.4}")),
                non_2xx,
                rounds.join(" ")
            )?;
        }
    }
    if !revocation.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        writeln!(
            out,
            "{:<34} {:>6} {:>8} {:>8} {:>8} {:>9} {:>9} {:>8} {:>5} {:>9} {:>7} {:>9} {:>8}",
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
                "{:<34} {:>6} {:>8.1} {:>8.1} {:>8.1} {:>9.1} {:>9.1} {:>8} {:>5} {:>9} {:>7.1} {:>9} {:>8}",
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
                 stale 200s: {} in all ({} to the poller), {} background requests",
                r.label,
                r.session_source,
                r.session_p50_ms,
                r.other_status,
                r.seconds,
                r.stale_total.max(r.stale_200_after_del),
                r.stale_200_after_del,
                r.background_requests
            )?;
        }
    }
    Ok(out)
}
