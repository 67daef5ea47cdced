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

/// A directory `name` under `dir` holding `files` (name, text): a run's results.
fn results_dir<T: AsRef<[u8]>>(dir: &Path, name: &str, files: &[(&str, T)]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::create_dir(&path).expect("mkdir");
    for (file, text) in files {
        std::fs::write(path.join(file), text).expect("write a result");
    }
    path
}

/// Runs `plot-bench.py args`, asserts that it succeeds, and returns what it printed.
fn plot_prints(python: &str, args: &[&std::ffi::OsStr]) -> String {
    let run = Command::new(python)
        .arg(repo_path("scripts/plot-bench.py"))
        .args(args)
        .output()
        .expect("plot-bench.py runs");
    assert!(
        run.status.success(),
        "plot-bench.py {args:?}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    String::from_utf8_lossy(&run.stdout).into_owned()
}

#[test]
fn the_login_rounds_form_names_a_directory_whose_raw_rounds_and_floods_do_not_pair() {
    let Some(python) = venv_python() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let raw = r#"{"kind": "capacity", "label": "argon2 raw, 1 core", "hashes_per_second": 60.0}"#;
    let flood = r#"{"kind": "login", "label": "logins alone, 1 core", "ok_per_s": 55.0}"#;
    let results = |name: &str, files: &[(&str, &str)]| results_dir(dir.path(), name, files);
    let paired = results(
        "paired",
        &[("001-capacity.json", raw), ("002-login.json", flood)],
    );
    // Another run, slower: 45 logins/s against 50 hashes/s, flood first.
    let paired_too = results(
        "paired-too",
        &[
            (
                "001-login.json",
                r#"{"kind": "login", "label": "logins alone, 1 core", "ok_per_s": 45.0}"#,
            ),
            (
                "002-capacity.json",
                r#"{"kind": "capacity", "label": "argon2 raw, 1 core", "hashes_per_second": 50.0}"#,
            ),
        ],
    );
    let empty = results("empty", &[]);
    let unpaired = results(
        "unpaired",
        &[
            ("001-capacity.json", raw),
            ("002-login.json", flood),
            ("003-capacity.json", raw),
        ],
    );
    let floods_only = results("floods-only", &[("001-login.json", flood)]);
    let out = dir.path().join("out");
    let cases: [(&[&Path], &Path, &str); 4] = [
        // An empty directory beside one with rounds is refused, not left out.
        (
            &[&paired, &empty],
            &empty,
            "no raw Argon2 rounds nor login floods",
        ),
        (
            &[&unpaired],
            &unpaired,
            "has 2 raw round(s) and 1 flood(s) of 1 core",
        ),
        (
            &[&floods_only],
            &floods_only,
            "has 0 raw round(s) and 1 flood(s) of 1 core",
        ),
        (&[&paired], &paired, "no interval from one round"),
    ];
    for (inputs, named, says) in cases {
        let mut args = vec!["--login-rounds".as_ref()];
        args.extend(inputs.iter().map(|p| p.as_os_str()));
        args.push(out.as_os_str());
        assert_plot_refuses(&python, &args, says, named);
    }
    assert!(
        !out.exists(),
        "an output directory made for rounds that were refused"
    );
    // Two directories of one round each pool into two rounds, each paired within its own
    // run (55/60 and 45/50; across runs they would be 55/50 and 45/60): that draws.
    let args = [
        "--login-rounds".as_ref(),
        paired.as_os_str(),
        paired_too.as_os_str(),
        out.as_os_str(),
    ];
    let printed = plot_prints(&python, &args);
    assert!(
        printed.contains("1 core: 2 rounds, mean 0.908"),
        "{printed}"
    );
    assert!(out.join("login-rounds.svg").exists());
}

#[test]
fn the_probe_rounds_form_pairs_each_phase_with_the_probe_alone_and_refuses_what_does_not_pair() {
    let Some(python) = venv_python() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let result = |kind: &str, probe: &str, phase: &str, p99_us: f64| {
        format!(
            r#"{{"kind": "{kind}", "label": "{probe} p99 {phase}, 1 core", "p99_us": {p99_us}}}"#
        )
    };
    let results = |name: &str, files: &[(&str, String)]| results_dir(dir.path(), name, files);
    // Two rounds: alone then beside, beside then alone; a refresh tail point in between,
    // which is no probe round.
    let paired = results(
        "paired",
        &[
            (
                "001-refresh.json",
                result("refresh", "refresh", "unloaded", 1000.0),
            ),
            (
                "002-refresh.json",
                result("refresh", "refresh", "loaded", 2000.0),
            ),
            (
                "003-refresh.json",
                result("refresh", "refresh", "at 0.5 of saturation", 9000.0),
            ),
            (
                "004-refresh.json",
                result("refresh", "refresh", "loaded", 1000.0),
            ),
            (
                "005-refresh.json",
                result("refresh", "refresh", "unloaded", 500.0),
            ),
        ],
    );
    let unpaired = results(
        "unpaired",
        &[
            ("001-paced.json", result("paced", "/me", "unloaded", 800.0)),
            ("002-paced.json", result("paced", "/me", "loaded", 900.0)),
            ("003-paced.json", result("paced", "/me", "unloaded", 800.0)),
        ],
    );
    let empty = results("empty", &[]);
    let alone_only = results(
        "alone-only",
        &[("001-paced.json", result("paced", "/me", "unloaded", 800.0))],
    );
    let out = dir.path().join("out");
    for (input, says) in [
        (&empty, "no probe rounds beside anything"),
        (&alone_only, "no probe rounds beside anything"),
        (
            &unpaired,
            "has 2 round(s) of the /me (verifier) probe alone and 1 loaded",
        ),
    ] {
        let args = [
            "--probe-rounds".as_ref(),
            input.as_os_str(),
            out.as_os_str(),
        ];
        assert_plot_refuses(&python, &args, says, input);
    }
    assert!(
        !out.exists(),
        "an output directory made for rounds that were refused"
    );
    let args = [
        "--probe-rounds".as_ref(),
        paired.as_os_str(),
        out.as_os_str(),
    ];
    let printed = plot_prints(&python, &args);
    // Round ratios 2.0 and 2.0: the geometric mean 2, with no spread.
    assert!(
        printed.contains("refresh, 1 core, beside a login flood: 2 rounds, geometric mean 2.000 (95 % CI 2.000-2.000)"),
        "{printed}"
    );
    assert!(out.join("probe-rounds.svg").exists());
}
