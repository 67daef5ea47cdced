#!/usr/bin/env bash
# Context switches per login, by thread: an auth-center on CPUS (default 0) with bench.sh's
# settings, a 16-client login flood of SECONDS from CPU 1; each thread's voluntary and
# involuntary context switches (/proc/<pid>/task/<tid>/status) read around the flood.
# usage: ctxt.sh OUT.txt [CPUS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../../../.."
out=$1; cpus=${2:-0}; secs=${3:-10}; BIN=${BIN:-target/release}
TMP=$(mktemp -d /tmp/ctxt.XXXX); PIDS=()
trap 'for p in "${PIDS[@]}"; do kill $p 2>/dev/null||true; done; sleep 0.5; rm -rf $TMP' EXIT
RP=$($BIN/loadgen free-port)
taskset -c 1 redis-server --port $RP --bind 127.0.0.1 --save "" --appendonly no --dir $TMP >/dev/null 2>&1 & PIDS+=($!)
renice -n -20 -p ${PIDS[-1]} >/dev/null 2>&1 || true
AP=$($BIN/loadgen free-port)
env DATABASE_URL=sqlite:$TMP/a.db REDIS_URL=redis://127.0.0.1:$RP LISTEN_ADDR=127.0.0.1:$AP AUTH_ISSUER=http://127.0.0.1:$AP \
  AUTH_REDIS_PREFIX=ctxt$$ RUST_LOG=warn AUTH_LIMITS__LOGIN_IP_MAX=100000000 AUTH_LIMITS__REFRESH_IP_MAX=0 \
  AUTH_SESSIONS__MAX_PER_USER=100000 AUTH_LIMITS__REGISTER_IP_MAX=1000 \
  taskset -c $cpus $BIN/auth-center serve > $TMP/auth.log 2>&1 & A=$!; PIDS+=($A)
for _ in $(seq 200); do curl -sf -o /dev/null http://127.0.0.1:$AP/healthz && break; sleep 0.05; done
export LOADGEN_PASSWORD="ctxt-password-$RANDOM-long-enough-x"
snap() { for t in /proc/$A/task/*; do echo "$(basename $t) $(tr ' ' '_' < $t/comm) $(awk '/^voluntary_ctxt/{v=$2} /^nonvoluntary_ctxt/{n=$2} END{print v, n}' $t/status)"; done; }
taskset -c 1 $BIN/loadgen login --auth-url http://127.0.0.1:$AP --username ctxt_user --register -c 16 -d 1 --warmup 0 > /dev/null
snap > $TMP/before
taskset -c 1 $BIN/loadgen login --auth-url http://127.0.0.1:$AP --username ctxt_user -c 16 -d $secs --warmup 0 > $TMP/login.json
snap > $TMP/after
ok=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ok"])' $TMP/login.json)
{
  echo "# $ok logins in $secs s, 16 clients, the auth-center on CPU $cpus; context switches per login by thread name (voluntary: it slept; involuntary: it was preempted)"
  join <(sort $TMP/before) <(sort $TMP/after) | awk -v ok=$ok '{g=$2; sub(/-[0-9]+$/, "", g); v[g]+=$6-$3; n[g]+=$7-$4} END {for (g in v) if (v[g]+n[g] > 0) printf "%-20s voluntary %6.2f  involuntary %6.2f\n", g, v[g]/ok, n[g]/ok}' | sort
} > "$out"
