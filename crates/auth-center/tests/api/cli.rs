use std::io::Write as _;
use std::process::{Command, Stdio};

use reqwest::StatusCode;

use crate::helpers::*;

fn auth_center(db_url: &str, args: &[&str], stdin: &str) -> std::process::Output {
    auth_center_with_env(db_url, &[], args, stdin)
}

/// Runs the built binary on `db_url` with extra environment variables.
pub fn auth_center_with_env(
    db_url: &str,
    env: &[(&str, &str)],
    args: &[&str],
    stdin: &str,
) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_auth-center"))
        .args(args)
        .envs(env.iter().copied())
        .env("DATABASE_URL", db_url)
        .env_remove("REDIS_URL")
        .env_remove("REDIS_CLUSTER_URLS")
        .env("AUTH_PASSWORDS__MEMORY_KIB", "12288")
        .env("AUTH_PASSWORDS__ITERATIONS", "3")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run auth-center");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

#[tokio::test]
async fn the_cli_migrates_and_creates_an_admin_who_can_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite:{}", dir.path().join("cli.db").display());
    let out = auth_center(&db_url, &["migrate"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = auth_center(
        &db_url,
        &["user", "create", "--username", "Root", "--admin"],
        &format!("{PASSWORD}\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("root") && stdout.contains("admin"),
        "{stdout}"
    );
    assert!(!stdout.contains(PASSWORD) && !String::from_utf8_lossy(&out.stderr).contains(PASSWORD));

    // The same user again is refused, with a clear message and a failing exit code.
    let out = auth_center(
        &db_url,
        &["user", "create", "--username", "root"],
        &format!("{PASSWORD}\n"),
    );
    assert!(!out.status.success());

    // A too-short password is refused.
    let out = auth_center(
        &db_url,
        &["user", "create", "--username", "other"],
        "short\n",
    );
    assert!(!out.status.success());

    let backend = Backend {
        db: Db::Sqlite,
        sessions: Sessions::Memory,
    };
    let app = spawn_app_with(backend, |c| c.database_url = db_url.clone().into()).await;
    let response = app.login("root", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Tokens = response.json().await.unwrap();
    assert_eq!(tokens.claims()["roles"], serde_json::json!(["admin"]));
}

/// The auth-center and the demo-service can share one environment: the demo-service's
/// `AUTH_*` settings are ignored, while any other unknown `AUTH_*` variable still fails.
#[test]
fn the_auth_center_starts_in_an_environment_that_also_configures_the_demo_service() {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite:{}", dir.path().join("shared-env.db").display());
    let migrate = |extra: (&str, &str)| {
        Command::new(env!("CARGO_BIN_EXE_auth-center"))
            .arg("migrate")
            .env("DATABASE_URL", &db_url)
            .envs([
                (
                    "AUTH_JWKS_URL",
                    "http://127.0.0.1:8080/.well-known/jwks.json",
                ),
                ("AUTH_AUDIENCE", "api"),
                ("AUTH_REVOCATION", "tracked"),
                ("AUTH_MAX_STALENESS_MS", "5000"),
                ("AUTH_MAX_STALL_MS", "200"),
                ("AUTH_JWKS_COOLDOWN_MS", "10000"),
                extra,
            ])
            .output()
            .expect("run auth-center")
    };
    let out = migrate(("AUTH_ISSUER", "http://localhost:8080"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = migrate(("AUTH_NO_SUCH_SETTING", "1"));
    assert!(!out.status.success(), "an unknown AUTH_ variable must fail");
}

#[test]
fn a_typo_in_a_typed_setting_is_a_start_up_error_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auth.toml");
    for (toml, field) in [
        ("log_format = \"jsno\"\n", "log_format"),
        ("trusted_proxies = [\"10.0.0.0/33\"]\n", "trusted_proxies"),
        ("trusted_proxies = [\"not-an-ip\"]\n", "trusted_proxies"),
    ] {
        std::fs::write(&file, toml).unwrap();
        let error = auth_center::Config::load(Some(&file))
            .expect_err(toml)
            .to_string();
        assert!(error.contains(field), "{toml}: {error}");
    }
    std::fs::write(
        &file,
        "log_format = \"json\"\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n",
    )
    .unwrap();
    let config = auth_center::Config::load(Some(&file)).unwrap();
    assert_eq!(config.log_format, auth_center::config::LogFormat::Json);
    assert_eq!(config.trusted_proxies.len(), 2);
    // The same through the environment, as operators write it.
    let db_url = format!("sqlite:{}", dir.path().join("env.db").display());
    let ok = auth_center_with_env(
        &db_url,
        &[
            ("AUTH_TRUSTED_PROXIES", "[10.0.0.0/8,::1]"),
            ("AUTH_LOG_FORMAT", "json"),
        ],
        &["migrate"],
        "",
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let bad = auth_center_with_env(
        &db_url,
        &[("AUTH_TRUSTED_PROXIES", "[10.0.0.0/99]")],
        &["migrate"],
        "",
    );
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr).to_lowercase();
    assert!(stderr.contains("trusted_proxies"), "{stderr}");
}
