//! Key rotation never breaks a verifier: a new key is published at once and signs only
//! after the publication delay; the old public key stays published until the last token
//! it signed has expired; instances sharing the database switch together; an emergency
//! rotation switches at once; scheduled rotation creates one pending key when due.

use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use auth_center::Config;
use auth_center::domain::keys::{KeyState, KeyStatus, generate_ed25519};
use auth_center::domain::ports::StoredKey;
use auth_center::http::rfc3339;
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};
use sqlx::sqlite::SqliteConnectOptions;
use verifier::Clock as _;
use verifier::contract::ManualClock;

use crate::cli::auth_center_with_env;
use crate::for_backends;
use crate::helpers::*;

for_backends! {
    sqlite_memory: [
        right_after_a_rotation_new_tokens_are_signed_by_a_key_of_the_jwks_fetched_before_it,
        signing_switches_to_the_new_key_once_the_publication_delay_has_passed,
        the_old_key_stays_published_until_its_last_token_has_expired_counted_from_the_switch,
        an_emergency_rotation_signs_with_the_new_key_at_once_and_withdraws_a_pending_one,
        a_rotation_for_a_compromised_key_unpublishes_every_earlier_key_at_once,
        a_rotation_request_whose_body_is_not_understood_changes_nothing,
        the_admin_key_list_shows_each_keys_state_and_when_it_changes,
        the_jwks_says_it_may_be_cached_for_less_than_the_publication_delay,
        without_a_schedule_keys_are_never_rotated_automatically,
    ],
    sqlite_redis: [
        every_instance_publishes_a_new_key_before_any_instance_signs_with_it,
        scheduled_rotation_creates_one_pending_key_when_due_and_not_twice,
        a_second_instance_verifies_tokens_signed_after_an_emergency_rotation_on_the_first,
        tokens_signed_by_an_instance_that_has_not_yet_seen_an_emergency_rotation_stay_valid,
    ],
}

const ROTATE: &str = "/v1/admin/keys/rotate";

/// A rotation through the admin API; returns the new key as the API shows it.
async fn rotate_with(app: &TestApp, admin: &Tokens, body: Option<Value>) -> Value {
    let mut request = app
        .request(Method::POST, ROTATE)
        .bearer_auth(&admin.access_token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let r = request.send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// A normal (delayed) rotation, without a body; returns the new `kid`.
async fn rotate(app: &TestApp, admin: &Tokens) -> String {
    let key = rotate_with(app, admin, None).await;
    assert_eq!(key["state"], "pending");
    key["kid"].as_str().unwrap().to_string()
}

/// An emergency rotation: the new key signs at once. (A key activated in the same
/// millisecond would make the new one wait one millisecond, and the manual clock stands
/// still: move it.)
async fn rotate_now(app: &TestApp, admin: &Tokens) -> String {
    app.clock.advance(Duration::from_millis(1));
    let key = rotate_with(app, admin, Some(json!({ "now": true }))).await;
    assert_eq!(key["state"], "signing");
    key["kid"].as_str().unwrap().to_string()
}

async fn jwks_kids(app: &TestApp) -> Vec<String> {
    let r = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            assert!(k.get("d").is_none(), "no private member");
            assert_eq!(k["alg"], "EdDSA");
            assert_eq!(k["use"], "sig");
            k["kid"].as_str().unwrap().to_string()
        })
        .collect()
}

fn kid(t: &Tokens) -> String {
    t.header()["kid"].as_str().unwrap().to_string()
}

fn publish_delay(app: &TestApp) -> Duration {
    Duration::from_secs(app.config.keys.publish_delay_secs)
}

/// How long a key stays published after it stopped signing: its last token's lifetime
/// and leeway (900 + 5 s), plus the key-reload interval (30 s).
const KEEP_PUBLISHED: Duration = Duration::from_secs(935);

async fn key_status(app: &TestApp, kid: &str) -> KeyStatus {
    app.auth
        .keys()
        .statuses()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.kid == kid)
        .unwrap()
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap()
}

/// A verifier that fetched the JWKS just before a rotation (and caches it for as long as
/// the JWKS allows) must accept every token issued right after the rotation; the new key
/// is published at once, so its next fetch already has it.
async fn right_after_a_rotation_new_tokens_are_signed_by_a_key_of_the_jwks_fetched_before_it(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let root = app.admin_login("root").await;
    let user = app.register_and_login("nina").await;
    let fetched_before = jwks_kids(&app).await;

    let new = rotate(&app, &root).await;

    assert!(
        jwks_kids(&app).await.contains(&new),
        "the new key is published at once"
    );
    let fresh = app.login_ok("nina").await;
    let refreshed = app.refresh_ok(&user.refresh_token).await;
    for t in [&fresh, &refreshed] {
        assert!(
            fetched_before.contains(&kid(t)),
            "a token issued right after the rotation is signed by {}, which a verifier that \
             fetched the JWKS before the rotation ({fetched_before:?}) does not know",
            kid(t)
        );
        assert_eq!(app.me(&t.access_token).await.status(), StatusCode::OK);
    }
}

async fn signing_switches_to_the_new_key_once_the_publication_delay_has_passed(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin_login("root").await;
    let old = kid(&root);
    let new = rotate(&app, &root).await;
    assert_eq!(
        jwks_kids(&app).await,
        vec![old.clone(), new.clone()],
        "both published, the signing key first"
    );

    app.clock
        .advance(publish_delay(&app) - Duration::from_secs(1));
    let last_old = app.login_ok("root").await;
    assert_eq!(kid(&last_old), old, "still within the publication delay");

    // No reload in between: the activation time was loaded with the key.
    app.clock.advance(Duration::from_secs(1));
    let first_new = app.login_ok("root").await;
    assert_eq!(kid(&first_new), new, "new tokens are signed by the new key");
    let refreshed = app.refresh_ok(&last_old.refresh_token).await;
    assert_eq!(kid(&refreshed), new);
    assert_eq!(jwks_kids(&app).await, vec![new.clone(), old.clone()]);
    for t in [&last_old, &first_new, &refreshed] {
        assert_eq!(app.me(&t.access_token).await.status(), StatusCode::OK);
    }
}

async fn the_old_key_stays_published_until_its_last_token_has_expired_counted_from_the_switch(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let root = app.admin_login("root").await;
    let old = kid(&root);
    let new = rotate(&app, &root).await;
    let switch = app.clock.now_millis() + ms(publish_delay(&app));

    // The old key signs its last token just before the switch, not at the rotation.
    app.clock
        .advance(publish_delay(&app) - Duration::from_secs(1));
    let last = app.login_ok("root").await;
    assert_eq!(kid(&last), old);
    app.clock.advance(Duration::from_secs(1));

    // That token is valid until 899 s + 5 s of leeway after the switch.
    app.clock.advance(Duration::from_secs(903));
    assert_eq!(app.me(&last.access_token).await.status(), StatusCode::OK);
    app.clock
        .advance(KEEP_PUBLISHED - Duration::from_secs(903 + 1));
    assert_eq!(jwks_kids(&app).await, vec![new.clone(), old.clone()]);
    let retired = key_status(&app, &old).await;
    assert_eq!(retired.state, KeyState::Retired);
    assert_eq!(retired.retires_ms, Some(switch));
    assert_eq!(retired.unpublished_ms, Some(switch + ms(KEEP_PUBLISHED)));

    // TTL + leeway + reload interval after the switch it leaves the JWKS, without a reload.
    app.clock.advance(Duration::from_secs(1));
    assert_eq!(jwks_kids(&app).await, vec![new.clone()]);
    assert_eq!(
        app.me(&last.access_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(key_status(&app, &old).await.state, KeyState::Unpublished);
    let fresh = app.login_ok("root").await;
    assert_eq!(kid(&fresh), new);
    assert_eq!(app.me(&fresh.access_token).await.status(), StatusCode::OK);
}

async fn an_emergency_rotation_signs_with_the_new_key_at_once_and_withdraws_a_pending_one(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let root = app.admin_login("root").await;
    let user = app.register_and_login("nina").await;
    let old = kid(&user);
    let pending = rotate(&app, &root).await;

    let new = rotate_now(&app, &root).await;

    // The new key signs at once; the old one stays published for its tokens; the pending
    // key never signed anything and is withdrawn, so it cannot take over later.
    assert_eq!(jwks_kids(&app).await, vec![new.clone(), old.clone()]);
    assert_eq!(app.me(&user.access_token).await.status(), StatusCode::OK);
    assert_eq!(app.me(&root.access_token).await.status(), StatusCode::OK);
    let fresh = app.login_ok("nina").await;
    assert_eq!(kid(&fresh), new);
    let refreshed = app.refresh_ok(&user.refresh_token).await;
    assert_eq!(kid(&refreshed), new);
    let states = || async {
        let keys = app.auth.keys().statuses().await.unwrap();
        keys.iter().map(|k| k.state).collect::<Vec<KeyState>>()
    };
    assert_eq!(
        states().await,
        [KeyState::Signing, KeyState::Revoked, KeyState::Retired],
        "newest first"
    );
    app.clock.advance(publish_delay(&app));
    assert_eq!(kid(&app.login_ok("nina").await), new);
    assert_eq!(
        states().await,
        [KeyState::Signing, KeyState::Revoked, KeyState::Unpublished]
    );
    let events = app.audit_events("admin.key_rotated").await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].actor.as_deref(), Some(root.user_id().as_str()));
    assert_eq!(
        events[0].detail.as_deref(),
        Some(format!("{new} (immediate)").as_str())
    );
    assert_eq!(events[1].detail.as_deref(), Some(pending.as_str()));
}

async fn a_rotation_for_a_compromised_key_unpublishes_every_earlier_key_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin_login("root").await;
    let user = app.register_and_login("nina").await;
    let old = kid(&user);
    let pending = rotate(&app, &root).await;

    app.clock.advance(Duration::from_millis(1)); // see `rotate_now`
    let key = rotate_with(
        &app,
        &root,
        Some(json!({ "now": true, "revoke_previous": true })),
    )
    .await;
    let new = key["kid"].as_str().unwrap().to_string();
    assert_eq!(key["state"], "signing");

    assert_eq!(jwks_kids(&app).await, vec![new.clone()]);
    for t in [&user, &root] {
        assert_error(
            app.me(&t.access_token).await,
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        )
        .await;
    }
    // Refresh tokens are not signed by the key: clients get new-key tokens.
    let refreshed = app.refresh_ok(&user.refresh_token).await;
    assert_eq!(kid(&refreshed), new);
    assert_eq!(
        app.me(&refreshed.access_token).await.status(),
        StatusCode::OK
    );
    for revoked in [&old, &pending] {
        let status = key_status(&app, revoked).await;
        assert_eq!(status.state, KeyState::Revoked);
        assert_eq!(status.revoked_ms, Some(app.clock.now_millis()));
        assert_eq!(status.unpublished_ms, Some(app.clock.now_millis()));
    }
    let events = app.audit_events("admin.key_rotated").await;
    assert_eq!(
        events[0].detail.as_deref(),
        Some(format!("{new} (immediate, previous keys revoked)").as_str())
    );
}

/// An operator asking for an emergency rotation must never get a delayed one because the
/// request was misread.
async fn a_rotation_request_whose_body_is_not_understood_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin_login("root").await;
    let send = |content_type: &'static str, body: &'static str| {
        app.request(Method::POST, ROTATE)
            .bearer_auth(&root.access_token)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    assert_error(
        send("text/plain", "now").await.unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    for body in [
        r#"{"now": "yes"}"#,
        r#"{"immediately": true}"#,
        r#"{"revoke_previous": true}"#,
        "[]",
    ] {
        let (status, code) = error_code(send("application/json", body).await.unwrap()).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{body}"
        );
    }
    assert_error(
        send("application/json", "{").await.unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_json",
    )
    .await;
    assert_eq!(app.auth.keys().statuses().await.unwrap().len(), 1);
    // An empty JSON object is the normal rotation.
    let key = rotate_with(&app, &root, Some(json!({}))).await;
    assert_eq!(key["state"], "pending");
}

async fn the_admin_key_list_shows_each_keys_state_and_when_it_changes(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register_and_login("nina").await;
    assert_error(
        app.get_bearer("/v1/admin/keys", &user.access_token).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let root = app.admin_login("root").await;
    let first = kid(&root);
    let first_created = app.auth.keys().statuses().await.unwrap()[0].created_ms;
    let rotated_at = app.clock.now_millis();
    let second = rotate(&app, &root).await;
    let switch = rotated_at + ms(publish_delay(&app));
    let unpublish = switch + ms(KEEP_PUBLISHED);

    let list = |token: String| {
        let app = &app;
        async move { app.get_json_ok("/v1/admin/keys", &token).await["keys"].clone() }
    };
    assert_eq!(
        list(root.access_token.clone()).await,
        json!([
            {
                "kid": second, "alg": "EdDSA", "state": "pending",
                "created_at": rfc3339(rotated_at), "activates_at": rfc3339(switch),
                "retires_at": null, "unpublished_at": null, "revoked_at": null,
            },
            {
                "kid": first, "alg": "EdDSA", "state": "signing",
                "created_at": rfc3339(first_created), "activates_at": rfc3339(first_created),
                "retires_at": rfc3339(switch), "unpublished_at": rfc3339(unpublish),
                "revoked_at": null,
            },
        ])
    );

    app.clock.advance(publish_delay(&app));
    let root = app.login_ok("root").await;
    let keys = list(root.access_token.clone()).await;
    assert_eq!(
        (&keys[0]["state"], &keys[1]["state"]),
        (&json!("signing"), &json!("retired"))
    );
    app.clock.advance(KEEP_PUBLISHED);
    let root = app.login_ok("root").await;
    let keys = list(root.access_token.clone()).await;
    assert_eq!(
        (&keys[0]["state"], &keys[1]["state"]),
        (&json!("signing"), &json!("unpublished"))
    );

    let third = rotate_with(
        &app,
        &root,
        Some(json!({ "now": true, "revoke_previous": true })),
    )
    .await;
    let root = app.login_ok("root").await;
    let keys = list(root.access_token.clone()).await;
    let states: Vec<&str> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["signing", "revoked", "revoked"]);
    assert_eq!(keys[0]["kid"], third["kid"]);
    assert_eq!(
        keys[1]["revoked_at"],
        rfc3339(app.clock.now_millis()).as_str()
    );
    assert_eq!(
        keys[2]["unpublished_at"],
        rfc3339(unpublish).as_str(),
        "an already unpublished key keeps the time it left the JWKS"
    );
}

async fn the_jwks_says_it_may_be_cached_for_less_than_the_publication_delay(backend: Backend) {
    let cache_control = |app: &TestApp| {
        let url = app.url("/.well-known/jwks.json");
        let client = app.client.clone();
        async move {
            let r = client.get(url).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            r.headers()["cache-control"].to_str().unwrap().to_string()
        }
    };
    let app = spawn_app(backend).await;
    assert_eq!(cache_control(&app).await, "public, max-age=300");
    assert!(300 + 30 < app.config.keys.publish_delay_secs);

    let tuned = spawn_app_with(backend, |c| {
        c.keys.jwks_max_age_secs = 120;
        c.keys.publish_delay_secs = 600;
    })
    .await;
    assert_eq!(cache_control(&tuned).await, "public, max-age=120");
    let root = tuned.admin_login("root").await;
    let rotated_at = tuned.clock.now_millis();
    let key = rotate_with(&tuned, &root, None).await;
    assert_eq!(key["activates_at"], rfc3339(rotated_at + 600_000).as_str());
}

#[test]
fn a_publication_delay_not_longer_than_the_jwks_max_age_plus_the_reload_interval_is_refused() {
    let with = |max_age: u64, delay: u64, every_days: u64| {
        let mut config = Config::default();
        config.keys.jwks_max_age_secs = max_age;
        config.keys.publish_delay_secs = delay;
        config.keys.rotate_every_days = every_days;
        config.validate()
    };
    assert!(Config::default().validate().is_ok());
    assert_eq!(
        Config::default().keys.rotate_every_days,
        0,
        "off by default"
    );
    let refused = with(300, 330, 0).unwrap_err().to_string();
    assert!(refused.contains("keys.publish_delay_secs"), "{refused}");
    assert!(with(300, 331, 0).is_ok());
    assert!(with(0, 30, 0).is_err());
    assert!(with(0, 31, 0).is_ok());
    assert!(with(86_401, 100_000, 0).is_err(), "max-age over a day");
    assert!(with(300, 604_801, 0).is_err(), "delay over a week");
    // A key must sign for longer than the next one is published before it.
    assert!(with(300, 86_400, 1).is_err());
    assert!(with(300, 86_399, 1).is_ok());
    assert!(with(300, 3600, 3651).is_err());
}

#[test]
fn the_keys_section_is_read_from_the_configuration_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auth.toml");
    std::fs::write(
        &file,
        "[keys]\npublish_delay_secs = 7200\njwks_max_age_secs = 600\nrotate_every_days = 90\n",
    )
    .unwrap();
    let config = Config::load(Some(&file)).unwrap();
    assert_eq!(
        (
            config.keys.publish_delay_secs,
            config.keys.jwks_max_age_secs,
            config.keys.rotate_every_days
        ),
        (7200, 600, 90)
    );
    std::fs::write(&file, "[keys]\npublish_delay_secs = 60\n").unwrap();
    assert!(Config::load(Some(&file)).is_err());
}

#[test]
fn the_cli_rotates_keys_and_lists_each_keys_state() {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite:{}", dir.path().join("cli.db").display());
    let run = |args: &[&str]| {
        let out = auth_center_with_env(&db_url, &[], args, "");
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        (
            out.status.success(),
            String::from_utf8(out.stdout).unwrap(),
            stderr,
        )
    };
    let ok = |args: &[&str]| {
        let (success, stdout, stderr) = run(args);
        assert!(success, "{args:?}: {stderr}");
        stdout
    };
    let states = || -> Vec<String> {
        ok(&["keys", "list"])
            .lines()
            .map(|line| {
                let fields: Vec<&str> = line.split('\t').collect();
                assert_eq!(fields.len(), 4, "kid, alg, created, state: {line}");
                assert_eq!(fields[1], "EdDSA");
                assert!(fields[2].starts_with("created "), "{line}");
                fields[3].to_string()
            })
            .collect()
    };

    let first = states();
    assert_eq!(first.len(), 1);
    assert!(first[0].starts_with("signing since "), "{first:?}");

    let out = ok(&["keys", "rotate"]);
    assert!(
        out.starts_with("published key ") && out.contains("; it signs from "),
        "{out}"
    );
    let after = states();
    assert!(after[0].starts_with("pending, signs from "), "{after:?}");
    assert!(
        after[1].starts_with("signing since ") && after[1].contains(", until "),
        "{after:?}"
    );

    let (success, _, stderr) = run(&["keys", "rotate", "--revoke-previous"]);
    assert!(!success, "--revoke-previous needs --now");
    assert!(stderr.contains("--now"), "{stderr}");

    let out = ok(&["keys", "rotate", "--now"]);
    assert!(out.starts_with("now signing with key "), "{out}");
    let after = states();
    assert!(after[0].starts_with("signing since "), "{after:?}");
    assert!(
        after[1].starts_with("revoked "),
        "the pending key: {after:?}"
    );
    assert!(
        after[2].starts_with("retired ") && after[2].contains(", published until "),
        "{after:?}"
    );

    let out = ok(&["keys", "rotate", "--now", "--revoke-previous"]);
    assert!(out.contains("every earlier key is revoked"), "{out}");
    let after = states();
    assert!(after[0].starts_with("signing since "), "{after:?}");
    assert!(
        after[1..].iter().all(|s| s.starts_with("revoked ")),
        "{after:?}"
    );

    // The keys section from the environment, validated at start-up.
    let too_short = [("AUTH_KEYS__PUBLISH_DELAY_SECS", "300")];
    let out = auth_center_with_env(&db_url, &too_short, &["keys", "list"], "");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("keys.publish_delay_secs"));
    let scheduled = [("AUTH_KEYS__ROTATE_EVERY_DAYS", "90")];
    let out = auth_center_with_env(&db_url, &scheduled, &["keys", "list"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn without_a_schedule_keys_are_never_rotated_automatically(backend: Backend) {
    let app = spawn_app(backend).await;
    app.clock.advance(Duration::from_secs(400 * 86_400));
    assert_eq!(app.auth.maintain_keys().await.unwrap(), None);
    let keys = app.auth.keys().statuses().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].state, KeyState::Signing);
}

/// Another instance publishes a new key at its next reload (within 30 s); the publication
/// delay is far longer, so by the activation every instance publishes the key, and each
/// switches at the activation time it loaded, without another reload.
async fn every_instance_publishes_a_new_key_before_any_instance_signs_with_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let second = app.second_instance().await;
    let root = app.admin_login("root").await;
    let old = kid(&root);
    let new = rotate(&app, &root).await;
    assert_eq!(
        jwks_kids(&second).await,
        vec![old.clone()],
        "not reloaded yet"
    );

    // The second instance's periodic tick.
    app.clock.advance(Duration::from_secs(30));
    second.auth.maintain_keys().await.unwrap();
    assert_eq!(jwks_kids(&second).await, vec![old.clone(), new.clone()]);
    for instance in [&app, &second] {
        assert_eq!(kid(&instance.login_ok("root").await), old);
    }

    app.clock
        .advance(publish_delay(&app) - Duration::from_secs(30));
    let from_first = app.login_ok("root").await;
    let from_second = second.login_ok("root").await;
    assert_eq!(
        (kid(&from_first), kid(&from_second)),
        (new.clone(), new.clone())
    );
    assert_eq!(
        second.me(&from_first.access_token).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.me(&from_second.access_token).await.status(),
        StatusCode::OK
    );
}

async fn scheduled_rotation_creates_one_pending_key_when_due_and_not_twice(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.keys.rotate_every_days = 1).await;
    let second = app.second_instance().await;
    app.register_and_login("nina").await;
    let first = app.auth.keys().statuses().await.unwrap()[0].kid.clone();
    let day = Duration::from_secs(86_400);
    let delay = publish_delay(&app);

    // Due once the signing key has signed for a day minus the publication delay, so that
    // the next one signs a day after it.
    app.clock.advance(day - delay - Duration::from_secs(1));
    for instance in [&app, &second] {
        assert_eq!(instance.auth.maintain_keys().await.unwrap(), None);
    }
    app.clock.advance(Duration::from_secs(1));
    let scheduled = app.auth.maintain_keys().await.unwrap().expect("due");
    assert_eq!(scheduled.state, KeyState::Pending);
    assert_eq!(scheduled.activates_ms, app.clock.now_millis() + ms(delay));
    assert!(jwks_kids(&app).await.contains(&scheduled.kid));

    // Later ticks, on either instance, see the pending key and add none.
    for instance in [&second, &app, &second] {
        assert_eq!(instance.auth.maintain_keys().await.unwrap(), None);
    }
    assert_eq!(app.auth.keys().statuses().await.unwrap().len(), 2);
    assert!(jwks_kids(&second).await.contains(&scheduled.kid));

    app.clock.advance(delay);
    for instance in [&app, &second] {
        assert_eq!(kid(&instance.login_ok("nina").await), scheduled.kid);
    }
    assert_eq!(key_status(&app, &first).await.state, KeyState::Retired);

    // A day later both instances tick at the same moment: one new key between them.
    app.clock.advance(day - delay);
    let (a, b) = tokio::join!(app.auth.maintain_keys(), second.auth.maintain_keys());
    let created: Vec<KeyStatus> = [a.unwrap(), b.unwrap()].into_iter().flatten().collect();
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(app.auth.keys().statuses().await.unwrap().len(), 3);
    let events = app.audit_events("key.rotation_scheduled").await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].actor.as_deref(), Some("scheduler"));
    assert_eq!(events[0].detail.as_deref(), Some(created[0].kid.as_str()));
}

async fn a_second_instance_verifies_tokens_signed_after_an_emergency_rotation_on_the_first(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let second = app.second_instance().await;
    let root = app.admin_login("root").await;
    let before = app.login_ok("root").await;
    let old = kid(&before);
    assert_eq!(
        second.me(&before.access_token).await.status(),
        StatusCode::OK
    );

    let new = rotate_now(&app, &root).await;
    let after = app.login_ok("root").await;
    assert_eq!(kid(&after), new);
    // The reload on an unknown kid has a 1 s cooldown since the last load.
    app.clock.advance(Duration::from_secs(1));
    assert_eq!(
        second.me(&after.access_token).await.status(),
        StatusCode::OK
    );
    // The second instance now publishes and signs with the new key too.
    assert_eq!(jwks_kids(&second).await, vec![new.clone(), old.clone()]);
    let from_second = second.login_ok("root").await;
    assert_eq!(kid(&from_second), new);
    assert_eq!(
        app.me(&from_second.access_token).await.status(),
        StatusCode::OK
    );
    // Old tokens still verify on both.
    assert_eq!(
        second.me(&before.access_token).await.status(),
        StatusCode::OK
    );
    assert_eq!(app.me(&before.access_token).await.status(), StatusCode::OK);
    // An unknown kid (forged) is refused and does not break anything.
    let mut header = before.header();
    header["kid"] = "nope".into();
    let forged = format!(
        "{}.{}",
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            header.to_string()
        ),
        before.access_token.split_once('.').unwrap().1
    );
    app.clock.advance(Duration::from_secs(1));
    assert_error(
        second.me(&forged).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    assert_eq!(
        second.me(&after.access_token).await.status(),
        StatusCode::OK
    );
}

/// After an emergency rotation an instance keeps signing with the old key until it
/// reloads (an unknown kid, or its periodic reload every 30 s). Tokens it signs in that
/// time must stay verifiable for their whole lifetime, so the old key must stay published
/// until they have expired.
async fn tokens_signed_by_an_instance_that_has_not_yet_seen_an_emergency_rotation_stay_valid(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let second = app.second_instance().await;
    let root = app.admin_login("root").await;
    let old = kid(&root);
    rotate_now(&app, &root).await;
    // Less than the periodic reload interval later, the second instance has not reloaded
    // yet and still signs with the old key.
    app.clock.advance(Duration::from_secs(20));
    let late = second.login_ok("root").await;
    assert_eq!(kid(&late), old, "the second instance has not reloaded yet");
    // Shortly before that token expires (issued at +20 s, expires at +920 s).
    app.clock.advance(Duration::from_secs(890));
    app.auth.keys().reload_if_stale().await.unwrap();
    assert_eq!(
        app.me(&late.access_token).await.status(),
        StatusCode::OK,
        "a valid, unexpired token signed by a published-at-signing-time key was refused"
    );
    assert!(jwks_kids(&app).await.contains(&old));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_keys_rotated_before_the_upgrade_keep_their_states() {
    keys_rotated_before_the_upgrade_keep_their_states(Db::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_keys_rotated_before_the_upgrade_keep_their_states() {
    keys_rotated_before_the_upgrade_keep_their_states(Db::Postgres).await
}

/// Migration 0002 on rows as the code before it wrote them: each rotation set the older
/// keys' `retired_ms` to the new key's creation time, which becomes its activation.
async fn keys_rotated_before_the_upgrade_keep_their_states(db: Db) {
    let backend = Backend {
        db,
        sessions: Sessions::Memory,
    };
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(backend, &dir);
    let url = config.database_url.expose_secret().to_string();
    let clock = ManualClock::starting_now();
    let now = clock.now_millis();
    let day = 86_400_000;
    // (created, retired): unpublished long ago; retired 100 s ago; signing since then.
    let rows = [
        (now - 30 * day, Some(now - 10 * day)),
        (now - 10 * day, Some(now - 100_000)),
        (now - 100_000, None),
    ];
    let keys: Vec<StoredKey> = rows
        .iter()
        .map(|(created, _)| generate_ed25519(*created, *created, None).unwrap())
        .collect();

    // The schema of migration 0001 only, and the rows in it.
    let only_0001 = tempfile::tempdir().unwrap();
    let flavour = match db {
        Db::Sqlite => "sqlite",
        Db::Postgres => "postgres",
    };
    std::fs::copy(
        format!(
            "{}/../../migrations/{flavour}/0001_initial.sql",
            env!("CARGO_MANIFEST_DIR")
        ),
        only_0001.path().join("0001_initial.sql"),
    )
    .unwrap();
    let migrator = sqlx::migrate::Migrator::new(only_0001.path())
        .await
        .unwrap();
    macro_rules! write_legacy_rows {
        ($pool:expr) => {{
            let pool = $pool;
            migrator.run(&pool).await.unwrap();
            for (key, (created, retired)) in keys.iter().zip(rows) {
                sqlx::query(
                    "INSERT INTO signing_keys (kid, alg, private_der, public_key, created_ms, \
                     retired_ms) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&key.kid)
                .bind(&key.alg)
                .bind(&key.private_der)
                .bind(&key.public_key)
                .bind(created)
                .bind(retired)
                .execute(&pool)
                .await
                .unwrap();
            }
            pool.close().await;
        }};
    }
    match db {
        Db::Sqlite => write_legacy_rows!(
            sqlx::SqlitePool::connect_with(
                SqliteConnectOptions::from_str(&url)
                    .unwrap()
                    .create_if_missing(true)
            )
            .await
            .unwrap()
        ),
        Db::Postgres => write_legacy_rows!(sqlx::PgPool::connect(&url).await.unwrap()),
    }

    let app = spawn_with_config(backend, config, Arc::new(dir), clock).await;

    let statuses = app.auth.keys().statuses().await.unwrap();
    let summary: Vec<(&str, KeyState, Option<i64>, Option<i64>)> = statuses
        .iter()
        .map(|k| (k.kid.as_str(), k.state, k.retires_ms, k.unpublished_ms))
        .collect();
    let keep = ms(KEEP_PUBLISHED);
    assert_eq!(
        summary,
        [
            (keys[2].kid.as_str(), KeyState::Signing, None, None),
            (
                keys[1].kid.as_str(),
                KeyState::Retired,
                Some(now - 100_000),
                Some(now - 100_000 + keep)
            ),
            (
                keys[0].kid.as_str(),
                KeyState::Unpublished,
                Some(now - 10 * day),
                Some(now - 10 * day + keep)
            ),
        ]
    );
    assert!(statuses.iter().all(|k| k.activates_ms == k.created_ms));
    assert_eq!(
        jwks_kids(&app).await,
        vec![keys[2].kid.clone(), keys[1].kid.clone()]
    );
    let user = app.register_and_login("nina").await;
    assert_eq!(kid(&user), keys[2].kid);
}
