#!/usr/bin/env bash
# Draws every figure of docs/benchmarks.md and its notebook again from the committed raw
# results: the exact command behind each SVG in docs/benchmarks/.
#
#   scripts/draw-report.sh [OUT_DIR]        (default: docs/benchmarks, in place)
#
# PYTHON names an interpreter with the pinned matplotlib of scripts/bench-requirements.txt
# (default: python3). With that matplotlib the figures come out byte for byte as committed
# (plot-bench.py fixes the SVG ids and leaves out the date); tests/e2e/report.rs draws them
# into a temporary directory and compares. A new figure in the report gets its line here.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

out=${1:-docs/benchmarks}
py=${PYTHON:-python3}
raw=docs/benchmarks
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
plot() { "$py" scripts/plot-bench.py "$@" >/dev/null; }

# The report's run (benchmarks.md, "The run"): throughput.svg, latency.svg, revocation.svg,
# login.svg, tails.svg, refresh.svg.
plot "$raw/raw-2026-11-28-eleventh/full" "$out"

# Item 1's paired sets before the cuts, `route_layer` (hot-path.svg).
fifth=$raw/raw-2026-11-27-fifth/paired
plot --paired \
    "fifth session's machine, 20 sets:$fifth/ten-processes-6-rounds-a.txt,$fifth/ten-processes-6-rounds-b.txt" \
    "seventh session's machine, 10 sets:$raw/raw-2026-11-27-seventh/paired-bearer/ten-processes-6-rounds.txt" \
    "$out"

# Both layouts after the cuts, on two hosts (hot-path-layouts.svg).
eleventh=$raw/raw-2026-11-28-eleventh/paired
plot --paired "route_layer (Intel Xeon host):$eleventh/route-layer.txt" \
    "whole router, the default (Intel Xeon host):$eleventh/whole-router.txt" \
    "route_layer (AMD EPYC host):$raw/raw-2026-11-28-twelfth/paired/route-layer.txt" \
    "whole router, the default (AMD EPYC host):$raw/raw-2026-11-28-twelfth/paired/whole-router.txt" \
    "$tmp/layouts"
mv "$tmp/layouts/hot-path.svg" "$out/hot-path-layouts.svg"

# Item 1 on every host the default layout was measured on after both cuts, fresh sets of
# processes each, `/me` only (hot-path-hosts.svg; the eleventh, twelfth and seventeenth
# sessions' code was before the nineteenth session's request id change).
seventeenth=$raw/raw-2026-11-29-seventeenth
plot --paired "Intel Xeon host (11th session):$eleventh/whole-router.txt" \
    "AMD EPYC host (12th):$raw/raw-2026-11-28-twelfth/paired/whole-router.txt" \
    "slower guest (17th):$seventeenth/groups/shared.txt,$seventeenth/groups/own.txt,$seventeenth/alloc/glibc.txt,$seventeenth/bearer/me-only.txt" \
    "faster guest (19th, 20th):$raw/raw-2026-11-29-nineteenth/cpu/new.txt,$raw/raw-2026-11-29-nineteenth/cpu-more/new.txt,$raw/raw-2026-11-29-twentieth/bearer/me-only.txt,$raw/raw-2026-11-29-twentieth/bearer-more/me-only.txt" \
    "fastest guest (22nd):$raw/raw-2026-11-29-twenty-second/bearer/me-only.txt" \
    "$tmp/hosts"
mv "$tmp/hosts/hot-path.svg" "$out/hot-path-hosts.svg"

# Item 3 in 48 alternating rounds per core count (login-rounds.svg).
twentyfirst=$raw/raw-2026-11-29-twenty-first
plot --login-rounds "$twentyfirst/login24" "$twentyfirst/login24-more" "$out"

# Item 3 after the twenty-third session's two cuts, 24 rounds per core count
# (login-rounds-cuts.svg).
plot --login-rounds "$raw/raw-2026-11-29-twenty-third/login24" "$tmp/cuts"
mv "$tmp/cuts/login-rounds.svg" "$out/login-rounds-cuts.svg"

# Item 3's probes in 24 alternating rounds per core count (probe-rounds.svg), and in 12 on
# 2 cores beside the controls that make no requests (probe-rounds-controls.svg): drawn apart,
# since the two runs differ by more than either's interval.
plot --probe-rounds "$twentyfirst/probes24" "$out"
plot --probe-rounds "$twentyfirst/probe-controls" "$tmp/probe-controls"
mv "$tmp/probe-controls/probe-rounds.svg" "$out/probe-rounds-controls.svg"

# The probes beside controls that make no requests, run 2 (notebook; tails-controls.svg).
plot "$raw/raw-2026-11-27-fifth/controls-8-rounds" "$tmp/controls"
mv "$tmp/controls/tails.svg" "$out/tails-controls.svg"
