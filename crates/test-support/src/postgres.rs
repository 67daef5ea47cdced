//! A private PostgreSQL server ([`Postgres`]) and [`create_postgres_database`].

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{PermissionsExt as _, chown};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use tempfile::TempDir;

use crate::tls::ServerCertificate;
use crate::util::{
    self, READY_TIMEOUT, START_ATTEMPTS, Watchdog, file_len, log_tail, run, says_address_in_use,
    wait_until,
};

/// How long a restart keeps retrying when its (fixed) port is briefly taken.
const RESTART_BIND_RETRY: Duration = Duration::from_secs(10);

/// A private PostgreSQL server: `initdb` in its own temporary directory (superuser `postgres`,
/// `trust` authentication), listening on `127.0.0.1:<free port>` with its unix socket in the
/// same directory (log: `postgres.log`). Durability is switched off (`fsync = off`, ...) since
/// the data is thrown away.
///
/// When the tests run as root, the server runs as the `postgres` system user (via `runuser`),
/// because Postgres refuses to run as root.
///
/// Dropping it stops the server (`pg_ctl stop -m immediate`) and removes the directory; a
/// watchdog does the same if the test process dies first.
///
/// ```no_run
/// let pg = test_support::Postgres::start()?;
/// let db_url = test_support::create_postgres_database(&pg.admin_url())?;
/// # let _ = db_url;
/// # Ok::<(), anyhow::Error>(())
/// ```
pub struct Postgres {
    port: u16,
    /// `ssl = on` with this certificate, TCP connections over TLS only.
    ssl: Option<ServerCertificate>,
    bindir: PathBuf,
    running: bool,
    watchdog: Watchdog,
    dir: TempDir,
}

impl Postgres {
    /// Runs `initdb` in a new temporary directory, then starts the server on a random free
    /// loopback port (retrying with another port if it was taken meanwhile) and waits (up to
    /// 20 s) until it accepts connections.
    pub fn start() -> Result<Self> {
        Self::start_with(None)
    }

    /// Like [`Postgres::start`], with `ssl = on` and the certificate `ssl`; TCP connections
    /// must use TLS (`hostssl` only in `pg_hba.conf`).
    pub(crate) fn start_ssl(ssl: ServerCertificate) -> Result<Self> {
        Self::start_with(Some(ssl))
    }

    fn start_with(ssl: Option<ServerCertificate>) -> Result<Self> {
        let bindir = pg_bindir()?;
        let dir = tempfile::Builder::new()
            .prefix("test-support-postgres-")
            .tempdir()
            .context("could not create a temporary directory for postgres")?;
        if util::is_root() {
            let (uid, gid) = postgres_user_ids()?;
            chown(dir.path(), Some(uid), Some(gid)).with_context(|| {
                format!(
                    "could not chown {} to the postgres user",
                    dir.path().display()
                )
            })?;
        }
        let watchdog = Watchdog::spawn(dir.path())?;
        let mut pg = Self {
            port: 0,
            ssl,
            bindir,
            running: false,
            watchdog,
            dir,
        };
        pg.initdb()?;
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            pg.port = util::pick_port(false)?;
            match pg.start_once()? {
                None => return Ok(pg),
                Some(addr_in_use) => last = Some(addr_in_use),
            }
        }
        Err(last
            .unwrap_or_else(|| anyhow!("no attempt made"))
            .context(format!(
                "postgres: every port tried was taken ({START_ATTEMPTS} attempts)"
            )))
    }

    /// The superuser URL: `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The server's TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server with `pg_ctl stop -m fast` and waits until the port refuses
    /// connections. Stopping a stopped server is a no-op.
    pub fn stop(&mut self) -> Result<()> {
        if self.running {
            self.pg_ctl_stop("fast")?;
        }
        util::wait_port_closed(self.port, &self.name())
    }

    /// Starts the server again on the same port with the same data directory (stopping it
    /// first if it is running); data survives. Waits until it accepts connections.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        let deadline = Instant::now() + RESTART_BIND_RETRY;
        loop {
            match self.start_once()? {
                None => return Ok(()),
                Some(e) if Instant::now() >= deadline => return Err(e),
                Some(_) => thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    fn name(&self) -> String {
        format!("postgres on port {}", self.port)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// A command running the Postgres binary `bin`, as the `postgres` user when we are root.
    fn pg_command(&self, bin: &str) -> Command {
        let mut cmd = if util::is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bindir.join(bin));
            c
        } else {
            Command::new(self.bindir.join(bin))
        };
        // Our own cwd may not be readable by the postgres user.
        cmd.current_dir(self.dir.path());
        cmd
    }

    fn initdb(&mut self) -> Result<()> {
        let data = self.data_dir();
        run(
            self.pg_command("initdb")
                .arg("-D")
                .arg(&data)
                .args(["-U", "postgres", "-A", "trust", "-E", "UTF8"])
                .args(["--no-locale", "--no-sync"]),
            "initdb",
        )?;
        let socket_dir = self.dir.path().display().to_string().replace('\'', "''");
        let mut conf = OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .context("could not open postgresql.conf")?;
        write!(
            conf,
            "\n# test-support\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{socket_dir}'\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             max_connections = 300\n"
        )
        .context("could not write postgresql.conf")?;
        if let Some(ssl) = &self.ssl {
            self.enable_ssl(ssl, &mut conf)?;
        }
        Ok(())
    }

    /// `ssl = on` with `server.crt` and `server.key` (mode 0600, owned by the server's user) in
    /// the data directory, and TCP connections over TLS only.
    fn enable_ssl(&self, ssl: &ServerCertificate, conf: &mut fs::File) -> Result<()> {
        let data = self.data_dir();
        for (name, pem) in [("server.crt", &ssl.cert_pem), ("server.key", &ssl.key_pem)] {
            let path = data.join(name);
            fs::write(&path, pem).with_context(|| format!("could not write {}", path.display()))?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
            if util::is_root() {
                let (uid, gid) = postgres_user_ids()?;
                chown(&path, Some(uid), Some(gid))
                    .with_context(|| format!("could not chown {}", path.display()))?;
            }
        }
        write!(
            conf,
            "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
        )
        .context("could not write postgresql.conf")?;
        fs::write(
            data.join("pg_hba.conf"),
            "# test-support: TLS only over TCP\n\
             local all all trust\n\
             hostssl all all 127.0.0.1/32 trust\n",
        )
        .context("could not write pg_hba.conf")?;
        Ok(())
    }

    /// One `pg_ctl start` on `self.port`. `Ok(Some(err))` means the port was taken.
    fn start_once(&mut self) -> Result<Option<anyhow::Error>> {
        let log = self.log_path();
        let log_start = file_len(&log);
        self.running = true;
        let started = run(
            self.pg_command("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .arg("-l")
                .arg(&log)
                .arg("-o")
                .arg(format!("-p {}", self.port))
                .args(["-w", "-t", &READY_TIMEOUT.as_secs().to_string(), "start"]),
            "pg_ctl start",
        );
        if let Err(e) = started {
            // It may still be starting (timeout): make sure it is gone.
            let _ = self.pg_ctl_stop("immediate");
            self.running = false;
            let err = anyhow!("{e:#}\n{}", log_tail(&log, 30)).context(format!(
                "could not start {} (data directory {})",
                self.name(),
                self.data_dir().display()
            ));
            if says_address_in_use(&util::read_from(&log, log_start)) {
                return Ok(Some(err));
            }
            return Err(err);
        }
        let port = self.port;
        if !wait_until(READY_TIMEOUT, Duration::from_millis(20), || {
            Ok(util::port_accepts(port))
        })? {
            bail!(
                "{} does not accept TCP connections although pg_ctl says it started\n{}",
                self.name(),
                log_tail(&log, 30)
            );
        }
        Ok(None)
    }

    fn pg_ctl_stop(&mut self, mode: &str) -> Result<()> {
        let pidfile = self.data_dir().join("postmaster.pid");
        let result = run(
            self.pg_command("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .args(["-m", mode, "-w", "-t", "30", "stop"]),
            "pg_ctl stop",
        );
        // "PID file does not exist" means it is not running: fine.
        if result.is_ok() || !pidfile.exists() {
            self.running = false;
            return Ok(());
        }
        result.map(drop).with_context(|| {
            format!(
                "could not stop {}\n{}",
                self.name(),
                log_tail(&self.log_path(), 30)
            )
        })
    }

    /// Last resort: SIGKILL the postmaster named in `postmaster.pid`.
    fn kill_postmaster(&self) {
        let pidfile = self.data_dir().join("postmaster.pid");
        if let Ok(text) = fs::read_to_string(pidfile)
            && let Some(pid) = text.lines().next().map(str::trim)
            && !pid.is_empty()
            && pid.bytes().all(|b| b.is_ascii_digit())
        {
            let _ = Command::new("kill").args(["-KILL", pid]).output();
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.running && self.pg_ctl_stop("immediate").is_err() {
            self.kill_postmaster();
        }
        self.watchdog.disarm();
    }
}

/// Creates a fresh, uniquely named database (`test_<uuid>`) on the Postgres server at
/// `admin_url` (a superuser URL such as [`Postgres::admin_url`] or [`crate::shared_postgres_url`])
/// with `psql` from the Postgres bindir, and returns the URL of the new database (same
/// credentials, host and query parameters).
///
/// ```no_run
/// let db_url = test_support::create_postgres_database(&test_support::shared_postgres_url())?;
/// // e.g. "postgres://postgres@127.0.0.1:20123/test_0f6c..."
/// # let _ = db_url;
/// # Ok::<(), anyhow::Error>(())
/// ```
pub fn create_postgres_database(admin_url: &str) -> Result<String> {
    let name = format!("test_{}", uuid::Uuid::new_v4().simple());
    let url = with_database(admin_url, &name)?;
    let psql = match pg_bindir() {
        Ok(dir) => dir.join("psql"),
        Err(_) => PathBuf::from("psql"),
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = run(
            Command::new(&psql)
                .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", admin_url, "-c"])
                .arg(format!("CREATE DATABASE \"{name}\""))
                .env("PGCONNECT_TIMEOUT", "10"),
            "psql CREATE DATABASE",
        );
        match result {
            Ok(_) => return Ok(url),
            // Someone is connected to template1 right now: transient.
            Err(e)
                if attempt < 10
                    && format!("{e:#}").contains("is being accessed by other users") =>
            {
                thread::sleep(Duration::from_millis(100 * attempt));
            }
            Err(e) => {
                return Err(e.context(format!("could not create database {name} via {admin_url}")));
            }
        }
    }
}

/// `url` with its database (path) replaced by `db`; the query string is kept.
pub(crate) fn with_database(url: &str, db: &str) -> Result<String> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base
        .find("://")
        .map(|i| i + 3)
        .ok_or_else(|| anyhow!("not a URL (no scheme): {url:?}"))?;
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{db}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

/// The directory with the Postgres server binaries (`initdb`, `pg_ctl`, `postgres`, `psql`):
/// `$TEST_PG_BINDIR`, else `pg_config --bindir`, else the newest `/usr/lib/postgresql/*/bin`,
/// else the directory of `initdb` on `PATH`.
pub(crate) fn pg_bindir() -> Result<PathBuf> {
    static BINDIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINDIR
        .get_or_init(|| find_pg_bindir().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))
}

fn has_pg_binaries(dir: &Path) -> bool {
    ["initdb", "pg_ctl", "postgres", "psql"]
        .iter()
        .all(|b| dir.join(b).is_file())
}

fn find_pg_bindir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("TEST_PG_BINDIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        if has_pg_binaries(&dir) {
            return Ok(dir);
        }
        eprintln!(
            "test-support: TEST_PG_BINDIR={} lacks initdb/pg_ctl/postgres/psql, ignoring it",
            dir.display()
        );
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_pg_binaries(&dir) {
            return Ok(dir);
        }
    }
    let mut versioned: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|p| p.parse::<u32>().ok())
                .collect::<Option<Vec<u32>>>()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_pg_binaries(dir))
        .collect();
    versioned.sort();
    if let Some((_, dir)) = versioned.pop() {
        return Ok(dir);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if has_pg_binaries(&dir) {
                return Ok(dir);
            }
        }
    }
    bail!(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres, psql) not found: set TEST_PG_BINDIR, \
         install them (Debian: apt-get install postgresql), or run the tests through scripts/test.sh"
    )
}

/// uid and gid of the `postgres` system user.
pub(crate) fn postgres_user_ids() -> Result<(u32, u32)> {
    let id = |flag: &str| -> Result<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output()?;
        if !out.status.success() {
            bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
    };
    let ids = || -> Result<(u32, u32)> { Ok((id("-u")?, id("-g")?)) };
    ids().context("running as root, but Postgres refuses to run as root and there is no usable `postgres` user to run it as")
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database() -> anyhow::Result<()> {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5/postgres", "x")?,
            "postgres://postgres@127.0.0.1:5/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h:5/postgres?sslmode=disable", "x")?,
            "postgres://u:p@h:5/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h:5", "x")?, "postgres://h:5/x");
        assert_eq!(
            with_database("postgresql://h?host=/tmp", "x")?,
            "postgresql://h/x?host=/tmp"
        );
        assert!(with_database("nope", "x").is_err());
        Ok(())
    }
}
