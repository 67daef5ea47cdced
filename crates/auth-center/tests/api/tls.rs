//! The auth-center against TLS-only Postgres and Redis (test-support's `tls` service, a
//! throwaway CA), as the Redis ACL user that docs/operations.md documents; and the mistakes an
//! operator can make with them: another CA, no client certificate, a wrong password, TLS files
//! with a plain URL.

use std::path::PathBuf;
use std::sync::Arc;

use auth_center::{Application, Config};
use reqwest::StatusCode;
use secrecy::{ExposeSecret as _, SecretString};
use test_support::{AclUser, SharedTls};
use verifier::contract::{ManualClock, RedisConnection, RedisOptions};
use verifier::{RedisTarget, RedisTls};

use crate::helpers::*;

/// A connection to the node at `url` as the `default` user (no password on the test
/// servers), for what an operator does: creating users.
async fn admin_connection(tls: &SharedTls, url: &str) -> RedisConnection {
    let options = RedisOptions {
        tls: Some(RedisTls::new().ca_file(&tls.ca_file).unwrap()),
        ..RedisOptions::default()
    };
    RedisConnection::connect(&RedisTarget::Standalone(url.to_owned()), options)
        .await
        .unwrap()
}

/// Creates the documented `role` user for `prefix`, as documented, on the TLS Redis and on
/// every node of the TLS cluster (ACLs are per node).
async fn create_documented_user(tls: &SharedTls, role: &str, prefix: &str) -> AclUser {
    let user = AclUser::documented(role, prefix);
    for url in std::iter::once(&tls.redis_url).chain(&tls.redis_cluster_urls) {
        let mut admin = admin_connection(tls, url).await;
        let () = redis::cmd("ACL")
            .arg(user.setuser_args())
            .query_async(&mut admin)
            .await
            .unwrap();
    }
    user
}

/// A configuration on the TLS servers: its own database on the TLS-only Postgres
/// (`sslmode=verify-full` with the test CA), the TLS-only Redis with the test CA, no user yet.
fn tls_config(tls: &SharedTls, dir: &tempfile::TempDir) -> Config {
    let backend = Backend {
        db: Db::Sqlite,
        sessions: Sessions::Memory,
    };
    let mut config = test_config(backend, dir);
    config.database_url = SecretString::from(
        test_support::create_postgres_database(&tls.database_url).expect("database over TLS"),
    );
    config.redis = RedisConfig::standalone(&tls.redis_url).unwrap();
    config.redis_tls_ca_file = Some(PathBuf::from(&tls.ca_file));
    config
}

/// As the documented `auth-center` user, with `REDIS_USERNAME` and `REDIS_PASSWORD`.
async fn as_documented_user(tls: &SharedTls, config: &mut Config) -> AclUser {
    let user = create_documented_user(tls, "auth-center", &config.redis_prefix).await;
    config.redis_username = Some(user.name.clone());
    config.redis_password = Some(SecretString::from(user.password.clone()));
    user
}

async fn spawn(config: Config, dir: tempfile::TempDir) -> TestApp {
    let backend = Backend {
        db: Db::Postgres,
        sessions: Sessions::Redis,
    };
    spawn_with_config(backend, config, Arc::new(dir), ManualClock::starting_now()).await
}

/// Why the application refuses to build, with every cause.
async fn build_error(config: Config) -> String {
    match Application::build_with_clock(config, Arc::new(ManualClock::starting_now())).await {
        Ok(_) => panic!("the application built"),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auth_center_works_over_tls_to_postgres_and_redis_as_the_documented_acl_user() {
    let tls = test_support::shared_tls();
    let dir = tempfile::tempdir().unwrap();
    let mut config = tls_config(&tls, &dir);
    as_documented_user(&tls, &mut config).await;
    let app = spawn(config, dir).await;
    what_a_user_does_works(&app).await;
}

/// Readiness, registration, login, who-am-I, the device list, refresh, logout (after which the
/// refresh token is dead), logout-all: every script and command of the auth-center.
async fn what_a_user_does_works(app: &TestApp) {
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let tokens = app.register_and_login("alice").await;
    assert_eq!(app.me(&tokens.access_token).await.status(), StatusCode::OK);
    let sessions = app.get_json_ok("/v1/sessions", &tokens.access_token).await;
    assert_eq!(
        sessions["sessions"].as_array().map(Vec::len),
        Some(1),
        "{sessions}"
    );
    let refreshed = app.refresh_ok(&tokens.refresh_token).await;
    let logout = app.post_bearer("/v1/logout", &refreshed.access_token).await;
    assert!(logout.status().is_success(), "logout: {}", logout.status());
    assert_error(
        app.refresh(&refreshed.refresh_token).await,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await;
    let again = app.login_ok("alice").await;
    let logout_all = app.post_bearer("/v1/logout-all", &again.access_token).await;
    assert!(logout_all.status().is_success(), "{}", logout_all.status());
    assert_eq!(app.session_count(&again.user_id()).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auth_center_works_over_tls_to_a_redis_cluster_as_the_documented_acl_user() {
    let tls = test_support::shared_tls();
    let dir = tempfile::tempdir().unwrap();
    let mut config = tls_config(&tls, &dir);
    config.redis = RedisConfig::cluster(&tls.redis_cluster_urls).unwrap();
    as_documented_user(&tls, &mut config).await;
    let app = spawn(config, dir).await;
    what_a_user_does_works(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cluster_certificate_from_another_ca_stops_the_start_naming_the_tls_failure() {
    let tls = test_support::shared_tls();
    let dir = tempfile::tempdir().unwrap();
    let mut config = tls_config(&tls, &dir);
    config.redis = RedisConfig::cluster(&tls.redis_cluster_urls).unwrap();
    config.redis_tls_ca_file = Some(PathBuf::from(&tls.other_ca_file));
    let refused = build_error(config).await;
    assert!(refused.contains("cannot connect to Redis"), "{refused}");
    assert!(refused.contains("UnknownIssuer"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_demands_a_client_certificate_gets_the_configured_one() {
    let tls = test_support::shared_tls();
    let dir = tempfile::tempdir().unwrap();
    let mut config = tls_config(&tls, &dir);
    config.redis = RedisConfig::standalone(&tls.redis_mtls_url).unwrap();

    let refused = build_error(config.clone()).await;
    assert!(
        refused.contains("TLS handshake with Redis failed"),
        "{refused}"
    );

    config.redis_tls_client_cert_file = Some(PathBuf::from(&tls.client_cert_file));
    config.redis_tls_client_key_file = Some(PathBuf::from(&tls.client_key_file));
    let app = spawn(config, dir).await;
    let tokens = app.register_and_login("bob").await;
    assert_eq!(app.me(&tokens.access_token).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_certificate_from_another_ca_stops_the_start_naming_the_tls_failure() {
    let tls = test_support::shared_tls();
    let dir = tempfile::tempdir().unwrap();
    let mut config = tls_config(&tls, &dir);
    config.redis_tls_ca_file = Some(PathBuf::from(&tls.other_ca_file));
    let refused = build_error(config.clone()).await;
    assert!(refused.contains("cannot connect to Redis"), "{refused}");
    assert!(
        refused.contains("TLS handshake with Redis failed"),
        "{refused}"
    );
    assert!(refused.contains("UnknownIssuer"), "{refused}");

    // Without a CA file only public CAs are trusted: the test CA is none of them.
    config.redis_tls_ca_file = None;
    let refused = build_error(config).await;
    assert!(refused.contains("UnknownIssuer"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_certificate_from_another_ca_stops_the_start_with_verify_full() {
    let tls = test_support::shared_tls();
    let dir = tempfile::tempdir().unwrap();
    let mut config = tls_config(&tls, &dir);
    config.redis = RedisConfig::Memory;
    config.redis_tls_ca_file = None;
    let url = config
        .database_url
        .expose_secret()
        .replace(&tls.ca_file, &tls.other_ca_file);
    config.database_url = SecretString::from(url);
    let refused = build_error(config).await;
    assert!(
        refused.contains("cannot open the database (DATABASE_URL)"),
        "{refused}"
    );
    assert!(refused.contains("UnknownIssuer"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_redis_password_stops_the_start_and_is_printed_nowhere() {
    let tls = test_support::shared_tls();
    let dir = tempfile::tempdir().unwrap();
    let mut config = tls_config(&tls, &dir);
    let user = as_documented_user(&tls, &mut config).await;
    let wrong = format!("{}-but-wrong", user.password);
    config.redis_password = Some(SecretString::from(wrong.clone()));
    assert!(!format!("{config:?}").contains(&wrong));
    let refused = build_error(config.clone()).await;
    assert!(
        refused.contains("Redis refused the credentials"),
        "{refused}"
    );
    assert!(!refused.contains(&wrong), "{refused}");

    // The same user and password in the URL instead.
    config.redis_username = None;
    config.redis_password = None;
    let port = tls.redis_url.rsplit(':').next().unwrap();
    let url = format!("rediss://{}:{wrong}@127.0.0.1:{port}", user.name);
    config.redis = RedisConfig::standalone(&url).unwrap();
    assert!(!format!("{config:?}").contains(&wrong));
    let refused = build_error(config).await;
    assert!(
        refused.contains("Redis refused the credentials"),
        "{refused}"
    );
    assert!(!refused.contains(&wrong), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_tls_and_credential_settings_that_cannot_work_are_refused_naming_the_setting() {
    let tls = test_support::shared_tls();
    let dir = tempfile::tempdir().unwrap();
    let base = tls_config(&tls, &dir);
    let refused = |tweak: &dyn Fn(&mut Config)| {
        let mut config = base.clone();
        tweak(&mut config);
        match config.validate() {
            Ok(()) => panic!("accepted"),
            Err(e) => e.to_string(),
        }
    };
    let plain = refused(&|c| c.redis = RedisConfig::standalone("redis://127.0.0.1:6379").unwrap());
    assert!(
        plain.contains("REDIS_URL") && plain.contains("rediss://"),
        "{plain}"
    );
    let cluster = refused(&|c| {
        c.redis =
            RedisConfig::cluster(["rediss://127.0.0.1:7000", "redis://127.0.0.1:7001"]).unwrap()
    });
    assert!(cluster.contains("seed node 2"), "{cluster}");
    let none = refused(&|c| c.redis = RedisConfig::Memory);
    assert!(none.contains("no Redis is"), "{none}");
    let missing = refused(&|c| c.redis_tls_ca_file = Some("/nonexistent/ca.pem".into()));
    assert!(
        missing.contains("REDIS_TLS_CA_FILE") && missing.contains("/nonexistent/ca.pem"),
        "{missing}"
    );
    let not_pem = refused(&|c| c.redis_tls_ca_file = Some(PathBuf::from(&tls.client_key_file)));
    assert!(not_pem.contains("no PEM certificate"), "{not_pem}");
    let half =
        refused(&|c| c.redis_tls_client_cert_file = Some(PathBuf::from(&tls.client_cert_file)));
    assert!(
        half.contains("REDIS_TLS_CLIENT_KEY_FILE") && half.contains("go together"),
        "{half}"
    );
    let no_password = refused(&|c| c.redis_username = Some("auth-center".into()));
    assert!(no_password.contains("REDIS_PASSWORD"), "{no_password}");
}

/// The Redis access settings come from the environment under their stable names, and a
/// mistake in them stops the start naming the setting, never printing the password.
#[test]
fn the_redis_access_settings_are_read_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite:{}", dir.path().join("env.db").display());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_auth-center"))
        .arg("migrate")
        .env("DATABASE_URL", &db_url)
        .env("REDIS_URL", "rediss://127.0.0.1:1")
        .env("REDIS_USERNAME", "auth-center")
        .env("REDIS_PASSWORD", "env-s3cret")
        .env("REDIS_TLS_CA_FILE", "/nonexistent/redis-ca.pem")
        .output()
        .expect("run auth-center");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("REDIS_TLS_CA_FILE"), "{stderr}");
    assert!(stderr.contains("/nonexistent/redis-ca.pem"), "{stderr}");
    assert!(!stderr.contains("env-s3cret"), "{stderr}");
}
