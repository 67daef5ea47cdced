#!/usr/bin/env bash
# Pools the fresh sets of several paired.sh outputs (rounds numbered batch*100 + round) into one
# analysis: each file's batches are renumbered apart, then paired-stats.py summarises them. Its
# "by batch" line is the pooled figure (every set an independent unit).
#   docs/benchmarks/raw-2026-11-29-seventeenth/pool.sh groups/shared.txt groups/own.txt ...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pooled=$(mktemp); trap 'rm -f "$pooled"' EXIT
(cd "$here" && awk 'FNR == 1 { f++ } NF == 6 && $1 ~ /^[0-9]+$/ { $1 = f * 10000 + $1; print }' "$@") >"$pooled"
python3 "$here/../raw-2026-11-27-fifth/paired/paired-stats.py" "$pooled"
