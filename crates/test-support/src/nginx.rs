//! A private `nginx` ([`Nginx`]): Debian's binary, never the system service, serving an
//! `http {}`-level configuration template on a free loopback port. Everything it writes (pid,
//! logs, temporary files) stays in its own temporary directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, anyhow, bail};
use tempfile::TempDir;

use crate::foreground::{Foreground, Start, on_a_free_port};
use crate::util::{self, Watchdog, file_len, log_tail};

/// Where Debian installs the binary; `/usr/sbin` is not on every user's `PATH`.
const DEBIAN_NGINX: &str = "/usr/sbin/nginx";
/// Name of the pidfile the watchdog looks for.
const PIDFILE: &str = "nginx.pid";
/// The placeholder that [`Nginx::start`] fills with the listen address.
pub const LISTEN: &str = "LISTEN";

/// The `nginx` binary: the one on `PATH`, else Debian's `/usr/sbin/nginx`; `None` if neither
/// exists.
///
/// ```no_run
/// if test_support::nginx_binary().is_none() {
///     eprintln!("install nginx (Debian: apt-get install nginx)");
/// }
/// ```
pub fn nginx_binary() -> Option<PathBuf> {
    if util::on_path("nginx") {
        return Some(PathBuf::from("nginx"));
    }
    Path::new(DEBIAN_NGINX)
        .is_file()
        .then(|| PathBuf::from(DEBIAN_NGINX))
}

/// A private `nginx` on a free `127.0.0.1` port, in the foreground as a single process
/// (`daemon off; master_process off;`), with its own temporary directory as prefix: pid
/// file, `error.log`, `access.log` and temporary files live there, and nothing of the
/// system's nginx (its configuration, logs or service) is read or touched.
///
/// The configuration is a template of what goes inside `http {}`: every `{{NAME}}` is
/// replaced by the value given for `NAME`, and `{{LISTEN}}` by `127.0.0.1:<port>`. A
/// placeholder left without a value is an error, so a template and its caller cannot drift
/// apart unnoticed.
///
/// Dropping it kills nginx and removes the directory; should the test process die first, a
/// watchdog process does the same.
///
/// ```no_run
/// let site = "server { listen {{LISTEN}}; location / { proxy_pass http://{{APP}}; } }";
/// let nginx = test_support::Nginx::start(site, &[("APP", "127.0.0.1:8080")])?;
/// let url = nginx.url(); // "http://127.0.0.1:<port>"
/// # let _ = url;
/// # Ok::<(), anyhow::Error>(())
/// ```
pub struct Nginx {
    port: u16,
    server: Foreground,
    watchdog: Watchdog,
    /// Removed when dropped, after nginx is gone (fields drop after `Drop::drop`).
    dir: TempDir,
}

impl Nginx {
    /// Starts nginx with the `http {}`-level configuration `template` (see [`Nginx`]) and
    /// waits (up to 20 s) until it has written its pid file (so it took its configuration
    /// and bound its port) and accepts connections. Picks another port if the chosen one
    /// gets taken in the meantime. A configuration nginx refuses is an error with the tail
    /// of its error log.
    pub fn start(template: &str, values: &[(&str, &str)]) -> Result<Self> {
        let binary = nginx_binary().ok_or_else(|| {
            anyhow!(
                "nginx not found on PATH nor at {DEBIAN_NGINX}; install it (Debian: apt-get \
                 install nginx) or run the tests through scripts/test.sh"
            )
        })?;
        let dir = tempfile::Builder::new()
            .prefix("test-support-nginx-")
            .tempdir()
            .context("could not create a temporary directory for nginx")?;
        fs::create_dir_all(dir.path().join("tmp")).context("could not create nginx's tmp/")?;
        let watchdog = Watchdog::spawn(dir.path())?;
        let mut nginx = Self {
            port: 0,
            server: Foreground::new("nginx", dir.path().join(PIDFILE)),
            watchdog,
            dir,
        };
        on_a_free_port("nginx", |port| {
            nginx.port = port;
            nginx.start_once(&binary, template, values)
        })?;
        Ok(nginx)
    }

    /// The port nginx listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The last `lines` lines of nginx's error log, for a failing test's message.
    pub fn error_log_tail(&self, lines: usize) -> String {
        log_tail(&self.error_log(), lines)
    }

    fn error_log(&self) -> PathBuf {
        self.dir.path().join("error.log")
    }

    fn start_once(
        &mut self,
        binary: &Path,
        template: &str,
        values: &[(&str, &str)],
    ) -> Result<(), Start> {
        let dir = self.dir.path();
        let listen = format!("127.0.0.1:{}", self.port);
        let mut all = vec![(LISTEN, listen.as_str())];
        all.extend_from_slice(values);
        let site = fill(template, &all)?;
        fs::write(dir.join("site.conf"), site).context("could not write site.conf")?;
        let conf = dir.join("nginx.conf");
        fs::write(&conf, main_config(dir)).context("could not write nginx.conf")?;
        let log = self.error_log();
        let log_start = file_len(&log);
        let child = Command::new(binary)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(&log)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| anyhow!("could not run {}: {e}", binary.display()))?;
        let port = self.port;
        // nginx writes its pid file after it has parsed its configuration and bound its
        // sockets; before that, a connection the port accepts may be another process's (the
        // free port can be taken between picking it and nginx binding or failing to).
        let pidfile = dir.join(PIDFILE);
        let pid = child.id().to_string();
        self.server.wait_ready(child, port, &log, log_start, || {
            fs::read_to_string(&pidfile).is_ok_and(|written| written.trim() == pid)
                && util::port_accepts(port)
        })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.server.kill();
        self.watchdog.disarm();
    }
}

/// The main configuration: one foreground process whose every path is inside `dir`, and the
/// site (`site.conf`) inside `http {}`. No `user` directive: without a master process nginx
/// never switches users, as root or not.
fn main_config(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "daemon off;
master_process off;
pid {d}/{PIDFILE};
error_log {d}/error.log notice;
events {{ worker_connections 512; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/tmp/client_body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    include {d}/site.conf;
}}
"
    )
}

/// `template` with every `{{NAME}}` replaced by its value; an error names a placeholder
/// that has none.
fn fill(template: &str, values: &[(&str, &str)]) -> Result<String> {
    let mut text = template.to_owned();
    for (name, value) in values {
        text = text.replace(&format!("{{{{{name}}}}}"), value);
    }
    if let Some(start) = text.find("{{") {
        let rest = &text[start..];
        let end = rest.find("}}").map_or(rest.len().min(40), |e| e + 2);
        bail!("no value for the placeholder {}", &rest[..end]);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_filled_and_a_missing_value_is_an_error() {
        let filled = fill(
            "listen {{LISTEN}}; proxy_pass http://{{APP}}/{{APP}};",
            &[("LISTEN", "127.0.0.1:1"), ("APP", "h:2")],
        )
        .expect("all filled");
        assert_eq!(filled, "listen 127.0.0.1:1; proxy_pass http://h:2/h:2;");
        let err = fill("listen {{LISTEN}}; {{GATEWAY}}", &[("LISTEN", "x")]).unwrap_err();
        assert_eq!(err.to_string(), "no value for the placeholder {{GATEWAY}}");
    }

    /// Another process may take the free port picked for nginx before nginx binds it: a
    /// parallel test's server, a Redis Cluster bus port. nginx refusing its configuration
    /// never binds at all, so a connection that port accepts is someone else's.
    #[test]
    fn a_refused_configuration_is_an_error_even_when_someone_else_listens_on_its_port() -> Result<()>
    {
        let Some(binary) = nginx_binary() else {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "CI without nginx"
            );
            eprintln!("SKIPPED: nginx is not installed (Debian: apt-get install nginx)");
            return Ok(());
        };
        let squatter = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))?;
        let dir = tempfile::Builder::new()
            .prefix("test-support-nginx-")
            .tempdir()?;
        fs::create_dir_all(dir.path().join("tmp"))?;
        let mut nginx = Nginx {
            port: squatter.local_addr()?.port(),
            server: Foreground::new("nginx", dir.path().join(PIDFILE)),
            watchdog: Watchdog::spawn(dir.path())?,
            dir,
        };
        let site = "server { listen {{LISTEN}}; no_such_directive on; }";
        match nginx.start_once(&binary, site, &[]) {
            Ok(()) => panic!("a refused configuration was taken for a ready nginx"),
            Err(Start::AddrInUse(e)) => panic!("not an address in use: {e:#}"),
            Err(Start::Other(e)) => {
                let message = format!("{e:#}");
                assert!(message.contains("no_such_directive"), "{message}");
            }
        }
        Ok(())
    }
}
