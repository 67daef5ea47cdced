#!/usr/bin/env bash
# Revocation under load on a Redis Cluster (issue 14's item 2, DESIGN.md §6), loopback only.
#
#   scripts/bench-cluster.sh
#
# scripts/bench.sh measures against one standalone Redis. Here the sessions live in a private
# Redis Cluster (3 masters, each with BENCH_REPLICAS replicas), as in a deployment that
# shards them: the auth-center writes each session to the master serving its slot, and a
# tracked verifier's invalidation push comes from that master, on the verifier's connection
# to it. The same set-up otherwise: the demo-services and the gateway pinned to the server
# core, the load generator, the auth-center and every Redis node (at nice -20 when allowed,
# for the reason bench.sh gives) on the client core.
#   1. throughput, 32 keep-alive connections, BENCH_ROUNDS interleaved rounds: /baseline/me
#      (no auth), /me tracked and /me every-request (an EXISTS per request, routed by slot);
#   2. revocation: each trial DELs a fresh session's key on the master serving its slot while
#      32 connections hammer the service, and times the first 401; a 200 to a request sent
#      after the DEL reply counts as stale. Tracked (reader thread SCHED_FIFO, the default),
#      tracked with the reader at nice 0 (the control), every-request, the gateway (tracked).
# Prints `loadgen table` of the results. Every process it starts is stopped on exit.
#
# Environment (all optional): BENCH_TRIALS (default 200), BENCH_BACKGROUND (32),
# BENCH_DURATION (5), BENCH_WARMUP (1), BENCH_ROUNDS (2; 0: no throughput runs),
# BENCH_CONNECTIONS (32), BENCH_REPLICAS (replicas per master, default 1), BENCH_REDIS_NICE
# (-20), BENCH_SERVER_CPU (0), BENCH_CLIENT_CPU (1), BENCH_NO_BUILD=1, BENCH_BIN=DIR,
# BENCH_KEEP=1 (keep the logs and JSON results), as in scripts/bench.sh; BENCH_REVOKE_USERS
# (default 9): the users the revocation trials log in as, one per trial in turn. Each user's
# sessions share one slot, so several users spread the trials over the masters; the log says
# how many masters their sessions are on.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
TRIALS=${BENCH_TRIALS:-200}
BACKGROUND=${BENCH_BACKGROUND:-32}
DURATION=${BENCH_DURATION:-5}
WARMUP=${BENCH_WARMUP:-1}
ROUNDS=${BENCH_ROUNDS:-2}
CONNS=${BENCH_CONNECTIONS:-32}
REPLICAS=${BENCH_REPLICAS:-1}
REVOKE_USERS=${BENCH_REVOKE_USERS:-9}
REDIS_NICE=${BENCH_REDIS_NICE:--20}
SERVER_CPU=${BENCH_SERVER_CPU:-0}
CLIENT_CPU=${BENCH_CLIENT_CPU:-1}
BIN=${BENCH_BIN:-$ROOT/target/release}
MASTERS=3

BENCH_TAG=bench-cluster
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

[[ $REPLICAS =~ ^[0-9]$ ]] || die "BENCH_REPLICAS must be 0 to 9"
[[ $REVOKE_USERS =~ ^[1-9][0-9]?$ ]] || die "BENCH_REVOKE_USERS must be 1 to 99"
require_tools redis-server redis-cli taskset curl timeout
if (( $(nproc) < 2 )); then
    log "only one CPU: server and load generator share it"
    SERVER_CPU=0 CLIENT_CPU=0
fi
bench_binaries
"$BIN/loadgen" revocation --help | grep -q -- --redis-cluster-urls \
    || die "$BIN/loadgen has no --redis-cluster-urls (older than this script)"

bench_tmp auth-bench-cluster

# A free port whose cluster bus port (port + 10000) is valid and free too, and neither of
# them picked before (the nodes started so far may not have bound theirs yet; the caller adds
# each pick to TAKEN, since this runs in a subshell).
TAKEN=" "
cluster_port() {
    local port
    for _ in $(seq 100); do
        port=$(free_port)
        if (( port <= 55535 )) && [[ $TAKEN != *" $port "* && $TAKEN != *" $((port + 10000)) "* ]] \
            && ! (exec 3<>"/dev/tcp/127.0.0.1/$((port + 10000))") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    die "no free port at or below 55535"
}
# --- the cluster -------------------------------------------------------------------------------
NODES=()
NICE_GOT=$REDIS_NICE
for i in $(seq $((MASTERS * (1 + REPLICAS)))); do
    port=$(cluster_port)
    TAKEN+="$port $((port + 10000)) "
    mkdir -p "$TMP/node-$i"
    taskset -c "$CLIENT_CPU" redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes \
        --cluster-config-file "$TMP/node-$i/nodes.conf" --cluster-node-timeout 5000 \
        --save "" --appendonly no --daemonize no --dir "$TMP/node-$i" \
        --logfile "$TMP/node-$i/redis.log" >/dev/null 2>&1 &
    PIDS+=($!)
    renice -n "$REDIS_NICE" -p "$!" >/dev/null 2>&1 || NICE_GOT=0
    NODES+=("$port")
done
(( NICE_GOT == REDIS_NICE )) \
    || log "could not renice the nodes to $REDIS_NICE: trials may count requests answered before Redis sent the push"
for port in "${NODES[@]}"; do
    for _ in $(seq 100); do
        [[ "$(redis-cli -p "$port" ping 2>/dev/null)" == PONG ]] && break
        sleep 0.05
    done
    [[ "$(redis-cli -p "$port" ping 2>/dev/null)" == PONG ]] || die "redis-server on $port did not start (see $TMP)"
done
timeout 60 redis-cli --cluster create "${NODES[@]/#/127.0.0.1:}" --cluster-replicas "$REPLICAS" \
    --cluster-yes >"$TMP/cluster-create.log" 2>&1 || die "redis-cli --cluster create failed (see $TMP)"
# Whole: every node sees every slot served, and every replica's link to its master is up.
for _ in $(seq 600); do
    whole=1
    for port in "${NODES[@]}"; do
        info=$(redis-cli -p "$port" cluster info 2>/dev/null | tr -d '\r' || true)
        grep -qx 'cluster_state:ok' <<<"$info" && grep -qx 'cluster_slots_ok:16384' <<<"$info" \
            && grep -qx "cluster_known_nodes:${#NODES[@]}" <<<"$info" || whole=0
        repl=$(redis-cli -p "$port" info replication 2>/dev/null | tr -d '\r' || true)
        if grep -qx 'role:slave' <<<"$repl" && ! grep -qx 'master_link_status:up' <<<"$repl"; then
            whole=0
        fi
    done
    (( whole )) && break
    sleep 0.1
done
(( whole )) || die "the cluster did not come up whole within 60 s (see $TMP)"
SEEDS=$(printf 'redis://127.0.0.1:%s,' "${NODES[@]:0:$MASTERS}")
SEEDS=${SEEDS%,}
log "redis cluster: ${#NODES[@]} nodes ($MASTERS masters, $REPLICAS replica(s) each; $(redis-server --version | awk '{print $3}'), nice $NICE_GOT, cpu $CLIENT_CPU)"

PREFIX="benchcl$(date +%s)$$"
AUTH_PORT=$(free_port)
ISSUER=http://127.0.0.1:$AUTH_PORT

# --- the auth-center, the demo-services and the gateway -----------------------------------------
env DATABASE_URL="sqlite:$TMP/auth.db" REDIS_CLUSTER_URLS="$SEEDS" LISTEN_ADDR="127.0.0.1:$AUTH_PORT" \
    AUTH_ISSUER="$ISSUER" AUTH_REDIS_PREFIX="$PREFIX" AUTH_LIMITS__LOGIN_IP_MAX=100000 RUST_LOG=warn \
    taskset -c "$CLIENT_CPU" "$BIN/auth-center" serve >"$TMP/auth-center.log" 2>&1 &
PIDS+=($!)
wait_http "$ISSUER/healthz" auth-center

verifier_env=(AUTH_JWKS_URL="$ISSUER/.well-known/jwks.json" AUTH_ISSUER="$ISSUER" AUTH_AUDIENCE=api
    REDIS_CLUSTER_URLS="$SEEDS" AUTH_REDIS_PREFIX="$PREFIX" RUST_LOG=warn)
declare -A PORT PID
start() { # name binary extra-env...
    local name=$1 binary=$2
    shift 2
    PORT[$name]=$(free_port)
    env "${verifier_env[@]}" LISTEN_ADDR="127.0.0.1:${PORT[$name]}" "$@" \
        taskset -c "$SERVER_CPU" "$BIN/$binary" >"$TMP/$name.log" 2>&1 &
    PIDS+=($!)
    PID[$name]=$!
    wait_http "http://127.0.0.1:${PORT[$name]}/healthz" "$name"
}
start tracked demo-service AUTH_REVOCATION=tracked
start every-request demo-service AUTH_REVOCATION=every-request
start gateway gateway AUTH_REVOCATION=tracked
log "auth-center on $AUTH_PORT; tracked ${PORT[tracked]}, every-request ${PORT[every-request]}, gateway ${PORT[gateway]} (cpu $SERVER_CPU)"

USERNAME="bench_user_$$"
export LOADGEN_PASSWORD="bench-password-$RANDOM-$RANDOM-long-enough"
token_env=$("$BIN/loadgen" token --auth-url "$ISSUER" --username "$USERNAME" --register --prefix "$PREFIX") \
    || die "could not register and log in $USERNAME (see $TMP/auth-center.log)"
eval "$token_env"
[[ -n "${ACCESS_TOKEN:-}" ]] || die "could not log in"

# --- 1. throughput -------------------------------------------------------------------------------
run_http() { # label name path [token]
    next_result
    log "http: $1 (${DURATION}s + ${WARMUP}s warm-up, $CONNS connections)"
    LOADGEN_TOKEN="${4:-}" timeout $((DURATION * 3 + 60)) taskset -c "$CLIENT_CPU" \
        "$BIN/loadgen" http --url "http://127.0.0.1:${PORT[$2]}$3" -c "$CONNS" -d "$DURATION" \
        --warmup "$WARMUP" --server-pid "${PID[$2]}" --label "$1" >"$RESULT-http.json"
}
for round in $(seq "$ROUNDS"); do
    log "round $round of $ROUNDS"
    run_http "baseline /baseline/me (no auth)" tracked /baseline/me
    run_http "/me tracked (cluster)" tracked /me "$ACCESS_TOKEN"
    run_http "/me every-request (cluster)" every-request /me "$ACCESS_TOKEN"
done

# --- 2. revocation -------------------------------------------------------------------------------
# Several users, one per trial in turn: each user's sessions share one slot, so one user
# would exercise one master and one of each verifier's connections.
users=() owners=" "
for i in $(seq "$REVOKE_USERS"); do
    user="bench_revoke_$$_$i"
    key=$("$BIN/loadgen" token --auth-url "$ISSUER" --username "$user" --register --prefix "$PREFIX" \
        | sed -n "s/^SESSION_KEY='\(.*\)'$/\1/p") || die "could not register $user"
    [[ -n $key ]] || die "no session key for $user"
    for port in "${NODES[@]}"; do # only the master serving the key's slot answers 1
        if [[ "$(redis-cli -p "$port" exists "$key" 2>/dev/null)" == 1 && $owners != *" $port "* ]]; then
            owners+="$port "
        fi
    done
    users+=("$user")
done
REVOKE_USER=$(IFS=,; echo "${users[*]}")
read -ra owner_ports <<<"$owners"
log "revocation trials: ${#users[@]} users in turn, their sessions on ${#owner_ports[@]} of $MASTERS masters (${owner_ports[*]})"
run_revocation() { # label url
    next_result
    log "revocation: $1 ($TRIALS trials, $BACKGROUND background connections)"
    timeout $((TRIALS + 120)) taskset -c "$CLIENT_CPU" \
        "$BIN/loadgen" revocation --url "$2" --redis-cluster-urls "$SEEDS" --prefix "$PREFIX" \
        --auth-url "$ISSUER" --username "$REVOKE_USER" --background-connections "$BACKGROUND" \
        -k "$TRIALS" --label "$1" >"$RESULT-revocation.json"
}
run_revocation "tracked (cluster)" "http://127.0.0.1:${PORT[tracked]}/me"
# The control: the reader thread at the request threads' priority, idle but for its trials.
start nice0 demo-service AUTH_REVOCATION=tracked AUTH_TRACKING_READER_REALTIME=false \
    AUTH_TRACKING_READER_NICE=0
run_revocation "tracked, reader at nice 0 (cluster)" "http://127.0.0.1:${PORT[nice0]}/me"
kill "${PID[nice0]}" 2>/dev/null || true
wait "${PID[nice0]}" 2>/dev/null || true
forget_pid "${PID[nice0]}"
run_revocation "every-request (cluster)" "http://127.0.0.1:${PORT[every-request]}/me"
run_revocation "gateway, tracked (cluster)" "http://127.0.0.1:${PORT[gateway]}/authz/ext-authz/me"

"$BIN/loadgen" table "$TMP"/*.json
