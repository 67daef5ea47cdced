//! The native protocol (docs/native-revocation.md), through its reference implementation in
//! Python (`examples/native/python/native_check.py`) against the real auth-center and Redis:
//! live sessions are valid and then answered from the cache; a `DEL` or a logout reaches the
//! cache as Redis's invalidation push; Redis down is `unavailable`, never `valid`; bad tokens
//! are refused before any Redis call.
//!
//! The checker runs with a max-staleness TTL of 60 s, far beyond every bound here, so only
//! an invalidation push can empty a cache entry within a test.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use verifier::{Clock, RedisTarget, SystemClock};

use crate::helpers::*;
use crate::python::{LineProcess, repo_path, venv_python};

/// The reference checker, driven over its line protocol.
struct Checker(LineProcess);

impl Checker {
    /// A checker for `center`'s tokens meant for `audience`, on `center`'s (standalone) Redis.
    async fn start(python: &str, center: &AuthCenter, audience: &str) -> Self {
        let RedisTarget::Standalone(redis_url) = &center.target else {
            panic!("the reference checker speaks to a standalone Redis");
        };
        let mut process = LineProcess::spawn(
            python,
            &repo_path("examples/native/python/native_check.py"),
            &[
                ("NATIVE_JWKS_URL", center.jwks_url()),
                ("NATIVE_ISSUER", ISSUER.into()),
                ("NATIVE_AUDIENCE", audience.into()),
                ("NATIVE_REDIS_URL", redis_url.clone()),
                ("NATIVE_REDIS_PREFIX", center.prefix.clone()),
                ("NATIVE_MAX_STALENESS", "60".into()),
            ],
        );
        assert_eq!(process.read_line().await, r#"{"ready": true}"#);
        Self(process)
    }

    async fn check(&mut self, token: &str) -> Value {
        self.0.ask(&format!("check {token}")).await
    }

    async fn stats(&mut self) -> Value {
        self.0.ask("stats").await
    }

    /// Checks `tokens`; the answer must be `result` (and, when valid, name the session).
    async fn expect(&mut self, tokens: &Tokens, result: &str) -> Value {
        let answer = self.check(&tokens.access_token).await;
        assert_eq!(answer["result"], result, "{answer}");
        if result == "valid" {
            assert_eq!(answer["sub"], tokens.user_id().as_str());
            assert_eq!(answer["sid"], tokens.session_id.as_str());
        }
        answer
    }

    /// Waits until the checker has handled `count` invalidation pushes in all; how long that
    /// took.
    async fn await_invalidations(&mut self, count: u64) -> Duration {
        #[allow(clippy::disallowed_methods)] // an observation, printed, never asserted on
        let started = Instant::now();
        while self.stats().await["invalidations"].as_u64() < Some(count) {
            assert!(
                started.elapsed() < POLL_BOUND,
                "no invalidation push within {POLL_BOUND:?}: {}",
                self.stats().await
            );
            tokio::time::sleep(POLL_STEP).await;
        }
        started.elapsed()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_reference_serves_live_sessions_from_its_cache_until_a_push_ends_them() {
    let Some(python) = venv_python() else {
        return;
    };
    let center = AuthCenter::spawn(Store::Standalone).await;
    let alice = center.register_and_login("alice").await;
    let alice_laptop = center.login_ok("alice").await;
    let bob = center.register_and_login("bob").await;
    let mut checker = Checker::start(&python, &center, AUDIENCE).await;

    for tokens in [&alice, &alice_laptop, &bob] {
        let first = checker.expect(tokens, "valid").await;
        assert_eq!(first["from_cache"], false, "{first}");
        let again = checker.expect(tokens, "valid").await;
        assert_eq!(again["from_cache"], true, "{again}");
    }
    let stats = checker.stats().await;
    assert_eq!(
        (stats["asked"].as_u64(), stats["hits"].as_u64()),
        (Some(3), Some(3))
    );

    // An operator's DEL: the push empties the entry without any request being made.
    let key = center.session_key(&alice);
    assert_eq!(center.redis_on_key("DEL", &key, &[]).await, 1);
    let took = checker.await_invalidations(1).await;
    eprintln!("observation: DEL to the invalidation push handled by the Python checker: {took:?}");
    assert_eq!(checker.stats().await["cached"], 2);
    let revoked = checker.expect(&alice, "revoked").await;
    assert_eq!(revoked["from_cache"], false);
    // Only that session: alice's other session is still answered from the cache.
    let other = checker.expect(&alice_laptop, "valid").await;
    assert_eq!(other["from_cache"], true, "{other}");

    // A logout at the auth-center arrives the same way.
    center.logout(&bob).await;
    checker.await_invalidations(2).await;
    checker.expect(&bob, "revoked").await;
    let stats = checker.stats().await;
    assert_eq!(
        stats["asked"], 5,
        "one PTTL per answer not from the cache: {stats}"
    );
    assert_eq!(stats["flushes"], 0, "{stats}");
}

/// Redis pushes an expiry only when it deletes the expired key (a read meets it, or its
/// active expiry cycle, turned off here as it lags in a Redis with millions of keys): the
/// checker must stop trusting its cache at the key's expiry by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_reference_refuses_a_session_that_expires_unread_from_its_expiry_on() {
    let Some(python) = venv_python() else {
        return;
    };
    let redis = PrivateRedis::start(Store::Standalone);
    let PrivateRedis::Standalone(server) = &redis else {
        unreachable!("a standalone Redis was asked for");
    };
    server
        .query::<()>(redis::cmd("DEBUG").arg("SET-ACTIVE-EXPIRE").arg(0))
        .expect("DEBUG SET-ACTIVE-EXPIRE 0");
    let center = AuthCenter::spawn_on(redis.target()).await;
    let alice = center.register_and_login("alice").await;
    let bob = center.register_and_login("bob").await;
    let mut checker = Checker::start(&python, &center, AUDIENCE).await;
    for tokens in [&alice, &bob] {
        checker.expect(tokens, "valid").await;
    }

    // The PEXPIRE is a write: its push empties the entry, and the next check asks again.
    assert_eq!(
        center
            .redis_on_key("PEXPIRE", &center.session_key(&alice), &["2000"])
            .await,
        1
    );
    #[allow(clippy::disallowed_methods)] // Redis expires the key in real time
    let expires = Instant::now() + Duration::from_millis(2000);
    checker.await_invalidations(1).await;
    checker.expect(&alice, "valid").await;
    for tokens in [&alice, &bob] {
        let again = checker.expect(tokens, "valid").await;
        assert_eq!(again["from_cache"], true, "{again}");
    }

    tokio::time::sleep_until((expires + Duration::from_millis(200)).into()).await;
    let expired = checker.expect(&alice, "revoked").await;
    assert_eq!(expired["from_cache"], false, "{expired}");
    let other = checker.expect(&bob, "valid").await;
    assert_eq!(
        other["from_cache"], true,
        "a session without a near expiry stays cached"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_reference_answers_unavailable_while_redis_is_down_and_recovers_by_itself() {
    let Some(python) = venv_python() else {
        return;
    };
    let mut redis = PrivateRedis::start(Store::Standalone);
    let center = AuthCenter::spawn_on(redis.target()).await;
    let alice = center.register_and_login("alice").await;
    let mut checker = Checker::start(&python, &center, AUDIENCE).await;
    checker.expect(&alice, "valid").await;
    checker.expect(&alice, "valid").await; // cached

    redis.stop();

    let mut before = Vec::new();
    #[allow(clippy::disallowed_methods)] // a bound on a poll, not a timing assertion
    let started = Instant::now();
    loop {
        let answer = checker.check(&alice.access_token).await;
        if answer["result"] == "unavailable" {
            break;
        }
        assert!(
            started.elapsed() < POLL_BOUND,
            "still {answer} after Redis stopped"
        );
        before.push(answer);
        tokio::time::sleep(POLL_STEP).await;
    }
    assert!(
        before
            .iter()
            .all(|a| a["result"] == "valid" && a["from_cache"] == true),
        "only cached answers may precede the first unavailable: {before:?}"
    );
    for _ in 0..STAYS_FOR {
        checker.expect(&alice, "unavailable").await;
    }

    redis.restart();

    // The data went with the restart: the session is gone for good, never served from a
    // cache that outlived the connection.
    #[allow(clippy::disallowed_methods)] // a bound on a poll, not a timing assertion
    let started = Instant::now();
    let answer = loop {
        let answer = checker.check(&alice.access_token).await;
        if answer["result"] != "unavailable" {
            break answer;
        }
        assert!(
            started.elapsed() < RECOVERY_BOUND,
            "Redis is back but: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(answer["result"], "revoked", "{answer}");
    let alice_again = center.login_after_restart("alice").await;
    checker.expect(&alice_again, "valid").await;
}

/// A clock an hour behind: the tokens of an auth-center on it expired 45 minutes ago.
#[derive(Debug)]
struct AnHourAgo;

impl Clock for AnHourAgo {
    fn now_millis(&self) -> i64 {
        SystemClock.now_millis() - 3_600_000
    }
}

fn encode(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// `tokens`' access token with its header replaced by `header` (payload and signature kept).
fn with_header(tokens: &Tokens, header: &Value) -> String {
    let (_, rest) = tokens.access_token.split_once('.').expect("a JWS");
    format!("{}.{rest}", encode(header))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_reference_refuses_expired_wrong_audience_tampered_and_unsafe_tokens() {
    let Some(python) = venv_python() else {
        return;
    };
    let center = AuthCenter::spawn(Store::Standalone).await;
    let alice = center.register_and_login("alice").await;
    let mut checker = Checker::start(&python, &center, AUDIENCE).await;
    let header = alice.header();
    let kid = alice.kid();

    let claims = alice.claims();
    let mut as_admin = claims.clone();
    as_admin["sub"] = json!("admin");
    let parts: Vec<&str> = alice.access_token.split('.').collect();
    let cases = [
        (
            "a tampered payload",
            format!("{}.{}.{}", parts[0], encode(&as_admin), parts[2]),
            "InvalidSignatureError",
        ),
        (
            "alg none",
            with_header(&alice, &json!({"alg": "none", "typ": "at+jwt", "kid": kid})),
            "algorithm not allowed",
        ),
        (
            "a key named by the token (jku)",
            with_header(&alice, &{
                let mut h = header.clone();
                h["jku"] = json!("https://evil.example/jwks.json");
                h
            }),
            "forbidden header parameter",
        ),
        (
            "not an access token (typ JWT)",
            with_header(&alice, &{
                let mut h = header.clone();
                h["typ"] = json!("JWT");
                h
            }),
            "not an access token (typ)",
        ),
        ("garbage", "not-a-token".to_owned(), "malformed token"),
    ];
    for (what, token, reason) in cases {
        let answer = checker.check(&token).await;
        assert_eq!(
            (answer["result"].as_str(), answer["reason"].as_str()),
            (Some("invalid"), Some(reason)),
            "{what}: {answer}"
        );
    }

    let mut elsewhere = Checker::start(&python, &center, "another-api").await;
    let answer = elsewhere.check(&alice.access_token).await;
    assert_eq!(answer["result"], "invalid", "{answer}");
    assert_eq!(answer["reason"], "InvalidAudienceError", "{answer}");

    let past =
        AuthCenter::spawn_with_clock(Store::Standalone, std::sync::Arc::new(AnHourAgo)).await;
    let old = past.register_and_login("carol").await;
    let mut checker_of_past = Checker::start(&python, &past, AUDIENCE).await;
    let answer = checker_of_past.check(&old.access_token).await;
    assert_eq!(answer["result"], "invalid", "{answer}");
    assert_eq!(answer["reason"], "token expired", "{answer}");

    // Refused before Redis: not one PTTL was sent for these tokens.
    for checker in [&mut checker, &mut elsewhere, &mut checker_of_past] {
        assert_eq!(checker.stats().await["asked"], 0);
    }
    // And the genuine token is fine.
    checker.expect(&alice, "valid").await;
}
