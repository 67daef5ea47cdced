#!/usr/bin/env bash
# The refresh tail right after logins, on 1 core: does the first open-loop run after 400 logins stall?
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
BIN=target/release
TMP=$(mktemp -d /tmp/st.XXXX); PIDS=()
trap 'for p in "${PIDS[@]}"; do kill $p 2>/dev/null||true; done; sleep 0.5; rm -rf $TMP' EXIT
RP=$($BIN/loadgen free-port)
taskset -c 1 redis-server --port $RP --bind 127.0.0.1 --save "" --appendonly no --dir $TMP >/dev/null 2>&1 & PIDS+=($!)
renice -n -20 -p ${PIDS[-1]} >/dev/null 2>&1 || true
sleep 0.3
AP=$($BIN/loadgen free-port); ISS=http://127.0.0.1:$AP
env DATABASE_URL=sqlite:$TMP/a.db REDIS_URL=redis://127.0.0.1:$RP LISTEN_ADDR=127.0.0.1:$AP AUTH_ISSUER=$ISS \
    AUTH_REDIS_PREFIX=st$$ RUST_LOG=warn AUTH_LIMITS__LOGIN_IP_MAX=1000000 AUTH_LIMITS__REFRESH_IP_MAX=100000000 \
    AUTH_LIMITS__REGISTER_IP_MAX=1000 AUTH_SESSIONS__MAX_PER_USER=100000 ${EXTRA_ENV:-} \
    taskset -c 0 $BIN/auth-center serve > $TMP/auth.log 2>&1 & A=$!; PIDS+=($A)
for _ in $(seq 200); do curl -sf -o /dev/null $ISS/healthz && break; sleep 0.05; done
export LOADGEN_PASSWORD="st-password-$RANDOM-long-enough-x"
lg() { taskset -c 1 $BIN/loadgen refresh --auth-url $ISS --username st_user --register --sessions 400 -d 5 --warmup 1 --server-pid $A "$@"; }
show() { python3 -c 'import json,sys; r=json.load(sys.stdin); print("%-14s %8.0f/s p50 %6.2f p99 %7.2f max %7.1f ms inflight %d lag99 %.2f" % (sys.argv[1], r["ok_per_s"], r["p50_us"]/1000, r["p99_us"]/1000, r["max_us"]/1000, r["in_flight_max"], r["send_lag_p99_us"]/1000))' "$1"; }
for step in ${STEPS:-sat 5000 5000 sat 5000}; do
    if [[ $step == sat ]]; then lg --rate 0 | show "saturation"; else lg --rate $step | show "rate $step"; fi
done
grep -v INFO $TMP/auth.log | head -5 || true
