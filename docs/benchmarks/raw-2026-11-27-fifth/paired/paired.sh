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
BIN=${BIN:-target/release}
GROUP_CMD=()
case ${DEMO_GROUP:-shared} in
    shared) ;;
    own) GROUP_CMD=(setsid) ;;
    *) echo "DEMO_GROUP must be shared or own" >&2; exit 2 ;;
esac
PATHS=${PATHS:-/baseline/me /me /verified/me}
TMP=$(mktemp -d /tmp/pr.XXXX); PIDS=()
trap 'for p in "${PIDS[@]}"; do kill $p 2>/dev/null||true; done; sleep 0.5; rm -rf $TMP' EXIT
RP=$($BIN/loadgen free-port)
taskset -c 1 redis-server --port $RP --bind 127.0.0.1 --save "" --appendonly no --dir $TMP >/dev/null 2>&1 & PIDS+=($!)
renice -n -20 -p ${PIDS[-1]} >/dev/null 2>&1 || true
sleep 0.3
PREFIX=pr$$; AP=$($BIN/loadgen free-port); ISS=http://127.0.0.1:$AP
env DATABASE_URL=sqlite:$TMP/a.db REDIS_URL=redis://127.0.0.1:$RP LISTEN_ADDR=127.0.0.1:$AP AUTH_ISSUER=$ISS \
    AUTH_REDIS_PREFIX=$PREFIX RUST_LOG=warn AUTH_LIMITS__LOGIN_IP_MAX=100000 \
    taskset -c 1 $BIN/auth-center serve > $TMP/auth.log 2>&1 & PIDS+=($!)
for _ in $(seq 200); do curl -sf -o /dev/null $ISS/healthz && break; sleep 0.05; done
export LOADGEN_PASSWORD="pr-password-$RANDOM-long-enough-x"
eval "$($BIN/loadgen token --auth-url $ISS --username pr_$$ --register --prefix $PREFIX)"
P=$($BIN/loadgen free-port)
env AUTH_JWKS_URL=$ISS/.well-known/jwks.json AUTH_ISSUER=$ISS AUTH_AUDIENCE=api REDIS_URL=redis://127.0.0.1:$RP \
    LISTEN_ADDR=127.0.0.1:$P AUTH_REDIS_PREFIX=$PREFIX AUTH_REVOCATION=tracked RUST_LOG=warn \
    ${GROUP_CMD[@]+"${GROUP_CMD[@]}"} taskset -c 0 $BIN/demo-service > $TMP/demo.log 2>&1 & S=$!; PIDS+=($S)
for _ in $(seq 600); do curl -sf -o /dev/null http://127.0.0.1:$P/healthz && break; sleep 0.1; done
# setsid execs in place (a background job of a script is no process group leader), so $S is the
# demo-service itself: the CPU times below are its own.
[[ $(cat /proc/$S/comm) == demo-service ]] || { echo "pid $S is not the demo-service" >&2; exit 1; }
if (( ${#GROUP_CMD[@]} )); then
    [[ $(awk '{print $6}' /proc/$S/stat) == "$S" ]] || { echo "the demo-service has no session of its own" >&2; exit 1; }
fi
echo "demo-service: $(cat /proc/$S/autogroup 2>/dev/null || echo '(no autogroup)'); this script: $(cat /proc/$$/autogroup 2>/dev/null || echo '(no autogroup)'); kernel.sched_autogroup_enabled=$(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null || echo '?')" >&2
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
