#!/usr/bin/env bash
# Where a login's server CPU goes, by thread group: an auth-center on CPUS (default 0) with
# bench.sh's settings, a 16-client login flood from CPU 1 with --watch-threads, raw capacity
# on the same CPUs before and after. usage: split.sh OUTDIR [CPUS] [SECONDS]
set -euo pipefail
cd /work/main
out=$1; cpus=${2:-0}; secs=${3:-10}; BIN=${BIN:-target/release}
mkdir -p "$out"
TMP=$(mktemp -d /tmp/split.XXXX); PIDS=()
trap 'for p in "${PIDS[@]}"; do kill $p 2>/dev/null||true; done; sleep 0.5; rm -rf $TMP' EXIT
RP=$($BIN/loadgen free-port)
taskset -c 1 redis-server --port $RP --bind 127.0.0.1 --save "" --appendonly no --dir $TMP >/dev/null 2>&1 & PIDS+=($!)
renice -n -20 -p ${PIDS[-1]} >/dev/null 2>&1 || true
AP=$($BIN/loadgen free-port)
env DATABASE_URL=sqlite:$TMP/a.db REDIS_URL=redis://127.0.0.1:$RP LISTEN_ADDR=127.0.0.1:$AP AUTH_ISSUER=http://127.0.0.1:$AP \
  AUTH_REDIS_PREFIX=split$$ RUST_LOG=warn AUTH_LIMITS__LOGIN_IP_MAX=100000000 AUTH_LIMITS__REFRESH_IP_MAX=0 \
  AUTH_SESSIONS__MAX_PER_USER=100000 AUTH_LIMITS__REGISTER_IP_MAX=1000 \
  ${EXTRA_ENV:-} taskset -c $cpus $BIN/auth-center serve > $TMP/auth.log 2>&1 & A=$!; PIDS+=($A)
for _ in $(seq 200); do curl -sf -o /dev/null http://127.0.0.1:$AP/healthz && break; sleep 0.05; done
export LOADGEN_PASSWORD="split-password-$RANDOM-long-enough-x"
raw() { taskset -c $cpus $BIN/auth-center passwords capacity --seconds 5 --json >> "$out/capacity.jsonl"; }
for r in $(seq ${ROUNDS:-2}); do
  raw
  taskset -c 1 $BIN/loadgen login --auth-url http://127.0.0.1:$AP --username split_user --register -c 16 -d $secs --warmup 1 \
    --server-pid $A --watch-threads --label "split $r" > "$out/login-$r.json"
done
raw
