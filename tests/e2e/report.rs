//! The benchmark report's figures against the commands that draw them: every SVG of
//! `docs/benchmarks/` must come out of `scripts/draw-report.sh` byte for byte, drawn again
//! from the committed raw results with the pinned matplotlib of the test virtualenv. So each
//! figure has a command that reproduces it, and a figure drawn from results that were not
//! committed, or from a plot script that changed since, fails here.
//!
//! Without the virtualenv the tests are skipped with a warning, except in CI (`CI=true`).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::python::{repo_path, venv_python};

/// The SVG files directly in `dir`, by name.
fn figures(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").file_name())
        .filter_map(|name| name.to_str().map(str::to_owned))
        .filter(|name| name.ends_with(".svg"))
        .collect()
}

#[test]
fn every_figure_of_the_benchmark_report_is_what_its_command_draws_from_the_committed_results() {
    let Some(python) = venv_python() else {
        return;
    };
    let out = tempfile::tempdir().expect("tempdir");
    let run = Command::new("bash")
        .arg(repo_path("scripts/draw-report.sh"))
        .arg(out.path())
        .env("PYTHON", &python)
        .output()
        .expect("scripts/draw-report.sh runs");
    assert!(
        run.status.success(),
        "scripts/draw-report.sh failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let committed_dir = repo_path("docs/benchmarks");
    let committed = figures(Path::new(&committed_dir));
    let drawn = figures(out.path());
    assert_eq!(
        committed, drawn,
        "docs/benchmarks/ holds other figures than scripts/draw-report.sh draws: \
         give each committed figure its command there"
    );
    let differing: Vec<&String> = committed
        .iter()
        .filter(|name| {
            let read = |dir: &Path| {
                std::fs::read(dir.join(name.as_str()))
                    .unwrap_or_else(|e| panic!("cannot read {name}: {e}"))
            };
            read(Path::new(&committed_dir)) != read(out.path())
        })
        .collect();
    assert!(
        differing.is_empty(),
        "{differing:?} in docs/benchmarks/ differ from what scripts/draw-report.sh draws: run \
         `PYTHON={python} scripts/draw-report.sh` and commit the figures (and what changed in \
         the text they illustrate)"
    );
}

/// Runs `plot-bench.py args` and asserts that it refuses: a failure exit, a message on stderr
/// that says `says` and names `input`, and no Python traceback in its place.
fn assert_plot_refuses(python: &str, args: &[&std::ffi::OsStr], says: &str, input: &Path) {
    let run = Command::new(python)
        .arg(repo_path("scripts/plot-bench.py"))
        .args(args)
        .output()
        .expect("plot-bench.py runs");
    let stderr = String::from_utf8_lossy(&run.stderr);
    let input = input.display().to_string();
    assert!(!run.status.success(), "plot-bench.py {args:?} succeeded");
    assert!(
        stderr.contains(says) && stderr.contains(&input),
        "plot-bench.py {args:?} should say {says:?} and name {input}: {stderr}"
    );
    assert!(
        !stderr.contains("Traceback"),
        "a traceback instead of a message: {stderr}"
    );
}

#[test]
fn the_plot_script_refuses_a_directory_without_results_instead_of_drawing_nothing() {
    let Some(python) = venv_python() else {
        return;
    };
    let empty = tempfile::tempdir().expect("tempdir");
    let out = tempfile::tempdir().expect("tempdir");
    assert_plot_refuses(
        &python,
        &[empty.path().as_os_str(), out.path().as_os_str()],
        "no results",
        empty.path(),
    );
    assert!(
        figures(out.path()).is_empty(),
        "plot-bench.py drew figures from nothing"
    );
}

#[test]
fn the_paired_form_names_a_rounds_file_it_cannot_read_or_that_holds_no_sets() {
    let Some(python) = venv_python() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.txt");
    let one_set = dir.path().join("one-set.txt");
    std::fs::write(
        &one_set,
        "101 /baseline/me 5.0 5.0 10.0 90000\n101 /me 5.2 5.0 10.2 88000\n",
    )
    .expect("write the rounds");
    let out = dir.path().join("out");
    for (rounds, says) in [
        (&missing, "cannot read the paired rounds"),
        (&one_set, "no path has rounds from two or more sets"),
    ] {
        let args = ["--paired".as_ref(), rounds.as_os_str(), out.as_os_str()];
        assert_plot_refuses(&python, &args, says, rounds);
    }
}

#[test]
fn the_login_rounds_form_names_a_directory_whose_raw_rounds_and_floods_do_not_pair() {
    let Some(python) = venv_python() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (empty, unpaired) = (dir.path().join("empty"), dir.path().join("unpaired"));
    std::fs::create_dir(&empty).expect("mkdir");
    std::fs::create_dir(&unpaired).expect("mkdir");
    let raw = r#"{"kind": "capacity", "label": "argon2 raw, 1 core", "hashes_per_second": 60.0}"#;
    let flood = r#"{"kind": "login", "label": "logins alone, 1 core", "ok_per_s": 55.0}"#;
    for (name, text) in [
        ("001-capacity.json", raw),
        ("002-login.json", flood),
        ("003-capacity.json", raw),
    ] {
        std::fs::write(unpaired.join(name), text).expect("write a result");
    }
    let out = dir.path().join("out");
    for (input, says) in [
        (&empty, "no raw Argon2 rounds beside login floods"),
        (&unpaired, "has 2 raw round(s) and 1 flood(s) of 1 core"),
    ] {
        let args = [
            "--login-rounds".as_ref(),
            input.as_os_str(),
            out.as_os_str(),
        ];
        assert_plot_refuses(&python, &args, says, input);
    }
    assert!(
        !out.join("login-rounds.svg").exists(),
        "drawn from rounds that do not pair"
    );
}
