#!/usr/bin/env bash
# Item 1, both layouts of the demo-service side by side: BATCHES times, one fresh set of
# processes per layout (paired.sh of the fifth session: /baseline/me and /me, ROUNDS rounds of
# N requests each), the two layouts' order swapped every batch so that the host's drift falls
# on both alike. Appends to OUT/route-layer.txt and OUT/whole-router.txt (rounds numbered
# batch*100 + round), which paired-stats.py reads. Run from the repository root:
#   OUT=/tmp/x BATCHES=10 ROUNDS=6 N=200000 docs/benchmarks/raw-2026-11-28-eleventh/paired/layouts.sh
set -euo pipefail
paired=docs/benchmarks/raw-2026-11-27-fifth/paired/paired.sh
out=${OUT:-.}
order=(route-layer whole-router)
for b in $(seq "${BATCHES:-10}"); do
    for layout in "${order[@]}"; do
        DEMO_LAYOUT=$layout ROUNDS=${ROUNDS:-6} PATHS="/baseline/me /me" "$paired" |
            awk -v b="$b" '{ $1 = b * 100 + $1; print }' >> "$out/$layout.txt"
    done
    order=("${order[1]}" "${order[0]}")
done
