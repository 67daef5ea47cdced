//! Python beside the e2e tests: which interpreter to use, and helper processes that answer one
//! JSON line per request line (the native reference checker) or announce themselves on their
//! first line (the echo upstream).
//!
//! `scripts/test.sh` makes a virtualenv with PyJWT and `cryptography` (and Authlib) and names
//! its interpreter in `TEST_OAUTH_PYTHON`. Without Python a test is skipped with a warning,
//! except in CI (`CI=true`), where that is a failure.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Longest a helper may take to answer one line.
const LINE_BOUND: Duration = Duration::from_secs(30);

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|ci| ci == "true")
}

/// Skips (outside CI) or fails (in CI) a test that cannot run because `what` is missing.
pub fn skip_or_fail(what: &str) -> Option<String> {
    assert!(!in_ci(), "CI=true but {what}: scripts/test.sh sets it up");
    eprintln!("SKIPPED: {what} (scripts/test.sh sets it up)");
    None
}

/// The interpreter of the test virtualenv (`TEST_OAUTH_PYTHON`), or `None` (outside CI) to
/// skip.
pub fn venv_python() -> Option<String> {
    match std::env::var("TEST_OAUTH_PYTHON") {
        Ok(python) if !python.is_empty() => {
            assert!(
                Path::new(&python).exists(),
                "TEST_OAUTH_PYTHON={python} does not exist"
            );
            Some(python)
        }
        _ => skip_or_fail("TEST_OAUTH_PYTHON is unset"),
    }
}

/// Any Python 3 for a script that needs the standard library only: the virtualenv's, else
/// `python3` from `PATH`; `None` (outside CI) to skip.
pub fn any_python() -> Option<String> {
    if let Ok(python) = std::env::var("TEST_OAUTH_PYTHON")
        && !python.is_empty()
    {
        return Some(python);
    }
    let found = std::process::Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        Some("python3".into())
    } else {
        skip_or_fail("no python3 on PATH and TEST_OAUTH_PYTHON is unset")
    }
}

/// Runs `command` to its end and returns its output, or `None` once `bound` has passed (it is
/// killed then). Awaited, so the servers under test keep running on the test's runtime.
pub async fn run_bounded(command: &mut Command, bound: Duration) -> Option<std::process::Output> {
    command.stdin(Stdio::null()).kill_on_drop(true);
    let output = tokio::time::timeout(bound, command.output()).await.ok()?;
    Some(output.unwrap_or_else(|e| panic!("cannot run {command:?}: {e}")))
}

/// The path of a file of this test binary's directory (`tests/e2e/`) or of the repository.
pub fn repo_path(relative: &str) -> String {
    format!("{}/../{relative}", env!("CARGO_MANIFEST_DIR"))
}

/// A Python helper process, talking in lines over its stdin and stdout. Its stderr goes to
/// the test's, so a traceback shows in the failure report. Killed when dropped; the helpers
/// also exit by themselves when their stdin closes.
pub struct LineProcess {
    what: String,
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl LineProcess {
    /// Runs `python script` with `env`.
    pub fn spawn(python: &str, script: &str, env: &[(&str, String)]) -> Self {
        let mut command = Command::new(python);
        command
            .arg(script)
            .env("PYTHONUNBUFFERED", "1")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {python} {script}: {e}"));
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        Self {
            what: script.rsplit('/').next().unwrap_or(script).to_owned(),
            child,
            stdin,
            stdout,
        }
    }

    /// The next line the helper prints.
    pub async fn read_line(&mut self) -> String {
        match tokio::time::timeout(LINE_BOUND, self.stdout.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => panic!(
                "{} exited ({:?}) instead of answering (see its stderr above)",
                self.what,
                self.child.try_wait()
            ),
            Ok(Err(e)) => panic!("reading from {}: {e}", self.what),
            Err(_) => panic!("{} did not answer within {LINE_BOUND:?}", self.what),
        }
    }

    /// Sends `line` and reads the JSON line that answers it.
    pub async fn ask(&mut self, line: &str) -> Value {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap_or_else(|e| panic!("writing to {}: {e}", self.what));
        self.stdin.flush().await.expect("flush");
        let answer = self.read_line().await;
        serde_json::from_str(&answer)
            .unwrap_or_else(|e| panic!("{} answered {answer:?}, not JSON: {e}", self.what))
    }
}
