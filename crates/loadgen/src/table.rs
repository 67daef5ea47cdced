//! `loadgen table`: results as plain-text tables.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;

use crate::authload::{LoginResult, RefreshResult};
use crate::drive::Measured;
use crate::load::HttpResult;
use crate::paced::PacedResult;
use crate::revocation::RevocationResult;

/// Renders the result files: one table for `http` runs (ratios against the first
/// label's best round), one for `revocation` runs, one for `login`, `refresh` and `paced`
/// runs.
pub(crate) fn render(files: &[PathBuf]) -> anyhow::Result<String> {
    let mut http = Vec::new();
    let mut revocation = Vec::new();
    let mut paced = Vec::new();
    let mut capacity = Vec::new();
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
            _ => anyhow::bail!("{}: unknown result kind", path.display()),
        }
    }
    let mut out = String::new();
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
    if !paced.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        render_paced(&mut out, &paced)?;
    }
    Ok(out)
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
    writeln!(
        out,
        "{:<8} {:<24} {:>7} {:>8} {:>9} {:>8} {:>8} {:>9} {:>9} {:>9} {:>10} {:>7}  other",
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
            "{:<8} {:<24} {:>7} {:>8} {:>9.1} {:>8.0} {:>8.0} {:>9.0} {:>9.0} {:>9.0} {:>10} {:>7}  in flight max {}{}{}{}",
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
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<PathBuf> = results
            .iter()
            .enumerate()
            .map(|(i, json)| {
                let path = dir.path().join(format!("{i}.json"));
                std::fs::write(&path, json).unwrap();
                path
            })
            .collect();
        let table = render(&files).unwrap();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(lines[1].starts_with("login") && lines[1].contains("429: 1, 503: 2"));
        assert!(lines[2].contains("Redis cmds/refresh 8.00 (scripts 1.00), relogins 1"));
        assert!(lines[2].contains("2 sends due never made"));
        assert!(lines[3].starts_with("paced") && lines[3].contains("12.5"));
    }
}
