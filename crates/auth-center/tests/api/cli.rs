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

/// The Redis target and the allowed origins are typed values decided when the configuration
/// loads: a URL or origin that cannot work is a start-up error naming the field (and never
/// echoing a Redis password).
#[test]
fn a_redis_url_or_origin_that_cannot_work_is_a_start_up_error_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auth.toml");
    for (toml, field) in [
        ("redis_url = \"http://:hunter2@cache:6379\"\n", "redis_url"),
        ("redis_url = \"redis://\"\n", "redis_url"),
        ("redis_url = \"cache:6379\"\n", "redis_url"),
        ("redis_url = \"\"\n", "redis_url"),
        (
            "redis_cluster_urls = \"redis://:hunter2@a:7000,htp://b:7001\"\n",
            "redis_cluster_urls",
        ),
        ("redis_cluster_urls = \" , \"\n", "redis_cluster_urls"),
        (
            "redis_url = \"redis://a:6379\"\nredis_cluster_urls = \"redis://b:7000\"\n",
            "redis_cluster_urls",
        ),
        (
            "[browser]\nallowed_origins = [\"https://app.example.com/\"]\n",
            "browser.allowed_origins",
        ),
    ] {
        std::fs::write(&file, toml).unwrap();
        let error = auth_center::Config::load(Some(&file))
            .expect_err(toml)
            .to_string();
        assert!(error.contains(field), "{toml}: {error}");
        assert!(!error.contains("hunter2"), "{toml}: {error}");
    }
    // Not origins: a path, a trailing slash, a query, a fragment, user info, a default port
    // spelt out, upper case (browsers send the serialized origin, compared exactly), no
    // scheme, another scheme, no host, the wildcard and `null`.
    for origin in [
        "https://app.example.com/",
        "https://app.example.com/app",
        "https://app.example.com?x=1",
        "https://app.example.com#top",
        "https://user@app.example.com",
        "https://app.example.com:443",
        "http://localhost:80",
        "https://App.Example.com",
        "HTTPS://app.example.com",
        "app.example.com",
        "ftp://app.example.com",
        "https://",
        "https://app.example.com:99999",
        "*",
        "null",
        "",
    ] {
        std::fs::write(
            &file,
            format!("[browser]\nallowed_origins = [\"https://ok.example\", {origin:?}]\n"),
        )
        .unwrap();
        let error = auth_center::Config::load(Some(&file))
            .expect_err(origin)
            .to_string();
        assert!(
            error.contains("browser.allowed_origins"),
            "{origin}: {error}"
        );
    }
    // The same through the environment, as operators write it.
    let db_url = format!("sqlite:{}", dir.path().join("env.db").display());
    for (name, value, field) in [
        ("REDIS_URL", "localhost:6379", "redis_url"),
        (
            "REDIS_CLUSTER_URLS",
            "redis://a:7000;redis://b:7000",
            "redis_cluster_urls",
        ),
        (
            "AUTH_BROWSER__ALLOWED_ORIGINS",
            "[https://app.example.com/]",
            "allowed_origins",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_auth-center"))
            .arg("migrate")
            .env("DATABASE_URL", &db_url)
            .env_remove("REDIS_URL")
            .env_remove("REDIS_CLUSTER_URLS")
            .env(name, value)
            .output()
            .expect("run auth-center");
        assert!(!out.status.success(), "{name}={value} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert!(stderr.contains(field), "{name}={value}: {stderr}");
    }
}

#[test]
fn the_redis_target_and_the_origins_are_typed_when_the_configuration_loads() {
    use auth_center::config::RedisConfig;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auth.toml");
    let load = |toml: &str| {
        std::fs::write(&file, toml).unwrap();
        auth_center::Config::load(Some(&file)).unwrap()
    };
    assert!(matches!(load("").redis, RedisConfig::Memory));
    let config = load("redis_url = \"redis://:hunter2@127.0.0.1:6379/2\"\n");
    let RedisConfig::Standalone(url) = &config.redis else {
        panic!("not standalone: {:?}", config.redis);
    };
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(url.as_secret()),
        "redis://:hunter2@127.0.0.1:6379/2"
    );
    assert!(!format!("{config:?}").contains("hunter2"));
    let config = load("redis_cluster_urls = \"redis://127.0.0.1:7000, redis://127.0.0.1:7001,\"\n");
    let RedisConfig::Cluster(seeds) = &config.redis else {
        panic!("not a cluster: {:?}", config.redis);
    };
    assert_eq!(seeds.len(), 2);
    assert_eq!(config.redis.mode(), "cluster");

    let config = load(
        "[browser]\nallowed_origins = [\"https://app.example.com\", \"http://localhost:5173\", \
         \"http://[::1]:8080\", \"https://xn--bcher-kva.example\"]\n",
    );
    let origins: Vec<&str> = config
        .browser
        .allowed_origins
        .iter()
        .map(|o| o.as_str())
        .collect();
    assert_eq!(
        origins,
        [
            "https://app.example.com",
            "http://localhost:5173",
            "http://[::1]:8080",
            "https://xn--bcher-kva.example"
        ]
    );
}
