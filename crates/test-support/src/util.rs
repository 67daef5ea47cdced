//! Process, port and filesystem helpers shared by the fixtures.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How long we wait for a server to become ready (or to go away).
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How many times `start()` picks a new port when the server could not bind.
pub(crate) const START_ATTEMPTS: usize = 6;

/// Lowest port we ever hand out.
const PORT_MIN: u16 = 20_000;
/// Highest port we ever hand out: the Redis Cluster bus lives at `port + 10000`.
const PORT_MAX: u16 = 55_535;

/// Polls `check` every `interval` until it returns `Ok(true)`, fails, or `timeout` elapses.
/// Returns `Ok(false)` on timeout.
pub(crate) fn wait_until(
    timeout: Duration,
    interval: Duration,
    mut check: impl FnMut() -> Result<bool>,
) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        if check()? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        thread::sleep(interval);
    }
}

/// Whether something accepts TCP connections on `127.0.0.1:port`.
pub(crate) fn port_accepts(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// Whether process `pid` holds a socket listening on TCP `port` (IPv4, any address): its
/// own, not another process's that took the port (Linux: `/proc/net/tcp` and the process's
/// file descriptors).
pub(crate) fn listens_on(pid: u32, port: u16) -> bool {
    let Ok(table) = fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let port = format!(":{port:04X}");
    // Columns: sl, local_address, rem_address, st, ..., inode (the tenth).
    let listening: HashSet<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
            (local.ends_with(&port) && *state == "0A").then(|| format!("socket:[{inode}]"))
        })
        .collect();
    if listening.is_empty() {
        return false;
    }
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        fs::read_link(fd.path())
            .is_ok_and(|target| listening.contains(target.to_string_lossy().as_ref()))
    })
}

/// Waits until `127.0.0.1:port` refuses connections.
pub(crate) fn wait_port_closed(port: u16, what: &str) -> Result<()> {
    if !wait_until(READY_TIMEOUT, Duration::from_millis(20), || {
        Ok(!port_accepts(port))
    })? {
        bail!(
            "{what}: port {port} still accepts connections {}s after stopping",
            READY_TIMEOUT.as_secs()
        );
    }
    Ok(())
}

/// The last `lines` lines of the file at `path` (at most 64 KiB are read), for error messages.
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let read = || -> io::Result<String> {
        let mut f = fs::File::open(path)?;
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    match read() {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            let tail = all[all.len().saturating_sub(lines)..].join("\n");
            format!("--- last lines of {} ---\n{tail}\n---", path.display())
        }
        Err(e) => format!("(could not read {}: {e})", path.display()),
    }
}

/// The part of the file at `path` written after byte `from` (lossy UTF-8, empty if unreadable).
pub(crate) fn read_from(path: &Path, from: u64) -> String {
    let read = || -> io::Result<String> {
        let mut f = fs::File::open(path)?;
        f.seek(SeekFrom::Start(from))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    read().unwrap_or_default()
}

/// Current length of the file at `path` (0 if it does not exist).
pub(crate) fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Whether a server log says the listen address was taken.
pub(crate) fn says_address_in_use(log: &str) -> bool {
    log.contains("Address already in use") || log.contains("could not create any TCP/IP sockets")
}

/// Runs `cmd` to completion, capturing output; fails with stdout/stderr if it exits non-zero.
pub(crate) fn run(cmd: &mut Command, what: &str) -> Result<Output> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("{what}: could not run {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim_end(),
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    Ok(out)
}

/// Whether an executable file called `name` is in a directory of `PATH`.
pub(crate) fn on_path(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            fs::metadata(dir.join(name))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// Whether this process runs with effective uid 0.
pub(crate) fn is_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| {
        // "Uid:\t<real>\t<effective>\t<saved>\t<fs>"
        if let Ok(status) = fs::read_to_string("/proc/self/status")
            && let Some(line) = status.lines().find(|l| l.starts_with("Uid:"))
            && let Some(euid) = line.split_whitespace().nth(2)
        {
            return euid == "0";
        }
        Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false)
    })
}

/// Ports handed out by this process (never handed out twice, even after the fixture is gone,
/// so a stopped fixture can always restart on its port without racing a sibling fixture).
fn reserved_ports() -> &'static Mutex<HashSet<u16>> {
    static RESERVED: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    RESERVED.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Port range to pick from: 20000..=55535, minus the kernel's ephemeral range (outgoing
/// connections use those as local ports, which could collide with a later restart).
fn port_range() -> (u16, u16) {
    let ephemeral_low = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let hi = ephemeral_low.saturating_sub(1).min(PORT_MAX);
    if hi >= PORT_MIN + 1_000 {
        (PORT_MIN, hi)
    } else {
        (PORT_MIN, PORT_MAX)
    }
}

fn can_bind(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// Picks a random free loopback port (and checks `port + 10000` too when `with_bus`).
pub(crate) fn pick_port(with_bus: bool) -> Result<u16> {
    let (lo, hi) = port_range();
    let span = u128::from(hi - lo) + 1;
    let mut reserved = reserved_ports()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for _ in 0..500 {
        let offset = u16::try_from(uuid::Uuid::new_v4().as_u128() % span)?;
        let port = lo + offset;
        let bus = port + 10_000;
        if reserved.contains(&port) || (with_bus && reserved.contains(&bus)) {
            continue;
        }
        if !can_bind(port) || (with_bus && !can_bind(bus)) {
            continue;
        }
        reserved.insert(port);
        if with_bus {
            reserved.insert(bus);
        }
        return Ok(port);
    }
    bail!("could not find a free loopback port in {lo}..={hi}")
}

/// A tiny `sh` process that cleans up a fixture's directory if this (test) process dies without
/// dropping the fixture (statics, `process::exit`, abort, SIGKILL).
///
/// It blocks reading a pipe whose write end only this process holds (close-on-exec, so servers
/// do not inherit it). On EOF it kills the servers recorded in the directory — Redis pidfiles
/// named `redis-server.pid` (in the directory or one level below), nginx's `nginx.pid` and
/// Postgres' `data/postmaster.pid` — but only processes whose working directory lies inside
/// the fixture directory (guards against recycled pids), then removes the directory. A fixture
/// that is dropped normally cleans up itself and then sends `disarm`.
pub(crate) struct Watchdog {
    child: Child,
    stdin: Option<ChildStdin>,
}

const WATCHDOG_SCRIPT: &str = r#"
trap '' INT HUP TERM
IFS= read -r line || line=
[ "$line" = disarm ] && exit 0
dir=$1
real=$(cd "$dir" 2>/dev/null && pwd -P) || exit 0
pids=
try_kill() { # signal pidfile
  [ -f "$2" ] || return 0
  pid=$(head -n 1 "$2" 2>/dev/null) || return 0
  case $pid in ''|*[!0-9]*) return 0;; esac
  cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null) || return 0
  case $cwd in "$real"|"$real"/*) ;; *) return 0;; esac
  kill "-$1" "$pid" 2>/dev/null && pids="$pids $pid"
}
for f in "$dir"/redis-server.pid "$dir"/*/redis-server.pid "$dir"/nginx.pid "$dir"/prometheus.pid; do try_kill KILL "$f"; done
try_kill QUIT "$dir/data/postmaster.pid"
i=0
while [ "$i" -lt 100 ]; do
  alive=
  for p in $pids; do
    # Zombies (not reaped yet by whoever inherited them) count as dead.
    state=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -c1)
    [ -n "$state" ] && [ "$state" != Z ] && alive=1
  done
  [ -z "$alive" ] && break
  sleep 0.1
  i=$((i + 1))
done
for p in $pids; do kill -KILL "$p" 2>/dev/null; done
rm -rf "$dir"
"#;

impl Watchdog {
    /// Starts a watchdog for the fixture directory `dir`.
    pub(crate) fn spawn(dir: &Path) -> Result<Self> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg("test-support-watchdog")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Own process group: a Ctrl-C aimed at the test run must not kill the watchdog.
            .process_group(0)
            .spawn()
            .context("could not spawn the watchdog `sh`")?;
        let stdin = child.stdin.take();
        Ok(Self { child, stdin })
    }

    /// Tells the watchdog that the fixture cleaned up after itself, and reaps it.
    pub(crate) fn disarm(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"disarm\n");
        }
        let _ = self.child.wait();
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Only reached with the stdin still open if the owner forgot to disarm: closing the pipe
        // makes the watchdog clean up, which is the safe choice.
        if self.stdin.take().is_some() {
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_listens_on_its_own_listeners_port_only() -> Result<()> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = listener.local_addr()?.port();
        let me = std::process::id();
        assert!(listens_on(me, port));
        drop(listener);
        assert!(!listens_on(me, port));
        // Another process's listener is not ours.
        let mut other = Command::new("python3")
            .args(["-c", "import socket,sys,time\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen()\nprint(s.getsockname()[1],flush=True)\ntime.sleep(30)"])
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        if let Some(out) = other.stdout.as_mut() {
            let mut byte = [0u8; 1];
            while out.read(&mut byte)? == 1 && byte[0] != b'\n' {
                line.push(char::from(byte[0]));
            }
        }
        let theirs: u16 = line.trim().parse()?;
        let answer = (listens_on(me, theirs), listens_on(other.id(), theirs));
        let _ = other.kill();
        let _ = other.wait();
        assert_eq!(answer, (false, true));
        Ok(())
    }
}
