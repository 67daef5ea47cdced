#!/usr/bin/env bash
# Item 1 by paired rounds: a tracked demo-service on CPU 0, a private Redis and auth-center and
# the load generator on CPU 1; per round, N requests (32 connections) to each path in an order
# that alternates between rounds (ABC, CBA, ...), and the demo-service's CPU time per request
# from /proc/<pid>/stat (utime + stime, clock ticks) around each. Run from the repository root:
#   ROUNDS=30 N=200000 docs/benchmarks/raw-2026-11-27-fifth/paired/paired.sh > rounds.txt
#   BATCHES=10 ROUNDS=6 N=200000 docs/benchmarks/raw-2026-11-27-fifth/paired/batches.sh > rounds.txt
#   python3 docs/benchmarks/raw-2026-11-27-fifth/paired/paired-stats.py rounds.txt
#   PATHS="/baseline/me /baseline/me+bearer /me" ...   (a path ending in +bearer is the path
#   sent with the token it ignores: what carrying the Authorization header costs by itself)
#   DEMO_GROUP=own ...   (the demo-service in a session of its own, so in a scheduling group of its
#   own where the kernel groups tasks by session; by default it shares the script's, where Redis
#   at nice -20 on CPU 1 takes most of the group's weight)
# Output: one line per path and round: "round path user_us sys_us total_us rps".
set -euo pipefail
PATHS=${PATHS:-/baseline/me /me /verified/me}
# shellcheck source=services.sh
source "$(dirname "$0")/services.sh"
n=${N:-200000}
# Warm-up: every path once.
for path in $PATHS; do
    LOADGEN_TOKEN="$ACCESS_TOKEN" taskset -c 1 $BIN/loadgen http --url http://127.0.0.1:$P${path%+bearer} -c 32 -n 20000 --warmup 0 > /dev/null
done
read -ra order <<<"$PATHS"
for round in $(seq ${ROUNDS:-30}); do
    for path in "${order[@]}"; do
        tok=$ACCESS_TOKEN; [[ $path == /baseline/me ]] && tok=
        read u0 s0 < <(awk '{print $14, $15}' /proc/$S/stat)
        LOADGEN_TOKEN="$tok" taskset -c 1 $BIN/loadgen http --url http://127.0.0.1:$P${path%+bearer} -c 32 -n $n --warmup 0 > $TMP/r.json
        read u1 s1 < <(awk '{print $14, $15}' /proc/$S/stat)
        python3 -c 'import json,sys; r,p,u,s,n=sys.argv[1:6]; u,s,n=int(u),int(s),int(n); rps=json.load(open(sys.argv[6]))["rps"]; print(f"{r} {p} {u*1e4/n:.3f} {s*1e4/n:.3f} {(u+s)*1e4/n:.3f} {rps:.0f}")' \
            $round $path $((u1-u0)) $((s1-s0)) $n $TMP/r.json
    done
    order=($(printf '%s\n' "${order[@]}" | tac))
done
