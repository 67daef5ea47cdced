//! The refresh policy: the cap on rotations of one session (`refresh.max_rotations`) and
//! what a refresh from another network or user agent does (`refresh.on_network_change`,
//! `refresh.on_user_agent_change`: allow, audit or revoke). Both are decided in the store's
//! atomic rotation step, so they hold on every store.

use std::collections::HashSet;
use std::time::Duration;

use auth_center::Config;
use auth_center::domain::refresh_policy::ChangePolicy;
use reqwest::{Method, Response, StatusCode};
use serde_json::json;

use crate::helpers::*;
use crate::{for_backends, for_every_backend};

for_every_backend!(
    the_rotation_cap_is_off_by_default,
    at_the_cap_the_next_refresh_ends_the_session_and_is_audited,
    a_grace_replay_of_the_last_allowed_rotation_is_still_a_replay,
    racing_refreshes_at_the_cap_all_get_the_one_successor,
    a_network_change_is_allowed_by_default_and_the_session_shows_where_it_was_last_seen,
    the_audit_policy_lets_a_network_change_through_and_audits_it_once,
    the_revoke_policy_ends_the_session_on_a_network_change,
    a_user_agent_change_is_judged_without_version_numbers,
    the_revoke_policy_ends_the_session_on_a_user_agent_change,
    a_grace_replay_from_another_network_is_judged_like_a_rotation,
);

for_backends! {
    sqlite_memory: [
        ipv6_clients_are_compared_by_their_prefix,
        the_network_prefixes_are_settings,
        a_forged_x_forwarded_for_from_an_untrusted_peer_is_no_network_change,
        the_two_policies_are_independent,
        a_refresh_refused_by_the_policy_clears_the_refresh_cookie,
        a_change_between_ipv4_and_ipv6_is_a_network_change,
    ],
    sqlite_redis: [
        ipv6_clients_are_compared_by_their_prefix,
        the_network_prefixes_are_settings,
        a_forged_x_forwarded_for_from_an_untrusted_peer_is_no_network_change,
        the_two_policies_are_independent,
        a_change_between_ipv4_and_ipv6_is_a_network_change,
    ],
    sqlite_cluster: [
        ipv6_clients_are_compared_by_their_prefix,
        the_network_prefixes_are_settings,
        a_change_between_ipv4_and_ipv6_is_a_network_change,
    ],
}

pub(crate) const FIREFOX_124: &str =
    "Mozilla/5.0 (X11; Linux x86_64; rv:124.0) Gecko/20100101 Firefox/124.0";
const FIREFOX_125: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0";
pub(crate) const CURL: &str = "curl/8.5.0";

/// Registers `username` and logs in from `ip` with `agent`.
pub(crate) async fn login_from(
    app: &TestApp,
    username: &str,
    ip: Option<&str>,
    agent: Option<&str>,
) -> Tokens {
    let r = app.register(username, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = post_from(app, "/v1/login", ip, agent)
        .json(&json!({ "username": username, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

async fn refresh_from(
    app: &TestApp,
    token: &str,
    ip: Option<&str>,
    agent: Option<&str>,
) -> Response {
    post_from(app, "/v1/refresh", ip, agent)
        .json(&json!({ "refresh_token": token }))
        .send()
        .await
        .unwrap()
}

async fn refresh_from_ok(
    app: &TestApp,
    token: &str,
    ip: Option<&str>,
    agent: Option<&str>,
) -> Tokens {
    let r = refresh_from(app, token, ip, agent).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "refresh: {}",
        r.text().await.unwrap_or_default()
    );
    r.json().await.unwrap()
}

/// The session as "your devices" shows it.
async fn my_session(app: &TestApp, tokens: &Tokens) -> serde_json::Value {
    let body = app.get_json_ok("/v1/sessions", &tokens.access_token).await;
    body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["session_id"] == tokens.session_id.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("session not listed: {body}"))
}

/// Asserts that the session of `tokens` is gone: its access token is refused and the
/// store has no session for the user.
async fn assert_session_ended(app: &TestApp, tokens: &Tokens) {
    assert_error(
        app.me(&tokens.access_token).await,
        StatusCode::UNAUTHORIZED,
        "session_revoked",
    )
    .await;
    assert_eq!(app.session_count(&tokens.user_id()).await, 0);
    if app.redis.is_some() {
        assert!(
            !app.redis_session_exists(&tokens.user_id(), &tokens.session_id)
                .await,
            "the session key is deleted"
        );
        assert!(app.redis_index_members(&tokens.user_id()).await.is_empty());
    }
}

/// The events of the refresh policy, oldest first.
async fn policy_events(app: &TestApp) -> Vec<auth_center::domain::ports::AuditEvent> {
    let mut events: Vec<_> = app
        .all_audit_events()
        .await
        .into_iter()
        .filter(|e| {
            matches!(
                e.event.as_str(),
                "refresh.limit_reached" | "refresh.context_changed" | "refresh.context_revoked"
            )
        })
        .collect();
    events.reverse();
    events
}

// ---- the rotation cap ----

async fn the_rotation_cap_is_off_by_default(backend: Backend) {
    assert_eq!(Config::default().refresh.max_rotations, 0);
    let app = spawn_app(backend).await;
    let mut tokens = app.register_and_login("ada").await;
    for _ in 0..12 {
        tokens = app.refresh_ok(&tokens.refresh_token).await;
    }
    let sessions = app.auth.sessions_of(&tokens.user_id()).await.unwrap();
    assert_eq!(sessions[0].generation, 12);
    assert!(policy_events(&app).await.is_empty());
}

async fn at_the_cap_the_next_refresh_ends_the_session_and_is_audited(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.refresh.max_rotations = 3).await;
    let t0 = app.register_and_login("bea").await;
    let t1 = app.refresh_ok(&t0.refresh_token).await;
    let t2 = app.refresh_ok(&t1.refresh_token).await;
    let t3 = app.refresh_ok(&t2.refresh_token).await;
    assert_eq!(app.me(&t3.access_token).await.status(), StatusCode::OK);
    // Three rotations were allowed; the fourth is refused and the session ends.
    assert_error(
        app.refresh(&t3.refresh_token).await,
        StatusCode::UNAUTHORIZED,
        "refresh_limit_reached",
    )
    .await;
    assert_session_ended(&app, &t3).await;
    let events = policy_events(&app).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].event, "refresh.limit_reached");
    assert_eq!(events[0].sid.as_deref(), Some(t0.session_id.as_str()));
    assert_eq!(events[0].target.as_deref(), Some(t0.user_id().as_str()));
    assert_eq!(events[0].ip.as_deref(), Some("127.0.0.1"));
    let detail = events[0].detail.clone().unwrap_or_default();
    assert!(detail.contains('3'), "{detail}");
    // The token is now simply invalid, and a new login starts a new session with a new count.
    assert_error(
        app.refresh(&t3.refresh_token).await,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await;
    let fresh = app.login_ok("bea").await;
    let fresh = app.refresh_ok(&fresh.refresh_token).await;
    assert_eq!(app.me(&fresh.access_token).await.status(), StatusCode::OK);
    assert!(app.audit_events("refresh.reuse_detected").await.is_empty());
}

async fn a_grace_replay_of_the_last_allowed_rotation_is_still_a_replay(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.refresh.max_rotations = 2).await;
    let t0 = app.register_and_login("cleo").await;
    let t1 = app.refresh_ok(&t0.refresh_token).await;
    let t2 = app.refresh_ok(&t1.refresh_token).await;
    // The session is at its cap; the other tab replays t1 within the grace window.
    app.clock.advance(Duration::from_secs(5));
    let replay = app.refresh_ok(&t1.refresh_token).await;
    assert_eq!(replay.refresh_token, t2.refresh_token, "the same successor");
    assert_eq!(app.me(&replay.access_token).await.status(), StatusCode::OK);
    let sessions = app.auth.sessions_of(&t0.user_id()).await.unwrap();
    assert_eq!(sessions[0].generation, 2);
    assert!(policy_events(&app).await.is_empty());
    // The next rotation is the one over the cap.
    assert_error(
        app.refresh(&t2.refresh_token).await,
        StatusCode::UNAUTHORIZED,
        "refresh_limit_reached",
    )
    .await;
    assert_session_ended(&app, &replay).await;
}

async fn racing_refreshes_at_the_cap_all_get_the_one_successor(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.refresh.max_rotations = 1).await;
    let t0 = app.register_and_login("dora").await;
    let responses =
        futures::future::join_all((0..10).map(|_| app.refresh(&t0.refresh_token))).await;
    let mut successors = HashSet::new();
    for r in responses {
        assert_eq!(r.status(), StatusCode::OK, "no false refusal at the cap");
        let tokens: Tokens = r.json().await.unwrap();
        successors.insert(tokens.refresh_token);
    }
    assert_eq!(successors.len(), 1);
    let t1 = successors.into_iter().next().unwrap();
    assert_error(
        app.refresh(&t1).await,
        StatusCode::UNAUTHORIZED,
        "refresh_limit_reached",
    )
    .await;
    assert_eq!(app.audit_events("refresh.limit_reached").await.len(), 1);
    assert_eq!(app.session_count(&t0.user_id()).await, 0);
}

// ---- a change of network ----

async fn a_network_change_is_allowed_by_default_and_the_session_shows_where_it_was_last_seen(
    backend: Backend,
) {
    let defaults = Config::default().refresh;
    assert_eq!(
        (defaults.on_network_change, defaults.on_user_agent_change),
        (ChangePolicy::Allow, ChangePolicy::Allow)
    );
    assert_eq!((defaults.ipv4_prefix, defaults.ipv6_prefix), (24, 64));
    let app = proxied_app(backend, |_| {}).await;
    let t0 = login_from(&app, "edda", Some("198.51.100.7"), Some(FIREFOX_124)).await;
    let session = my_session(&app, &t0).await;
    assert_eq!(
        (session["ip"].as_str(), session["user_agent"].as_str()),
        (Some("198.51.100.7"), Some(FIREFOX_124))
    );
    let t1 = refresh_from_ok(&app, &t0.refresh_token, Some("203.0.113.9"), Some(CURL)).await;
    // "Your devices" shows where and with what the session was last used.
    let session = my_session(&app, &t1).await;
    assert_eq!(session["ip"], "203.0.113.9");
    assert_eq!(session["user_agent"], CURL);
    assert!(policy_events(&app).await.is_empty());
}

async fn the_audit_policy_lets_a_network_change_through_and_audits_it_once(backend: Backend) {
    let app = proxied_app(backend, |c| {
        c.refresh.on_network_change = ChangePolicy::Audit
    })
    .await;
    let t0 = login_from(&app, "fritz", Some("198.51.100.7"), None).await;
    // Same /24: not a change.
    let t1 = refresh_from_ok(&app, &t0.refresh_token, Some("198.51.100.200"), None).await;
    assert!(policy_events(&app).await.is_empty());
    // Another network: let through, audited.
    let t2 = refresh_from_ok(&app, &t1.refresh_token, Some("203.0.113.9"), None).await;
    assert_eq!(app.me(&t2.access_token).await.status(), StatusCode::OK);
    let events = policy_events(&app).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e.event, "refresh.context_changed");
    assert_eq!(e.sid.as_deref(), Some(t0.session_id.as_str()));
    assert_eq!(e.target.as_deref(), Some(t0.user_id().as_str()));
    assert_eq!(e.ip.as_deref(), Some("203.0.113.9"));
    let detail = e.detail.clone().unwrap();
    for part in [
        "198.51.100.0/24",
        "203.0.113.0/24",
        "198.51.100.200",
        "203.0.113.9",
    ] {
        assert!(detail.contains(part), "{part} in {detail}");
    }
    for token in [&t0, &t1, &t2] {
        let secret = token.refresh_token.split('.').nth(2).unwrap();
        assert!(!detail.contains(secret), "no token in the audit log");
    }
    // The session now lives on the new network: moving within it is no change, and the
    // grace replay of t2 from there is none either.
    let t3 = refresh_from_ok(&app, &t2.refresh_token, Some("203.0.113.10"), None).await;
    refresh_from_ok(&app, &t2.refresh_token, Some("203.0.113.10"), None).await;
    assert_eq!(policy_events(&app).await.len(), 1);
    assert_eq!(my_session(&app, &t3).await["ip"], "203.0.113.10");
}

async fn the_revoke_policy_ends_the_session_on_a_network_change(backend: Backend) {
    let app = proxied_app(backend, |c| {
        c.refresh.on_network_change = ChangePolicy::Revoke
    })
    .await;
    let t0 = login_from(&app, "gale", Some("198.51.100.7"), Some(FIREFOX_124)).await;
    let t1 = refresh_from_ok(
        &app,
        &t0.refresh_token,
        Some("198.51.100.8"),
        Some(FIREFOX_124),
    )
    .await;
    assert_error(
        refresh_from(
            &app,
            &t1.refresh_token,
            Some("203.0.113.9"),
            Some(FIREFOX_124),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "refresh_context_changed",
    )
    .await;
    assert_session_ended(&app, &t1).await;
    let events = policy_events(&app).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].event, "refresh.context_revoked");
    assert_eq!(events[0].ip.as_deref(), Some("203.0.113.9"));
    let detail = events[0].detail.clone().unwrap();
    assert!(
        detail.contains("198.51.100.0/24") && detail.contains("203.0.113.0/24"),
        "{detail}"
    );
    // Back on the old network, the token is dead all the same.
    assert_error(
        refresh_from(
            &app,
            &t1.refresh_token,
            Some("198.51.100.8"),
            Some(FIREFOX_124),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await;
}

// ---- a change of user agent ----

async fn a_user_agent_change_is_judged_without_version_numbers(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.refresh.on_user_agent_change = ChangePolicy::Audit
    })
    .await;
    let t0 = login_from(&app, "hugo", None, Some(FIREFOX_124)).await;
    // A browser update changes only numbers: no change.
    let t1 = refresh_from_ok(&app, &t0.refresh_token, None, Some(FIREFOX_125)).await;
    assert!(policy_events(&app).await.is_empty());
    assert_eq!(my_session(&app, &t1).await["user_agent"], FIREFOX_125);
    // Another program: audited, let through.
    let t2 = refresh_from_ok(&app, &t1.refresh_token, None, Some(CURL)).await;
    let events = policy_events(&app).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].event, "refresh.context_changed");
    let detail = events[0].detail.clone().unwrap();
    assert!(
        detail.contains(FIREFOX_125) && detail.contains(CURL),
        "{detail}"
    );
    assert!(
        !detail.contains("network"),
        "only the user agent changed: {detail}"
    );
    // No user agent at all is a user agent too.
    refresh_from_ok(&app, &t2.refresh_token, None, None).await;
    assert_eq!(policy_events(&app).await.len(), 2);
}

async fn the_revoke_policy_ends_the_session_on_a_user_agent_change(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.refresh.on_user_agent_change = ChangePolicy::Revoke
    })
    .await;
    let t0 = login_from(&app, "ines", None, Some(FIREFOX_124)).await;
    let t1 = refresh_from_ok(&app, &t0.refresh_token, None, Some(FIREFOX_124)).await;
    assert_error(
        refresh_from(&app, &t1.refresh_token, None, Some(CURL)).await,
        StatusCode::UNAUTHORIZED,
        "refresh_context_changed",
    )
    .await;
    assert_session_ended(&app, &t1).await;
    let events = app.audit_events("refresh.context_revoked").await;
    assert_eq!(events.len(), 1);
    assert!(events[0].detail.as_deref().unwrap().contains(CURL));
}

// ---- replays, settings, the client IP ----

async fn a_grace_replay_from_another_network_is_judged_like_a_rotation(backend: Backend) {
    let app = proxied_app(backend, |c| {
        c.refresh.on_network_change = ChangePolicy::Revoke;
        c.refresh.max_rotations = 1;
    })
    .await;
    let t0 = login_from(&app, "jona", Some("198.51.100.7"), None).await;
    let t1 = refresh_from_ok(&app, &t0.refresh_token, Some("198.51.100.7"), None).await;
    // The other tab on the same network: the same successor, even at the cap.
    let again = refresh_from_ok(&app, &t0.refresh_token, Some("198.51.100.9"), None).await;
    assert_eq!(again.refresh_token, t1.refresh_token);
    // The same token from elsewhere within the window: the policy applies.
    assert_error(
        refresh_from(&app, &t0.refresh_token, Some("203.0.113.9"), None).await,
        StatusCode::UNAUTHORIZED,
        "refresh_context_changed",
    )
    .await;
    assert_session_ended(&app, &t1).await;
    assert_eq!(app.audit_events("refresh.context_revoked").await.len(), 1);
}

async fn ipv6_clients_are_compared_by_their_prefix(backend: Backend) {
    let app = proxied_app(backend, |c| {
        c.refresh.on_network_change = ChangePolicy::Revoke
    })
    .await;
    let t0 = login_from(&app, "kira", Some("2001:db8:1:2::10"), None).await;
    // Same /64.
    let t1 = refresh_from_ok(&app, &t0.refresh_token, Some("2001:db8:1:2:ffff::1"), None).await;
    assert_eq!(my_session(&app, &t1).await["ip"], "2001:db8:1:2:ffff::1");
    // Another /64 of the same /48.
    assert_error(
        refresh_from(&app, &t1.refresh_token, Some("2001:db8:1:3::1"), None).await,
        StatusCode::UNAUTHORIZED,
        "refresh_context_changed",
    )
    .await;
    let detail = app.audit_events("refresh.context_revoked").await[0]
        .detail
        .clone()
        .unwrap();
    assert!(
        detail.contains("2001:db8:1:2::/64") && detail.contains("2001:db8:1:3::/64"),
        "{detail}"
    );
}

async fn the_network_prefixes_are_settings(backend: Backend) {
    let app = proxied_app(backend, |c| {
        c.refresh.on_network_change = ChangePolicy::Revoke;
        c.refresh.ipv4_prefix = 16;
        c.refresh.ipv6_prefix = 48;
    })
    .await;
    let t0 = login_from(&app, "lena", Some("198.51.100.7"), None).await;
    let t1 = refresh_from_ok(&app, &t0.refresh_token, Some("198.51.7.7"), None).await;
    assert_error(
        refresh_from(&app, &t1.refresh_token, Some("198.52.0.1"), None).await,
        StatusCode::UNAUTHORIZED,
        "refresh_context_changed",
    )
    .await;
    let t0 = login_from(&app, "lars", Some("2001:db8:1:2::10"), None).await;
    let t1 = refresh_from_ok(&app, &t0.refresh_token, Some("2001:db8:1:3::1"), None).await;
    assert_error(
        refresh_from(&app, &t1.refresh_token, Some("2001:db8:2::1"), None).await,
        StatusCode::UNAUTHORIZED,
        "refresh_context_changed",
    )
    .await;
}

async fn a_forged_x_forwarded_for_from_an_untrusted_peer_is_no_network_change(backend: Backend) {
    // No trusted proxies: the TCP peer (127.0.0.1) is the client, whatever the header says.
    let app = spawn_app_with(backend, |c| {
        c.refresh.on_network_change = ChangePolicy::Revoke
    })
    .await;
    let t0 = login_from(&app, "mira", Some("198.51.100.7"), None).await;
    let t1 = refresh_from_ok(&app, &t0.refresh_token, Some("203.0.113.9"), None).await;
    let session = my_session(&app, &t1).await;
    assert_eq!(session["ip"], "127.0.0.1");
    // Behind a trusted proxy, the forwarded client is what counts.
    let app = proxied_app(backend, |c| {
        c.refresh.on_network_change = ChangePolicy::Revoke
    })
    .await;
    let t0 = login_from(&app, "mira", Some("198.51.100.7"), None).await;
    // A client-forged hop left of the proxy's entry changes nothing.
    let t1 = refresh_from_ok(
        &app,
        &t0.refresh_token,
        Some("203.0.113.9, 198.51.100.7"),
        None,
    )
    .await;
    assert_error(
        refresh_from(
            &app,
            &t1.refresh_token,
            Some("198.51.100.7, 203.0.113.9"),
            None,
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "refresh_context_changed",
    )
    .await;
}

async fn the_two_policies_are_independent(backend: Backend) {
    let app = proxied_app(backend, |c| {
        c.refresh.on_network_change = ChangePolicy::Revoke;
        c.refresh.on_user_agent_change = ChangePolicy::Allow;
    })
    .await;
    let t0 = login_from(&app, "nils", Some("198.51.100.7"), Some(FIREFOX_124)).await;
    refresh_from_ok(&app, &t0.refresh_token, Some("198.51.100.7"), Some(CURL)).await;
    assert!(policy_events(&app).await.is_empty());
    let app = proxied_app(backend, |c| {
        c.refresh.on_network_change = ChangePolicy::Audit;
        c.refresh.on_user_agent_change = ChangePolicy::Revoke;
    })
    .await;
    let t0 = login_from(&app, "nils", Some("198.51.100.7"), Some(FIREFOX_124)).await;
    // Both changed: the stricter policy wins, and the event names both changes.
    assert_error(
        refresh_from(&app, &t0.refresh_token, Some("203.0.113.9"), Some(CURL)).await,
        StatusCode::UNAUTHORIZED,
        "refresh_context_changed",
    )
    .await;
    let events = policy_events(&app).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].event, "refresh.context_revoked");
    let detail = events[0].detail.clone().unwrap();
    assert!(
        detail.contains("203.0.113.0/24") && detail.contains(CURL),
        "{detail}"
    );
}

async fn a_change_between_ipv4_and_ipv6_is_a_network_change(backend: Backend) {
    let app = proxied_app(backend, |c| {
        c.refresh.on_network_change = ChangePolicy::Audit
    })
    .await;
    let t0 = login_from(&app, "olga", Some("198.51.100.7"), None).await;
    // An IPv4-mapped IPv6 address is the IPv4 address.
    let t1 = refresh_from_ok(&app, &t0.refresh_token, Some("::ffff:198.51.100.9"), None).await;
    assert!(policy_events(&app).await.is_empty());
    assert_eq!(my_session(&app, &t1).await["ip"], "198.51.100.9");
    refresh_from_ok(&app, &t1.refresh_token, Some("2001:db8::1"), None).await;
    let events = policy_events(&app).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let detail = events[0].detail.clone().unwrap();
    assert!(
        detail.contains("198.51.100.0/24") && detail.contains("2001:db8::/64"),
        "{detail}"
    );
}

async fn a_refresh_refused_by_the_policy_clears_the_refresh_cookie(backend: Backend) {
    const ORIGIN: &str = "https://app.example";
    let app = spawn_app_with(backend, |c| {
        c.browser.allowed_origins = vec![auth_center::config::Origin::parse(ORIGIN).unwrap()];
        c.refresh.max_rotations = 1;
        c.refresh.on_user_agent_change = ChangePolicy::Revoke;
    })
    .await;
    app.register("pia", PASSWORD).await;
    let cookie_request = |path: &str, cookie: Option<&str>, agent: &str| {
        let mut r = app
            .request(Method::POST, path)
            .header("x-token-transport", "cookie")
            .header("origin", ORIGIN)
            .header("user-agent", agent);
        if let Some(cookie) = cookie {
            r = r.header("cookie", format!("__Host-refresh={cookie}"));
        }
        r
    };
    let refresh_cookie = |r: &Response| -> String {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .find_map(|c| {
                c.strip_prefix("__Host-refresh=")
                    .map(|rest| rest.split(';').next().unwrap().to_string())
            })
            .expect("a refresh cookie")
    };
    for (agent, code) in [
        (CURL, "refresh_context_changed"),
        (FIREFOX_124, "refresh_limit_reached"),
    ] {
        let login = cookie_request("/v1/login", None, FIREFOX_124)
            .json(&json!({ "username": "pia", "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(login.status(), StatusCode::OK);
        let mut cookie = refresh_cookie(&login);
        if code == "refresh_limit_reached" {
            let r = cookie_request("/v1/refresh", Some(&cookie), FIREFOX_124)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            cookie = refresh_cookie(&r);
        }
        let r = cookie_request("/v1/refresh", Some(&cookie), agent)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(refresh_cookie(&r), "", "the dead cookie is cleared");
        assert_error(r, StatusCode::UNAUTHORIZED, code).await;
    }
}

// ---- configuration ----

#[test]
fn bad_refresh_policy_settings_are_start_up_errors_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auth.toml");
    for (toml, field) in [
        (
            "[refresh]\non_network_change = \"block\"\n",
            "on_network_change",
        ),
        (
            "[refresh]\non_user_agent_change = \"Revoke\"\n",
            "on_user_agent_change",
        ),
        ("[refresh]\nipv4_prefix = 33\n", "ipv4_prefix"),
        ("[refresh]\nipv6_prefix = 129\n", "ipv6_prefix"),
        ("[refresh]\nipv6_prefix = 300\n", "ipv6_prefix"),
        ("[refresh]\nmax_rotations = -1\n", "max_rotations"),
        ("[refresh]\nmax_rotations = 1000000001\n", "max_rotations"),
        ("[refresh]\nmax_rotation = 5\n", "max_rotation"),
    ] {
        std::fs::write(&file, toml).unwrap();
        let error = Config::load(Some(&file)).expect_err(toml).to_string();
        assert!(error.contains(field), "{toml}: {error}");
    }
    std::fs::write(
        &file,
        "[refresh]\nmax_rotations = 96\non_network_change = \"audit\"\n\
         on_user_agent_change = \"revoke\"\nipv4_prefix = 32\nipv6_prefix = 56\n",
    )
    .unwrap();
    let config = Config::load(Some(&file)).unwrap();
    let r = &config.refresh;
    assert_eq!(
        (
            r.max_rotations,
            r.on_network_change,
            r.on_user_agent_change,
            r.ipv4_prefix,
            r.ipv6_prefix
        ),
        (96, ChangePolicy::Audit, ChangePolicy::Revoke, 32, 56)
    );
    // Through the environment, as operators write it.
    let db_url = format!("sqlite:{}", dir.path().join("env.db").display());
    let ok = crate::cli::auth_center_with_env(
        &db_url,
        &[
            ("AUTH_REFRESH__MAX_ROTATIONS", "10"),
            ("AUTH_REFRESH__ON_NETWORK_CHANGE", "revoke"),
        ],
        &["migrate"],
        "",
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let bad = crate::cli::auth_center_with_env(
        &db_url,
        &[("AUTH_REFRESH__ON_NETWORK_CHANGE", "deny")],
        &["migrate"],
        "",
    );
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr).to_lowercase();
    assert!(stderr.contains("on_network_change"), "{stderr}");
}
