//! The server's own timing of a run (`--server-metrics`): its Prometheus histograms, read at
//! the window's edges. The difference says how many of the window's requests the server
//! itself took longer than each bucket bound over, and how many of its calls did (the
//! auth-center's `auth_redis_command_duration_seconds{op="session_rotate"}`), so that a slow
//! answer can be placed inside the server, in one of its calls, or outside it (the client,
//! the network, the machine).

use std::collections::BTreeMap;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::client::Target;

/// The histograms of one scrape: series (`name{labels}`, without `le`) → (upper bound in
/// seconds, cumulative count), in the order scraped.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Scrape(BTreeMap<String, Vec<(f64, f64)>>);

impl Scrape {
    /// The `*_bucket` lines of a Prometheus text exposition.
    pub(crate) fn parse(text: &str) -> Self {
        let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for line in text.lines() {
            let Some((name, rest)) = line.split_once("_bucket{") else {
                continue;
            };
            let Some((labels, value)) = rest.rsplit_once("} ") else {
                continue;
            };
            let Some((others, bound)) = split_le(labels) else {
                continue;
            };
            let bound = match bound {
                "+Inf" => f64::INFINITY,
                b => match b.parse() {
                    Ok(b) => b,
                    Err(_) => continue,
                },
            };
            let Ok(count) = value.trim().parse::<f64>() else {
                continue;
            };
            series
                .entry(format!("{name}{{{others}}}"))
                .or_default()
                .push((bound, count));
        }
        Self(series)
    }

    /// GETs and parses `url` (a loopback `http://` URL).
    pub(crate) async fn get(http: &reqwest::Client, url: &str) -> anyhow::Result<Self> {
        let text = http
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("scrape {url}"))?
            .text()
            .await?;
        Ok(Self::parse(&text))
    }
}

/// The labels without `le`, and `le`'s value.
fn split_le(labels: &str) -> Option<(String, &str)> {
    // `le` itself, not a label whose name ends in "le" (`role`, `rule`).
    let start = if labels.starts_with("le=\"") {
        0
    } else {
        labels.find(",le=\"")? + 1
    };
    let value_start = start + "le=\"".len();
    let value_len = labels[value_start..].find('"')?;
    let bound = &labels[value_start..value_start + value_len];
    let before = labels[..start].trim_end_matches(',');
    let after = labels[value_start + value_len + 1..].trim_start_matches(',');
    let others = match (before.is_empty(), after.is_empty()) {
        (true, _) => after.to_owned(),
        (false, true) => before.to_owned(),
        (false, false) => format!("{before},{after}"),
    };
    Some((others, bound))
}

/// One histogram series over the window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct SeriesDelta {
    /// `name{labels}`, e.g. `auth_redis_command_duration_seconds{op="session_rotate"}`.
    pub series: String,
    /// Observations in the window.
    pub count: u64,
    /// (bucket bound in ms, % of the window's observations above it), for the bounds up
    /// to 100 ms.
    pub over_ms: Vec<(f64, f64)>,
}

impl SeriesDelta {
    /// The share above `ms`, when `ms` is one of the bucket bounds.
    pub(crate) fn over(&self, ms: f64) -> Option<f64> {
        self.over_ms
            .iter()
            .find(|(bound, _)| (bound - ms).abs() < 1e-9)
            .map(|(_, pct)| *pct)
    }

    /// A short name: the metric without `_duration_seconds` and the label values, e.g.
    /// `auth_redis_command session_rotate`.
    pub(crate) fn short_name(&self) -> String {
        let (name, labels) = self
            .series
            .split_once('{')
            .unwrap_or((self.series.as_str(), "}"));
        let mut short = name.trim_end_matches("_duration_seconds").to_owned();
        for pair in labels.trim_end_matches('}').split(',') {
            if let Some((_, value)) = pair.split_once('=') {
                short.push(' ');
                short.push_str(value.trim_matches('"'));
            }
        }
        short
    }
}

/// What each series observed between two scrapes; series with no new observation are left
/// out.
pub(crate) fn delta(before: &Scrape, after: &Scrape) -> Vec<SeriesDelta> {
    let mut out = Vec::new();
    for (series, buckets) in &after.0 {
        let earlier = before.0.get(series);
        let at = |bound: f64, now: f64| {
            let then = earlier
                .and_then(|b| b.iter().find(|(le, _)| *le == bound))
                .map_or(0.0, |(_, c)| *c);
            (now - then).max(0.0)
        };
        let Some(&(_, total_now)) = buckets.iter().find(|(le, _)| le.is_infinite()) else {
            continue;
        };
        let total = at(f64::INFINITY, total_now);
        if total < 1.0 {
            continue;
        }
        let over_ms = buckets
            .iter()
            .filter(|(le, _)| le.is_finite() && *le <= 0.1)
            .map(|&(le, now)| {
                let pct = 100.0 * (total - at(le, now)) / total;
                (le * 1e3, (pct * 1e4).round() / 1e4)
            })
            .collect();
        out.push(SeriesDelta {
            series: series.clone(),
            count: total as u64,
            over_ms,
        });
    }
    out
}

/// The scraper of `--server-metrics`: checks the URL once, then reads it at each edge.
pub(crate) struct Scraper {
    http: reqwest::Client,
    url: String,
    /// The series of the scrapes themselves (`route="/metrics"`), left out of the deltas.
    own_route: String,
}

impl Scraper {
    /// `url` must be a loopback `http://` URL.
    pub(crate) fn new(url: &str) -> anyhow::Result<Self> {
        let target = Target::parse(url)?;
        Ok(Self {
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(std::time::Duration::from_secs(5))
                .build()?,
            url: url.to_owned(),
            own_route: format!("route=\"{}\"", target.path()),
        })
    }

    pub(crate) async fn scrape(&self) -> anyhow::Result<Scrape> {
        Scrape::get(&self.http, &self.url).await
    }

    /// [`delta`] without the series of the scrapes themselves.
    pub(crate) fn window(&self, before: &Scrape, after: &Scrape) -> Vec<SeriesDelta> {
        let mut series = delta(before, after);
        series.retain(|s| !s.series.contains(&self.own_route));
        series
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = r#"# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{method="POST",route="/v1/refresh",status="200",le="0.001"} 90
http_request_duration_seconds_bucket{method="POST",route="/v1/refresh",status="200",le="0.005"} 100
http_request_duration_seconds_bucket{method="POST",route="/v1/refresh",status="200",le="0.01"} 100
http_request_duration_seconds_bucket{method="POST",route="/v1/refresh",status="200",le="+Inf"} 100
http_request_duration_seconds_sum{method="POST",route="/v1/refresh",status="200"} 0.2
http_request_duration_seconds_count{method="POST",route="/v1/refresh",status="200"} 100
auth_redis_command_duration_seconds_bucket{op="session_rotate",le="0.005"} 100
auth_redis_command_duration_seconds_bucket{op="session_rotate",le="+Inf"} 100
auth_redis_command_duration_seconds_bucket{op="session_create",le="0.005"} 7
auth_redis_command_duration_seconds_bucket{op="session_create",le="+Inf"} 7
"#;

    const AFTER: &str = r#"http_request_duration_seconds_bucket{method="POST",route="/v1/refresh",status="200",le="0.001"} 1090
http_request_duration_seconds_bucket{method="POST",route="/v1/refresh",status="200",le="0.005"} 1150
http_request_duration_seconds_bucket{method="POST",route="/v1/refresh",status="200",le="0.01"} 1180
http_request_duration_seconds_bucket{method="POST",route="/v1/refresh",status="200",le="+Inf"} 1200
auth_redis_command_duration_seconds_bucket{op="session_rotate",le="0.005"} 1160
auth_redis_command_duration_seconds_bucket{op="session_rotate",le="+Inf"} 1200
auth_redis_command_duration_seconds_bucket{op="session_create",le="0.005"} 7
auth_redis_command_duration_seconds_bucket{op="session_create",le="+Inf"} 7
auth_redis_command_duration_seconds_bucket{op="new_in_the_window",le="0.25"} 3
auth_redis_command_duration_seconds_bucket{op="new_in_the_window",le="+Inf"} 4
"#;

    #[test]
    fn the_window_gets_each_series_share_over_each_bound() {
        let got = delta(&Scrape::parse(BEFORE), &Scrape::parse(AFTER));
        let by_name: BTreeMap<&str, &SeriesDelta> =
            got.iter().map(|d| (d.series.as_str(), d)).collect();
        // session_create saw nothing new: left out.
        assert_eq!(got.len(), 3, "{got:?}");
        let http = by_name[r#"http_request_duration_seconds{method="POST",route="/v1/refresh",status="200"}"#];
        assert_eq!(http.count, 1100);
        // 1000 of 1100 within 1 ms, 1050 within 5 ms, 1080 within 10 ms.
        assert_eq!(http.over_ms.len(), 3);
        assert_eq!(http.over(1.0), Some(9.0909));
        assert_eq!(http.over(5.0), Some(4.5455));
        assert_eq!(http.over(10.0), Some(1.8182));
        assert_eq!(http.over(2.5), None);
        assert_eq!(http.short_name(), "http_request POST /v1/refresh 200");
        let rotate = by_name[r#"auth_redis_command_duration_seconds{op="session_rotate"}"#];
        assert_eq!((rotate.count, rotate.over(5.0)), (1100, Some(3.6364)));
        assert_eq!(rotate.short_name(), "auth_redis_command session_rotate");
        // A series first seen in the window counts from zero; bounds over 100 ms are left
        // out of the list.
        let new = by_name[r#"auth_redis_command_duration_seconds{op="new_in_the_window"}"#];
        assert_eq!((new.count, new.over_ms.as_slice()), (4, &[][..]));
    }

    #[test]
    fn le_is_found_wherever_it_stands_among_the_labels() {
        assert_eq!(
            split_le(r#"le="0.5",op="x""#),
            Some((r#"op="x""#.to_owned(), "0.5"))
        );
        assert_eq!(
            split_le(r#"a="1",le="+Inf",b="2""#),
            Some((r#"a="1",b="2""#.to_owned(), "+Inf"))
        );
        assert_eq!(split_le(r#"le="1""#), Some((String::new(), "1")));
        assert_eq!(split_le(r#"op="x""#), None);
        assert_eq!(
            split_le(r#"role="admin",le="0.5""#),
            Some((r#"role="admin""#.to_owned(), "0.5"))
        );
        assert_eq!(split_le(r#"rule="x""#), None);
        // Lines that are not buckets, or malformed ones, are skipped.
        let scrape = Scrape::parse(
            "x_sum{op=\"a\"} 1\nx_bucket{op=\"a\",le=\"oops\"} 1\nx_bucket{op=\"a\",le=\"1\"} nope\n",
        );
        assert_eq!(scrape, Scrape::default());
    }

    #[test]
    fn only_loopback_metrics_urls_are_scraped() {
        assert!(Scraper::new("http://127.0.0.1:9100/metrics").is_ok());
        assert!(Scraper::new("http://10.0.0.1:9100/metrics").is_err());
    }

    #[test]
    fn the_scrapes_own_requests_are_left_out_of_the_window() {
        let scraper = Scraper::new("http://127.0.0.1:9100/metrics").unwrap();
        let after = format!(
            "{AFTER}http_request_duration_seconds_bucket{{method=\"GET\",route=\"/metrics\",status=\"200\",le=\"+Inf\"}} 1\n"
        );
        let (before, after) = (Scrape::parse(BEFORE), Scrape::parse(&after));
        assert_eq!(delta(&before, &after).len(), 4);
        let window = scraper.window(&before, &after);
        assert_eq!(window.len(), 3);
        assert!(
            window.iter().all(|s| !s.series.contains("/metrics")),
            "{window:?}"
        );
    }
}
