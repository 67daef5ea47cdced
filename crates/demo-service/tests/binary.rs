//! The demo-service binary reads the settings it has always read from the environment, and a
//! TOML file, the way the auth-center does; it serves TLS when given a certificate, and its
//! `healthcheck` subcommand asks the running service.

#![allow(
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods // waiting for a real process in real time
)] // test code: a panic is a failure report

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use test_support::binary::{command, fails, free_port, healthy, serves};

const JWKS_URL: &str = "http://127.0.0.1:9/.well-known/jwks.json";

/// The demo-service with nothing but `env` in its environment.
fn demo(env: &[(&str, &str)], args: &[&str]) -> Command {
    command(env!("CARGO_BIN_EXE_demo-service"), env, args)
}

#[test]
fn it_starts_on_the_environment_variables_it_has_always_read() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let child = demo(
        &[
            ("AUTH_JWKS_URL", JWKS_URL),
            ("AUTH_ISSUER", "http://127.0.0.1:9"),
            ("AUTH_AUDIENCE", "api"),
            ("LISTEN_ADDR", &listen),
            ("AUTH_REDIS_PREFIX", "demo"),
            ("AUTH_REVOCATION", "off"),
            ("AUTH_MAX_STALENESS_MS", "5000"),
            ("AUTH_MAX_STALL_MS", "200"),
            ("AUTH_JWKS_COOLDOWN_MS", "10000"),
            ("PUBLIC_URL", "https://demo.example"),
            // The auth-center's settings, in a shared environment, are not the demo's.
            ("AUTH_SESSIONS__IDLE_SECS", "3600"),
            ("AUTH_LOG_FORMAT", "json"),
            ("AUTH_CONFIG_FILE", "/nonexistent/auth-center.toml"),
        ],
        &[],
    )
    .spawn()
    .expect("spawn");
    let printed = serves(child, port);
    // AUTH_REVOCATION was read: the verifier says loudly that revocation is off.
    assert!(printed.contains("REVOCATION CHECKS ARE OFF"), "{printed}");
}

#[test]
fn a_toml_file_sets_what_the_environment_does_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("demo.toml");
    let port = free_port();
    std::fs::write(
        &file,
        format!(
            "listen_addr = \"127.0.0.1:{port}\"\njwks_url = \"{JWKS_URL}\"\n\
             issuer = \"http://from-the-file\"\nrevocation = \"off\"\n"
        ),
    )
    .expect("write");
    let file = file.to_str().expect("utf-8 path");
    // Through --config, the environment winning over the file.
    let child = demo(
        &[("AUTH_ISSUER", "http://127.0.0.1:9")],
        &["--config", file],
    )
    .spawn()
    .expect("spawn");
    serves(child, port);
    // Through DEMO_CONFIG_FILE; the file's revocation mode is overridden and needs Redis.
    let stderr = fails(
        demo(
            &[("DEMO_CONFIG_FILE", file), ("AUTH_REVOCATION", "tracked")],
            &[],
        )
        .output()
        .expect("run"),
    );
    assert!(stderr.to_lowercase().contains("redis"), "{stderr}");
    // An unknown field in the file is an error naming it.
    std::fs::write(dir.path().join("demo.toml"), "revokation = \"off\"\n").expect("write");
    let stderr = fails(demo(&[], &["--config", file]).output().expect("run"));
    assert!(stderr.contains("revokation"), "{stderr}");
}

#[test]
fn a_setting_that_cannot_work_is_a_start_up_error_naming_it() {
    let required = [("AUTH_JWKS_URL", JWKS_URL), ("AUTH_ISSUER", "http://a")];
    let stderr = fails(demo(&required[1..], &[]).output().expect("run"));
    assert!(stderr.contains("AUTH_JWKS_URL"), "{stderr}");
    let stderr = fails(demo(&required[..1], &[]).output().expect("run"));
    assert!(stderr.contains("AUTH_ISSUER"), "{stderr}");
    for (name, value, field) in [
        ("AUTH_REVOCATION", "sometimes", "revocation"),
        ("AUTH_MAX_STALL_MS", "fast", "max_stall_ms"),
        ("LISTEN_ADDR", "localhost", "listen_addr"),
        ("PUBLIC_URL", "demo.example", "public_url"),
    ] {
        let mut env = required.to_vec();
        env.push((name, value));
        let stderr = fails(demo(&env, &[]).output().expect("run"));
        assert!(
            stderr.to_lowercase().contains(field),
            "{name}={value}: {stderr}"
        );
    }
    let mut env = required.to_vec();
    env.extend([
        ("REDIS_URL", "redis://127.0.0.1:1"),
        ("REDIS_CLUSTER_URLS", "redis://127.0.0.1:2"),
    ]);
    let stderr = fails(demo(&env, &[]).output().expect("run"));
    assert!(
        stderr.contains("REDIS_URL") && stderr.contains("REDIS_CLUSTER_URLS"),
        "{stderr}"
    );
}

#[test]
fn it_serves_tls_with_settings_from_files_its_healthcheck_speaks_tls_and_sigterm_stops_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("certificate");
    let (cert_file, key_file) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_file, cert.pem()).expect("write");
    std::fs::write(&key_file, key.serialize_pem()).expect("write");
    let issuer_file = dir.path().join("issuer");
    std::fs::write(&issuer_file, "http://127.0.0.1:9\n").expect("write");
    let port = free_port();
    let listen = format!("0.0.0.0:{port}");
    let env = [
        ("AUTH_JWKS_URL", JWKS_URL),
        ("AUTH_ISSUER_FILE", issuer_file.to_str().expect("utf-8")),
        ("AUTH_REVOCATION", "off"),
        ("LISTEN_ADDR", &listen),
        ("TLS_CERT_FILE", cert_file.to_str().expect("utf-8")),
        ("TLS_KEY_FILE", key_file.to_str().expect("utf-8")),
    ];
    let healthcheck = || demo(&env, &["healthcheck"]).output().expect("run");
    // Nothing listens yet: the probe fails and says where it went.
    let stderr = fails(healthcheck());
    assert!(stderr.contains("/healthz"), "{stderr}");

    let mut child = demo(&env, &[]).spawn().expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    let probed = loop {
        let out = healthcheck();
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        thread::sleep(Duration::from_millis(50));
    };
    // Plain HTTP on the TLS port gets no HTTP answer.
    assert!(!healthy(port));
    // SIGTERM (`docker stop`) ends it at once, cleanly, even as a container's PID 1.
    let terminated = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(terminated.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exited = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        thread::sleep(Duration::from_millis(50));
    };
    assert!(
        exited.is_some_and(|status| status.success()),
        "no clean exit on SIGTERM: {exited:?}"
    );
    assert!(
        probed.status.success(),
        "{}",
        String::from_utf8_lossy(&probed.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&probed.stdout).trim(),
        "HTTP/1.1 200 OK"
    );
}
