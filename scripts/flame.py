#!/usr/bin/env python3
"""Where the tracked demo-service's CPU goes per request, from `BENCH_PROFILE=DIR scripts/bench.sh`.

    scripts/flame.py PROFILE_DIR OUT_DIR

PROFILE_DIR holds, per path NAME (`baseline_me`, `me`) and round R, the folded stacks of perf's
samples (`NAME-R.folded.gz` or `NAME-R.folded`, from `inferno-collapse-perf --all`: kernel
frames end in `_[k]`) and
the load generator's result of the same seconds (`NAME-R.json`, with the server CPU per
request). Samples only say which share of the CPU went where; the server's CPU time per
request, read from /proc around the same seconds, says how much. So each round's stacks are
scaled to that round's server CPU per request (picoseconds per request), and the rounds of a
path are averaged. Writes into OUT_DIR:

* `flame.txt`              each round's server CPU per request and CPU time sampled; the table
                           of server CPU per request in a few buckets, per path, with the
                           difference; the verifier's bucket broken down;
* `flame-NAME.svg`         NAME's flame graph, widths in nanoseconds per request;
* `flame-verifier.svg`     /me's stacks in the verifier's bucket only, from the verifier's
                           outermost frame: what its own share is made of;
* `flame-diff.svg`         /me's flame graph coloured by the change from /baseline/me (red:
                           more time per request, blue: less; inferno-diff-folded).

Needs only the standard library and inferno's binaries (`inferno-flamegraph`,
`inferno-diff-folded`) on PATH; bench.sh installs them into target/tools.
"""

import gzip
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

PATHS = [("baseline_me", "/baseline/me"), ("me", "/me")]

# Where a sample's time goes, tried in this order:
# * the verifier's background work (the tracking heartbeat, the revocation self-test, the
#   reader thread's Redis queries, the metrics flush): a stack whose outermost verifier frame
#   is in `verifier::revocation` or a task `verifier::builder` spawns;
# * the verifier on the request path: a stack with a verifier frame below which the inner
#   service (axum's route, the handler) is not polled; all it calls (its caches, the header
#   map, the clock, malloc, memcpy) is the verifier's;
# * the kernel, when the leaf is a kernel frame (network, or the rest); the vDSO (the clock
#   read in user space, which inferno marks like the kernel) is not the kernel;
# * malloc and memcpy at the leaf, wherever they were called from;
# * else the crate of the innermost frame that names one of CRATES (so hyper's own work is not
#   charged to tokio, which calls it; `quick_cache` belongs to its caller: service-kit's
#   request metrics outside the verifier).
VERIFIER = re.compile(r"^<?verifier::")
BACKGROUND = re.compile(r"^<?verifier::(revocation::|builder::spawn_)")
INNER_SERVICE = re.compile(r"^<?(axum|axum_core|tower|demo_service)::")
ALLOCATOR = re.compile(r"(^|__)(libc_)?(malloc|free|calloc|realloc|cfree)\b|_int_(malloc|free|realloc)|malloc_consolidate|tcache|unlink_chunk|__rust_(alloc|dealloc|realloc)")
MEMCPY = re.compile(r"(^|__)mem(cpy|move)")
CRATES = [
    ("the handler (demo_service, serde_json)", re.compile(r"^<?(demo_service|serde_json|serde)::")),
    ("axum, tower, service-kit (access log, metrics)", re.compile(r"^<?(axum|axum_core|tower|tower_http|tower_service|service_kit)::")),
    ("hyper, http (HTTP parsing and writing)", re.compile(r"^<?(hyper|http|httparse|bytes)::")),
    ("tokio (scheduler, I/O driver, timers)", re.compile(r"^<?(tokio|mio)::")),
]
VERIFIER_BUCKET = "verifier on the request path, with all it calls"
BUCKETS = [
    VERIFIER_BUCKET,
    "verifier's background tasks (heartbeat, self-test)",
    "kernel: network (TCP, loopback, epoll)",
    "kernel: the rest (scheduling, syscalls, faults)",
    "allocator (malloc, free), elsewhere",
    "memcpy, memmove, elsewhere",
    *(name for name, _ in CRATES),
    "the rest (std, libc, unresolved)",
]

NET = re.compile(r"^_*(tcp|inet|sock|skb|ip|netif|net_rx|napi|dev_queue|loopback|ep_|epoll|do_epoll)|^__sys_(send|recv)")


def kernel(frame):
    return frame.endswith("_[k]") and not frame.startswith("__vdso")


def verifier_frames(stack):
    """The positions of the verifier's frames in a stack, outermost first."""
    return [i for i, f in enumerate(stack) if VERIFIER.search(dropped(f))]


def bucket(stack):
    frames = [dropped(f) for f in stack]
    marks = verifier_frames(stack)
    if marks:
        if BACKGROUND.search(frames[marks[0]]):
            return BUCKETS[1]
        if not any(INNER_SERVICE.search(f) for f in frames[marks[-1] + 1:]):
            return VERIFIER_BUCKET
    if kernel(stack[-1]):
        return BUCKETS[2] if any(NET.search(f) for f in stack if kernel(f)) else BUCKETS[3]
    if ALLOCATOR.search(stack[-1]):
        return BUCKETS[4]
    if MEMCPY.search(stack[-1]):
        return BUCKETS[5]
    for frame in reversed(frames):
        for name, pattern in CRATES:
            if pattern.search(frame):
                return name
    return BUCKETS[-1]


def dropped(frame):
    """What a frame works on: the type a `drop_in_place` drops, or the frame itself."""
    return frame.removeprefix("core::ptr::drop_in_place<")


def tool(name):
    """An inferno binary: on PATH, or where bench.sh installs it."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(__file__).parent.parent / "target/tools/bin"))
    if not found:
        sys.exit(f"{name} not found: cargo install --locked --root target/tools 'inferno@^0.12'")
    return found


def read_folded(path):
    stacks = defaultdict(int)
    text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
    for line in text.splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            stacks[frames] += int(count)
    return stacks


def round_of(folded):
    """R of NAME-R.folded or NAME-R.folded.gz."""
    return int(folded.name.split(".")[0].rsplit("-", 1)[1])


def path_profile(directory, name):
    """The mean over rounds of picoseconds per request per stack, and the rounds' figures."""
    own = re.compile(rf"{re.escape(name)}-\d+\.folded(\.gz)?$")
    # One file per round: a gzipped one where both are there.
    rounds = {round_of(p): p for p in sorted(directory.iterdir(), key=lambda p: p.name)
              if own.match(p.name)}
    if not rounds:
        sys.exit(f"no {name}-<round>.folded in {directory}")
    scaled = defaultdict(float)
    figures = []
    for n, folded in sorted(rounds.items()):
        result = json.loads((directory / f"{name}-{n}.json").read_text())
        us = result.get("server_cpu_us_per_request")
        stacks = read_folded(folded)
        sampled = sum(stacks.values())  # perf's cpu-clock periods: nanoseconds on the CPU
        if not us or not sampled:
            sys.exit(f"{folded}: no samples of the demo-service, or no server CPU figure in its JSON")
        for frames, count in stacks.items():
            scaled[frames] += count / sampled * us * 1e6 / len(rounds)
        figures.append((us, sampled / 1e9, result["rps"], result["server_user_us_per_request"]))
    return scaled, figures


def by_bucket(scaled):
    out = defaultdict(float)
    for frames, ps in scaled.items():
        out[bucket(frames.split(";"))] += ps
    return out


def verifier_parts(scaled):
    """The verifier bucket's time by (what the innermost verifier frame called, or that frame
    itself when it is the leaf; the leaf), largest first."""
    parts = defaultdict(float)
    for frames, ps in scaled.items():
        stack = frames.split(";")
        if bucket(stack) == VERIFIER_BUCKET:
            inner = verifier_frames(stack)[-1]
            parts[(stack[min(inner + 1, len(stack) - 1)], stack[-1])] += ps
    return sorted(parts.items(), key=lambda kv: -kv[1])


def short(frame, width=70):
    return frame if len(frame) <= width else frame[: width - 1] + "…"


def folded(scaled):
    """Folded-stack text of `scaled`, counts rounded to whole picoseconds."""
    lines = [f"{frames} {round(ps)}" for frames, ps in sorted(scaled.items()) if round(ps) > 0]
    return "\n".join(lines) + "\n"


def flamegraph(folded_input, out, title):
    # The counts are picoseconds; shown as nanoseconds per request.
    svg = subprocess.run(
        [tool("inferno-flamegraph"), "--title", title, "--countname", "ns per request",
         "--factor", "0.001", "--minwidth", "0.2", "--hash", "--width", "1400"],
        input=folded_input, capture_output=True, text=True, check=True,
    ).stdout
    out.write_text(svg)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    directory, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    profiles = {name: path_profile(directory, name) for name, _ in PATHS}

    lines = ["Server CPU per request of the tracked demo-service, by where perf's samples fell",
             "(each round's samples scaled to its server CPU per request; the mean over rounds)", ""]
    for name, path in PATHS:
        rounds = ", ".join(f"{us:.2f} µs, {user:.2f} of it user ({seconds:.1f} s of CPU sampled, {rps:.0f} req/s)"
                           for us, seconds, rps, user in profiles[name][1])
        lines.append(f"{path}: {rounds}")
    lines.append("")
    base, me = (by_bucket(profiles[name][0]) for name, _ in PATHS)
    width = max(len(name) for name in BUCKETS)
    lines.append(f"{'ns per request':<{width}}  {'/baseline/me':>12}  {'/me':>8}  {'difference':>10}")
    for name in BUCKETS:
        b, m = base.get(name, 0) / 1000, me.get(name, 0) / 1000
        lines.append(f"{name:<{width}}  {b:12.0f}  {m:8.0f}  {m - b:+10.0f}")
    tb, tm = sum(base.values()) / 1000, sum(me.values()) / 1000
    lines.append(f"{'total':<{width}}  {tb:12.0f}  {tm:8.0f}  {tm - tb:+10.0f}")
    lines += ["", "/me's verifier bucket by what the innermost verifier frame called (or that frame) <- the leaf:"]
    for (frame, leaf), ps in verifier_parts(profiles["me"][0])[:15]:
        lines.append(f"{ps / 1000:7.0f} ns  {short(frame)}  <-  {short(leaf)}")
    text = "\n".join(lines) + "\n"
    (out / "flame.txt").write_text(text)
    print(text, end="")

    with tempfile.TemporaryDirectory() as scratch:
        draw(profiles, Path(scratch), out)


def draw(profiles, scratch, out):
    """The flame graphs, from the scaled stacks (picoseconds per request; the two paths' also
    written into `scratch`, for inferno-diff-folded)."""
    for name, path in PATHS:
        text = folded(profiles[name][0])
        (scratch / f"{name}.folded").write_text(text)
        flamegraph(text, out / f"flame-{name}.svg",
                   f"{path}: server CPU per request (tracked demo-service)")
    verifier = defaultdict(float)
    for frames, ps in profiles["me"][0].items():
        stack = frames.split(";")
        if bucket(stack) == VERIFIER_BUCKET:
            first = verifier_frames(stack)[0]
            verifier[";".join(stack[first:])] += ps
    flamegraph(folded(verifier), out / "flame-verifier.svg",
               f"/me: the verifier's {sum(verifier.values()) / 1000:.0f} ns per request, "
               "from its outermost frame")
    diff = subprocess.run(
        [tool("inferno-diff-folded"), str(scratch / "baseline_me.folded"), str(scratch / "me.folded")],
        capture_output=True, text=True, check=True,
    ).stdout
    flamegraph(diff, out / "flame-diff.svg",
               "/me against /baseline/me: red costs more per request, blue less")


if __name__ == "__main__":
    main()
