#!/usr/bin/env bash
# The ad-hoc run behind syscalls-and-cpu-split.txt (see its header); run from the repository root.
set -euo pipefail
BIN=${BIN:-target/release}; D=${D:-5}
TMP=$(mktemp -d /tmp/sp.XXXX); PIDS=()
trap 'for p in "${PIDS[@]}"; do kill $p 2>/dev/null||true; done; sleep 0.5' EXIT
RP=$($BIN/loadgen free-port); taskset -c 1 redis-server --port $RP --bind 127.0.0.1 --save "" --appendonly no --dir $TMP >/dev/null 2>&1 & PIDS+=($!)
sleep 0.3
PREFIX=sp$$; AP=$($BIN/loadgen free-port); ISS=http://127.0.0.1:$AP
env DATABASE_URL=sqlite:$TMP/a.db REDIS_URL=redis://127.0.0.1:$RP LISTEN_ADDR=127.0.0.1:$AP AUTH_ISSUER=$ISS AUTH_REDIS_PREFIX=$PREFIX RUST_LOG=warn AUTH_LIMITS__LOGIN_IP_MAX=100000 taskset -c 1 $BIN/auth-center serve > $TMP/auth.log 2>&1 & PIDS+=($!)
for _ in $(seq 200); do curl -sf -o /dev/null $ISS/healthz && break; sleep 0.05; done
export LOADGEN_PASSWORD="sp-password-$RANDOM-long-enough-x"
eval "$($BIN/loadgen token --auth-url $ISS --username sp_$$ --register --prefix $PREFIX)"
P=$($BIN/loadgen free-port)
env AUTH_JWKS_URL=$ISS/.well-known/jwks.json AUTH_ISSUER=$ISS AUTH_AUDIENCE=api REDIS_URL=redis://127.0.0.1:$RP LISTEN_ADDR=127.0.0.1:$P AUTH_REDIS_PREFIX=$PREFIX AUTH_REVOCATION=tracked RUST_LOG=warn \
    taskset -c 0 ${DEMO:-$BIN/demo-service} > $TMP/demo.log 2>&1 & S=$!; PIDS+=($S)
for _ in $(seq 600); do curl -sf -o /dev/null http://127.0.0.1:$P/healthz && break; sleep 0.1; done
for round in $(seq ${ROUNDS:-3}); do for path in /baseline/me /baseline/me+tok /me; do
  tok=$ACCESS_TOKEN; [[ $path == /baseline/me ]] && tok=
  p=${path%+tok}
  read u0 s0 < <(awk '{print $14, $15}' /proc/$S/stat)
  perf stat -e raw_syscalls:sys_enter,context-switches -x, -o $TMP/perf.txt -p $S & PF=$!
  sleep 0.2
  LOADGEN_TOKEN="$tok" taskset -c 1 $BIN/loadgen http --url http://127.0.0.1:$P$p -c 32 -n ${N:-200000} --warmup 0 > /dev/null
  read u1 s1 < <(awk '{print $14, $15}' /proc/$S/stat)
  n=${N:-200000}
  kill -INT $PF; wait $PF 2>/dev/null || true
  sc=$(awk -F, '/sys_enter/ {print $1}' $TMP/perf.txt); cs=$(awk -F, '/context-switches/ {print $1}' $TMP/perf.txt)
  echo "   syscalls/req $(python3 -c "print(round($sc/$n,3))") ctxsw/req $(python3 -c "print(round($cs/$n,4))")"
  python3 -c "import sys; u,s,n=map(int,sys.argv[1:]); print('%s %-16s user %.2f us  sys %.2f us  total %.2f  user share %.3f'%('$round','$path',u*1e4/n,s*1e4/n,(u+s)*1e4/n,u/(u+s)))" $((u1-u0)) $((s1-s0)) $n
done; done
