#!/usr/bin/env bash
# System calls per login by name: `strace -f -c` on the auth-center (both vCPUs) during a 5-s
# login flood of 16 clients; usage: strace.sh [OUT] (default stdout), BIN names the build.
set -euo pipefail
out=${1:-/dev/stdout}
cd /work/main
BIN=${BIN:-/tmp/base-bin}; TMP=$(mktemp -d /tmp/st.XXXX); PIDS=()
trap 'for p in "${PIDS[@]}"; do kill $p 2>/dev/null||true; done; sleep 0.5; rm -rf $TMP' EXIT
RP=$($BIN/loadgen free-port)
taskset -c 1 redis-server --port $RP --bind 127.0.0.1 --save "" --appendonly no --dir $TMP >/dev/null 2>&1 & PIDS+=($!)
AP=$($BIN/loadgen free-port)
env DATABASE_URL=sqlite:$TMP/a.db REDIS_URL=redis://127.0.0.1:$RP LISTEN_ADDR=127.0.0.1:$AP AUTH_ISSUER=http://127.0.0.1:$AP \
  AUTH_REDIS_PREFIX=st$$ RUST_LOG=warn AUTH_LIMITS__LOGIN_IP_MAX=100000000 AUTH_LIMITS__REFRESH_IP_MAX=0 \
  AUTH_SESSIONS__MAX_PER_USER=100000 AUTH_LIMITS__REGISTER_IP_MAX=1000 \
  taskset -c 0,1 $BIN/auth-center serve > $TMP/auth.log 2>&1 & A=$!; PIDS+=($A)
for _ in $(seq 200); do curl -sf -o /dev/null http://127.0.0.1:$AP/healthz && break; sleep 0.05; done
export LOADGEN_PASSWORD="st-password-$RANDOM-long-enough-x"
taskset -c 1 $BIN/loadgen login --auth-url http://127.0.0.1:$AP --username st_user --register -c 16 -d 1 --warmup 0 > /dev/null
strace -f -c -p $A -o $TMP/strace.txt & S=$!; sleep 1
taskset -c 1 $BIN/loadgen login --auth-url http://127.0.0.1:$AP --username st_user -c 16 -d 5 --warmup 0 > $TMP/l.json
kill -INT $S; wait $S || true
ok=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ok"])' $TMP/l.json)
{ echo "# $BIN: $ok logins in 5 s, 16 clients, the auth-center on CPUs 0,1 under strace -f -c (slowed by it); calls per login"
  awk -v ok=$ok 'NR>2 && $4 ~ /^[0-9]+$/ {printf "%-20s %7.2f per login\n", $NF, $4/ok}' $TMP/strace.txt | sort -k2 -nr | head -25; } > "$out"
