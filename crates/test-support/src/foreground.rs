//! What the fixtures of single foreground servers (nginx, Prometheus) share: starting on a
//! free port, retried when the port gets taken; waiting until the server is ready or has
//! exited; killing it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};

use crate::util::{self, READY_TIMEOUT, START_ATTEMPTS, log_tail};

/// Why one start attempt failed.
pub(crate) enum Start {
    /// The port was taken: try another.
    AddrInUse(anyhow::Error),
    /// Anything else.
    Other(anyhow::Error),
}

impl From<anyhow::Error> for Start {
    fn from(e: anyhow::Error) -> Self {
        Self::Other(e)
    }
}

/// Calls `attempt` with a free port until it does not fail with [`Start::AddrInUse`], at
/// most [`START_ATTEMPTS`] times.
pub(crate) fn on_a_free_port(
    what: &str,
    mut attempt: impl FnMut(u16) -> Result<(), Start>,
) -> Result<()> {
    let mut last = None;
    for _ in 0..START_ATTEMPTS {
        match attempt(util::pick_port(false)?) {
            Ok(()) => return Ok(()),
            Err(Start::AddrInUse(e)) => last = Some(e),
            Err(Start::Other(e)) => return Err(e),
        }
    }
    Err(last
        .unwrap_or_else(|| anyhow!("no attempt made"))
        .context(format!(
            "{what}: every port tried was taken ({START_ATTEMPTS} attempts)"
        )))
}

/// A server running as one child process, with the pidfile its fixture's watchdog reads.
pub(crate) struct Foreground {
    /// `nginx`, `prometheus`: for messages.
    what: &'static str,
    pidfile: PathBuf,
    child: Option<Child>,
}

impl Foreground {
    pub(crate) fn new(what: &'static str, pidfile: PathBuf) -> Self {
        Self {
            what,
            pidfile,
            child: None,
        }
    }

    /// Takes `child`, started on `port` and logging to `log` (from byte `log_start` on for
    /// this attempt), and waits up to [`READY_TIMEOUT`] until `ready` says it serves. An
    /// exit during startup is an error with the log's tail, [`Start::AddrInUse`] when the
    /// log says the address was taken. On an error the server is killed.
    pub(crate) fn wait_ready(
        &mut self,
        child: Child,
        port: u16,
        log: &Path,
        log_start: u64,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), Start> {
        self.child = Some(child);
        let outcome = self.poll_ready(port, log, log_start, &mut ready);
        if outcome.is_err() {
            self.kill();
        }
        outcome
    }

    fn poll_ready(
        &mut self,
        port: u16,
        log: &Path,
        log_start: u64,
        ready: &mut impl FnMut() -> bool,
    ) -> Result<(), Start> {
        let what = self.what;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child
                    .try_wait()
                    .with_context(|| format!("waiting for {what}"))?
            {
                self.child = None;
                let err = anyhow!(
                    "{what} on port {port} exited during startup ({status})\n{}",
                    log_tail(log, 30)
                );
                let said = util::read_from(log, log_start);
                return Err(
                    if util::says_address_in_use(&said) || said.contains("address already in use") {
                        Start::AddrInUse(err)
                    } else {
                        Start::Other(err)
                    },
                );
            }
            if ready() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Start::Other(anyhow!(
                    "{what} was not ready on port {port} within {}s\n{}",
                    READY_TIMEOUT.as_secs(),
                    log_tail(log, 30)
                )));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILLs the server (one process) and reaps it. The pidfile goes first so the
    /// watchdog never sees a stale pid.
    pub(crate) fn kill(&mut self) {
        let _ = fs::remove_file(&self.pidfile);
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
