//! The repeat-token path, `HOT_PATH_CALLS` times (default 100 000), for counting its
//! instructions under `valgrind --tool=cachegrind` (deterministic, unlike wall time on a
//! shared machine): run it with two call counts and divide the difference. With
//! `BENCH_METRICS=prometheus` a Prometheus recorder is installed first (the verifier's
//! metrics then record for real). `HOT_PATH_MODE=off` measures revocation mode `off` instead
//! of `tracked`. See `docs/benchmarks.md`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)] // a measurement: fail loudly

use std::hint::black_box;

use verifier::RevocationMode;

mod support;

fn main() {
    verifier::contract::install_crypto_provider();
    if std::env::var("BENCH_METRICS").is_ok_and(|v| v == "prometheus") {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        metrics::set_global_recorder(recorder).unwrap();
    }
    let calls: u64 = std::env::var("HOT_PATH_CALLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let mode = match std::env::var("HOT_PATH_MODE").as_deref() {
        Ok("off") => RevocationMode::Off,
        _ => RevocationMode::Tracked,
    };
    let support::HotPath {
        rt,
        verifier,
        token,
        _redis,
    } = support::hot_path(mode);
    rt.block_on(async {
        for _ in 0..calls {
            black_box(verifier.verify_shared(black_box(&token)).await.unwrap());
        }
    });
    println!("{calls} calls");
}
