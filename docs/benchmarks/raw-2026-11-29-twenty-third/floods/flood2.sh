#!/usr/bin/env bash
# A 2-core login flood with whole-machine accounting: the auth-center on CPUS (default 0,1), Redis and
# loadgen on CPU 1, as bench.sh's 2-core runs. Prints per login: each auth-center thread group's CPU,
# redis's, loadgen's, and /proc/stat's split; raw capacity before and after.
# usage: flood2.sh OUTDIR [ROUNDS] [SECONDS]   env: BIN, EXTRA_ENV, CPUS, PERF=1
set -euo pipefail
cd /work/main
out=$1; rounds=${2:-2}; secs=${3:-10}; BIN=${BIN:-target/release}; cpus=${CPUS:-0,1}
mkdir -p "$out"
TMP=$(mktemp -d /tmp/fl.XXXX); PIDS=()
trap 'for p in "${PIDS[@]}"; do kill $p 2>/dev/null||true; done; sleep 0.5; rm -rf $TMP' EXIT
RP=$($BIN/loadgen free-port)
taskset -c 1 redis-server --port $RP --bind 127.0.0.1 --save "" --appendonly no --dir $TMP >/dev/null 2>&1 & R=$!; PIDS+=($R); [[ -n ${REDIS_NICE:-} ]] && renice -n $REDIS_NICE -p $R >/dev/null
AP=$($BIN/loadgen free-port)
env DATABASE_URL=sqlite:$TMP/a.db REDIS_URL=redis://127.0.0.1:$RP LISTEN_ADDR=127.0.0.1:$AP AUTH_ISSUER=http://127.0.0.1:$AP \
  AUTH_REDIS_PREFIX=fl$$ RUST_LOG=warn AUTH_LIMITS__LOGIN_IP_MAX=100000000 AUTH_LIMITS__REFRESH_IP_MAX=0 \
  AUTH_SESSIONS__MAX_PER_USER=100000 AUTH_LIMITS__REGISTER_IP_MAX=1000 \
  ${EXTRA_ENV:-} taskset -c $cpus $BIN/auth-center serve > $TMP/auth.log 2>&1 & A=$!; PIDS+=($A)
for _ in $(seq 200); do curl -sf -o /dev/null http://127.0.0.1:$AP/healthz && break; sleep 0.05; done
export LOADGEN_PASSWORD="fl-password-$RANDOM-long-enough-x"
tk() { for t in /proc/$A/task/*; do echo "$(tr ' ' '_' < $t/comm | sed 's/-[0-9]*$//') $(awk '{print $14+$15}' $t/stat)"; done | awk '{s[$1]+=$2} END{for(k in s) print "auth:"k, s[k]}'; echo "redis $(awk '{print $14+$15}' /proc/$R/stat)"; redis-cli -p $RP info stats | tr -d '\r' | awk -F: '/^total_(reads|writes)_processed|^total_commands_processed/{print "rds:"$1, $2/10}'; awk '/^cpu /{print "stat:user",$2; print "stat:nice",$3; print "stat:sys",$4; print "stat:idle",$5; print "stat:softirq",$8; print "stat:irq",$7}' /proc/stat; }
raw() { taskset -c $cpus $BIN/auth-center passwords capacity --seconds 5 --json >> "$out/capacity.jsonl"; }
taskset -c 1 $BIN/loadgen login --auth-url http://127.0.0.1:$AP --username fl_user --register -c 16 -d 1 --warmup 0 > /dev/null
for r in $(seq $rounds); do
  raw
  tk > $TMP/b; t0=$(awk '{print $14+$15}' /proc/self/stat)
  if [[ ${PERF:-0} == 1 ]]; then perf record -a -g -F 999 -o $out/perf-$r.data -- sleep $secs >/dev/null 2>&1 & PP=$!; fi
  taskset -c 1 $BIN/loadgen login --auth-url http://127.0.0.1:$AP --username fl_user -c 16 -d $secs --warmup ${WARMUP:-0} --server-pid $A --label "fl $r" > "$out/login-$r.json" &
  LG=$!; sleep 0.2; lgstart=$(awk '{print $14+$15}' /proc/$LG/stat 2>/dev/null || echo 0)
  lgcpu=0; while kill -0 $LG 2>/dev/null; do lgcpu=$(awk '{print $14+$15}' /proc/$LG/stat 2>/dev/null || echo $lgcpu); sleep 0.2; done
  wait $LG || true
  [[ ${PERF:-0} == 1 ]] && wait $PP || true
  tk > $TMP/a
  ok=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ok"])' "$out/login-$r.json")
  { echo "# round $r: $ok logins in $secs s; ms of CPU per login (ticks 10 ms); loadgen ~$(( (lgcpu) ))"
    join <(sort $TMP/b) <(sort $TMP/a) | awk -v ok=$ok -v lg=$lgcpu '{d=$3-$2; printf "%-28s %8.3f ms/login\n", $1, d*10/ok} END{printf "%-28s %8.3f ms/login\n", "loadgen", lg*10/ok}'
  } | tee -a "$out/split.txt"
done
raw
