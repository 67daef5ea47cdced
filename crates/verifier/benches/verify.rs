//! Cost of one `Verifier::verify_shared` call, per revocation mode, against a private
//! `redis-server` on a free loopback port (DESIGN.md §6).
//!
//! * `first_sight`: a token the verifier has never seen (full Ed25519 verification), its
//!   session already in the client-side cache (tracked mode);
//! * `repeat_token_tracked`: the same token again: signature-cache hit + the cached session
//!   answer (no Redis round trip);
//! * `repeat_token_every_request`: signature-cache hit + one `EXISTS` round trip;
//! * `repeat_token_revocation_off`: signature-cache hit only;
//! * `naive_verify_plus_exists`: the "naive design": `jsonwebtoken::decode` + one plain
//!   `EXISTS` on a non-caching multiplexed connection, every time;
//! * `redis_exists_roundtrip`: one plain `EXISTS`, for reference;
//! * `components/*`: where the tracked path's time goes (redis-rs's cache hit alone, in a
//!   `tokio::time::timeout`, and building the key and command);
//! * `axum/*`: one request through an axum `Router` (no sockets), as the demo-service
//!   serves it: the no-auth baseline handler vs `/me` behind `VerifierLayer`.
//!
//! After each benchmark the number of session checks (`EXISTS`, `PTTL`) Redis actually executed
//! (`INFO commandstats`) is printed next to the number of calls made, so a client-side
//! cache that does not hit shows up at once.
//!
//! Run with `cargo bench -p verifier` (about 1–2 minutes of measurement); with
//! `BENCH_METRICS=prometheus` a Prometheus recorder is installed first, so the verifier's
//! metrics (feature `metrics`) record for real (`docs/benchmarks.md`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)] // a benchmark: fail loudly

use std::cell::Cell;
use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use axum::body::Body;
use axum::routing::get;
use axum::{Json, Router};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, StatusCode, header};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use redis::aio::MultiplexedConnection;
use tokio::runtime::Runtime;
use tower::ServiceExt as _;
use verifier::contract::{RedisConnection, RedisOptions, SessionKeys};
use verifier::{
    Authenticated, Claims, KeySet, RedisTarget, RevocationMode, Verifier, VerifierLayer,
    VerifyingKey,
};

const ISSUER: &str = "https://auth.bench";
const AUDIENCE: &str = "api";
const KID: &str = "bench-k1";
const PREFIX: &str = "bench";
const SUB: &str = "user-1";
const SID: &str = "session-1";

/// Signs access tokens exactly as the auth-center does (EdDSA, `typ: at+jwt`, `kid`).
struct Minter {
    key: EncodingKey,
    public: Vec<u8>,
    header: Header,
    counter: Cell<u64>,
}

impl Minter {
    fn new() -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some("at+jwt".into());
        header.kid = Some(KID.into());
        Self {
            key: EncodingKey::from_ed_der(pkcs8.as_ref()),
            public: pair.public_key().as_ref().to_vec(),
            header,
            counter: Cell::new(0),
        }
    }

    /// A fresh token (distinct `jti`) for the benchmark session.
    fn mint(&self) -> String {
        let n = self.counter.get();
        self.counter.set(n + 1);
        let now = now_secs();
        let claims = serde_json::json!({
            "iss": ISSUER,
            "sub": SUB,
            "aud": AUDIENCE,
            "exp": now + 3600,
            "iat": now,
            "nbf": now,
            "jti": format!("jti-{n}-{}", uuid::Uuid::new_v4().simple()),
            "sid": SID,
            "roles": ["user"],
        });
        jsonwebtoken::encode(&self.header, &claims, &self.key).unwrap()
    }

    fn key_set(&self) -> KeySet {
        KeySet::from_keys([VerifyingKey::ed25519(KID, &self.public)])
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

async fn build_verifier(
    minter: &Minter,
    redis_url: &str,
    mode: RevocationMode,
    sig_cache_capacity: usize,
) -> Verifier {
    Verifier::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .static_keys(minter.key_set())
        .redis(RedisTarget::Standalone(redis_url.into()))
        .key_prefix(PREFIX)
        .revocation(mode)
        // Long enough that the safety-net TTL does not expire mid-run.
        .max_staleness(Duration::from_secs(60))
        .signature_cache_capacity(sig_cache_capacity)
        .build()
        .await
        .unwrap()
}

/// How many session checks (`EXISTS`, `PTTL`) the server has executed so far.
async fn session_checks(conn: &mut MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    test_support::session_checks_in(&info)
}

/// Reports how many of `calls` verifications reached Redis with a session check.
fn report(rt: &Runtime, admin: &mut MultiplexedConnection, name: &str, before: u64, calls: u64) {
    if calls == 0 {
        return; // filtered out on the command line
    }
    // Only the benchmark sends session checks to this private server.
    let after = rt.block_on(session_checks(admin));
    eprintln!(
        "{name}: {calls} verify calls, {} session checks executed by Redis ({:.4} per call)",
        after - before,
        (after - before) as f64 / calls.max(1) as f64
    );
}

fn benches(c: &mut Criterion) {
    verifier::contract::install_crypto_provider();
    // With BENCH_METRICS=prometheus, a Prometheus recorder is the process's (the hook's)
    // before any verifier is built, as in the demo-service and the gateway: the verifier's
    // counters are then real atomics. Without it, no recorder: they do nothing.
    if std::env::var("BENCH_METRICS").is_ok_and(|v| v == "prometheus") {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        metrics::set_global_recorder(recorder).unwrap();
        eprintln!("metrics: a Prometheus recorder is installed");
    }
    let redis_server = test_support::RedisServer::start().expect("start a private redis-server");
    let url = redis_server.url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let client = redis::Client::open(url.as_str()).unwrap();
    let mut admin = rt
        .block_on(client.get_multiplexed_async_connection())
        .unwrap();
    let session_key = SessionKeys::new(PREFIX).session(SUB, SID).unwrap();
    rt.block_on(async {
        redis::pipe()
            .cmd("HSET")
            .arg(&session_key)
            .arg(&[
                ("user", SUB),
                ("created", "0"),
                ("generation", "0"),
                ("ua", "bench"),
            ])
            .ignore()
            .cmd("EXPIRE")
            .arg(&session_key)
            .arg(3600)
            .ignore()
            .query_async::<()>(&mut admin)
            .await
            .unwrap();
    });

    let minter = Minter::new();
    let token = minter.mint();
    let calls = Cell::new(0u64);

    // A fresh token each iteration: full signature verification (session check cached).
    {
        let verifier = rt.block_on(build_verifier(
            &minter,
            &url,
            RevocationMode::Tracked,
            10_000_000,
        ));
        rt.block_on(verifier.verify_shared(&token)).unwrap();
        let before = rt.block_on(session_checks(&mut admin));
        calls.set(0);
        c.bench_function("first_sight", |b| {
            b.to_async(&rt).iter_batched(
                || minter.mint(),
                |t| {
                    calls.set(calls.get() + 1);
                    let verifier = &verifier;
                    async move { black_box(verifier.verify_shared(&t).await.unwrap()) }
                },
                BatchSize::SmallInput,
            )
        });
        report(&rt, &mut admin, "first_sight", before, calls.get());
    }

    for (name, mode) in [
        ("repeat_token_tracked", RevocationMode::Tracked),
        ("repeat_token_every_request", RevocationMode::EveryRequest),
        ("repeat_token_revocation_off", RevocationMode::Off),
    ] {
        let verifier = rt.block_on(build_verifier(&minter, &url, mode, 10_000));
        // Prime the signature cache and (tracked) the client-side cache.
        rt.block_on(verifier.verify_shared(&token)).unwrap();
        let before = rt.block_on(session_checks(&mut admin));
        calls.set(0);
        c.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                calls.set(calls.get() + 1);
                let (verifier, token) = (&verifier, &token);
                async move { black_box(verifier.verify_shared(token).await.unwrap()) }
            })
        });
        report(&rt, &mut admin, name, before, calls.get());
    }

    // The middleware's synchronous fast path alone: a repeat token answered from both caches
    // without an await (what `VerifierLayer` tries first).
    {
        let verifier = rt.block_on(build_verifier(
            &minter,
            &url,
            RevocationMode::Tracked,
            10_000,
        ));
        rt.block_on(verifier.verify_shared(&token)).unwrap();
        assert!(matches!(verifier.verify_cached(&token), Some(Ok(_))));
        c.bench_function("repeat_token_tracked_cached_path", |b| {
            b.iter(|| black_box(verifier.verify_cached(black_box(&token))))
        });
    }

    // The naive design: decode + verify every time, then one EXISTS round trip.
    {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        let key = DecodingKey::from_ed_der(&minter.public);
        let keys = SessionKeys::new(PREFIX);
        let conn = rt
            .block_on(client.get_multiplexed_async_connection())
            .unwrap();
        let before = rt.block_on(session_checks(&mut admin));
        calls.set(0);
        c.bench_function("naive_verify_plus_exists", |b| {
            b.to_async(&rt).iter(|| {
                calls.set(calls.get() + 1);
                let (token, key, validation, keys) = (&token, &key, &validation, &keys);
                let mut conn = conn.clone();
                async move {
                    let data = jsonwebtoken::decode::<Claims>(token, key, validation).unwrap();
                    let session = keys.session(&data.claims.sub, &data.claims.sid).unwrap();
                    let exists: i64 = redis::cmd("EXISTS")
                        .arg(session)
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                    assert_eq!(exists, 1);
                    black_box(data.claims)
                }
            })
        });
        report(
            &rt,
            &mut admin,
            "naive_verify_plus_exists",
            before,
            calls.get(),
        );

        c.bench_function("redis_exists_roundtrip", |b| {
            b.to_async(&rt).iter(|| {
                let mut conn = conn.clone();
                let key = &session_key;
                async move {
                    let exists: i64 = redis::cmd("EXISTS")
                        .arg(key)
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                    black_box(exists)
                }
            })
        });
    }

    // Where the tracked path's time goes: redis-rs's client-side cache hit alone, the same
    // inside `tokio::time::timeout` (as `SessionCheck::check` does), and building the key
    // and the command.
    {
        let options = RedisOptions {
            client_cache_ttl: Some(Duration::from_secs(60)),
            ..RedisOptions::default()
        };
        let cached = rt
            .block_on(RedisConnection::connect(
                &RedisTarget::Standalone(url.clone()),
                options,
            ))
            .unwrap();
        let exists = |conn: RedisConnection, key: String| async move {
            let mut conn = conn;
            redis::cmd("EXISTS")
                .arg(key)
                .query_async::<i64>(&mut conn)
                .await
                .unwrap()
        };
        assert_eq!(rt.block_on(exists(cached.clone(), session_key.clone())), 1);
        let before = rt.block_on(session_checks(&mut admin));
        calls.set(0);
        c.bench_function("components/redis_rs_cached_exists", |b| {
            b.to_async(&rt).iter(|| {
                calls.set(calls.get() + 1);
                black_box(exists(cached.clone(), session_key.clone()))
            })
        });
        report(
            &rt,
            &mut admin,
            "components/redis_rs_cached_exists",
            before,
            calls.get(),
        );
        c.bench_function("components/redis_rs_cached_exists_in_timeout", |b| {
            b.to_async(&rt).iter(|| {
                let fut = exists(cached.clone(), session_key.clone());
                async move {
                    black_box(
                        tokio::time::timeout(Duration::from_millis(500), fut)
                            .await
                            .unwrap(),
                    )
                }
            })
        });
        let keys = SessionKeys::new(PREFIX);
        c.bench_function("components/session_key_and_cmd", |b| {
            b.iter(|| {
                let key = keys.session(black_box(SUB), black_box(SID)).unwrap();
                let mut cmd = redis::cmd("EXISTS");
                cmd.arg(key);
                black_box(cmd)
            })
        });
    }

    // The same requests through axum, as the demo-service serves them (no sockets): the
    // no-auth baseline handler, and `/me` behind `VerifierLayer` per revocation mode.
    {
        let baseline = Router::new().route("/baseline/me", get(baseline_me));
        let request = |path: &str| {
            Request::get(path)
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap()
        };
        c.bench_function("axum/baseline_no_auth", |b| {
            b.to_async(&rt).iter(|| {
                let response = baseline.clone().oneshot(request("/baseline/me"));
                async move { black_box(response.await.unwrap()) }
            })
        });
        for (name, mode) in [
            ("axum/me_tracked", RevocationMode::Tracked),
            ("axum/me_revocation_off", RevocationMode::Off),
        ] {
            let verifier = rt.block_on(build_verifier(&minter, &url, mode, 10_000));
            let app = Router::new()
                .route("/me", get(me))
                .route_layer(VerifierLayer::new(verifier));
            let first = rt.block_on(app.clone().oneshot(request("/me"))).unwrap();
            assert_eq!(first.status(), StatusCode::OK);
            let before = rt.block_on(session_checks(&mut admin));
            calls.set(0);
            c.bench_function(name, |b| {
                b.to_async(&rt).iter(|| {
                    calls.set(calls.get() + 1);
                    let response = app.clone().oneshot(request("/me"));
                    async move {
                        let response = response.await.unwrap();
                        debug_assert_eq!(response.status(), StatusCode::OK);
                        black_box(response)
                    }
                })
            });
            report(&rt, &mut admin, name, before, calls.get());
        }
    }

    drop(rt);
    drop(redis_server);
}

/// The demo-service's no-auth baseline handler.
async fn baseline_me() -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "sub": "baseline", "sid": "baseline", "roles": [], "aud": "api", "exp": 0
    }))
}

/// The demo-service's `/me` handler.
async fn me(user: Authenticated) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "sub": user.sub, "sid": user.sid, "roles": user.roles, "aud": user.aud, "exp": user.exp
    }))
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
        .configure_from_args()
}

criterion_group! {
    name = verify;
    config = config();
    targets = benches
}
criterion_main!(verify);
