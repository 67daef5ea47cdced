//! `auth-center selftest revocation` against a running auth-center and demo-service: the
//! command's entry (`auth_center::cli::selftest_revocation`, as `main` runs it) with an
//! operator's configuration of its own (same Redis and prefix, another database) prints the
//! demo-service's verifier with its lag; with no verifier it fails.

use std::time::Instant;

use auth_center::Config;
use auth_center::config::RedisConfig;
use secrecy::SecretString;
use verifier::contract::SelftestKeys;
use verifier::{RedisTarget, RevocationMode};

use crate::helpers::*;
use crate::on_standalone_and_cluster;

on_standalone_and_cluster!(
    the_command_prints_the_demo_services_verifier_with_its_lag,
    the_command_fails_when_no_verifier_reports_in,
);

/// The configuration an operator gives the command: the deployment's Redis and prefix.
#[allow(clippy::field_reassign_with_default)] // reads better as a list of overrides
fn operator_config(center: &AuthCenter, dir: &tempfile::TempDir) -> Config {
    let mut config = Config::default();
    config.database_url =
        SecretString::from(format!("sqlite:{}", dir.path().join("cli.db").display()));
    config.redis = match &center.target {
        RedisTarget::Standalone(url) => RedisConfig::standalone(url),
        RedisTarget::Cluster(urls) => RedisConfig::cluster(urls),
        RedisTarget::Sentinel { sentinels, master } => RedisConfig::sentinel(sentinels, master),
    }
    .expect("redis target");
    config.redis_prefix = center.prefix.clone();
    config
}

async fn the_command_prints_the_demo_services_verifier_with_its_lag(store: Store) {
    let center = AuthCenter::spawn(store).await;
    let _demo = center.demo(RevocationMode::Tracked).await;
    // The demo-service's verifier reports in as soon as it is built.
    let verifiers = SelftestKeys::new(center.prefix.clone()).verifiers();
    let deadline = Instant::now() + POLL_BOUND;
    loop {
        let mut conn = center.redis.clone();
        let n: i64 = redis::cmd("ZCARD")
            .arg(&verifiers)
            .query_async(&mut conn)
            .await
            .unwrap();
        if n == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the demo-service did not report in"
        );
        tokio::time::sleep(POLL_STEP).await;
    }
    // In this process, so its default instance name has this pid.
    let pid = format!("/{}/", std::process::id());
    let dir = tempfile::tempdir().unwrap();

    let (table, passed) =
        auth_center::cli::selftest_revocation(operator_config(&center, &dir), false)
            .await
            .unwrap();
    assert!(passed, "{table}");
    eprintln!("{table}"); // the measured figures, with --nocapture
    let line = table
        .lines()
        .find(|l| l.contains(&pid))
        .unwrap_or_else(|| panic!("no line for the demo-service:\n{table}"));
    let columns: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(columns.len(), 4, "{line}");
    let lag: f64 = columns[1].parse().unwrap();
    let error_bound: f64 = columns[2].parse().unwrap();
    assert!(lag >= 0.0 && error_bound >= 0.0, "{line}");
    assert_eq!(columns[3], "refused", "{line}");

    let (json, passed) =
        auth_center::cli::selftest_revocation(operator_config(&center, &dir), true)
            .await
            .unwrap();
    assert!(passed, "{json}");
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["outcome"], "ok", "{json}");
    let verifier = &json["verifiers"][0];
    assert!(
        verifier["instance"].as_str().unwrap().contains(&pid),
        "{json}"
    );
    assert_eq!(verifier["result"], "acked", "{json}");
    assert!(verifier["lag_ms"].as_f64().unwrap() >= 0.0, "{json}");
}

async fn the_command_fails_when_no_verifier_reports_in(store: Store) {
    let center = AuthCenter::spawn(store).await;
    let dir = tempfile::tempdir().unwrap();
    let (text, passed) =
        auth_center::cli::selftest_revocation(operator_config(&center, &dir), false)
            .await
            .unwrap();
    assert!(!passed, "{text}");
    assert!(text.contains("no verifier reported in"), "{text}");
}
