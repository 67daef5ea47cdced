//! Brute-force protection: per account and IP, per IP, per account; register and refresh
//! limits; trusted proxies and spoofed `X-Forwarded-For`; limits shared through Redis.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::for_backends;
use crate::helpers::*;

for_backends! {
    sqlite_memory: [
        failed_logins_back_off_the_account_from_that_ip_until_the_window_passes,
        the_owner_can_still_log_in_from_another_ip_during_the_back_off,
        a_spoofed_x_forwarded_for_does_not_bypass_the_per_ip_limit,
        behind_a_trusted_proxy_the_login_limit_is_per_forwarded_ip,
        registrations_are_rate_limited_per_ip,
        refreshes_are_rate_limited_per_ip_and_the_session_survives,
        tokens_without_a_mac_are_also_limited_per_ip_alone,
        failures_from_many_ips_hit_the_account_wide_limit,
        usernames_with_braces_are_locked_out_like_any_other,
    ],
    sqlite_redis: [
        failed_logins_back_off_the_account_from_that_ip_until_the_window_passes,
        the_owner_can_still_log_in_from_another_ip_during_the_back_off,
        a_spoofed_x_forwarded_for_does_not_bypass_the_per_ip_limit,
        behind_a_trusted_proxy_the_login_limit_is_per_forwarded_ip,
        registrations_are_rate_limited_per_ip,
        refreshes_are_rate_limited_per_ip_and_the_session_survives,
        tokens_without_a_mac_are_also_limited_per_ip_alone,
        two_instances_sharing_redis_enforce_one_limit,
        usernames_with_braces_are_locked_out_like_any_other,
    ],
    sqlite_cluster: [
        usernames_with_braces_are_locked_out_like_any_other,
        refreshes_are_rate_limited_per_ip_and_the_session_survives,
        two_instances_sharing_redis_enforce_one_limit,
    ],
}

const WRONG: &str = "definitely not the password";

async fn assert_rate_limited(response: reqwest::Response, max_secs: u64) -> u64 {
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let secs = retry_after_secs(&response);
    assert!((1..=max_secs).contains(&secs), "Retry-After {secs}");
    assert_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    secs
}

async fn failed_logins_back_off_the_account_from_that_ip_until_the_window_passes(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.limits.login_account_ip_failures_max = 3).await;
    let uid = app
        .register("ruth", PASSWORD)
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    for _ in 0..3 {
        assert_error(
            app.login("ruth", WRONG).await,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        )
        .await;
    }
    // Now even the right password is refused, before any password work, with Retry-After.
    let secs = assert_rate_limited(app.login("ruth", PASSWORD).await, 900).await;
    assert_rate_limited(app.login("ruth", WRONG).await, 900).await;
    // Usernames are canonicalised before counting: no bypass by case.
    assert_rate_limited(app.login("RUTH", PASSWORD).await, 900).await;
    assert_eq!(app.session_count(&uid).await, 0);
    // Other accounts from the same IP are not affected.
    app.register_and_login("sid").await;

    // No permanent lockout: once the back-off passes, the right password works.
    app.clock.advance(Duration::from_secs(secs));
    let t = app.login_ok("ruth").await;
    assert_eq!(app.me(&t.access_token).await.status(), StatusCode::OK);
    // And a success forgives this IP's earlier failures for the account.
    for _ in 0..2 {
        app.login("ruth", WRONG).await;
    }
    app.login_ok("ruth").await;
    for _ in 0..2 {
        app.login("ruth", WRONG).await;
    }
    app.login_ok("ruth").await;
}

/// The account's failure counters share a Redis Cluster hash tag built from the username:
/// braces in a username, even a leading `}` (which would leave an empty tag), must neither
/// split them across slots (a failed login would be an error and never counted) nor mix
/// accounts.
async fn usernames_with_braces_are_locked_out_like_any_other(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.limits.login_account_ip_failures_max = 2).await;
    let names = ["}brace", "{open", "a}b{c", "}"];
    for name in names {
        assert_eq!(
            app.register(name, PASSWORD).await.status(),
            StatusCode::CREATED,
            "{name}"
        );
    }
    for name in names {
        for _ in 0..2 {
            assert_error(
                app.login(name, WRONG).await,
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
            )
            .await;
        }
        assert_rate_limited(app.login(name, PASSWORD).await, 900).await;
    }
    // Each account counted its own failures only.
    app.register_and_login("brace").await;
}

async fn the_owner_can_still_log_in_from_another_ip_during_the_back_off(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.limits.login_account_ip_failures_max = 3;
        c.trusted_proxies =
            vec![auth_center::domain::client_ip::IpRange::parse("127.0.0.1").unwrap()];
    })
    .await;
    app.register("sara", PASSWORD).await;
    let attacker = "203.0.113.66";
    let owner = "198.51.100.20";
    for _ in 0..3 {
        let r = app.login_forwarded("sara", WRONG, attacker).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    assert_rate_limited(app.login_forwarded("sara", PASSWORD, attacker).await, 900).await;
    let r = app.login_forwarded("sara", PASSWORD, owner).await;
    assert_eq!(r.status(), StatusCode::OK);
    let t: Tokens = r.json().await.unwrap();
    // The session records the forwarded client IP.
    let body = app.get_json_ok("/v1/sessions", &t.access_token).await;
    assert_eq!(body["sessions"][0]["ip"], owner);
    // The attacker is still backed off.
    assert_rate_limited(app.login_forwarded("sara", PASSWORD, attacker).await, 900).await;
    // The audit log records the forwarded IP of the failures.
    let failures = app.audit_events("login.failure").await;
    assert_eq!(failures.len(), 3);
    assert!(failures.iter().all(|e| e.ip.as_deref() == Some(attacker)));
}

async fn a_spoofed_x_forwarded_for_does_not_bypass_the_per_ip_limit(backend: Backend) {
    // No trusted proxies: the TCP peer is the client, whatever the header says.
    let app = spawn_app_with(backend, |c| c.limits.login_ip_max = 3).await;
    app.register("tina", PASSWORD).await;
    for i in 0..3 {
        let r = app
            .login_forwarded("ghost", WRONG, &format!("10.0.0.{i}"))
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    for xff in [
        "10.0.0.99",
        "198.51.100.1, 10.9.9.9",
        "garbage",
        "::1",
        "127.0.0.1",
    ] {
        assert_rate_limited(app.login_forwarded("tina", PASSWORD, xff).await, 300).await;
    }
    // Several X-Forwarded-For headers do not help either.
    let r = app
        .request(Method::POST, "/v1/login")
        .header("x-forwarded-for", "192.0.2.1")
        .header("x-forwarded-for", "192.0.2.2")
        .header("x-real-ip", "192.0.2.3")
        .header("forwarded", "for=192.0.2.4")
        .json(&json!({ "username": "tina", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_rate_limited(r, 300).await;
    // The window ends.
    app.clock.advance(Duration::from_secs(300));
    let t = app.login_ok("tina").await;
    let body = app.get_json_ok("/v1/sessions", &t.access_token).await;
    assert_eq!(body["sessions"][0]["ip"], "127.0.0.1");
}

async fn behind_a_trusted_proxy_the_login_limit_is_per_forwarded_ip(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.limits.login_ip_max = 2;
        c.trusted_proxies =
            vec![auth_center::domain::client_ip::IpRange::parse("127.0.0.1").unwrap()];
    })
    .await;
    app.register("uwe", PASSWORD).await;
    let a = "203.0.113.7";
    for _ in 0..2 {
        let r = app.login_forwarded("nobody", WRONG, a).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    assert_rate_limited(app.login_forwarded("uwe", PASSWORD, a).await, 300).await;
    // A client cannot escape by prepending a forged hop: the proxy appended its real IP.
    assert_rate_limited(
        app.login_forwarded("uwe", PASSWORD, &format!("198.51.100.200, {a}"))
            .await,
        300,
    )
    .await;
    // Another client behind the same proxy has its own budget.
    let r = app.login_forwarded("uwe", PASSWORD, "203.0.113.8").await;
    assert_eq!(r.status(), StatusCode::OK);
    // A forged hop to the right of a trusted one is skipped only when it is trusted.
    let r = app
        .login_forwarded("uwe", PASSWORD, "203.0.113.9, 127.0.0.1")
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let t: Tokens = r.json().await.unwrap();
    let body = app.get_json_ok("/v1/sessions", &t.access_token).await;
    let ips: Vec<&str> = body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["ip"].as_str().unwrap())
        .collect();
    assert!(
        ips.contains(&"203.0.113.9") && ips.contains(&"203.0.113.8"),
        "{ips:?}"
    );
    // Without the header, the proxy itself is the client (its own budget).
    assert_eq!(app.login("uwe", PASSWORD).await.status(), StatusCode::OK);
}

async fn registrations_are_rate_limited_per_ip(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.limits.register_ip_max = 2).await;
    assert_eq!(
        app.register("val1", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    // A refused registration counts as an attempt too.
    assert_eq!(
        app.register("val2", "short").await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_rate_limited(app.register("val3", PASSWORD).await, 3600).await;
    // Nothing was created.
    assert_error(
        app.login("val3", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    // Logins are not affected; the window ends.
    app.login_ok("val1").await;
    app.clock.advance(Duration::from_secs(3600));
    assert_eq!(
        app.register("val3", PASSWORD).await.status(),
        StatusCode::CREATED
    );
}

async fn refreshes_are_rate_limited_per_ip_and_the_session_survives(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.limits.refresh_ip_max = 3).await;
    let t = app.register_and_login("wes").await;
    let other = app.register_and_login("wilma").await;
    let mut token = t.refresh_token.clone();
    for _ in 0..3 {
        token = app.refresh_ok(&token).await.refresh_token;
    }
    // The fourth is refused before the session is looked at: the token stays the current
    // one and the session unchanged.
    assert_rate_limited(app.refresh(&token).await, 60).await;
    assert_rate_limited(app.refresh(&token).await, 60).await;
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("auth_rate_limit_refusals_total{rule=\"refresh_ip\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("auth_refreshes_total{outcome=\"rate_limited\"} 2"));
    assert_eq!(
        app.audit_events("rate_limited").await.len(),
        1,
        "once a window"
    );
    assert_eq!(app.session_count(&t.user_id()).await, 1);
    // The limit counts per IP and user: another user behind the same address refreshes.
    app.refresh_ok(&other.refresh_token).await;
    // A token whose MAC fails is refused before Redis, whatever the limit says.
    assert_error(
        app.refresh("a.b.c").await,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await;
    app.clock.advance(Duration::from_secs(60));
    let next = app.refresh_ok(&token).await;
    assert_eq!(app.me(&next.access_token).await.status(), StatusCode::OK);
    assert!(app.audit_events("refresh.reuse_detected").await.is_empty());
}

/// A token in the form from before MACs proves nothing, so its user id may be made up: a
/// per-user count would not bound a flood of them, so they count against the IP alone too.
async fn tokens_without_a_mac_are_also_limited_per_ip_alone(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.limits.refresh_ip_max = 2).await;
    let made_up = |i: u32| format!("ghost{i}.sid{i}.{}", "A".repeat(43));
    for i in 0..2 {
        assert_error(
            app.refresh(&made_up(i)).await,
            StatusCode::UNAUTHORIZED,
            "invalid_refresh_token",
        )
        .await;
    }
    assert_rate_limited(app.refresh(&made_up(2)).await, 60).await;
}

async fn failures_from_many_ips_hit_the_account_wide_limit(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.limits.login_account_failures_max = 4;
        c.trusted_proxies =
            vec![auth_center::domain::client_ip::IpRange::parse("127.0.0.1").unwrap()];
    })
    .await;
    app.register("xena", PASSWORD).await;
    for i in 0..4 {
        let r = app
            .login_forwarded("xena", WRONG, &format!("203.0.113.{i}"))
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let secs = assert_rate_limited(
        app.login_forwarded("xena", PASSWORD, "198.51.100.50").await,
        3600,
    )
    .await;
    app.clock.advance(Duration::from_secs(secs));
    let r = app.login_forwarded("xena", PASSWORD, "198.51.100.50").await;
    assert_eq!(r.status(), StatusCode::OK);
}

async fn two_instances_sharing_redis_enforce_one_limit(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.limits.login_ip_max = 4;
        c.limits.login_account_ip_failures_max = 3;
    })
    .await;
    let other = app.second_instance().await;
    app.register("yara", PASSWORD).await;
    // Account-and-IP failures: two here, one there, then both refuse.
    app.login("yara", WRONG).await;
    other.login("yara", WRONG).await;
    app.login("yara", WRONG).await;
    assert_rate_limited(other.login("yara", PASSWORD).await, 900).await;
    // Per-IP attempts: 4 made so far across both, the 5th is over on either instance.
    assert_rate_limited(app.login("zed", WRONG).await, 300).await;
    assert_rate_limited(other.login("zed", WRONG).await, 300).await;
    app.clock.advance(Duration::from_secs(900));
    assert_eq!(other.login("yara", PASSWORD).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_refresh_limit_switches_the_limit_off_and_writes_no_counter() {
    let backend = Backend {
        db: Db::Sqlite,
        sessions: Sessions::Redis,
    };
    let app = spawn_app_with(backend, |c| c.limits.refresh_ip_max = 0).await;
    let t = app.register_and_login("zero").await;
    let mut token = t.refresh_token.clone();
    for _ in 0..200 {
        token = app.refresh_ok(&token).await.refresh_token;
    }
    // No rate-limit counter was ever written for refreshes.
    let mut conn = app.redis.clone().unwrap();
    let pattern = format!("{}:rl:*refresh*", app.config.redis_prefix);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(keys.is_empty(), "{keys:?}");
}

/// The commands clients sent to each node (not those a script ran), by name, seen through
/// `MONITOR` while `during` runs.
async fn commands_sent<F: std::future::Future<Output = ()>>(
    nodes: &[String],
    during: F,
) -> std::collections::BTreeMap<String, u64> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut readers = Vec::new();
    for url in nodes {
        let address = url.trim_start_matches("redis://").to_string();
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        stream.write_all(b"MONITOR\r\n").await.unwrap();
        let mut lines = BufReader::new(stream).lines();
        assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("+OK"));
        readers.push((address, lines));
    }
    during.await;
    let mut total = std::collections::BTreeMap::new();
    for (address, mut lines) in readers {
        // A marker through another connection: every command before it has been shown.
        let client = redis::Client::open(format!("redis://{address}")).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let _: String = redis::cmd("ECHO")
            .arg("end-of-count")
            .query_async(&mut conn)
            .await
            .unwrap();
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("\"end-of-count\"") {
                break;
            }
            // `+<time> [<db> <client>] "<command>" ...`; a script's commands show `lua`.
            let Some((client, command)) = line.split_once("] ") else {
                continue;
            };
            if client.ends_with(" lua") {
                continue;
            }
            let name = command.split('"').nth(1).unwrap_or_default().to_lowercase();
            *total.entry(name).or_insert(0) += 1;
        }
    }
    // The HELLO / CLIENT of the marker's connection are not the app's.
    total.retain(|name, _| !matches!(name.as_str(), "hello" | "client"));
    total
}

/// Five refreshes against a Redis of the test's own (so no other test's commands count),
/// with the per-IP refresh limit off and on: each is one command, the rotation's `EVALSHA`.
async fn each_refresh_is_one_redis_command(redis: RedisConfig, nodes: Vec<String>) {
    let backend = Backend {
        db: Db::Sqlite,
        sessions: Sessions::Memory,
    };
    for max in [0, 120] {
        let app = spawn_app_with(backend, |c| {
            c.redis = redis.clone();
            c.limits.refresh_ip_max = max;
            // A self-test round would send commands of its own during the count.
            c.selftest.enabled = false;
        })
        .await;
        let t = app.register_and_login(&format!("trips{max}")).await;
        // The first refresh may load the scripts into the node (NOSCRIPT, then EVAL).
        let mut token = app.refresh_ok(&t.refresh_token).await.refresh_token;
        let sent = commands_sent(&nodes, async {
            for _ in 0..5 {
                token = app.refresh_ok(&token).await.refresh_token;
            }
        })
        .await;
        assert_eq!(
            sent,
            [("evalsha".to_string(), 5)].into(),
            "refresh_ip_max = {max}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_is_one_redis_command_with_the_limit_on_or_off_on_a_standalone_redis() {
    let redis = test_support::RedisServer::start().unwrap();
    each_refresh_is_one_redis_command(
        RedisConfig::standalone(&redis.url()).unwrap(),
        vec![redis.url()],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_is_one_redis_command_with_the_limit_on_or_off_on_a_cluster() {
    let cluster = test_support::RedisCluster::start().unwrap();
    // Summed over the masters (no replicas).
    each_refresh_is_one_redis_command(
        RedisConfig::cluster(cluster.urls()).unwrap(),
        cluster.urls(),
    )
    .await;
}

/// Logins against a Redis of the test's own: a successful one is three commands (the per-IP
/// count, one read of the account's failure counters, the session's `CREATE`), a failed
/// one three too (its two failure counts in one script), and a success after failures one
/// more (the `DEL` that forgives them).
async fn a_login_is_three_redis_commands(redis: RedisConfig, nodes: Vec<String>) {
    let backend = Backend {
        db: Db::Sqlite,
        sessions: Sessions::Memory,
    };
    let app = spawn_app_with(backend, |c| {
        c.redis = redis.clone();
        c.selftest.enabled = false;
    })
    .await;
    // The first login and failure may load the scripts into the nodes.
    app.register_and_login("trips").await;
    let r = app.login("trips", WRONG).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    app.login_ok("trips").await;
    let three = [("evalsha".to_string(), 2), ("mget".to_string(), 1)].into();
    let sent = commands_sent(&nodes, async {
        app.login_ok("trips").await;
    })
    .await;
    assert_eq!(sent, three, "a successful login");
    let sent = commands_sent(&nodes, async {
        let r = app.login("trips", WRONG).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    })
    .await;
    assert_eq!(sent, three, "a failed login");
    let sent = commands_sent(&nodes, async {
        app.login_ok("trips").await;
    })
    .await;
    assert_eq!(
        sent,
        [
            ("evalsha".to_string(), 2),
            ("mget".to_string(), 1),
            ("del".to_string(), 1)
        ]
        .into(),
        "a successful login after a failure"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_is_three_redis_commands_on_a_standalone_redis() {
    let redis = test_support::RedisServer::start().unwrap();
    a_login_is_three_redis_commands(
        RedisConfig::standalone(&redis.url()).unwrap(),
        vec![redis.url()],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_is_three_redis_commands_on_a_cluster() {
    let cluster = test_support::RedisCluster::start().unwrap();
    a_login_is_three_redis_commands(
        RedisConfig::cluster(cluster.urls()).unwrap(),
        cluster.urls(),
    )
    .await;
}
