//! The gateway binary reads its settings from the environment and a TOML file the way the
//! demo-service does (any of them from a file through `<NAME>_FILE`), checks them with
//! `--check`, refuses one that cannot work naming it, stops cleanly on `SIGTERM`, and its
//! `healthcheck` subcommand asks the running gateway.

#![allow(clippy::expect_used)] // test code: a panic is a failure report

use std::process::Command;

use test_support::binary::{command, fails, free_port, spawn_and_serve, wait_listening};

const JWKS_URL: &str = "http://127.0.0.1:9/.well-known/jwks.json";
const REQUIRED: [(&str, &str); 3] = [
    ("AUTH_JWKS_URL", JWKS_URL),
    ("AUTH_ISSUER", "http://127.0.0.1:9"),
    ("AUTH_REVOCATION", "off"),
];

/// The gateway with nothing but `env` in its environment.
fn gateway(env: &[(&str, &str)], args: &[&str]) -> Command {
    command(env!("CARGO_BIN_EXE_gateway"), env, args)
}

/// A settings file with `toml` in a new directory (removed when dropped), and its path.
fn config_file(toml: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, toml).expect("write");
    let path = file.to_str().expect("utf-8 path").to_owned();
    (dir, path)
}

/// What `gateway --config file --check` prints, when it succeeds.
fn checked(file: &str) -> String {
    let out = gateway(&[], &["--config", file, "--check"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `REQUIRED` and `more`.
fn env<'a>(more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    REQUIRED.iter().chain(more).copied().collect()
}

#[test]
fn it_starts_on_the_environment_variables_of_the_demo_service_and_its_own() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let child = gateway(
        &env(&[
            ("AUTH_AUDIENCE", "api"),
            ("LISTEN_ADDR", &listen),
            ("AUTH_REDIS_PREFIX", "gw"),
            ("AUTH_MAX_STALENESS_MS", "5000"),
            ("AUTH_MAX_STALL_MS", "200"),
            ("AUTH_JWKS_COOLDOWN_MS", "10000"),
            ("PUBLIC_URL", "https://api.example"),
            ("GATEWAY_HEADERS__SUBJECT", "X-User"),
            // The auth-center's settings, in a shared environment, are not the gateway's.
            ("AUTH_SESSIONS__IDLE_SECS", "3600"),
            ("AUTH_LOG_FORMAT", "json"),
        ]),
        &[],
    );
    let printed = spawn_and_serve(child, port);
    // AUTH_REVOCATION was read: the verifier says loudly that revocation is off.
    assert!(printed.contains("REVOCATION CHECKS ARE OFF"), "{printed}");
    assert!(printed.contains("gateway listening"), "{printed}");
}

#[test]
fn a_toml_file_sets_the_rules_and_what_the_environment_does_not() {
    let port = free_port();
    let (_dir, file) = config_file(&format!(
        "listen_addr = \"127.0.0.1:{port}\"\njwks_url = \"{JWKS_URL}\"\n\
         issuer = \"http://from-the-file\"\nrevocation = \"off\"\n\
         [headers]\nsubject = \"X-User\"\n\
         [[rules]]\nprefix = \"/admin\"\nrole = \"admin\"\n\
         [[rules]]\nprefix = \"/public\"\nanonymous = true\n"
    ));
    let file = file.as_str();
    // --check reads it all and connects to nothing.
    assert_eq!(checked(file), "settings OK: 2 rules\n");
    // Through --config, the environment winning over the file.
    spawn_and_serve(
        gateway(
            &[("AUTH_ISSUER", "http://127.0.0.1:9")],
            &["--config", file],
        ),
        port,
    );
    // Through GATEWAY_CONFIG_FILE; the file's revocation mode is overridden and needs Redis.
    let stderr = fails(
        gateway(
            &[
                ("GATEWAY_CONFIG_FILE", file),
                ("AUTH_REVOCATION", "tracked"),
            ],
            &[],
        )
        .output()
        .expect("run"),
    );
    assert!(stderr.to_lowercase().contains("redis"), "{stderr}");
    // A rule that cannot work, or an unknown field, is an error naming it, also with --check.
    for (toml, field) in [
        ("[[rules]]\nprefix = \"admin\"\n", "rules[0].prefix"),
        (
            "[[rules]]\nprefix = \"/a\"\nrole = \"admin\"\nanonymous = true\n",
            "rules[0].anonymous",
        ),
        ("revokation = \"off\"\n", "revokation"),
        ("[headers]\nsubjekt = \"X-User\"\n", "subjekt"),
    ] {
        std::fs::write(file, toml).expect("write");
        let stderr = fails(
            gateway(&env(&[]), &["--config", file, "--check"])
                .output()
                .expect("run"),
        );
        assert!(stderr.contains(field), "{toml}: {stderr}");
    }
}

#[test]
fn a_setting_that_cannot_work_is_a_start_up_error_naming_it() {
    let stderr = fails(gateway(&REQUIRED[1..], &[]).output().expect("run"));
    assert!(stderr.contains("AUTH_JWKS_URL"), "{stderr}");
    for (name, value, field) in [
        ("AUTH_REVOCATION", "sometimes", "revocation"),
        ("AUTH_MAX_STALL_MS", "fast", "max_stall_ms"),
        ("LISTEN_ADDR", "localhost", "listen_addr"),
        ("PUBLIC_URL", "api.example", "public_url"),
        ("GATEWAY_HEADERS__SUBJECT", "X User", "subject"),
        ("GATEWAY_HEADERS__ROLES", "Authorization", "headers.roles"),
        ("GATEWAY_LISTEN", "127.0.0.1:1", "listen"),
    ] {
        let stderr = fails(gateway(&env(&[(name, value)]), &[]).output().expect("run"));
        assert!(
            stderr.to_lowercase().contains(field),
            "{name}={value}: {stderr}"
        );
    }
}

#[cfg(unix)]
#[test]
fn sigterm_stops_it_cleanly() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let child = gateway(&env(&[("LISTEN_ADDR", &listen)]), &[])
        .spawn()
        .expect("spawn");
    let pid = child.id().to_string();
    wait_listening(port);
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("shutting down"), "{stderr}");
}

#[test]
fn the_example_configuration_of_the_docs_is_valid() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/gateway/gateway.toml"
    );
    assert_eq!(checked(example), "settings OK: 3 rules\n");
}

#[test]
fn its_healthcheck_asks_the_running_gateway_whose_settings_may_come_from_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let issuer = dir.path().join("issuer");
    std::fs::write(&issuer, "http://127.0.0.1:9\n").expect("write");
    let port = free_port();
    let listen = format!("0.0.0.0:{port}");
    let settings = [
        ("AUTH_JWKS_URL", JWKS_URL),
        ("AUTH_ISSUER_FILE", issuer.to_str().expect("utf-8 path")),
        ("AUTH_REVOCATION", "off"),
        ("LISTEN_ADDR", &listen),
    ];
    let healthcheck = || gateway(&settings, &["healthcheck"]).output().expect("run");
    let stderr = fails(healthcheck());
    assert!(stderr.contains("/healthz: cannot connect"), "{stderr}");

    let mut child = gateway(&settings, &[]).spawn().expect("spawn");
    wait_listening(port);
    let out = healthcheck();
    let _ = child.kill();
    let _ = child.wait();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "HTTP/1.1 200 OK"
    );
}

#[test]
fn a_tls_certificate_without_its_key_is_refused_naming_the_missing_setting() {
    let stderr = fails(
        gateway(
            &env(&[("TLS_CERT_FILE", "/etc/tls/cert.pem")]),
            &["--check"],
        )
        .output()
        .expect("run"),
    );
    assert!(stderr.contains("TLS_KEY_FILE"), "{stderr}");
}
