//! A workspace binary run as its users run it: a clean environment, arguments, and a wait
//! until it serves `GET /healthz`.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long a binary may take to serve.
const STARTUP_BOUND: Duration = Duration::from_secs(20);

/// `program` with nothing but `env` (and `RUST_LOG=info`) in its environment, `args`, and its
/// output captured.
pub fn command(program: &str, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// A loopback port that was free a moment ago.
///
/// # Panics
/// If no port can be bound.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("a free port: {e}"))
}

/// Whether `GET /healthz` on `port` answers 200.
pub fn healthy(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let request = "GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";
    let mut response = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut response).is_ok()
        && response.starts_with("HTTP/1.1 200")
}

/// Waits (up to 20 s) until `child` answers `GET /healthz` on `port`, then stops it; returns
/// what it printed (stdout, then stderr).
///
/// # Panics
/// If it exits or does not serve in time.
pub fn serves(mut child: Child, port: u16) -> String {
    let deadline = Instant::now() + STARTUP_BOUND;
    let mut up = false;
    while Instant::now() < deadline {
        if healthy(port) {
            up = true;
            break;
        }
        if child.try_wait().ok().flatten().is_some() {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let printed = child
        .wait_with_output()
        .map(|out| printed(&out))
        .unwrap_or_else(|e| panic!("wait: {e}"));
    assert!(up, "it did not serve on {port}: {printed}");
    printed
}

/// Waits (up to 20 s) until something accepts connections on `port`.
///
/// # Panics
/// If nothing does in time.
pub fn wait_listening(port: u16) {
    let deadline = Instant::now() + STARTUP_BOUND;
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// Spawns `command` and [`serves`] it on `port`.
///
/// # Panics
/// If it cannot be spawned, exits or does not serve in time.
pub fn spawn_and_serve(mut command: Command, port: u16) -> String {
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    serves(child, port)
}

/// What a failed run printed to stderr.
///
/// # Panics
/// If it succeeded.
pub fn fails(out: Output) -> String {
    assert!(!out.status.success(), "it succeeded: {}", printed(&out));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn printed(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
