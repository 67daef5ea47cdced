#!/usr/bin/env bash
# Sourced by paired.sh (and the eighteenth session's rss.sh) from the repository root: starts a
# private Redis (CPU 1, nice -20), an auth-center (CPU 1) with one registered user, and a tracked
# demo-service on CPU 0 (DEMO_GROUP=own: in a session of its own), each on a free port; leaves
# BIN, TMP, PIDS (killed on exit), P (the demo-service's port), S (its pid) and ACCESS_TOKEN set.
BIN=${BIN:-target/release}
GROUP_CMD=()
case ${DEMO_GROUP:-shared} in
    shared) ;;
    own) GROUP_CMD=(setsid) ;;
    *) echo "DEMO_GROUP must be shared or own" >&2; exit 2 ;;
esac
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
