//! Password hashing under load: never more hashes at once than the configured slots, and a
//! quick `503 overloaded` with `Retry-After` for what does not fit, instead of a queue that
//! runs into the request timeout. Passwords are NFKC-normalised before hashing, and hashes
//! stored before that still verify and are replaced. `passwords capacity` measures the raw
//! Argon2id rate of the configured slots, and the hashing threads' nice value is a checked
//! setting.

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::Value;

use crate::cli::auth_center_with_env;
use crate::for_backends;
use crate::helpers::*;

for_backends! {
    sqlite_memory: [
        a_login_flood_beyond_the_hashing_capacity_gets_overloaded_answers_with_retry_after,
        a_password_registered_in_nfc_logs_in_when_typed_in_nfd,
        a_legacy_hash_of_a_non_normalised_password_logs_in_and_is_replaced,
    ],
}

async fn a_login_flood_beyond_the_hashing_capacity_gets_overloaded_answers_with_retry_after(
    backend: Backend,
) {
    let app = spawn_app_with(backend, |c| {
        c.passwords.max_concurrent_hashes = 1;
        c.passwords.queue_wait_ms = 0;
        c.limits.login_ip_max = 1000;
    })
    .await;
    let r = app.register("flood", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::CREATED);

    let answers = join_all((0..24).map(|_| app.login("flood", PASSWORD))).await;
    let (mut ok, mut refused) = (0, 0);
    for response in answers {
        match response.status() {
            StatusCode::OK => ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                refused += 1;
                assert_eq!(retry_after_secs(&response), 1);
                let body: Value = response.json().await.unwrap();
                let object = body.as_object().unwrap();
                assert_eq!(object.len(), 2, "{body}");
                assert_eq!(body["error"], "overloaded");
                assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
            }
            other => panic!("unexpected {other}: {}", response.text().await.unwrap()),
        }
    }
    assert!(ok >= 1, "no login got through ({refused} refused)");
    assert!(refused >= 1, "every one of {ok} logins waited for the slot");
    let hashing = app.auth.password_hashing();
    assert_eq!(hashing.peak_running, 1, "{hashing:?}");
    assert_eq!(hashing.refused, refused);
    let metrics = app.metrics_text().await;
    for line in [
        "auth_password_hash_slots 1\n".to_string(),
        "auth_password_hashes_running_peak 1\n".to_string(),
        format!("auth_password_hash_refusals_total {refused}\n"),
    ] {
        assert!(metrics.contains(&line), "{line} not in {metrics}");
    }
}

/// "café crème brûlée" composed (NFC) and decomposed (NFD).
const NFC: &str = "caf\u{e9} cr\u{e8}me br\u{fb}l\u{e9}e";
const NFD: &str = "cafe\u{301} cre\u{300}me bru\u{302}le\u{301}e";

async fn a_password_registered_in_nfc_logs_in_when_typed_in_nfd(backend: Backend) {
    let app = spawn_app(backend).await;
    let r = app.register("noel", NFC).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(app.login("noel", NFD).await.status(), StatusCode::OK);
    assert_eq!(app.login("noel", NFC).await.status(), StatusCode::OK);
}

async fn a_legacy_hash_of_a_non_normalised_password_logs_in_and_is_replaced(backend: Backend) {
    use secrecy::ExposeSecret as _;

    let app = spawn_app(backend).await;
    let r = app.register("zoe", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    // A hash stored before passwords were normalised: the raw NFD bytes, current parameters.
    let legacy = argon2_hash(&app.config, NFD.as_bytes());
    let db = sqlx::SqlitePool::connect(app.config.database_url.expose_secret())
        .await
        .unwrap();
    let stored = || async {
        sqlx::query_scalar::<_, String>("SELECT password_hash FROM users WHERE username = 'zoe'")
            .fetch_one(&db)
            .await
            .unwrap()
    };
    sqlx::query("UPDATE users SET password_hash = ?1 WHERE username = 'zoe'")
        .bind(&legacy)
        .execute(&db)
        .await
        .unwrap();
    // Typed in NFC it cannot match the raw NFD hash yet.
    assert_eq!(
        app.login("zoe", NFC).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Typed as it was stored, it logs in, and the hash is replaced by one of the normalised
    // form, so now either form logs in.
    assert_eq!(app.login("zoe", NFD).await.status(), StatusCode::OK);
    assert_ne!(stored().await, legacy);
    assert_eq!(app.login("zoe", NFC).await.status(), StatusCode::OK);
    assert_eq!(app.login("zoe", NFD).await.status(), StatusCode::OK);
}

#[test]
fn the_capacity_command_prints_the_raw_hashing_rate_of_the_configured_slots() {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite:{}", dir.path().join("capacity.db").display());
    // The tests' small parameters (12 MiB, t = 3, from `auth_center_with_env`), two slots.
    let capacity = |args: &[&str]| {
        let args = [&["passwords", "capacity"], args].concat();
        let slots = [("AUTH_PASSWORDS__MAX_CONCURRENT_HASHES", "2")];
        auth_center_with_env(&db_url, &slots, &args, "")
    };
    let out = capacity(&["--seconds", "1", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["slots"], 2, "{report}");
    assert_eq!(
        (
            &report["memory_kib"],
            &report["iterations"],
            &report["parallelism"]
        ),
        (&Value::from(12288), &Value::from(3), &Value::from(1)),
        "{report}"
    );
    assert!(report["hashes"].as_u64().unwrap() >= 2, "{report}");
    for positive in ["hashes_per_second", "ms_per_hash", "seconds"] {
        assert!(
            report[positive].as_f64().unwrap() > 0.0,
            "{positive}: {report}"
        );
    }

    // As text: the rate and the parameters, for people.
    let out = capacity(&["--seconds", "1"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("m=12288 KiB, t=3, p=1 on 2 threads") && stdout.contains("hashes/s"),
        "{stdout}"
    );
    // Zero seconds measure nothing: refused by the argument parser.
    assert!(!capacity(&["--seconds", "0"]).status.success());
}

#[test]
fn the_hashing_threads_are_sched_idle_by_default_and_the_setting_is_read_from_the_environment() {
    assert!(auth_center::Config::default().passwords.hashing_idle);
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite:{}", dir.path().join("idle.db").display());
    let out = auth_center_with_env(
        &db_url,
        &[("AUTH_PASSWORDS__HASHING_IDLE", "false")],
        &["migrate"],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = auth_center_with_env(
        &db_url,
        &[("AUTH_PASSWORDS__HASHING_IDLE", "sometimes")],
        &["migrate"],
        "",
    );
    assert!(!out.status.success(), "hashing_idle=sometimes was accepted");
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(stderr.contains("hashing_idle"), "{stderr}");
}

#[test]
fn a_hashing_nice_value_out_of_range_is_refused_naming_the_setting() {
    let check = |nice: u8| {
        let mut config = auth_center::Config::default();
        config.passwords.hashing_nice = nice;
        config.validate()
    };
    assert!(check(0).is_ok());
    assert!(check(19).is_ok());
    assert_eq!(auth_center::Config::default().passwords.hashing_nice, 19);
    let error = check(20).unwrap_err().to_string();
    assert!(error.contains("passwords.hashing_nice"), "{error}");

    // Through the environment, as operators write it: a start-up error, not a server.
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite:{}", dir.path().join("nice.db").display());
    for bad in ["20", "-1"] {
        let out = auth_center_with_env(
            &db_url,
            &[("AUTH_PASSWORDS__HASHING_NICE", bad)],
            &["migrate"],
            "",
        );
        assert!(!out.status.success(), "hashing_nice {bad} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert!(stderr.contains("hashing_nice"), "{bad}: {stderr}");
    }
}
