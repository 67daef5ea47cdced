#!/usr/bin/env python3
"""The benchmark report's figures, from the raw results of one `scripts/bench.sh` run.

    BENCH_KEEP=1 scripts/bench.sh            # prints where the JSON results were kept
    scripts/plot-bench.py /tmp/auth-bench.XXXX docs/benchmarks

Reads every `*.json` result in the run's directory (the `loadgen` and `auth-center passwords
capacity` outputs) and writes SVG files into the output directory:

* `throughput.svg`  requests/s of each design as a ratio to the no-auth handler (best round),
                    with the server CPU per request;
* `latency.svg`     latency percentile spectra of the throughput runs (HdrHistogram style);
* `revocation.svg`  DEL -> first 401 latency, one CDF per setup, stale answers in the legend;
* `login.svg`       logins/s against the raw Argon2 capacity, per core count (mean of the
                    alternating rounds, each round a dot);
* `tails.svg`       refresh and /me p99 with and without a login flood (and beside the
                    controls of BENCH_PROBE_CONTROLS), per core count
                    (median of the alternating rounds, each round a dot);
* `refresh.svg`     refresh latency percentiles at fractions of the measured saturation,
                    400 sessions, per core count, with the 5 ms target.

A second form draws item 1's paired rounds (the output of
docs/benchmarks/raw-2026-11-27-fifth/paired/paired.sh, rounds numbered batch*100 + round):

    scripts/plot-bench.py --paired [NAME:]rounds.txt[,more.txt] [[NAME:]other.txt ...] docs/benchmarks

* `hot-path.svg`    each path's server CPU per request minus the no-auth handler's, one dot per
                    fresh set of processes (the mean of its rounds), with the mean and its
                    95 % confidence interval, against the 0.5 µs bound; one row per path and
                    group (a group: files from one machine, named NAME).

A third form draws item 3's login rounds, from bench.sh runs with many of them
(BENCH_LOGIN_ROUNDS=24, say), pooled over the directories given:

    scripts/plot-bench.py --login-rounds DIR [DIR ...] docs/benchmarks

* `login-rounds.svg` each round's logins/s (flood alone) ÷ the raw Argon2 rate measured
                    in the same round (the i-th raw round of a core count with its i-th flood, as
                    bench.sh alternates them), one dot per round, with the mean and its 95 %
                    confidence interval, against the 0.9 bound; one row per core count.
                    The same figures are printed.

And item 3's probe rounds, from bench.sh runs with many of them (BENCH_PROBE_ROUNDS=24):

    scripts/plot-bench.py --probe-rounds DIR [DIR ...] docs/benchmarks

* `probe-rounds.svg` each round's p99 of the refresh and `/me` probes beside a login flood (and
                    beside the controls of BENCH_PROBE_CONTROLS) ÷ their p99 alone in the same
                    round, one dot per round, with the geometric mean and its 95 % confidence
                    interval, against the 1.1 bound (log scale); one row per probe, core
                    count and phase. The same figures are printed.

Needs matplotlib (scripts/bench-requirements.txt; `scripts/bench.sh` installs it into
target/bench-venv when BENCH_PLOTS=DIR is set).
"""

import json
import math
import re
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

plt.rcParams.update(
    {
        "svg.hashsalt": "auth-bench",  # stable element ids: the same results, the same file
        "font.size": 9,
        "axes.grid": True,
        "grid.alpha": 0.3,
    }
)
METADATA = {"Date": None, "Creator": "scripts/plot-bench.py"}


def load(directory):
    results = []
    for path in sorted(Path(directory).glob("*.json")):
        try:
            results.append(json.loads(path.read_text()))
        except json.JSONDecodeError:
            print(f"skipped {path}: not JSON", file=sys.stderr)
    return results


def save(fig, out, name):
    path = Path(out) / name
    fig.tight_layout()
    fig.savefig(path, metadata=METADATA)
    plt.close(fig)
    print(path)


def best_rounds(results):
    """label -> the round with the most requests per second (the table's convention)."""
    best = {}
    for r in results:
        if r.get("kind") != "http":
            continue
        if r["label"] not in best or r["rps"] > best[r["label"]]["rps"]:
            best[r["label"]] = r
    return best


def throughput(results, out):
    best = best_rounds(results)
    if not best:
        return
    labels = list(best)
    base = best[labels[0]]["rps"]
    ratios = [best[l]["rps"] / base for l in labels]
    cpu = [best[l].get("server_cpu_us_per_request") or 0 for l in labels]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 0.45 * len(labels) + 1.2), sharey=True)
    y = range(len(labels))
    a.barh(y, ratios, color="#4c72b0")
    a.axvline(1.0, color="black", lw=0.8)
    a.axvline(0.95, color="#c44e52", lw=0.8, ls="--", label="0.95 (target, tracked)")
    for i, v in enumerate(ratios):
        a.text(v, i, f" {v:.3f}", va="center")
    a.set_yticks(list(y), labels)
    a.invert_yaxis()
    a.set_xlabel(f"requests/s as a ratio to '{labels[0]}' (best round)")
    a.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    b.barh(y, cpu, color="#55a868")
    for i, v in enumerate(cpu):
        b.text(v, i, f" {v:.2f}", va="center")
    b.set_xlabel("server CPU per request (µs)")
    save(fig, out, "throughput.svg")


def spectrum(r):
    points = r.get("percentile_spectrum")
    if points:
        return [p for p, _ in points], [v for _, v in points]
    keys = [(50, "p50_us"), (90, "p90_us"), (99, "p99_us"), (99.9, "p999_us"), (100, "max_us")]
    pairs = [(p, r[k]) for p, k in keys if r.get(k) is not None]
    return [p for p, _ in pairs], [v for _, v in pairs]


def plain_log_y(ax):
    """A log y axis labelled 0.5, 1, 2, 5, 10 ... instead of powers of ten."""
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "25" else ""))


def nines(percentiles):
    """x position of a percentile on the usual 1/(1-p) axis (100 % drawn at 99.999 %)."""
    return [1.0 / max(1.0 - p / 100.0, 1e-5) for p in percentiles]


def nines_axis(ax):
    ticks = [1, 2, 10, 100, 1000, 10000, 100000]
    ax.set_xscale("log")
    ax.set_xticks(ticks, ["0%", "50%", "90%", "99%", "99.9%", "99.99%", "max"])
    ax.set_xlabel("percentile")


def latency(results, out):
    best = best_rounds(results)
    if not best:
        return
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, r in best.items():
        p, v = spectrum(r)
        ax.plot(nines(p), [x / 1000 for x in v], label=label, lw=1.2)
    nines_axis(ax)
    ax.set_yscale("log")
    ax.set_ylabel("latency (ms), 32 connections, closed loop")
    ax.legend(fontsize=7)
    save(fig, out, "latency.svg")


def revocation(results, out):
    runs = [r for r in results if r.get("kind") == "revocation"]
    if not runs:
        return
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r in runs:
        samples = sorted(r.get("samples_us") or [])
        stale = r.get("trials_with_stale", r.get("trials_with_stale_200"))
        label = r["label"]
        if stale is not None:
            label += f" ({stale}/{r['trials']} trials with a stale 200)"
        if samples:
            n = len(samples)
            ax.step([s / 1000 for s in samples], [(i + 1) / n for i in range(n)], where="post", label=label)
        else:
            p, v = spectrum(r)
            ax.plot([x / 1000 for x in v], [x / 100 for x in p], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("DEL of the session key -> first 401 (ms)")
    ax.set_ylabel("fraction of trials")
    ax.legend(fontsize=7)
    save(fig, out, "revocation.svg")


def setup_of(label):
    return label.rsplit(", ", 1)[-1] if ", " in label else label


def login(results, out):
    # Several rounds per setup (raw and flood alternate): bars are the means, dots the rounds.
    rounds = defaultdict(lambda: defaultdict(list))  # setup -> series -> rates
    for r in results:
        if r.get("kind") == "capacity":
            rounds[setup_of(r["label"])]["raw"].append(r.get("hashes_per_second", 0))
        elif r.get("kind") == "login":
            series = "alone" if r["label"].startswith("logins alone") else "beside"
            rounds[setup_of(r["label"])][series].append(r["ok_per_s"])
    setups = [
        s
        for s in rounds
        if rounds[s]["raw"] and min(rounds[s]["raw"]) > 0 and (rounds[s]["alone"] or rounds[s]["beside"])
    ]
    if not setups:
        return
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    bars = [
        ("raw", "raw Argon2 hashes/s (configured slots)"),
        ("alone", "logins/s, flood alone"),
        ("beside", "logins/s, beside the probes"),
    ]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.27
    for k, (series, name) in enumerate(bars):
        present = [s for s in setups if rounds[s][series]]
        xs = [setups.index(s) + (k - 1) * width for s in present]
        ys = [mean(rounds[s][series]) for s in present]
        ax.bar(xs, ys, width=width, label=name)
        for x, s in zip(xs, present):
            ax.plot([x] * len(rounds[s][series]), rounds[s][series], "k.", markersize=3)
        if k == 0:
            continue
        for x, y, s in zip(xs, ys, present):
            ax.text(x, y, f"{y / mean(rounds[s]['raw']):.2f}x", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(list(range(len(setups))), setups)
    ax.set_ylabel("per second (dots: rounds)")
    ax.set_ylim(0, max(max(rounds[s]["raw"]) for s in setups) * 1.35)
    ax.legend(fontsize=7, loc="upper left")
    save(fig, out, "login.svg")


# The phases of the probe rounds (the label's word after "p99") and how the figure names them;
# the controls run only with BENCH_PROBE_CONTROLS=1.
PROBE_PHASES = (
    ("unloaded", "alone"),
    ("loaded", "beside a login flood"),
    ("hashing", "beside raw hashing (SCHED_IDLE, no requests)"),
    ("spinning", "beside busy loops (SCHED_IDLE, no requests, no memory traffic)"),
)


def tails(results, out):
    # Several alternating rounds per phase: bars are the median p99s, dots the rounds.
    rows = defaultdict(lambda: defaultdict(list))  # (probe, setup) -> phase -> p99s in ms
    for r in results:
        if r.get("kind") not in ("refresh", "paced"):
            continue
        label = r["label"]
        for phase, _ in PROBE_PHASES:
            if f" {phase}, " in label:
                probe = "refresh" if r["kind"] == "refresh" else "/me (verifier)"
                rows[(probe, setup_of(label))][phase].append(r["p99_us"] / 1000)
    def median(xs):
        xs = sorted(xs)
        mid = len(xs) // 2
        return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2

    keys = [k for k in rows if rows[k]["unloaded"] and len(rows[k]) >= 2 and median(rows[k]["unloaded"]) > 0]
    if not keys:
        return
    phases = [(p, n) for p, n in PROBE_PHASES if any(rows[k][p] for k in keys)]
    width = 0.8 / len(phases)
    fig, ax = plt.subplots(figsize=(7 if len(phases) <= 2 else 9, 3.5))
    x = range(len(keys))
    for j, (phase, name) in enumerate(phases):
        offset = (j - (len(phases) - 1) / 2) * width
        ax.bar([i + offset for i in x], [median(rows[k][phase]) if rows[k][phase] else 0 for k in keys],
               width=width, label=name)
        for i, k in zip(x, keys):
            ax.plot([i + offset] * len(rows[k][phase]), rows[k][phase], "k.", markersize=3)
            if phase != "unloaded" and rows[k][phase]:
                lo = median(rows[k][phase])
                ax.text(i + offset, lo, f"{lo / median(rows[k]['unloaded']):.2f}x", ha="center",
                        va="bottom", fontsize=7 if len(phases) > 2 else 10)
    ax.set_xticks(list(x), [f"{p}\n{s}" for p, s in keys])
    plain_log_y(ax)  # one stopped vCPU's round must not flatten the others
    ax.set_ylabel("p99 (ms)")
    ax.set_title("open-loop probes: median p99 of the rounds (dots: rounds)", fontsize=9)
    ax.legend(fontsize=7)
    save(fig, out, "tails.svg")


# The refresh runs toward saturation: "refresh p99 at F of saturation, <setup>".
AT_FRACTION = re.compile(r"refresh p99 at ([0-9.]+) of saturation, (.+)$")


def refresh(results, out):
    curves = defaultdict(list)  # setup -> (fraction, rate, p50, p99, p999) in ms
    for r in results:
        m = AT_FRACTION.match(r.get("label", "")) if r.get("kind") == "refresh" else None
        if m:
            ms = [r[k] / 1000 for k in ("p50_us", "p99_us", "p999_us")]
            curves[m.group(2)].append((float(m.group(1)), r["ok_per_s"], *ms))
    if not curves:
        return
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for k, (setup, points) in enumerate(sorted(curves.items())):
        points.sort()
        xs = [p[0] for p in points]
        color = f"C{k}"
        for i, (name, style) in enumerate((("p50", ":"), ("p99", "-"), ("p99.9", "--"))):
            ax.plot(xs, [p[2 + i] for p in points], style, marker="o", color=color, label=f"{name}, {setup}")
        for p in points:
            ax.annotate(f"{p[1]:.0f}/s", (p[0], p[3]), textcoords="offset points", xytext=(4, 4),
                        fontsize=7, color=color)
    ax.axhline(5, color="#c44e52", lw=0.8, ls="--", label="5 ms (target for p99)")
    plain_log_y(ax)
    ax.set_xlabel("offered refreshes/s as a fraction of the measured saturation (400 sessions)")
    ax.set_ylabel("latency (ms), open loop")
    ax.legend(fontsize=7, ncol=2)
    save(fig, out, "refresh.svg")


def paired_rounds(paths):
    """(batch, round, path) -> server CPU µs per request, from paired.sh's lines
    "round path user_us sys_us total_us rps" (rounds of batch b numbered b*100 + round; the
    files' batches are renumbered so that they do not collide)."""
    rows, offset = {}, 0
    for path in paths:
        batches = set()
        try:
            text = Path(path).read_text()
        except OSError as e:
            sys.exit(f"plot-bench.py: cannot read the paired rounds {path}: {e.strerror}")
        for line in text.splitlines():
            parts = line.split()
            if len(parts) != 6 or not parts[0].isdigit():
                continue
            n = int(parts[0])
            batches.add(n // 100)
            rows[(offset + n // 100, n % 100, parts[1])] = float(parts[4])
        offset += max(batches, default=0) + 1
    return rows


# Student's t, two-sided 95 %, by degrees of freedom; a df between two entries takes the
# smaller df's (larger) value, so an interval is never drawn narrower than it is.
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
        9: 2.262, 14: 2.145, 19: 2.093, 29: 2.045, 39: 2.023, 59: 2.001, 119: 1.980}


def t975(df):
    return T975[max(k for k in T975 if k <= df)]


def mean_and_half(xs):
    """The mean of `xs` and the half-width of its 95 % confidence interval (Student's t)."""
    n = len(xs)
    mean = sum(xs) / n
    sd = (sum((x - mean) ** 2 for x in xs) / (n - 1)) ** 0.5
    return mean, t975(n - 1) * sd / n ** 0.5


def hot_path(groups, out):
    """groups: [(name, [files])]; each group's paths get a row of their own."""
    base = "/baseline/me"
    rows_drawn = []  # (row label, differences per set)
    for name, files in groups:
        rows = paired_rounds(files)
        paths = sorted({p for _, _, p in rows} - {base}, key=lambda p: (not p.startswith(base), p))
        batches = sorted({b for b, _, _ in rows})
        for path in paths:
            diffs = []
            for b in batches:
                d = [rows[(b, r, path)] - rows[(b, r, base)] for bb, r, p in rows
                     if bb == b and p == path and (b, r, base) in rows]
                if d:
                    diffs.append(sum(d) / len(d))
            if len(diffs) >= 2:
                rows_drawn.append((f"{path}\n{name}" if name else path, diffs))
    if not rows_drawn:
        sys.exit("plot-bench.py --paired: no path has rounds from two or more sets of "
                 f"processes in {', '.join(f for _, files in groups for f in files)}")
    fig, ax = plt.subplots(figsize=(8, 0.75 * len(rows_drawn) + 1.4))
    for i, (label, diffs) in enumerate(rows_drawn):
        n = len(diffs)
        mean, half = mean_and_half(diffs)
        ax.plot(diffs, [i] * n, "o", color="#4c72b0", alpha=0.5, markersize=4)
        ax.errorbar([mean], [i], xerr=[[half], [half]], fmt="D", color="black", capsize=4)
        ax.text(mean, i - 0.22, f"{mean:+.2f} µs ({mean - half:+.2f} to {mean + half:+.2f}), {n} sets",
                ha="center", va="bottom", fontsize=7)
    ax.axvline(0, color="black", lw=0.8)
    ax.axvline(0.5, color="#c44e52", lw=0.8, ls="--", label="+0.5 µs (bound, tracked)")
    ax.set_yticks(list(range(len(rows_drawn))), [label for label, _ in rows_drawn], fontsize=8)
    ax.set_ylim(len(rows_drawn) - 0.5, -0.7)
    ax.set_xlabel(f"server CPU per request minus '{base}' (µs); dots: fresh sets of processes")
    ax.legend(fontsize=7, loc="lower right")
    save(fig, out, "hot-path.svg")


def login_round_ratios(directories):
    """setup -> [logins/s ÷ raw hashes/s per round], pooled over the directories. Refuses a
    directory without such rounds, or whose raw rounds and floods of a core count differ in
    number, so that none is silently left out."""
    ratios = defaultdict(list)
    for directory in directories:
        raw, flood = defaultdict(list), defaultdict(list)
        for r in load(directory):
            try:
                if r.get("kind") == "capacity":
                    raw[setup_of(r["label"])].append(float(r["hashes_per_second"]))
                elif r.get("kind") == "login" and r["label"].startswith("logins alone"):
                    flood[setup_of(r["label"])].append(float(r["ok_per_s"]))
            except (KeyError, TypeError, ValueError) as e:
                sys.exit(f"plot-bench.py --login-rounds: a result in {directory} lacks {e}")
        if not raw and not flood:
            sys.exit(f"plot-bench.py --login-rounds: no raw Argon2 rounds nor login floods in {directory}")
        for setup in sorted(set(raw) | set(flood)):
            if len(raw[setup]) != len(flood[setup]):
                sys.exit(f"plot-bench.py --login-rounds: {directory} has {len(raw[setup])} raw "
                         f"round(s) and {len(flood[setup])} flood(s) of {setup}")
            if min(raw[setup]) <= 0:
                sys.exit(f"plot-bench.py --login-rounds: a raw rate of 0 in {directory} ({setup})")
            ratios[setup] += [f / r for r, f in zip(raw[setup], flood[setup])]
    for setup, xs in ratios.items():
        if len(xs) < 2:
            sys.exit(f"plot-bench.py --login-rounds: one round of {setup} in "
                     + ", ".join(directories) + ": no interval from one round")
    return ratios


def rounds_figure(rows, bound, at_least, bound_label, xlabel, out, name, geometric=False):
    """One row per (label, per-round ratios): the rounds as dots, the mean and its 95 %
    interval (with `geometric`, over the logarithms: the geometric mean, for ratios of tail
    latencies), a dashed line at `bound`. Prints each row's figures, with how many rounds
    meet the bound: at least it with `at_least` (a rate), at most it otherwise (a cost)."""
    fig, ax = plt.subplots(figsize=(8, 0.9 * len(rows) + 1.4))
    for i, (label, ratios) in enumerate(rows):
        n = len(ratios)
        mean, half = mean_and_half([math.log(x) for x in ratios] if geometric else ratios)
        low, mid, high = mean - half, mean, mean + half
        if geometric:
            low, mid, high = math.exp(low), math.exp(mid), math.exp(high)
        meeting = sum(x >= bound if at_least else x <= bound for x in ratios)
        kind = "geometric mean" if geometric else "mean"
        print(f"{label.replace(chr(10), ', ')}: {n} rounds, {kind} {mid:.3f} (95 % CI {low:.3f}-{high:.3f}), "
              f"{meeting} rounds {'>=' if at_least else '<='} {bound}; rounds "
              + " ".join(f"{x:.2f}" for x in ratios))
        ax.plot(ratios, [i] * n, "o", color="#4c72b0", alpha=0.4, markersize=4)
        ax.errorbar([mid], [i], xerr=[[mid - low], [high - mid]], fmt="D", color="black", capsize=4)
        ax.text(mid, i - 0.22, f"{mid:.3f} ({low:.3f} to {high:.3f}), {n} rounds",
                ha="center", va="bottom", fontsize=7)
    if geometric:
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.axvline(bound, color="#c44e52", lw=0.8, ls="--", label=bound_label)
    ax.axvline(1.0, color="black", lw=0.8)
    ax.set_yticks(list(range(len(rows))), [label for label, _ in rows], fontsize=8)
    ax.set_ylim(len(rows) - 0.5, -0.7)
    ax.set_xlabel(xlabel)
    ax.legend(fontsize=7, loc="lower right")
    save(fig, out, name)


def login_rounds(ratios, out):
    rounds_figure(sorted(ratios.items()), 0.9, True, "0.9x (bound)",
                  "logins/s ÷ raw Argon2 hashes/s of the configured slots, per round (dots)",
                  out, "login-rounds.svg")


def probe_round_ratios(directories):
    """(probe, setup, phase) -> [p99 in that phase ÷ p99 alone, per round], pooled over the
    directories: the i-th round of each phase with the i-th round alone, as bench.sh runs a
    round's phases one after the other. Refuses a directory without probe rounds, or whose
    phases of a probe differ in their number of rounds."""
    ratios = defaultdict(list)
    for directory in directories:
        p99s = defaultdict(lambda: defaultdict(list))  # (probe, setup) -> phase -> p99s
        for r in load(directory):
            if r.get("kind") not in ("refresh", "paced"):
                continue
            try:
                label = r["label"]
                for phase, _ in PROBE_PHASES:
                    if f" p99 {phase}, " in label:
                        probe = "refresh" if r["kind"] == "refresh" else "/me (verifier)"
                        p99s[(probe, setup_of(label))][phase].append(float(r["p99_us"]))
            except (KeyError, TypeError, ValueError) as e:
                sys.exit(f"plot-bench.py --probe-rounds: a result in {directory} lacks {e}")
        if not any(phase != "unloaded" and xs for phases in p99s.values() for phase, xs in phases.items()):
            sys.exit(f"plot-bench.py --probe-rounds: no probe rounds beside anything in {directory}")
        for (probe, setup), phases in sorted(p99s.items()):
            alone = phases["unloaded"]
            for phase, _ in PROBE_PHASES[1:]:
                if not phases[phase]:
                    continue
                if len(phases[phase]) != len(alone):
                    sys.exit(f"plot-bench.py --probe-rounds: {directory} has {len(alone)} round(s) "
                             f"of the {probe} probe alone and {len(phases[phase])} {phase} ({setup})")
                if min(alone) <= 0:
                    sys.exit(f"plot-bench.py --probe-rounds: a p99 of 0 alone in {directory} "
                             f"({probe}, {setup})")
                ratios[(probe, setup, phase)] += [x / a for a, x in zip(alone, phases[phase])]
    for key, xs in ratios.items():
        if len(xs) < 2:
            sys.exit(f"plot-bench.py --probe-rounds: one round of {' '.join(key)} in "
                     + ", ".join(directories) + ": no interval from one round")
    return ratios


# The row names of probe-rounds.svg: PROBE_PHASES' names, short enough to leave the plot room.
PROBE_ROUND_NAMES = {
    "loaded": "beside a login flood",
    "hashing": "beside raw hashing, no requests",
    "spinning": "beside busy loops, no requests",
}


def probe_rounds(ratios, out):
    order = [phase for phase, _ in PROBE_PHASES]
    keys = sorted(ratios, key=lambda k: (k[1], k[0], order.index(k[2])))
    rows = [(f"{probe}, {setup}\n{PROBE_ROUND_NAMES[phase]}", ratios[(probe, setup, phase)])
            for probe, setup, phase in keys]
    rounds_figure(rows, 1.1, False, "1.1x (bound: within 10 %)",
                  "p99 beside ÷ p99 alone, per round (dots; log scale)",
                  out, "probe-rounds.svg", geometric=True)


def main():
    rounds = {"--login-rounds": (login_round_ratios, login_rounds),
              "--probe-rounds": (probe_round_ratios, probe_rounds)}
    if len(sys.argv) >= 4 and sys.argv[1] in rounds:
        ratios_of, draw = rounds[sys.argv[1]]
        ratios = ratios_of(sys.argv[2:-1])
        out = Path(sys.argv[-1])
        out.mkdir(parents=True, exist_ok=True)
        return draw(ratios, out)
    if len(sys.argv) >= 4 and sys.argv[1] == "--paired":
        out = Path(sys.argv[-1])
        out.mkdir(parents=True, exist_ok=True)
        # NAME:FILE[,FILE...] (a machine or a batch of runs), or just FILE[,FILE...]
        groups = [(g.split(":", 1) if ":" in g else ("", g)) for g in sys.argv[2:-1]]
        return hot_path([(name, files.split(",")) for name, files in groups], out)
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    results = load(sys.argv[1])
    if not results:
        sys.exit(f"plot-bench.py: no results (*.json) in {sys.argv[1]}: nothing to draw")
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    for figure in (throughput, latency, revocation, login, tails, refresh):
        figure(results, out)


if __name__ == "__main__":
    main()
