#!/usr/bin/env bash
# Side-by-side benchmark of DESIGN.md §6, on this machine, loopback only.
#
#   scripts/bench.sh
#
# Builds release binaries, starts a private redis-server, an auth-center (SQLite + that
# Redis), three demo-services (revocation tracked / every-request / off), the forward-auth
# gateway (tracked) and, when Debian's nginx is installed, a private nginx running
# deploy/nginx/gateway.conf in front of the tracked demo-service, all pinned to core 0; then
# drives them from `loadgen` pinned to core 1 (with Redis and the auth-center):
#   1. throughput and latency, 32 keep-alive connections: /baseline/me (no auth) vs /me
#      in each revocation mode, as ratios to the baseline (tracked also with the layer as a
#      route_layer, /route-layer/me, and by the extractor, /verified/me; the demo-service's
#      layout is DEMO_LAYOUT's, the layer around the whole router by default; plus /baseline/me sent with the
#      same Authorization header, which the handler ignores: the cost of the bigger
#      request alone); the gateway's forward-auth answer (Envoy's ext_authz form, the same
#      decision as nginx's and Traefik's); and /baseline/me through nginx without and with
#      auth_request to the gateway (server CPU: nginx + gateway + demo-service);
#   2. revocation latency: DEL of the session key in Redis -> first 401, tracked and
#      every-request at the demo-service, at the gateway, and through nginx;
#   3. MEMORY USAGE of one session key (target <= 512 bytes).
# The table's "srv µs/req" is the server's CPU time per request: the cost of each path
# whatever the bottleneck ("of it usr": its user-space part); "checks/req" is how many
# requests reached Redis (EXISTS or PTTL).
# Every process it starts is stopped on exit; nothing else is touched.
#
# Environment (all optional):
#   BENCH_DURATION     measured seconds per throughput run (default 5)
#   BENCH_ROUNDS       rounds of the four throughput runs, interleaved (default 2); the
#                      table shows each configuration's best round and lists all of them
#   BENCH_WARMUP       warm-up seconds before each run (default 1)
#   BENCH_CONNECTIONS  keep-alive connections (default 32)
#   BENCH_TRIALS       revocation trials per mode (default 200)
#   BENCH_BACKGROUND   connections hammering the service during each revocation trial, half
#                      with the trial's token (default 32; 0: the poller alone)
#   BENCH_REDIS_NICE   Redis's nice value (default -20 when allowed; see "Redis" below)
#   BENCH_PROBE_RATE   refreshes/s of the refresh probe beside the login flood (default 200)
#   BENCH_SERVER_CPU   core for the demo-services (default 0)
#   BENCH_CLIENT_CPU   core for loadgen, Redis and the auth-center (default 1)
#   BENCH_NO_BUILD=1   use the existing target/release binaries
#   BENCH_BIN=DIR      use the binaries in DIR instead (implies BENCH_NO_BUILD=1): a build
#                      kept from before a change, to run it under the same conditions
#   BENCH_KEEP=1       keep the temporary directory (logs, JSON results, and cpu-ticks.txt:
#                      the machine's CPU time per auth-center round; its steal column stays 0
#                      where the guest has no steal-time accounting, as on this VM)
#   BENCH_PLOTS=DIR    also draw the report's SVG figures of this run into DIR
#                      (scripts/plot-bench.py; matplotlib in target/bench-venv)
#   BENCH_CALLGRIND=N  also count user-space instructions per request of /baseline/me, /me,
#                      /route-layer/me, /handler/me and /verified/me (tracked; the
#                      demo-service's layout from DEMO_LAYOUT) under callgrind, N requests per
#                      round (e.g. 20000); the report turns each path's extra instructions
#                      into server CPU with the baseline's user-space share of its CPU time
#   BENCH_AUTH=0       skip the auth-center runs (login capacity, refresh tail, 1 and 2 cores)
#   BENCH_AUTH_ONLY=1  only the auth-center runs (no throughput rounds, no revocation trials)
#   BENCH_LOGIN_ROUNDS rounds of raw Argon2 beside a login flood, per core count (default 4)
#   BENCH_TAIL_FRACTIONS  the fractions of refresh saturation the open-loop tail runs at, in
#                      order (default "0.5 0.75 0.9"); repeat one to measure it again later,
#                      e.g. "0.5 0.75 0.9 0.5"
#   BENCH_PROBE_ROUNDS rounds of the probes alone and beside a login flood (default 4)
#   BENCH_WATCH=0      no `loadgen --watch-cpus` in the refresh tail points and probes, nor
#                      `--watch-threads` in the tail points (on by
#                      default: a real-time thread per vCPU notes the machine's stops beside
#                      the answers, at 3-4 % of each vCPU here)
#   BENCH_PROBE_CONTROLS=1  also run the probes beside two controls that make no requests:
#                      raw Argon2 hashing of the configured slots (`passwords capacity`) and
#                      as many busy loops that touch no memory, both SCHED_IDLE like the
#                      auth-center's hashing threads; tells the hashing's presence on the
#                      cores from the logins' request work. And first `loadgen hiccups` on
#                      each core, with the other core idle and busy, and its late wake-ups
#                      from 1 ms sleeps: the machine's own stalls
#   BENCH_HASHES=N     hashing slots of the auth-center under load (passwords.max_concurrent_hashes;
#                      default: its own default, one per core it may run on)
#   BENCH_AUTH_NICE=N  the nice value of the auth-center under load (default 0, as the load
#                      generator's; Redis has its own, BENCH_REDIS_NICE)
#   BENCH_AUTH_WORKERS=N  async worker threads of the auth-center under load
#                      (TOKIO_WORKER_THREADS; default: tokio's, one per core it may run on)
#   BENCH_CORE_COUNTS  which auth-center core counts to run, of "1 2" (the default); on a
#                      one-CPU machine the 2-core runs are skipped, and "2" alone is refused
#   BENCH_AUTH_GROUP   where the auth-center is scheduled for the refresh saturation and tail
#                      points. By default (0) it runs in a session of its own (setsid): where
#                      the kernel groups tasks by session (kernel.sched_autogroup_enabled=1)
#                      it then has a scheduling group of its own, as a service under systemd
#                      or in a container has, and meets the machine's other services group
#                      against group (without autogroups it stays in the bench's session,
#                      as with `shared`). N: that group's nice value (root for N < 0). `shared`:
#                      in the bench's session, whose one group it shares with the load
#                      generator and Redis at nice -20 (the runs before 2026-11-28's sixteenth
#                      session), so on its core it gets a few percent of that group's weight
#                      against other sessions' processes. The logins and probes always run
#                      with it in the bench's session (see auth_bench)
#   BENCH_WIRE=1       also capture the loopback (tcpdump, installed with apt-get if missing
#                      and root) during each refresh tail point and split every refresh into
#                      the auth-center's time before its Redis call, Redis's, and the
#                      auth-center's after it, as the packets' times say (`loadgen wire`:
#                      NNN-wire.json; the capture itself is deleted). The capture costs CPU
#                      on both cores, so such points are not comparable with others
#   BENCH_PROFILE=DIR  only profile the tracked demo-service with perf and call stacks
#                      (/baseline/me, then /me, BENCH_ROUNDS times) and write the folded
#                      stacks, flame graphs and the table of where the time went to DIR
#                      (scripts/flame.py; installs inferno into target/tools if missing)
#   BENCH_PROFILE_HZ   samples per second of BENCH_PROFILE (default 999)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${BENCH_DURATION:-5}
ROUNDS=${BENCH_ROUNDS:-2}
WARMUP=${BENCH_WARMUP:-1}
CONNS=${BENCH_CONNECTIONS:-32}
TRIALS=${BENCH_TRIALS:-200}
BACKGROUND=${BENCH_BACKGROUND:-32}
PROBE_RATE=${BENCH_PROBE_RATE:-200}
LOGIN_ROUNDS=${BENCH_LOGIN_ROUNDS:-4}
PROBE_ROUNDS=${BENCH_PROBE_ROUNDS:-4}
PROBE_CONTROLS=${BENCH_PROBE_CONTROLS:-0}
AUTH_ONLY=${BENCH_AUTH_ONLY:-0}
REDIS_NICE=${BENCH_REDIS_NICE:--20}
SERVER_CPU=${BENCH_SERVER_CPU:-0}
CLIENT_CPU=${BENCH_CLIENT_CPU:-1}
BIN=${BENCH_BIN:-$ROOT/target/release}

BENCH_TAG=bench
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

# Knobs that go into the auth-center's command line or environment: checked before anything runs.
[[ ${BENCH_AUTH_NICE:-0} =~ ^-?[0-9]+$ ]] || die "BENCH_AUTH_NICE must be an integer"
[[ -z ${BENCH_AUTH_WORKERS:-} || ${BENCH_AUTH_WORKERS} =~ ^[1-9][0-9]*$ ]] \
    || die "BENCH_AUTH_WORKERS must be a positive integer"
for count in ${BENCH_CORE_COUNTS:-1 2}; do
    [[ $count == 1 || $count == 2 ]] || die "BENCH_CORE_COUNTS: $count is neither 1 nor 2"
done
if [[ -n "${BENCH_HASHES:-}" && ! "$BENCH_HASHES" =~ ^[1-9][0-9]*$ ]]; then
    die "BENCH_HASHES must be a number of hashing slots, 1 or more (unset: the auth-center's default)"
fi
AUTH_GROUP=${BENCH_AUTH_GROUP:-0}
AUTOGROUPS=$(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null || echo 0)
# Whether this run starts the auth-center (not with BENCH_AUTH=0, nor for a profile).
AUTH_RUNS=0
[[ ${BENCH_AUTH:-1} != 1 || -n ${BENCH_PROFILE:-} ]] || AUTH_RUNS=1
[[ $AUTH_GROUP == shared || $AUTH_GROUP =~ ^-?[0-9]+$ ]] || die "BENCH_AUTH_GROUP must be an integer or shared"
if [[ $AUTH_GROUP != shared && $AUTH_GROUP != 0 && $AUTOGROUPS != 1 ]]; then
    die "BENCH_AUTH_GROUP=$AUTH_GROUP needs the kernel's autogroups (kernel.sched_autogroup_enabled=1)"
fi
if [[ $AUTH_GROUP != shared ]] && { (( AUTH_GROUP < -20 || AUTH_GROUP > 19 )) || { (( AUTH_GROUP < 0 )) && [[ $(id -u) != 0 ]]; }; }; then
    die "BENCH_AUTH_GROUP=$AUTH_GROUP: a nice value from -20 to 19, below 0 only as root"
fi
# The prefix that starts the auth-center in its own session and sets that session's group
# nice; exec all the way down, so $! is the auth-center's pid.
AUTH_GROUP_CMD=()
if [[ $AUTH_GROUP == 0 && $AUTOGROUPS != 1 ]]; then
    (( ! AUTH_RUNS )) || log "the kernel does not group tasks by session (no autogroups): the auth-center stays in the bench's session"
elif [[ $AUTH_GROUP != shared ]]; then
    AUTH_GROUP_CMD=(setsid sh -c '[ "$1" = 0 ] || echo "$1" >/proc/self/autogroup || exit 125; shift; exec "$@"' sh "$AUTH_GROUP")
fi
require_tools redis-server redis-cli taskset curl timeout setsid
if [[ ${BENCH_PROBE_CONTROLS:-0} == 1 ]]; then
    command -v chrt >/dev/null || die "chrt not found (BENCH_PROBE_CONTROLS=1 runs its controls SCHED_IDLE)"
fi
ncpu=$(nproc)
if (( ncpu < 2 )); then
    log "only $ncpu CPU: server and load generator share it (ratios still comparable)"
    SERVER_CPU=0 CLIENT_CPU=0
    if (( AUTH_RUNS )); then
        one_core=0
        for count in ${BENCH_CORE_COUNTS:-1 2}; do
            [[ $count != 1 ]] || one_core=1
        done
        (( one_core )) || die "BENCH_CORE_COUNTS=${BENCH_CORE_COUNTS}: this machine has 1 CPU, so no 2-core runs"
    fi
fi

bench_binaries
# The refresh runs at fractions of saturation and the refresh probes watch every CPU: a
# real-time thread pinned to each notes when it wakes up 2 ms or more late (the machine
# stopped), and each result says how many of its slow 100 ms slices came with such a stall
# and the p99 of the answers in the slices without one; every 10 ms each also times a short
# fixed unit of work (the vCPU's pace). The 1 ms wake-ups cost each vCPU 3-4 % on
# the KVM guests of docs/benchmarks.md; BENCH_WATCH=0 leaves them out. A loadgen kept from
# before (BENCH_BIN) may not have the option.
WATCH=()
if [[ ${BENCH_WATCH:-1} != 0 ]] && "$BIN/loadgen" refresh --help 2>/dev/null | grep -q -- --watch-cpus; then
    # The ids this process may run on (nproc counts them; a cpuset need not start at 0).
    WATCH=(--watch-cpus "$(python3 -c 'import os; print(",".join(map(str, sorted(os.sched_getaffinity(0)))))')")
fi
# The refresh tail points also read the auth-center's threads every 10 ms (`--watch-threads`:
# each thread's run and run-queue wait, each CPU's busy time), slice by slice.
THREADS=()
if [[ ${BENCH_WATCH:-1} != 0 ]] && "$BIN/loadgen" refresh --help 2>/dev/null | grep -q -- --watch-threads; then
    THREADS=(--watch-threads)
fi
# The same runs read the auth-center's /metrics at their window's edges: the share of the
# refreshes the server itself took over 5 ms, and of its Redis rotation calls.
SERVER_METRICS=0
if "$BIN/loadgen" refresh --help 2>/dev/null | grep -q -- --server-metrics; then
    SERVER_METRICS=1
fi

# BENCH_WIRE=1: the refresh tail points are captured and split by `loadgen wire`.
WIRE=${BENCH_WIRE:-0}
if [[ $WIRE == 1 ]]; then
    "$BIN/loadgen" wire --help >/dev/null 2>&1 || die "BENCH_WIRE=1: this loadgen has no wire command"
    if ! command -v tcpdump >/dev/null; then
        [[ $(id -u) == 0 ]] || die "BENCH_WIRE=1 needs tcpdump (apt-get install tcpdump)"
        log "installing tcpdump"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q tcpdump >&2
    fi
fi

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
bench_tmp auth-bench

# --- Redis --------------------------------------------------------------------------
REDIS_PORT=$(free_port)
REDIS_URL=redis://127.0.0.1:$REDIS_PORT
# The latency monitor notes every command (and every other event) that took 1 ms or more;
# the refresh tail points read and reset it (redis_latency).
taskset -c "$CLIENT_CPU" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 \
    --latency-monitor-threshold 1 --save "" --appendonly no --daemonize no --dir "$TMP" \
    --logfile "$TMP/redis.log" >/dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
    [[ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]] && break
    sleep 0.05
done
[[ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]] || die "redis-server did not start"
# Redis shares the client core with loadgen. Redis writes a DEL's reply and the invalidation
# push for the verifier one after the other in one event-loop iteration; at equal priority
# loadgen, woken by the reply, can preempt Redis between the two writes and have requests
# answered before the push is even sent. A Redis on its own host (or core) has no such gap,
# so here it runs above loadgen's priority when allowed (root or CAP_SYS_NICE).
if renice -n "$REDIS_NICE" -p "${PIDS[-1]}" >/dev/null 2>&1; then
    REDIS_NICE_GOT=$REDIS_NICE
else
    REDIS_NICE_GOT=0
    log "could not renice Redis to $REDIS_NICE: revocation trials may count requests answered before Redis sent the push"
fi
log "redis-server on $REDIS_PORT ($(redis-server --version | awk '{print $3}'), nice $REDIS_NICE_GOT)"

PREFIX="bench$(date +%s)$$"
AUTH_PORT=$(free_port)
ISSUER=http://127.0.0.1:$AUTH_PORT

# --- auth-center (argon2 defaults; login rate limit raised for the revocation trials) --
auth_env=(
    DATABASE_URL="sqlite:$TMP/auth.db"
    REDIS_URL="$REDIS_URL"
    LISTEN_ADDR="127.0.0.1:$AUTH_PORT"
    AUTH_ISSUER="$ISSUER"
    AUTH_REDIS_PREFIX="$PREFIX"
    RUST_LOG=warn
)
# Only binaries that know the setting accept it (the config rejects unknown fields).
if grep -aq login_ip_max "$BIN/auth-center"; then
    auth_env+=(AUTH_LIMITS__LOGIN_IP_MAX=100000)
fi
env "${auth_env[@]}" taskset -c "$CLIENT_CPU" "$BIN/auth-center" serve >"$TMP/auth-center.log" 2>&1 &
PIDS+=($!)
wait_http "$ISSUER/healthz" auth-center
log "auth-center on $AUTH_PORT (prefix $PREFIX)"

# --- demo-services, one per revocation mode, all on the server core --------------------
declare -A DEMO_PORT DEMO_PID
for mode in tracked every-request off; do
    port=$(free_port)
    env AUTH_JWKS_URL="$ISSUER/.well-known/jwks.json" AUTH_ISSUER="$ISSUER" \
        AUTH_AUDIENCE=api REDIS_URL="$REDIS_URL" LISTEN_ADDR="127.0.0.1:$port" \
        AUTH_REDIS_PREFIX="$PREFIX" AUTH_REVOCATION="$mode" RUST_LOG=warn \
        taskset -c "$SERVER_CPU" "$BIN/demo-service" >"$TMP/demo-$mode.log" 2>&1 &
    PIDS+=($!)
    DEMO_PID[$mode]=$!
    DEMO_PORT[$mode]=$port
    wait_http "http://127.0.0.1:$port/healthz" "demo-service ($mode)"
done
log "demo-services: tracked ${DEMO_PORT[tracked]}, every-request ${DEMO_PORT[every-request]}, off ${DEMO_PORT[off]} (cpu $SERVER_CPU)"

# --- the gateway (tracked), on the server core ------------------------------------------------
GW_PORT=$(free_port)
env AUTH_JWKS_URL="$ISSUER/.well-known/jwks.json" AUTH_ISSUER="$ISSUER" \
    AUTH_AUDIENCE=api REDIS_URL="$REDIS_URL" LISTEN_ADDR="127.0.0.1:$GW_PORT" \
    AUTH_REDIS_PREFIX="$PREFIX" AUTH_REVOCATION=tracked RUST_LOG=warn \
    taskset -c "$SERVER_CPU" "$BIN/gateway" >"$TMP/gateway.log" 2>&1 &
PIDS+=($!)
GW_PID=$!
wait_http "http://127.0.0.1:$GW_PORT/healthz" gateway
log "gateway on $GW_PORT (cpu $SERVER_CPU)"

# --- nginx: deploy/nginx/gateway.conf in front of the tracked demo-service, plus a server --------
# that proxies to the same application without auth_request. One process, on the server core.
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
NGX_PID=
if [[ -x $NGINX ]]; then
    NGX_AUTH_PORT=$(free_port)
    NGX_PLAIN_PORT=$(free_port)
    mkdir -p "$TMP/nginx/logs"
    sed -e "s/{{LISTEN}}/127.0.0.1:$NGX_AUTH_PORT/" -e "s/{{GATEWAY}}/127.0.0.1:$GW_PORT/" \
        -e "s/{{UPSTREAM}}/127.0.0.1:${DEMO_PORT[tracked]}/" deploy/nginx/gateway.conf \
        >"$TMP/nginx/gateway.conf"
    cat >"$TMP/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    include $TMP/nginx/gateway.conf;
    # The same proxying as gateway.conf's protected location, minus auth_request: HTTP/1.1
    # with keep-alive to the application (without the last two lines nginx opens a connection
    # per request, and this baseline came out slower than the route with auth_request).
    server {
        listen 127.0.0.1:$NGX_PLAIN_PORT;
        location / {
            proxy_pass http://app;
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
    taskset -c "$SERVER_CPU" "$NGINX" -p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf" \
        -e "$TMP/nginx/error.log" >"$TMP/nginx/stdout.log" 2>&1 &
    PIDS+=($!)
    NGX_PID=$!
    wait_http "http://127.0.0.1:$NGX_PLAIN_PORT/healthz" nginx
    log "nginx $("$NGINX" -v 2>&1 | sed 's|.*/||'): auth_request on $NGX_AUTH_PORT, plain on $NGX_PLAIN_PORT (cpu $SERVER_CPU)"
else
    log "nginx not installed: the runs through nginx are skipped (apt-get install nginx)"
fi

# --- a user and a session ------------------------------------------------------------------
USERNAME="bench_user_$$"
export LOADGEN_PASSWORD="bench-password-$RANDOM-$RANDOM-long-enough"
eval "$("$BIN/loadgen" token --auth-url "$ISSUER" --username "$USERNAME" --register --prefix "$PREFIX")"
[[ -n "${ACCESS_TOKEN:-}" && -n "${SESSION_KEY:-}" ]] || die "could not log in"
log "logged in: session key $SESSION_KEY"

# --- profile only (BENCH_PROFILE=DIR): where the server's CPU goes ----------------------------
# perf samples the demo-services' core with call stacks (software clock: this VM exposes no
# hardware counters; user stacks unwound from DWARF call-frame information, kernel stacks by
# the kernel; the whole core, which costs the sampled threads less than following each of
# them) while loadgen drives the tracked demo-service's /baseline/me, then /me, BENCH_ROUNDS
# times in turn, and keeps that demo-service's samples. Per
# path: the flat reports (NAME.txt by symbol, NAME.dso.txt by object) of its first round, and
# its stacks folded (NAME-<round>.folded.gz, inferno-collapse-perf). scripts/flame.py then scales
# each round's stacks to its server CPU per request and draws the flame graphs (flame-*.svg)
# and the table of where the time went (flame.txt). Nothing else runs.
if [[ -n "${BENCH_PROFILE:-}" ]]; then
    command -v perf >/dev/null || die "perf not found (apt-get install linux-perf)"
    TOOLS=$ROOT/target/tools
    if ! command -v inferno-flamegraph >/dev/null && [[ ! -x $TOOLS/bin/inferno-flamegraph ]]; then
        log "installing inferno (flame graphs) into $TOOLS"
        cargo install --quiet --locked --root "$TOOLS" inferno@^0.12 >&2 || die "could not install inferno"
    fi
    export PATH=$PATH:$TOOLS/bin
    mkdir -p "$BENCH_PROFILE"
    PROFILE_HZ=${BENCH_PROFILE_HZ:-999}
    # Flat: each symbol's (or object's) own samples of the demo-service, no call trees.
    flat_report() { # perf.data sort-key output [perf report options...]
        perf report -i "$1" --pid "${DEMO_PID[tracked]}" --stdio --no-children -g none \
            --sort "$2" "${@:4}" 2>/dev/null \
            | grep -v '^#' | grep -v '^$' | sed 's/[[:space:]-]*$//' >"$3" || true
    }
    for round in $(seq "$ROUNDS"); do
        for what in baseline_me:/baseline/me me:/me; do
            name=${what%%:*} path=${what#*:}
            log "profile round $round: $path (${DURATION}s after ${WARMUP}s of warm-up)"
            LOADGEN_TOKEN="$ACCESS_TOKEN" taskset -c "$CLIENT_CPU" "$BIN/loadgen" http \
                --url "http://127.0.0.1:${DEMO_PORT[tracked]}$path" -c "$CONNS" -d "$DURATION" \
                --warmup "$WARMUP" --server-pid "${DEMO_PID[tracked]}" --label "$path" \
                >"$BENCH_PROFILE/$name-$round.json" &
            load_pid=$!
            PIDS+=("$load_pid")
            # perf covers the measured seconds, give or take the fraction of a second loadgen
            # takes to connect before its warm-up: only each round's shares of samples are
            # used, scaled to the server CPU per request loadgen measures.
            sleep "$WARMUP"
            # 16 KiB of each sample's user stack to unwind from; 8 MiB of buffer (no lost samples).
            taskset -c "$CLIENT_CPU" perf record -q -F "$PROFILE_HZ" --call-graph dwarf,16384 -m 2048 \
                -a -C "$SERVER_CPU" -o "$TMP/$name.data" -- sleep "$DURATION" \
                2>"$BENCH_PROFILE/$name-$round.perf.log" \
                || die "perf record failed (see $BENCH_PROFILE/$name-$round.perf.log)"
            wait "$load_pid" || die "loadgen failed on $path"
            if [[ $round == 1 ]]; then
                flat_report "$TMP/$name.data" symbol "$BENCH_PROFILE/$name.txt" --percent-limit 0.3
                flat_report "$TMP/$name.data" dso "$BENCH_PROFILE/$name.dso.txt"
            fi
            perf script -i "$TMP/$name.data" --pid "${DEMO_PID[tracked]}" --no-inline \
                2>>"$BENCH_PROFILE/$name-$round.perf.log" | inferno-collapse-perf --all \
                | gzip -9 >"$BENCH_PROFILE/$name-$round.folded.gz" \
                || die "could not fold the stacks of $path (see $BENCH_PROFILE/$name-$round.perf.log)"
            if [[ ${BENCH_KEEP:-} == 1 ]]; then
                mv "$TMP/$name.data" "$TMP/$name-$round.data"
            else
                rm -f "$TMP/$name.data"
            fi
        done
    done
    python3 scripts/flame.py "$BENCH_PROFILE" "$BENCH_PROFILE" >&2
    log "profiles in $BENCH_PROFILE (flame.txt, flame-*.svg; NAME-<round>.folded.gz and .json the rounds)"
    exit 0
fi

# --- 1. throughput --------------------------------------------------------------------------
run_url() { # label url token server-pid...
    local label=$1 url=$2 token=$3
    shift 3
    local pids=()
    for pid in "$@"; do pids+=(--server-pid "$pid"); done
    next_result
    local out="$RESULT-http.json"
    log "http: $label (${DURATION}s + ${WARMUP}s warm-up, $CONNS connections)"
    LOADGEN_TOKEN="$token" timeout $((DURATION * 3 + 60)) taskset -c "$CLIENT_CPU" \
        "$BIN/loadgen" http --url "$url" \
        -c "$CONNS" -d "$DURATION" --warmup "$WARMUP" \
        "${pids[@]}" --redis-url "$REDIS_URL" \
        --label "$label" >"$out"
}
run_http() { # label mode path [token]
    run_url "$1" "http://127.0.0.1:${DEMO_PORT[$2]}$3" "${4:-}" "${DEMO_PID[$2]}"
}
[[ $AUTH_ONLY != 1 ]] || log "BENCH_AUTH_ONLY=1: no throughput rounds, no revocation trials"
for round in $(seq "$ROUNDS"); do
    [[ $AUTH_ONLY != 1 ]] || break
    log "round $round of $ROUNDS"
    run_http "baseline /baseline/me (no auth)" tracked /baseline/me
    run_http "/baseline/me + Bearer header" tracked /baseline/me "$ACCESS_TOKEN"
    run_http "/me tracked" tracked /me "$ACCESS_TOKEN"
    if grep -aq /route-layer/me "$BIN/demo-service"; then
        run_http "/route-layer/me tracked (route_layer)" tracked /route-layer/me "$ACCESS_TOKEN"
    fi
    if grep -aq /verified/me "$BIN/demo-service"; then
        run_http "/verified/me tracked (extractor, no layer)" tracked /verified/me "$ACCESS_TOKEN"
    fi
    run_http "/me every-request" every-request /me "$ACCESS_TOKEN"
    run_http "/me revocation off" off /me "$ACCESS_TOKEN"
    run_url "gateway forward-auth (tracked)" "http://127.0.0.1:$GW_PORT/authz/ext-authz/me" \
        "$ACCESS_TOKEN" "$GW_PID"
    if [[ -n $NGX_PID ]]; then
        run_url "nginx -> /baseline/me (no auth_request)" \
            "http://127.0.0.1:$NGX_PLAIN_PORT/baseline/me" "$ACCESS_TOKEN" "$NGX_PID" "${DEMO_PID[tracked]}"
        run_url "nginx -> auth_request gateway -> /baseline/me" \
            "http://127.0.0.1:$NGX_AUTH_PORT/baseline/me" "$ACCESS_TOKEN" \
            "$NGX_PID" "$GW_PID" "${DEMO_PID[tracked]}"
    fi
done

# --- memory per session (before the revocation trials create and delete sessions) ----------
MEM=$(redis-cli -p "$REDIS_PORT" MEMORY USAGE "$SESSION_KEY" SAMPLES 0)
FIELDS=$(redis-cli -p "$REDIS_PORT" HLEN "$SESSION_KEY")
ENCODING=$(redis-cli -p "$REDIS_PORT" OBJECT ENCODING "$SESSION_KEY")
INDEX_KEY="$PREFIX:u:{$SUB}"
INDEX_MEM=$(redis-cli -p "$REDIS_PORT" MEMORY USAGE "$INDEX_KEY" SAMPLES 0)
INDEX_LEN=$(redis-cli -p "$REDIS_PORT" ZCARD "$INDEX_KEY")

# --- 2. revocation latency ----------------------------------------------------------------
# Its own user: a login per trial, and the auth-center may cap sessions per user.
REVOKE_USER="bench_revoke_$$"
"$BIN/loadgen" token --auth-url "$ISSUER" --username "$REVOKE_USER" --register \
    --prefix "$PREFIX" >/dev/null
run_revocation() { # label mode|url
    local label=$1 url=$2
    [[ $url == http* ]] || url="http://127.0.0.1:${DEMO_PORT[$url]}/me"
    next_result
    local out="$RESULT-revocation.json"
    log "revocation: $label ($TRIALS trials)"
    timeout $((TRIALS + 120)) taskset -c "$CLIENT_CPU" \
        "$BIN/loadgen" revocation --url "$url" \
        --redis-url "$REDIS_URL" --prefix "$PREFIX" \
        --auth-url "$ISSUER" --username "$REVOKE_USER" \
        --background-connections "$BACKGROUND" \
        -k "$TRIALS" --label "$label" >"$out"
}
if [[ $AUTH_ONLY != 1 ]]; then
run_revocation "tracked" tracked
# The same with the reader thread at the request threads' priority (as before issue 14):
# a fifth demo-service on the server core, idle but for these trials.
if grep -aq tracking_reader_realtime "$BIN/demo-service"; then
    port=$(free_port)
    env AUTH_JWKS_URL="$ISSUER/.well-known/jwks.json" AUTH_ISSUER="$ISSUER" \
        AUTH_AUDIENCE=api REDIS_URL="$REDIS_URL" LISTEN_ADDR="127.0.0.1:$port" \
        AUTH_REDIS_PREFIX="$PREFIX" AUTH_REVOCATION=tracked AUTH_TRACKING_READER_REALTIME=false \
        AUTH_TRACKING_READER_NICE=0 \
        RUST_LOG=warn taskset -c "$SERVER_CPU" "$BIN/demo-service" >"$TMP/demo-nice0.log" 2>&1 &
    PIDS+=($!)
    wait_http "http://127.0.0.1:$port/healthz" "demo-service (reader at nice 0)"
    run_revocation "tracked, reader at nice 0" "http://127.0.0.1:$port/me"
    kill "${PIDS[-1]}" 2>/dev/null || true
fi
run_revocation "every-request" every-request
run_revocation "gateway (tracked)" "http://127.0.0.1:$GW_PORT/authz/ext-authz/me"
if [[ -n $NGX_PID ]]; then
    run_revocation "through nginx + gateway" "http://127.0.0.1:$NGX_AUTH_PORT/baseline/me"
fi
fi

# --- instructions per request (BENCH_CALLGRIND=N): the noise-free comparison ------------------
# A fourth demo-service (tracked) under valgrind's callgrind; N requests to /baseline/me, then
# N to /me, twice, each counted from a zeroed counter to a dump: user-space instructions per
# request, the same whatever else the machine does (the kernel's share is not counted).
if [[ -n "${BENCH_CALLGRIND:-}" ]]; then
    command -v valgrind >/dev/null || die "valgrind not found (apt-get install valgrind)"
    CG_PORT=$(free_port)
    mkdir -p "$TMP/callgrind"
    env AUTH_JWKS_URL="$ISSUER/.well-known/jwks.json" AUTH_ISSUER="$ISSUER" \
        AUTH_AUDIENCE=api REDIS_URL="$REDIS_URL" LISTEN_ADDR="127.0.0.1:$CG_PORT" \
        AUTH_REDIS_PREFIX="$PREFIX" AUTH_REVOCATION=tracked RUST_LOG=warn \
        taskset -c "$SERVER_CPU" valgrind --tool=callgrind \
        --callgrind-out-file="$TMP/callgrind/cg.%p" "$BIN/demo-service" >"$TMP/callgrind/demo.log" 2>&1 &
    PIDS+=($!)
    CG_PID=$!
    for _ in $(seq 600); do curl -sf -o /dev/null "http://127.0.0.1:$CG_PORT/healthz" && break; sleep 0.1; done
    for round in warm 1 2; do
        for path in /baseline/me /me /route-layer/me /handler/me /verified/me; do
            # Routes an older demo-service does not have are skipped.
            [[ $path == /baseline/me || $path == /me ]] || grep -aq "$path" "$BIN/demo-service" || continue
            count=$BENCH_CALLGRIND
            [[ $round == warm ]] && count=2000
            callgrind_control -z "$CG_PID" >/dev/null 2>&1
            LOADGEN_TOKEN="$ACCESS_TOKEN" taskset -c "$CLIENT_CPU" "$BIN/loadgen" http \
                --url "http://127.0.0.1:$CG_PORT$path" -c "$CONNS" -n "$count" --warmup 0 >/dev/null
            callgrind_control -d "$CG_PID" >/dev/null 2>&1
            [[ $round == warm ]] && continue
            dump=$(ls -t "$TMP"/callgrind/cg."$CG_PID".* | head -1)
            ir=$(awk '/^summary:/ {print $2; exit}' "$dump")
            printf '{"kind":"instructions","label":"%s round %s","path":"%s","requests":%s,"instructions_per_request":%s}\n' \
                "$path" "$round" "$path" "$count" "$((ir / count))" >"$TMP/callgrind/$round${path//\//_}.json"
            log "callgrind: $path round $round: $((ir / count)) instructions per request"
        done
    done
    kill "$CG_PID" 2>/dev/null || true
fi

# --- 3. the auth-center under load: login capacity, refresh tail, on 1 and 2 cores -------------
# A second auth-center (same Redis, its own prefix and SQLite file) with the limits that would
# refuse a benchmark lifted. For each CPU set: refresh saturation (closed loop, 400 sessions)
# and the tail toward it (open loop at 0.5, 0.75, 0.9 of it); raw Argon2 hashing of the
# configured slots and a login flood, in alternating rounds; then two open-loop probes --
# refreshes at BENCH_PROBE_RATE over 50 sessions, and GET /me at the demo-service (tracked,
# on the server core) -- alone ("unloaded") and beside a login flood ("loaded"), in
# alternating rounds (paired by file order, see next_result).
# The CPU time of all cores so far, from /proc/stat's first line: user nice system idle
# iowait irq softirq steal (in ticks).
cpu_ticks() { awk '/^cpu /{print $2, $3, $4, $5, $6, $7, $8, $9; exit}' /proc/stat; }
# Appends where the machine's CPU time went since `before` (cpu_ticks' output) to
# cpu-ticks.txt: "<what>: user nice system idle iowait irq softirq steal" (steal: taken by
# the hypervisor, where the guest accounts it).
note_cpu_ticks() { # what before
    paste -d' ' <(echo "$2") <(cpu_ticks) | awk -v what="$1" \
        '{ printf "%s:", what; for (i = 1; i <= 8; i++) printf " %d", $(i + 8) - $i; print "" }' \
        >>"$TMP/cpu-ticks.txt"
}
# Raw Argon2 hashing of the configured slots on the auth-center's CPUs, no server involved.
# Uses auth_bench's env_auth.
raw_capacity() { # label cpuset
    log "auth-center $1: raw argon2 capacity (${DURATION}s)"
    next_result
    local before
    before=$(cpu_ticks)
    env "${env_auth[@]}" taskset -c "$2" timeout $((DURATION + 60)) \
        "$BIN/auth-center" passwords capacity --seconds "$DURATION" --json \
        | python3 -c 'import json,sys; d=json.load(sys.stdin); d["kind"]="capacity"; d["label"]=sys.argv[1]; print(json.dumps(d))' \
            "argon2 raw, $1" >"$RESULT-capacity.json"
    note_cpu_ticks "argon2 raw, $1" "$before"
}
# A login flood (16 clients, closed loop) with nothing else running. Uses auth_bench's lg,
# acct and pid.
login_flood_alone() { # label round
    log "auth-center $1: login flood alone (16 clients), round $2 of $LOGIN_ROUNDS"
    next_result
    local before
    before=$(cpu_ticks)
    "${lg[@]}" login "${acct[@]}" -c 16 -d "$DURATION" --warmup "$WARMUP" \
        --server-pid "$pid" --label "logins alone, $1" >"$RESULT-login.json"
    note_cpu_ticks "logins alone, $1, round $2" "$before"
}
# One round of the probes, alone ("unloaded"), beside a login flood ("loaded") or beside a
# control that makes no requests ("hashing": raw Argon2 of the configured slots; "spinning":
# as many busy loops; both SCHED_IDLE, like the auth-center's hashing threads). Uses
# auth_bench's lg, acct, metrics, pid, cpus, slots and env_auth.
probe_round() { # label phase round
    local label=$1 phase=$2 base probe flood= waited ticks_before
    log "auth-center $label: probes $phase, round $3 of $PROBE_ROUNDS (refresh $PROBE_RATE/s over 50 sessions, /me 1000/s)"
    next_result; base=$RESULT
    "${lg[@]}" refresh "${acct[@]}" --sessions 50 --rate "$PROBE_RATE" -d "$DURATION" \
        --warmup "$WARMUP" --server-pid "$pid" --label "refresh p99 $phase, $label" "${WATCH[@]}" "${metrics[@]}" \
        --ready-file "$base.ready" --start-file "$base.start" >"$base-refresh.json" &
    probe=$!
    PIDS+=($probe)
    for waited in $(seq 1200); do
        [[ -e $base.ready ]] && break
        kill -0 "$probe" 2>/dev/null || die "the refresh probe stopped before its sessions were open"
        sleep 0.1
    done
    [[ -e $base.ready ]] || die "the refresh probe's sessions were not open after 120 s"
    # The load's window starts when the probes' warm-up does and ends a second after theirs.
    local span=$((DURATION + WARMUP + 1)) spinners=() s
    case $phase in
        loaded)
            "${lg[@]}" login "${acct[@]}" -c 16 -d "$span" --warmup "$WARMUP" \
                --server-pid "$pid" --label "logins beside the probes, $label" >"$base-login.json" &
            flood=$!
            ;;
        hashing)
            # The controls have no warm-up of their own: they start WARMUP seconds earlier.
            env "${env_auth[@]}" chrt --idle 0 taskset -c "$cpus" timeout $((span + WARMUP + 60)) \
                "$BIN/auth-center" passwords capacity --seconds $((span + WARMUP)) >"$base-hashing.txt" &
            flood=$!
            ;;
        spinning)
            for s in $(seq "$slots"); do
                chrt --idle 0 taskset -c "$cpus" timeout $((span + WARMUP)) sh -c 'while :; do :; done' &
                spinners+=($!)
                PIDS+=($!)
            done
            ;;
    esac
    if [[ -n $flood ]]; then PIDS+=($flood); fi
    [[ $phase == unloaded ]] || sleep "$WARMUP"
    ticks_before=$(cpu_ticks)
    touch "$base.start"
    LOADGEN_TOKEN="$ACCESS_TOKEN" "${lg[@]}" paced \
        --url "http://127.0.0.1:${DEMO_PORT[tracked]}/me" --rate 1000 -c 8 -d "$DURATION" \
        --warmup "$WARMUP" --label "/me p99 $phase, $label" >"$base-paced.json"
    wait "$probe"
    forget_pid "$probe"
    note_cpu_ticks "probes $phase, $label, round $3" "$ticks_before"
    if [[ -n $flood ]]; then
        wait "$flood"
        forget_pid "$flood"
    fi
    # The busy loops end by their timeout (status 124).
    for s in "${spinners[@]}"; do
        wait "$s" 2>/dev/null || true
        forget_pid "$s"
    done
}
# Redis's latency monitor since the last reset (unix second and ms of each event of 1 ms or
# more, by event), then reset: whether Redis itself was slow during a refresh tail point.
redis_latency() {
    local event
    for event in $(redis-cli -p "$REDIS_PORT" latency latest | awk 'NR % 4 == 1'); do
        echo "$event:"
        redis-cli -p "$REDIS_PORT" latency history "$event" | paste -d' ' - -
    done
    redis-cli -p "$REDIS_PORT" latency reset >/dev/null
}
# The machine's TCP retransmission counters (all of its loopback and other traffic, not only
# ours): a retransmission timeout holds a connection for 200 ms or more, and every refresh
# of an auth-center goes through its one Redis connection. Prints "name value" lines.
tcp_counters() {
    command -v nstat >/dev/null || return 0
    { nstat -asz 2>/dev/null || true; } | awk '$1 ~ /^(TcpRetransSegs|TcpExtTCPTimeouts|TcpExtTCPLossProbes|TcpExtTCPSpuriousRTOs|TcpExtTCPFastRetrans|TcpExtTCPDSACKRecv)$/ {print $1, $2}'
}
# What the counters of tcp_counters did since the lines in file $1.
tcp_delta() {
    tcp_counters | awk 'FILENAME == ARGV[1] {before[$1] = $2; next} $1 in before {print $1, $2 - before[$1]}' "$1" -
}
auth_bench() { # id label cpuset
    local id=$1 label=$2 cpus=$3 port prefix pid user
    port=$(free_port)
    prefix="${PREFIX}a$n"
    local env_auth=(
        DATABASE_URL="sqlite:$TMP/auth-$id.db" REDIS_URL="$REDIS_URL"
        LISTEN_ADDR="127.0.0.1:$port" AUTH_ISSUER="http://127.0.0.1:$port"
        AUTH_REDIS_PREFIX="$prefix" RUST_LOG=warn
        AUTH_LIMITS__LOGIN_IP_MAX=100000000 AUTH_LIMITS__REFRESH_IP_MAX=0
        AUTH_SESSIONS__MAX_PER_USER=100000
    )
    if [[ -n "${BENCH_HASHES:-}" ]]; then
        env_auth+=(AUTH_PASSWORDS__MAX_CONCURRENT_HASHES="$BENCH_HASHES")
    fi
    if [[ -n "${BENCH_AUTH_WORKERS:-}" ]]; then
        env_auth+=(TOKIO_WORKER_THREADS="$BENCH_AUTH_WORKERS")
    fi
    # Every loadgen run registers the user (an existing one is fine); they add up to more
    # than the default register_ip_max.
    if grep -aq register_ip_max "$BIN/auth-center"; then
        env_auth+=(AUTH_LIMITS__REGISTER_IP_MAX=1000)
    fi
    # Starts the auth-center (into pid), in its own scheduling group when asked: "$@" is the
    # prefix (AUTH_GROUP_CMD or nothing).
    start_auth() {
        "$@" env "${env_auth[@]}" nice -n "${BENCH_AUTH_NICE:-0}" taskset -c "$cpus" "$BIN/auth-center" serve >>"$TMP/auth-$id.log" 2>&1 &
        pid=$!
        PIDS+=($pid)
        wait_http "http://127.0.0.1:$port/healthz" "auth-center ($label)"
        if (( $# )); then
            # setsid execs in place (a background job is no group leader), so $pid is the server.
            [[ $(cat "/proc/$pid/comm") == auth-center ]] || die "the auth-center is not pid $pid"
            [[ $(awk '{print $6}' "/proc/$pid/stat") == "$pid" ]] || die "the auth-center has no session of its own"
            log "auth-center ($label): its $(cat "/proc/$pid/autogroup" 2>/dev/null || echo "session"), the bench's $(cat /proc/$$/autogroup 2>/dev/null || echo "session")"
        fi
    }
    start_auth "${AUTH_GROUP_CMD[@]}"
    local url="http://127.0.0.1:$port" base out
    user="bench_load_$$_$id"
    local lg=(taskset -c "$CLIENT_CPU" timeout $((DURATION * 4 + 120)) "$BIN/loadgen")
    local acct=(--auth-url "$url" --username "$user" --register)
    local metrics=()
    [[ $SERVER_METRICS != 1 ]] || metrics=(--server-metrics "$url/metrics")
    local rlabel=$label${GROUP_NOTE:-}
    log "auth-center $rlabel: refresh saturation (400 sessions, closed loop)"
    next_result
    "${lg[@]}" refresh "${acct[@]}" --sessions 400 --rate 0 -d "$DURATION" --warmup "$WARMUP" \
        --server-pid "$pid" --redis-url "$REDIS_URL" --label "refresh saturation, $rlabel" \
        >"$RESULT-refresh.json"
    local sat
    sat=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ok_per_s"])' "$RESULT-refresh.json")
    # The refresh tail toward saturation (open loop, 400 sessions, nothing else running).
    local frac
    redis-cli -p "$REDIS_PORT" latency reset >/dev/null
    for frac in ${BENCH_TAIL_FRACTIONS:-0.5 0.75 0.9}; do
        local r
        r=$(python3 -c 'import sys; print(max(50, round(float(sys.argv[1]) * float(sys.argv[2]))))' "$sat" "$frac")
        log "auth-center $rlabel: refresh at $r/s ($frac of saturation, 400 sessions)"
        next_result
        tcp_counters >"$RESULT-tcp-before.txt"
        local capture=
        if [[ $WIRE == 1 ]]; then
            # Started while the auth-center's Redis connection is idle (see loadgen wire).
            nice -n 10 tcpdump -Z root -i lo -s 0 -B 262144 --time-stamp-precision nano -w "$TMP/wire.pcap" \
                "tcp port $port or tcp port $REDIS_PORT" 2>"$RESULT-tcpdump.txt" &
            capture=$!
            PIDS+=($capture)
            sleep 1
        fi
        "${lg[@]}" refresh "${acct[@]}" --sessions 400 --rate "$r" -d "$DURATION" \
            --warmup "$WARMUP" --server-pid "$pid" --label "refresh p99 at $frac of saturation, $rlabel" \
            "${WATCH[@]}" "${THREADS[@]}" "${metrics[@]}" >"$RESULT-refresh.json"
        if [[ -n $capture ]]; then
            kill -INT "$capture" 2>/dev/null || true
            wait "$capture" 2>/dev/null || true
            forget_pid "$capture"
            "$BIN/loadgen" wire --pcap "$TMP/wire.pcap" --http-port "$port" --redis-port "$REDIS_PORT" \
                --skip-s "$WARMUP" --label "$frac of saturation, $rlabel" >"$RESULT-wire.json" \
                || log "loadgen wire failed on this point's capture"
            rm -f "$TMP/wire.pcap"
        fi
        redis_latency >"$RESULT-redis-latency.txt"
        tcp_delta "$RESULT-tcp-before.txt" >"$RESULT-tcp.txt"
        rm -f "$RESULT-tcp-before.txt"
    done
    # The logins and probes run with the auth-center in the bench's session again. Its hashing
    # threads are SCHED_IDLE, which yields only inside their scheduling group: in a group of
    # its own the flood's hashing weighs as much as the group against the demo-service, the
    # load generator and Redis on the same cores, and on 2 cores the probes' p99 rose
    # 51-188x (`/me`) and 3.3-16x (refresh) beside it. In the bench's group the hashing
    # yields to every process of the benchmark, as it does to the auth-center's own threads
    # in any group.
    if (( ${#AUTH_GROUP_CMD[@]} && (LOGIN_ROUNDS > 0 || PROBE_ROUNDS > 0) )); then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        forget_pid "$pid"
        log "auth-center $label: restarted in the bench's session for the logins and probes"
        start_auth
    fi
    # Logins against the raw Argon2 capacity of the configured slots (`auth-center passwords
    # capacity`, same config and pinning), in alternating rounds: raw then flood, flood then
    # raw, ... This VM's hashing speed drifts by up to a third within a minute, so each flood
    # is compared with raw hashing measured right beside it (the table pairs them in order).
    local round
    for round in $(seq "$LOGIN_ROUNDS"); do
        if (( round % 2 )); then
            raw_capacity "$label" "$cpus"
            login_flood_alone "$label" "$round"
        else
            login_flood_alone "$label" "$round"
            raw_capacity "$label" "$cpus"
        fi
    done
    # The flood beside light probes (refresh $PROBE_RATE/s over 50 sessions, /me 1000/s), whose
    # p99 is compared with the same probes alone, in BENCH_PROBE_ROUNDS alternating rounds
    # (alone then beside, beside then alone, ...): a p99 of a few thousand sub-millisecond
    # answers moves by 2x between two runs of the same thing on this VM. The refresh probe
    # opens its sessions first and starts refreshing only once told, so its logins neither eat
    # into the flood nor outlast it.
    local phase slots=${BENCH_HASHES:-$(awk -F, '{print NF}' <<<"$cpus")}
    for round in $(seq "$PROBE_ROUNDS"); do
        local phases=(unloaded loaded)
        [[ $PROBE_CONTROLS != 1 ]] || phases+=(hashing spinning)
        # Alternate the order, so that neither phase always comes first.
        (( round % 2 )) || phases=($(printf '%s\n' "${phases[@]}" | tac))
        for phase in "${phases[@]}"; do
            probe_round "$label" "$phase" "$round"
        done
    done
    kill "$pid" 2>/dev/null || true
}
# The machine itself (BENCH_PROBE_CONTROLS=1): how long each core stops running a spinning
# thread (nice -20 when allowed; the label says what it got), alone on its core, while the
# other core is idle, and while a SCHED_IDLE busy loop keeps the other core busy. Gaps the
# guest's scheduler cannot explain (nothing else wants that core) are interrupts or, in a VM,
# the host not running the vCPU.
# Then how late a thread that sleeps 1 ms at a time wakes up on an idle machine: what waking
# an idle core costs (in a VM, the host waking a halted vCPU).
machine_hiccups() {
    local round core other spinner secs=$((DURATION * 2)) got
    # GNU nice runs the command anyway when it may not raise the priority: ask what it got.
    got=$(nice -n -20 nice 2>/dev/null)
    local run=(timeout $((secs + 30)) nice -n "$got" "$BIN/loadgen" hiccups --seconds "$secs")
    for round in 1 2; do
        for core in "$SERVER_CPU" "$CLIENT_CPU"; do
            other=$CLIENT_CPU
            [[ $core != "$CLIENT_CPU" ]] || other=$SERVER_CPU
            log "machine: hiccups on cpu $core (nice $got), cpu $other idle, round $round"
            next_result
            taskset -c "$core" "${run[@]}" \
                --label "cpu $core (nice $got), cpu $other idle, round $round" >"$RESULT-hiccups.json"
            log "machine: hiccups on cpu $core (nice $got), cpu $other busy (SCHED_IDLE loop), round $round"
            chrt --idle 0 taskset -c "$other" timeout $((secs + 30)) sh -c 'while :; do :; done' &
            spinner=$!
            PIDS+=($spinner)
            next_result
            taskset -c "$core" "${run[@]}" \
                --label "cpu $core (nice $got), cpu $other busy, round $round" >"$RESULT-hiccups.json"
            kill "$spinner" 2>/dev/null || true
            wait "$spinner" 2>/dev/null || true
            forget_pid "$spinner"
            log "machine: late wake-ups on cpu $core (sleeps of 1 ms), cpu $other idle, round $round"
            next_result
            taskset -c "$core" "${run[@]}" --sleep-us 1000 \
                --label "cpu $core (nice $got), cpu $other idle, round $round" >"$RESULT-hiccups.json"
        done
    done
}
if [[ $PROBE_CONTROLS == 1 ]] && (( ncpu >= 2 )); then
    machine_hiccups
fi
if [[ "${BENCH_AUTH:-1}" == 1 ]]; then
    slot_note=
    [[ -n "${BENCH_HASHES:-}" ]] && slot_note=" ($BENCH_HASHES hashing slot$([[ $BENCH_HASHES == 1 ]] || echo s))"
    [[ -z "${BENCH_AUTH_WORKERS:-}" ]] || slot_note+=" ($BENCH_AUTH_WORKERS async workers)"
    # Only the refresh points run in the group asked for (the logins and probes run in the
    # bench's), so only their labels say which.
    GROUP_NOTE=
    case $AUTH_GROUP in
        0) ;;
        shared) GROUP_NOTE=" (in the bench's group)" ;;
        *) GROUP_NOTE=" (its group at nice $AUTH_GROUP)" ;;
    esac
    for count in ${BENCH_CORE_COUNTS:-1 2}; do
        case $count in
            1) auth_bench c1 "1 core$slot_note" "$SERVER_CPU" ;;
            2) (( ncpu < 2 )) || auth_bench c2 "2 cores$slot_note" "$SERVER_CPU,$CLIENT_CPU" ;;
        esac
    done
fi

# --- report ---------------------------------------------------------------------------------
echo
echo "== DESIGN §6 side by side: $(nproc) cores, demo-service on cpu $SERVER_CPU, loadgen+redis+auth-center on cpu $CLIENT_CPU"
echo "== load average at start: $LOAD_START (other processes on these cores slow runs down: compare the rounds)"
echo "== $CONNS connections, $ROUNDS rounds of ${DURATION}s per run after ${WARMUP}s warm-up; EdDSA tokens; redis $(redis-server --version | awk '{print $3}')"
echo
# With BENCH_CALLGRIND, the instruction counts too: each path against /baseline/me, and the
# server CPU that difference costs (estimated from the baseline's user-space share).
# The table compares every path with the first one it reads: /baseline/me's rounds go first.
CG_RESULTS=()
if compgen -G "$TMP/callgrind/*.json" >/dev/null; then
    for f in "$TMP"/callgrind/*_baseline_me.json; do
        if [[ -e $f ]]; then CG_RESULTS+=("$f"); fi
    done
    for f in "$TMP"/callgrind/*.json; do
        if [[ $f != *_baseline_me.json ]]; then CG_RESULTS+=("$f"); fi
    done
fi
"$BIN/loadgen" table "$TMP"/*.json "${CG_RESULTS[@]}"
echo
echo "session key: MEMORY USAGE $MEM bytes ($FIELDS fields, $ENCODING; target <= 512)"
echo "user index:  MEMORY USAGE $INDEX_MEM bytes for $INDEX_LEN sessions (per user, not per session)"
echo
echo "targets: /me tracked ratio >= 0.80 (aim 0.90); every-request >= naive (verify + EXISTS);"
echo "         gateway forward-auth >= 0.9 x /me tracked (the embedded verifier);"
echo "         DEL -> first 401 p99 <= 1 ms; session key <= 512 bytes"

# --- figures (BENCH_PLOTS=DIR): SVGs of this run's raw results --------------------------------
if [[ -n "${BENCH_PLOTS:-}" ]]; then
    VENV=$ROOT/target/bench-venv
    if [[ ! -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then
        log "installing matplotlib into $VENV (scripts/bench-requirements.txt)"
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q -r scripts/bench-requirements.txt >&2
    fi
    "$VENV/bin/python" scripts/plot-bench.py "$TMP" "$BENCH_PLOTS" >&2
fi
