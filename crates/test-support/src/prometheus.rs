//! A private Prometheus ([`Prometheus`]): Debian's binary, never the system service, with a
//! configuration of the test's own on a free loopback port. Everything it writes (its TSDB,
//! its log) stays in its own temporary directory.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use tempfile::TempDir;

use crate::foreground::{Foreground, Start, on_a_free_port};
use crate::util::{self, Watchdog, file_len, log_tail};

/// Where Debian installs the binaries.
const DEBIAN_BIN: &str = "/usr/bin";
/// Name of the pidfile the watchdog looks for (Prometheus writes none; the fixture does).
const PIDFILE: &str = "prometheus.pid";
/// Prometheus's log (its standard error).
const LOG: &str = "prometheus.log";

/// The `prometheus` binary: the one on `PATH`, else Debian's `/usr/bin/prometheus`; `None`
/// if neither exists.
///
/// ```no_run
/// if test_support::prometheus_binary().is_none() {
///     eprintln!("install prometheus (Debian: apt-get install prometheus)");
/// }
/// ```
pub fn prometheus_binary() -> Option<PathBuf> {
    binary("prometheus")
}

/// `promtool`, which comes with Debian's `prometheus` package: on `PATH` or in `/usr/bin`.
pub fn promtool_binary() -> Option<PathBuf> {
    binary("promtool")
}

fn binary(name: &str) -> Option<PathBuf> {
    if util::on_path(name) {
        return Some(PathBuf::from(name));
    }
    let debian = Path::new(DEBIAN_BIN).join(name);
    debian.is_file().then_some(debian)
}

/// A private Prometheus on a free `127.0.0.1` port, with the configuration it is given
/// (`prometheus.yml` text: rule files named by absolute paths) and its TSDB in its own
/// temporary directory. Nothing of the system's Prometheus (its configuration, data or
/// service) is read or touched.
///
/// Dropping it kills Prometheus and removes the directory; should the test process die
/// first, a watchdog process does the same.
///
/// ```no_run
/// let config = "global: {scrape_interval: 1s}\nscrape_configs:\n  - job_name: app\n    \
///               static_configs: [{targets: ['127.0.0.1:8080']}]\n";
/// let prometheus = test_support::Prometheus::start(config)?;
/// let api = format!("{}/api/v1/query?query=up", prometheus.url());
/// # let _ = api;
/// # Ok::<(), anyhow::Error>(())
/// ```
pub struct Prometheus {
    port: u16,
    server: Foreground,
    watchdog: Watchdog,
    /// Removed when dropped, after Prometheus is gone (fields drop after `Drop::drop`).
    dir: TempDir,
}

impl Prometheus {
    /// Starts Prometheus with `config` and waits (up to 20 s) until it listens on its port
    /// and `/-/ready` answers `200`. Picks another port if the chosen one gets taken in the
    /// meantime. A configuration or a rule file Prometheus refuses is an error with the tail
    /// of its log.
    pub fn start(config: &str) -> Result<Self> {
        let binary = prometheus_binary().ok_or_else(|| {
            anyhow!(
                "prometheus not found on PATH nor in {DEBIAN_BIN}; install it (Debian: apt-get \
                 install prometheus) or run the tests through scripts/test.sh"
            )
        })?;
        let dir = tempfile::Builder::new()
            .prefix("test-support-prometheus-")
            .tempdir()
            .context("could not create a temporary directory for Prometheus")?;
        fs::write(dir.path().join("prometheus.yml"), config)
            .context("could not write prometheus.yml")?;
        let watchdog = Watchdog::spawn(dir.path())?;
        let mut prometheus = Self {
            port: 0,
            server: Foreground::new("prometheus", dir.path().join(PIDFILE)),
            watchdog,
            dir,
        };
        on_a_free_port("prometheus", |port| {
            prometheus.port = port;
            prometheus.start_once(&binary)
        })?;
        Ok(prometheus)
    }

    /// The port Prometheus listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`, the root of its HTTP API (`/api/v1/...`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The last `lines` lines of Prometheus's log, for a failing test's message.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log(), lines)
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join(LOG)
    }

    fn start_once(&mut self, binary: &Path) -> Result<(), Start> {
        let dir = self.dir.path();
        let log = self.log();
        let log_start = file_len(&log);
        let stderr = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .context("could not open prometheus.log")?;
        let child = Command::new(binary)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .arg("--log.level=warn")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| anyhow!("could not run {}: {e}", binary.display()))?;
        fs::write(dir.join(PIDFILE), child.id().to_string())
            .context("could not write prometheus.pid")?;
        let port = self.port;
        let pid = child.id();
        // Its own listener: the free port can be taken between picking it and Prometheus
        // binding or failing to, and another test's Prometheus answers `/-/ready` too.
        self.server.wait_ready(child, port, &log, log_start, || {
            util::listens_on(pid, port) && get_status(port, "/-/ready") == Some(200)
        })
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.server.kill();
        self.watchdog.disarm();
    }
}

/// The status code of `GET path` at `127.0.0.1:port` (HTTP/1.0, one connection), or `None`
/// when nothing answers in time.
fn get_status(port: u16, path: &str) -> Option<u16> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    // "HTTP/1.1 200"
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Another process may take the free port picked for Prometheus before Prometheus binds
    /// it, and answer `/-/ready` itself (another test's Prometheus): that is not ours.
    #[test]
    fn a_prometheus_that_could_not_bind_is_not_taken_for_the_server_on_its_port() -> Result<()> {
        let Some(binary) = prometheus_binary() else {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "CI without prometheus"
            );
            eprintln!("SKIPPED: prometheus is not installed (Debian: apt-get install prometheus)");
            return Ok(());
        };
        let squatter = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = squatter.local_addr()?.port();
        std::thread::spawn(move || {
            for stream in squatter.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut request = [0u8; 1024];
                let _ = stream.read(&mut request);
                let _ = stream.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
            }
        });
        let dir = tempfile::Builder::new()
            .prefix("test-support-prometheus-")
            .tempdir()?;
        fs::write(dir.path().join("prometheus.yml"), "global: {}\n")?;
        let mut prometheus = Prometheus {
            port,
            server: Foreground::new("prometheus", dir.path().join(PIDFILE)),
            watchdog: Watchdog::spawn(dir.path())?,
            dir,
        };
        match prometheus.start_once(&binary) {
            Ok(()) => panic!("the server on its port was taken for Prometheus"),
            Err(Start::AddrInUse(_)) => {}
            Err(Start::Other(e)) => panic!("not an address in use: {e:#}"),
        }
        Ok(())
    }
}
