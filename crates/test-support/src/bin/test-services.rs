//! `test-services`: starts the servers that the tests of one run share, announces them, and
//! stops them again. `scripts/test.sh` runs it around `cargo test`; it works by hand too:
//!
//! ```text
//! cargo run -p test-support --bin test-services -- --env-file /tmp/test.env
//! . /tmp/test.env && cargo test -p auth-center   # in another shell
//! ```
//!
//! It starts every [`Service`] (or those named with `--only`) at once on free loopback ports,
//! then prints the variables that announce them as `export NAME='value'` lines on stdout and,
//! with `--env-file`, writes the same lines to that file (atomically, once everything runs).
//! A summary goes to stderr. It keeps the servers up until it is told to stop: SIGINT
//! (Ctrl-C), SIGTERM or SIGHUP, or its parent process exiting. Then it stops every server and
//! exits 0. Told to stop while the servers start, it waits for the start to finish and
//! stops them then; a second Ctrl-C exits at once. Should it die without stopping them
//! (SIGKILL), each server's watchdog does.
//!
//! `test-services check` only checks that what the services need is installed; it exits 3
//! and says what is missing if something is. Without `--only` it also checks for `nginx`,
//! which the gateway's e2e tests start themselves (see `test_support::Nginx`), and for
//! `prometheus` and `promtool`, which the monitoring e2e tests run (`test_support::Prometheus`).

#![allow(clippy::disallowed_methods)] // "up after N s" is real elapsed time

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use test_support::{Running, Service, start_all};
use tokio::signal::unix::{SignalKind, signal};

const USAGE: &str = "\
usage: test-services [--only SERVICE,...] [--env-file PATH]
       test-services check [--only SERVICE,...]

Starts private Redis, Redis Cluster and Postgres servers for the tests, and TLS ones (`tls`:
a TLS-only Redis, one with mutual TLS and a Postgres over TLS, with a throwaway CA), prints
the variables that announce them, and stops them on SIGINT, SIGTERM, SIGHUP or when its
parent exits. `check` only says whether what they need is installed (exit code 3 if not);
without --only it also checks for nginx and prometheus (with promtool), which the e2e tests
start themselves.
Services: redis, redis-cluster, postgres, tls (default: all).";

/// The exit code of `check` when something is missing.
const MISSING: u8 = 3;

/// How often the launcher looks whether its parent still lives.
const PARENT_POLL: Duration = Duration::from_millis(200);

struct Args {
    check: bool,
    services: Vec<Service>,
    /// No `--only`: everything the tests need, nginx and Prometheus included.
    everything: bool,
    env_file: Option<PathBuf>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        check: false,
        services: Service::ALL.to_vec(),
        everything: true,
        env_file: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "check" => args.check = true,
            "--only" => {
                let list = it.next().context("--only needs a list of services")?;
                args.everything = false;
                args.services = list
                    .split(',')
                    .map(|name| {
                        Service::parse(name.trim())
                            .with_context(|| format!("unknown service {name:?}"))
                    })
                    .collect::<Result<_>>()?;
            }
            "--env-file" => {
                args.env_file = Some(it.next().context("--env-file needs a path")?.into());
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}"),
        }
    }
    Ok(args)
}

fn say(message: &str) {
    eprintln!("[test-services] {message}");
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("test-services: {e:#}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.check {
        return check(&args.services, args.everything);
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say(&format!("ERROR: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

fn check(services: &[Service], everything: bool) -> ExitCode {
    let mut missing = false;
    for service in services {
        if let Err(e) = service.check() {
            say(&format!("{service}: {e:#}"));
            missing = true;
        }
    }
    if everything {
        let servers = [
            ("nginx", test_support::nginx_binary(), "/usr/sbin/nginx"),
            (
                "prometheus",
                test_support::prometheus_binary(),
                "/usr/bin/prometheus",
            ),
            (
                "promtool",
                test_support::promtool_binary(),
                "/usr/bin/promtool",
            ),
        ];
        for (name, found, debian) in servers {
            if found.is_none() {
                say(&format!("{name}: not found on PATH nor at {debian}"));
                missing = true;
            }
        }
    }
    if missing {
        ExitCode::from(MISSING)
    } else {
        ExitCode::SUCCESS
    }
}

/// Why the launcher stops.
enum Stop {
    Signal(&'static str),
    ParentExited,
}

fn run(args: &Args) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not build the tokio runtime")?;
    let running = runtime.block_on(serve(args))?;
    drop(running);
    if let Some(path) = &args.env_file {
        let _ = fs::remove_file(path);
    }
    say("stopped");
    Ok(())
}

/// Starts the services, announces them and returns them, to be stopped, when told to stop.
async fn serve(args: &Args) -> Result<Vec<Running>> {
    let started = Instant::now();
    // Listening before anything starts, so that no request to stop is missed.
    let mut stop = StopSignals::new()?;
    let services = args.services.clone();
    let mut starting = tokio::task::spawn_blocking(move || start_all(&services));
    let running = tokio::select! {
        result = &mut starting => result.context("the start panicked")??,
        why = stop.next() => {
            // Let the start finish, so that every server it made is stopped when its result
            // is dropped; a second Ctrl-C ends the process at once (the watchdogs clean up).
            say(&format!("{why}: stopping once the services being started are up"));
            loop {
                tokio::select! {
                    result = &mut starting => {
                        drop(result);
                        bail!("stopped before the services were up");
                    }
                    why = stop.next() => {
                        if matches!(why, Stop::Signal("SIGINT")) {
                            say(&format!("{why} again: exiting at once"));
                            std::process::exit(130);
                        }
                    }
                }
            }
        }
    };
    let lines = export_lines(&running);
    if let Some(path) = &args.env_file {
        write_atomically(path, &lines)?;
    }
    print!("{lines}");
    std::io::stdout().flush().ok();
    say(&format!(
        "up after {:.1}s:",
        started.elapsed().as_secs_f64()
    ));
    for service in &running {
        say(&format!("  {}", service.summary()));
    }
    let why = stop.next().await;
    say(&format!("{why}: stopping the services"));
    Ok(running)
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Signal(name) => f.write_str(name),
            Stop::ParentExited => f.write_str("the parent process exited"),
        }
    }
}

/// What tells the launcher to stop: a signal, or its parent exiting (then it has been
/// adopted by another process).
struct StopSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
    parent: u32,
}

impl StopSignals {
    fn new() -> Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("SIGINT handler")?,
            terminate: signal(SignalKind::terminate()).context("SIGTERM handler")?,
            hangup: signal(SignalKind::hangup()).context("SIGHUP handler")?,
            parent: std::os::unix::process::parent_id(),
        })
    }

    async fn next(&mut self) -> Stop {
        let parent = self.parent;
        let orphaned = async {
            let mut tick = tokio::time::interval(PARENT_POLL);
            loop {
                tick.tick().await;
                if std::os::unix::process::parent_id() != parent {
                    return;
                }
            }
        };
        tokio::select! {
            _ = self.interrupt.recv() => Stop::Signal("SIGINT"),
            _ = self.terminate.recv() => Stop::Signal("SIGTERM"),
            _ = self.hangup.recv() => Stop::Signal("SIGHUP"),
            () = orphaned => Stop::ParentExited,
        }
    }
}

/// `export NAME='value'` lines for a POSIX shell.
fn export_lines(running: &[Running]) -> String {
    running
        .iter()
        .flat_map(Running::env)
        .map(|(name, value)| format!("export {name}='{}'\n", value.replace('\'', r"'\''")))
        .collect()
}

/// Writes `text` to `path` through a temporary file in the same directory, so that a reader
/// never sees half of it.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("could not create a file in {}", dir.display()))?;
    file.write_all(text.as_bytes())?;
    file.persist(path)
        .with_context(|| format!("could not write {}", path.display()))?;
    Ok(())
}
