#!/bin/bash
# A/B: login flood on 2 cores with TOKIO_WORKER_THREADS unset (2) vs 1, raw beside each.
set -u
B=/work/main/target/release
read RP AP < /tmp/prof-ports
export LOADGEN_PASSWORD="bench-password-12345-long-enough"
start() { # workers
  pkill -f "auth-center serve"; sleep 0.5
  local w=()
  [[ $1 == d ]] || w=(TOKIO_WORKER_THREADS=$1)
  env "${w[@]}" DATABASE_URL="sqlite:/tmp/prof/auth.db" REDIS_URL="redis://127.0.0.1:$RP" LISTEN_ADDR="127.0.0.1:$AP" AUTH_ISSUER="http://127.0.0.1:$AP" AUTH_REDIS_PREFIX=prof RUST_LOG=warn AUTH_LIMITS__LOGIN_IP_MAX=100000000 AUTH_LIMITS__REFRESH_IP_MAX=0 AUTH_SESSIONS__MAX_PER_USER=100000 AUTH_LIMITS__REGISTER_IP_MAX=1000 taskset -c 0,1 $B/auth-center serve > /tmp/prof/auth-$1.log 2>&1 &
  PID=$!
  for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:$AP/healthz && break; sleep 0.05; done
}
raw() { taskset -c 0,1 env DATABASE_URL="sqlite:/tmp/prof/auth.db" $B/auth-center passwords capacity --seconds 5 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["hashes_per_second"])'; }
flood() { taskset -c 1 $B/loadgen login --auth-url http://127.0.0.1:$AP --username profuser --register -c 16 -d 5 --warmup 1 --server-pid $PID --label x | python3 -c 'import json,sys; print(json.load(sys.stdin)["ok_per_s"])'; }
for round in $(seq ${ROUNDS:-8}); do
  arms=(d 1); (( round % 2 )) || arms=(1 d)
  r1=$(raw)
  start ${arms[0]}; f1=$(flood)
  r2=$(raw)
  start ${arms[1]}; f2=$(flood)
  r3=$(raw)
  echo "$round ${arms[0]} $f1 ${arms[1]} $f2 raw $r1 $r2 $r3"
done
pkill -f "auth-center serve"
