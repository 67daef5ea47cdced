//! The nginx fixture against the real nginx: it serves its template, refuses what nginx
//! refuses, and leaves nothing running behind, even when the test process dies.
//!
//! Without nginx these tests are skipped with a warning, except in CI (`CI=true`).

#![allow(clippy::disallowed_methods)] // fixtures wait on real servers in real time

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use test_support::{Nginx, nginx_binary};

/// Whether nginx is there; outside CI a missing nginx skips the test (loudly).
fn have_nginx() -> bool {
    if nginx_binary().is_some() {
        return true;
    }
    assert!(
        std::env::var("CI").map_or(true, |ci| ci != "true"),
        "CI=true but nginx is not installed (scripts/test.sh installs it as root)"
    );
    eprintln!("SKIPPED: nginx is not installed (Debian: apt-get install nginx)");
    false
}

/// `GET path` over HTTP/1.0; the status line and the body.
fn get(port: u16, path: &str) -> Result<(String, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: test\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").context("no header end")?;
    let status = head.lines().next().unwrap_or_default().to_owned();
    Ok((status, body.to_owned()))
}

fn refuses(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_err()
}

const SITE: &str = "server {
    listen {{LISTEN}};
    location / { return 200 'hello {{WORD}}'; }
}";

#[test]
fn nginx_serves_its_template_on_a_free_port_and_stops_when_dropped() -> Result<()> {
    if !have_nginx() {
        return Ok(());
    }
    let nginx = Nginx::start(SITE, &[("WORD", "world")])?;
    let port = nginx.port();
    assert_eq!(nginx.url(), format!("http://127.0.0.1:{port}"));
    let (status, body) = get(port, "/")?;
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 200 OK", "hello world")
    );
    drop(nginx);
    assert!(refuses(port), "nginx still listens after the drop");
    Ok(())
}

#[test]
fn a_configuration_nginx_refuses_is_an_error_that_quotes_its_log() -> Result<()> {
    if !have_nginx() {
        return Ok(());
    }
    let site = "server { listen {{LISTEN}}; no_such_directive on; }";
    let err = Nginx::start(site, &[])
        .err()
        .context("nginx took a bad directive")?;
    let message = format!("{err:#}");
    assert!(
        message.contains("unknown directive \"no_such_directive\""),
        "{message}"
    );
    Ok(())
}

#[test]
fn a_placeholder_without_a_value_is_an_error() -> Result<()> {
    if !have_nginx() {
        return Ok(());
    }
    let err = Nginx::start(SITE, &[])
        .err()
        .context("started with {{WORD}} unfilled")?;
    assert!(format!("{err:#}").contains("{{WORD}}"), "{err:#}");
    Ok(())
}

const CHILD_ENV: &str = "TEST_SUPPORT_NGINX_CHILD";

/// Not a real test: the body of the child process of `nginx_dies_with_the_test_process`.
#[test]
fn nginx_child() -> Result<()> {
    if std::env::var_os(CHILD_ENV).is_none() {
        return Ok(());
    }
    let nginx = Nginx::start(SITE, &[("WORD", "child")])?;
    println!("\nPORT {}", nginx.port());
    // Die without running any destructor, like a process that is killed.
    std::process::exit(0)
}

#[test]
fn nginx_dies_with_the_test_process() -> Result<()> {
    if !have_nginx() {
        return Ok(());
    }
    let out = Command::new(std::env::current_exe()?)
        .args(["--exact", "nginx_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "child failed ({}): {stdout}",
        out.status
    );
    let port: u16 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("PORT "))
        .context("the child printed no port")?
        .parse()?;
    let deadline = Instant::now() + Duration::from_secs(15);
    while !refuses(port) {
        ensure!(
            Instant::now() < deadline,
            "nginx on port {port} outlived its test process"
        );
        thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
