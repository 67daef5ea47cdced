//! The real binary's resident memory after a login flood, with the default password
//! settings: at most 64 MiB + slots × the Argon2 memory cost (DESIGN.md §6). Memory, not
//! time, is asserted; the flood is a fixed number of logins. Linux only (reads `/proc`).

#![cfg(target_os = "linux")]

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::PASSWORD;

/// Logins in flight at once.
const CONCURRENCY: usize = 300;
/// Logins each of them sends, one after the other.
const ROUNDS: usize = 3;

/// The auth-center binary, serving on a free port with a private SQLite file and the
/// default password settings; nothing else from the environment (no `MALLOC_ARENA_MAX`).
struct Server {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_auth-center"))
            .arg("serve")
            .env_clear()
            .env(
                "DATABASE_URL",
                format!("sqlite:{}", dir.path().join("memory.db").display()),
            )
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("AUTH_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            // One client IP and one account: the flood must reach the hasher, not the limiter.
            .env("AUTH_LIMITS__LOGIN_IP_MAX", "1000000")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let port = loop {
            let line = lines
                .next()
                .expect("the server exited before listening")
                .unwrap();
            if let Ok(entry) = serde_json::from_str::<Value>(&line)
                && let Some(port) = entry["fields"]["port"].as_u64()
            {
                break port;
            }
        };
        // Keep draining the log so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    /// `(VmRSS, VmHWM)` in KiB.
    fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .unwrap()
                .parse()
                .unwrap()
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_leaves_the_server_within_its_memory_bound() {
    let server = Server::start();
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .unwrap();
    let credentials = json!({ "username": "flood", "password": PASSWORD });
    let post = |path: &str| {
        client
            .post(format!("{}{path}", server.base))
            .json(&credentials)
            .send()
    };
    assert_eq!(
        post("/v1/register").await.unwrap().status(),
        StatusCode::CREATED
    );

    let login = || async {
        let mut statuses = Vec::new();
        for _ in 0..ROUNDS {
            statuses.push(post("/v1/login").await.unwrap().status());
        }
        statuses
    };
    let statuses: Vec<StatusCode> = join_all((0..CONCURRENCY).map(|_| login()))
        .await
        .into_iter()
        .flatten()
        .collect();
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert!(ok > 0, "no login succeeded");
    assert!(
        statuses
            .iter()
            .all(|s| [StatusCode::OK, StatusCode::SERVICE_UNAVAILABLE].contains(s)),
        "{statuses:?}"
    );

    let slots = std::thread::available_parallelism().unwrap().get() as u64;
    let argon2_kib = u64::from(argon2::Params::DEFAULT_M_COST);
    let bound_kib = 64 * 1024 + slots * argon2_kib;
    let (rss, hwm) = server.memory_kib();
    eprintln!(
        "observation: {} logins ({ok} accepted): VmRSS {rss} KiB, VmHWM {hwm} KiB, bound {bound_kib} KiB",
        statuses.len()
    );
    assert!(
        hwm <= bound_kib && rss <= bound_kib,
        "after {} logins ({ok} accepted): VmRSS {rss} KiB, VmHWM {hwm} KiB, bound {bound_kib} KiB \
         (64 MiB + {slots} slots × {argon2_kib} KiB)",
        statuses.len()
    );
}
