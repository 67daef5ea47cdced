#!/usr/bin/env bash
# The project's one test command.
#
# Starts private test services on free loopback ports -- one standalone Redis, a Redis Cluster of
# 3 masters with one replica each and one PostgreSQL server -- each keeping its files (logs
# included) in a private work directory, then runs the whole test suite against them and stops
# them again, whatever happens.
#
#   scripts/test.sh                               # everything
#   scripts/test.sh -p verifier                   # one package
#   scripts/test.sh -p auth-center login -- --nocapture
#
# Arguments go to `cargo test`. Runs `cargo test --workspace --all-targets "$@"`, then the doc
# tests (`cargo test --workspace --doc`, with the same package selection, test-name filter and
# `--`-arguments). With -p/--package the run is limited to those packages; with an explicit
# target selection (--lib, --test NAME, ...) or --no-run the doc tests are skipped.
#
# The tests find the services through:
#   TEST_REDIS_URL           redis://127.0.0.1:<port>
#   TEST_REDIS_CLUSTER_URLS  redis://127.0.0.1:<p1>,redis://127.0.0.1:<p2>,redis://127.0.0.1:<p3>
#                            (the 3 masters; each has a replica)
#   TEST_DATABASE_URL        postgres://postgres@127.0.0.1:<port>/postgres  (superuser, trust auth)
#   TEST_PG_BINDIR           directory of initdb/pg_ctl/postgres/psql
#   TEST_OAUTH_PYTHON        python of a virtualenv with Authlib, requests and PyJWT (the OAuth
#                            e2e test; see setup_oauth_python below)
#
# Needs redis-server, redis-cli and the PostgreSQL server binaries; when they are missing and we
# are root they are installed with apt-get. Services already running on the machine (e.g. on
# 6379/5432) are never used or touched.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '[test.sh] %s\n' "$*" >&2; }
die() {
  say "ERROR: $*"
  exit 1
}

IS_ROOT=0
[ "$(id -u)" = 0 ] && IS_ROOT=1

command -v cargo >/dev/null 2>&1 || die "cargo not found in PATH"

# --- binaries ------------------------------------------------------------------------------------

has_pg_bins() {
  local dir=$1 bin
  [ -n "$dir" ] || return 1
  for bin in initdb pg_ctl postgres psql; do
    [ -x "$dir/$bin" ] || return 1
  done
}

find_pg_bindir() {
  local dir
  if [ -n "${TEST_PG_BINDIR:-}" ]; then
    has_pg_bins "$TEST_PG_BINDIR" && { printf '%s\n' "$TEST_PG_BINDIR"; return 0; }
    say "TEST_PG_BINDIR=$TEST_PG_BINDIR lacks initdb/pg_ctl/postgres/psql, ignoring it"
  fi
  if command -v pg_config >/dev/null 2>&1; then
    dir=$(pg_config --bindir 2>/dev/null || true)
    has_pg_bins "$dir" && { printf '%s\n' "$dir"; return 0; }
  fi
  while IFS= read -r dir; do
    has_pg_bins "$dir" && { printf '%s\n' "$dir"; return 0; }
  done < <(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin 2>/dev/null | sort -V -r)
  dir=$(command -v initdb 2>/dev/null || true)
  [ -n "$dir" ] && dir=$(dirname "$dir") && has_pg_bins "$dir" && { printf '%s\n' "$dir"; return 0; }
  return 1
}

have_binaries() {
  command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 &&
    PG_BINDIR=$(find_pg_bindir)
}

PG_BINDIR=
if ! have_binaries; then
  if [ "$IS_ROOT" = 1 ] && command -v apt-get >/dev/null 2>&1; then
    say "redis-server/redis-cli or the PostgreSQL server binaries are missing; installing them"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y redis-server postgresql
    have_binaries || die "still missing redis-server, redis-cli or the PostgreSQL binaries after apt-get install"
  else
    die "need redis-server, redis-cli and the PostgreSQL server binaries (initdb, pg_ctl, postgres, psql).
  Install them (Debian/Ubuntu: sudo apt-get install redis-server postgresql), or point TEST_PG_BINDIR
  at the PostgreSQL bindir. Running this script as root installs them automatically."
  fi
fi

if [ "$IS_ROOT" = 1 ]; then
  id postgres >/dev/null 2>&1 ||
    die "running as root, but PostgreSQL refuses to run as root and there is no 'postgres' user"
  command -v runuser >/dev/null 2>&1 || die "running as root, but 'runuser' (util-linux) is missing"
fi

# Runs a PostgreSQL binary (as the postgres user when we are root), from the Postgres directory.
pg_as() {
  if [ "$IS_ROOT" = 1 ]; then
    (cd "$PG_DIR" && runuser -u postgres -- "$@")
  else
    (cd "$PG_DIR" && "$@")
  fi
}

# --- work dir, cleanup, watchdog -----------------------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/auth-tests.XXXXXX")
PG_DIR="$WORK/postgres"
PG_DATA="$PG_DIR/data"
PG_STARTED=0
REDIS_PIDS=()

# Whether process $1 exists and is not a zombie.
alive() {
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

cleanup() {
  local rc=$? pid i
  trap - EXIT INT TERM
  set +e
  if [ "$PG_STARTED" = 1 ]; then
    if ! pg_as "$PG_BINDIR/pg_ctl" -D "$PG_DATA" -m fast -w -t 30 stop >/dev/null 2>&1; then
      pid=$(head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null)
      [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
    fi
  fi
  for pid in "${REDIS_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null
  done
  for pid in "${REDIS_PIDS[@]}"; do
    for ((i = 0; i < 50; i++)); do
      alive "$pid" || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  rm -rf "$WORK"
  say "stopped the test services (exit code $rc)"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
: >"$WORK/pids" # "redis <pid>" / "pg" lines, for the watchdog

# If this script dies without running its trap (SIGKILL), a detached watchdog stops what it
# started: only processes whose working directory is inside $WORK. After a normal cleanup $WORK
# is gone and the watchdog just exits.
WATCHDOG='
trap "" INT HUP TERM
main=$1 work=$2
while kill -0 "$main" 2>/dev/null && [ -d "$work" ]; do sleep 1; done
[ -f "$work/pids" ] || exit 0
real=$(cd "$work" && pwd -P) || exit 0
owned() {
  local cwd
  cwd=$(readlink "/proc/$1/cwd" 2>/dev/null) || return 1
  case $cwd in "$real"/*) return 0 ;; esac
  return 1
}
while read -r kind pid; do
  case $kind in
    redis) owned "$pid" && kill -KILL "$pid" ;;
    pg)
      pid=$(head -n 1 "$work/postgres/data/postmaster.pid" 2>/dev/null) || continue
      owned "$pid" || continue
      kill -QUIT "$pid"
      for i in 1 2 3 4 5 6 7 8 9 10; do owned "$pid" || break; sleep 0.5; done
      owned "$pid" && kill -KILL "$pid"
      ;;
  esac
done <"$work/pids"
rm -rf "$work"
'
SETSID=()
command -v setsid >/dev/null 2>&1 && SETSID=(setsid)
"${SETSID[@]}" bash -c "$WATCHDOG" test.sh-watchdog "$$" "$WORK" </dev/null >/dev/null 2>&1 &

# --- ports ---------------------------------------------------------------------------------------

# Random ports from 20000 up to below the kernel's ephemeral range (outgoing connections use
# those) and never above 55535 (the Redis Cluster bus listens on port + 10000).
PORT_MIN=20000
PORT_MAX=55535
if read -r eph_low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null &&
  [ $((eph_low - 1)) -lt "$PORT_MAX" ] && [ $((eph_low - 1)) -ge $((PORT_MIN + 1000)) ]; then
  PORT_MAX=$((eph_low - 1))
fi
USED_PORTS=" "

# Whether something accepts connections on 127.0.0.1:$1.
port_busy() { (: <>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pick_port [with_bus]: prints a port that is free now (and port + 10000 too, with with_bus=1).
pick_port() {
  local with_bus=${1:-0} port i
  for ((i = 0; i < 500; i++)); do
    port=$((PORT_MIN + (RANDOM * 32768 + RANDOM) % (PORT_MAX - PORT_MIN + 1)))
    case $USED_PORTS in *" $port "* | *" $((port + 10000)) "*) continue ;; esac
    port_busy "$port" && continue
    [ "$with_bus" = 1 ] && port_busy $((port + 10000)) && continue
    printf '%s\n' "$port"
    return 0
  done
  return 1
}

# --- redis ---------------------------------------------------------------------------------------

# start_redis DIR CLUSTER(0|1): starts redis-server in DIR on a free port, retrying with another
# port if it could not bind; sets REDIS_PORT.
start_redis() {
  local dir=$1 cluster=$2 attempt port pid i extra=()
  mkdir -p "$dir"
  # The same settings as test-support's ClusterOptions::WITH_REPLICAS.
  [ "$cluster" = 1 ] && extra=(--cluster-enabled yes --cluster-config-file "$dir/nodes.conf"
    --cluster-node-timeout 5000 --cluster-replica-validity-factor 0 --repl-diskless-sync-delay 0
    --shutdown-timeout 0)
  for ((attempt = 1; attempt <= 6; attempt++)); do
    port=$(pick_port "$cluster") || die "no free port for redis-server"
    USED_PORTS+="$port $((port + 10000)) "
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
      --dir "$dir" --logfile "$dir/redis.log" --pidfile "$dir/redis-server.pid" "${extra[@]}" \
      </dev/null >/dev/null 2>&1 &
    pid=$!
    REDIS_PIDS+=("$pid")
    echo "redis $pid" >>"$WORK/pids"
    for ((i = 0; i < 400; i++)); do # 20 s
      if [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]; then
        REDIS_PORT=$port
        return 0
      fi
      alive "$pid" || break
      sleep 0.05
    done
    if ! alive "$pid" && grep -q 'Address already in use' "$dir/redis.log" 2>/dev/null; then
      say "port $port was taken meanwhile, retrying with another one"
      rm -f "$dir/redis.log" "$dir/nodes.conf"
      continue
    fi
    kill -KILL "$pid" 2>/dev/null || true
    tail -n 30 "$dir/redis.log" >&2 2>/dev/null || true
    die "redis-server on port $port did not answer PING (log above: $dir/redis.log)"
  done
  die "could not start redis-server: every port tried was taken"
}

start_redis "$WORK/redis" 0
REDIS_URL="redis://127.0.0.1:$REDIS_PORT"

# 3 masters and 3 replicas; redis-cli decides which node replicates which master.
CLUSTER_PORTS=()
for n in 0 1 2 3 4 5; do
  start_redis "$WORK/cluster/node-$n" 1
  CLUSTER_PORTS+=("$REDIS_PORT")
done
cluster_args=()
for port in "${CLUSTER_PORTS[@]}"; do cluster_args+=("127.0.0.1:$port"); done
if ! timeout 60 redis-cli --cluster create "${cluster_args[@]}" --cluster-replicas 1 --cluster-yes \
  </dev/null >"$WORK/cluster/create.log" 2>&1; then
  cat "$WORK/cluster/create.log" >&2
  die "redis-cli --cluster create failed"
fi
# Every node: the cluster is ok, it knows all 6 nodes and 3 replicas, and a replica's link to its
# master is up.
for port in "${CLUSTER_PORTS[@]}"; do
  for ((i = 0; ; i++)); do
    info=$(redis-cli -h 127.0.0.1 -p "$port" cluster info 2>/dev/null | tr -d '\r' || true)
    nodes=$(redis-cli -h 127.0.0.1 -p "$port" cluster nodes 2>/dev/null || true)
    replication=$(redis-cli -h 127.0.0.1 -p "$port" info replication 2>/dev/null | tr -d '\r' || true)
    if grep -qx 'cluster_state:ok' <<<"$info" && grep -qx 'cluster_known_nodes:6' <<<"$info" &&
      [ "$(awk '$3 ~ /slave/ && $3 !~ /fail/' <<<"$nodes" | wc -l)" = 3 ] &&
      { grep -qx 'role:master' <<<"$replication" || grep -qx 'master_link_status:up' <<<"$replication"; }; then
      break
    fi
    if ((i >= 600)); then # 30 s
      printf '%s\n%s\n%s\n' "$info" "$nodes" "$replication" >&2
      die "cluster node on port $port did not reach cluster_state:ok with its replicas linked"
    fi
    sleep 0.05
  done
done
# The seed URLs are the masters.
MASTER_PORTS=$(redis-cli -h 127.0.0.1 -p "${CLUSTER_PORTS[0]}" cluster nodes |
  awk '$3 ~ /master/ { split($2, a, "@"); n = split(a[1], b, ":"); print b[n] }' | sort -n)
CLUSTER_URLS=$(printf 'redis://127.0.0.1:%s,' $MASTER_PORTS)
CLUSTER_URLS=${CLUSTER_URLS%,}
[ "$(tr ',' '\n' <<<"$CLUSTER_URLS" | wc -l)" = 3 ] || die "expected 3 cluster masters, got $CLUSTER_URLS"

# --- postgres ------------------------------------------------------------------------------------

mkdir -p "$PG_DIR"
if [ "$IS_ROOT" = 1 ]; then
  chmod 755 "$WORK"
  chown postgres:postgres "$PG_DIR"
  runuser -u postgres -- test -w "$PG_DIR" ||
    die "the postgres user cannot write to $PG_DIR; point TMPDIR at a directory it can traverse"
fi
if ! pg_as "$PG_BINDIR/initdb" -D "$PG_DATA" -U postgres -A trust -E UTF8 --no-locale --no-sync \
  >"$WORK/initdb.log" 2>&1; then
  cat "$WORK/initdb.log" >&2
  die "initdb failed"
fi
cat >>"$PG_DATA/postgresql.conf" <<EOF

# scripts/test.sh
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_DIR'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 300
EOF
echo "pg" >>"$WORK/pids"
for ((attempt = 1; ; attempt++)); do
  PG_PORT=$(pick_port 0) || die "no free port for postgres"
  USED_PORTS+="$PG_PORT "
  PG_STARTED=1
  if pg_as "$PG_BINDIR/pg_ctl" -D "$PG_DATA" -l "$PG_DIR/postgres.log" -o "-p $PG_PORT" \
    -w -t 30 start >"$WORK/pg_ctl.log" 2>&1; then
    break
  fi
  pg_as "$PG_BINDIR/pg_ctl" -D "$PG_DATA" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
  PG_STARTED=0
  if ((attempt < 6)) && grep -q 'Address already in use' "$PG_DIR/postgres.log" 2>/dev/null; then
    say "port $PG_PORT was taken meanwhile, retrying with another one"
    : >"$PG_DIR/postgres.log"
    continue
  fi
  cat "$WORK/pg_ctl.log" >&2
  tail -n 30 "$PG_DIR/postgres.log" >&2 2>/dev/null || true
  die "could not start postgres"
done
DATABASE_ADMIN_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
"$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -d "$DATABASE_ADMIN_URL" -c 'select 1' >/dev/null ||
  die "postgres on port $PG_PORT does not answer queries"
PG_VERSION=$("$PG_BINDIR/postgres" --version)

export TEST_REDIS_URL="$REDIS_URL"
export TEST_REDIS_CLUSTER_URLS="$CLUSTER_URLS"
export TEST_DATABASE_URL="$DATABASE_ADMIN_URL"
export TEST_PG_BINDIR="$PG_BINDIR"

say "test services up after ${SECONDS}s (work dir $WORK):"
say "  redis standalone  TEST_REDIS_URL=$TEST_REDIS_URL"
say "  redis cluster     TEST_REDIS_CLUSTER_URLS=$TEST_REDIS_CLUSTER_URLS (3 masters, 3 replicas)"
say "  postgres          TEST_DATABASE_URL=$TEST_DATABASE_URL ($PG_VERSION$([ "$IS_ROOT" = 1 ] && echo ', as user postgres'))"

# --- the Python OAuth client of the e2e tests ----------------------------------------------------

# tests/e2e/oauth_clients.rs drives the auth-center with an independent OAuth client library:
# Authlib, with requests and PyJWT, in a virtualenv under the cargo target directory (made once,
# then reused). TEST_OAUTH_PYTHON names its interpreter. Without Python and pip the test is
# skipped, except in CI (CI=true), where that is an error. As root on Debian, a missing python3 or
# its venv module is installed with apt-get.
OAUTH_PY_PACKAGES=("Authlib>=1.6,<2" "requests>=2.31,<3" "PyJWT[crypto]>=2.8,<3")
setup_oauth_python() {
  local venv python
  venv="$(cargo_target_dir)/oauth-venv"
  python_ok() { "$1" -c 'import authlib, joserfc, jwt, requests' >/dev/null 2>&1; }
  if [ -x "$venv/bin/python" ] && python_ok "$venv/bin/python"; then
    export TEST_OAUTH_PYTHON="$venv/bin/python"
    say "  python OAuth client TEST_OAUTH_PYTHON=$TEST_OAUTH_PYTHON (reused)"
    return 0
  fi
  python=$(command -v python3 || true)
  if { [ -z "$python" ] || ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; } &&
    [ "$IS_ROOT" = 1 ] && command -v apt-get >/dev/null 2>&1; then
    say "python3 or its venv module is missing; installing them"
    DEBIAN_FRONTEND=noninteractive apt-get install -y python3 python3-venv python3-pip >&2 ||
      { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y python3 python3-venv python3-pip >&2; } || true
    python=$(command -v python3 || true)
  fi
  rm -rf "$venv"
  if [ -n "$python" ] && "$python" -m venv "$venv" >&2 &&
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${OAUTH_PY_PACKAGES[@]}" >&2 &&
    python_ok "$venv/bin/python"; then
    export TEST_OAUTH_PYTHON="$venv/bin/python"
    say "  python OAuth client TEST_OAUTH_PYTHON=$TEST_OAUTH_PYTHON ($("$venv/bin/python" -m pip list 2>/dev/null | grep -iE '^(authlib|pyjwt) ' | tr -s ' ' | paste -sd, -))"
    return 0
  fi
  [ "${CI:-}" = true ] && die "could not set up Python with ${OAUTH_PY_PACKAGES[*]} for the OAuth e2e test (CI=true)"
  say "WARNING: no Python virtualenv with Authlib: the OAuth client e2e test will be skipped"
}

# The cargo target directory (CARGO_TARGET_DIR, or target/ here), absolute.
cargo_target_dir() {
  local dir=${CARGO_TARGET_DIR:-target}
  mkdir -p "$dir" && (cd "$dir" && pwd)
}

setup_oauth_python

# --- cargo test ----------------------------------------------------------------------------------

cargo_args=() harness_args=() doc_args=()
select_packages=0 select_targets=0 all_targets=0 doc_only=0 no_run=0
after_dashdash=0 value_for=""
for arg in "$@"; do
  if [ "$after_dashdash" = 1 ]; then
    harness_args+=("$arg")
    continue
  fi
  if [ "$arg" = -- ] && [ -z "$value_for" ]; then
    after_dashdash=1
    continue
  fi
  cargo_args+=("$arg")
  if [ -n "$value_for" ]; then # the value of the previous option
    [ "$value_for" = doc ] && doc_args+=("$arg")
    value_for=""
    continue
  fi
  case $arg in
    -p | --package)
      select_packages=1
      value_for=doc
      doc_args+=("$arg")
      ;;
    -p* | --package=*)
      select_packages=1
      doc_args+=("$arg")
      ;;
    --all-targets) all_targets=1 ;;
    --doc) doc_only=1 ;;
    --lib | --bins | --examples | --tests | --benches | --bin=* | --example=* | --test=* | --bench=*)
      select_targets=1
      ;;
    --bin | --example | --test | --bench)
      select_targets=1
      value_for=skip
      ;;
    --no-run) no_run=1 ;;
    --features | -F | --target | --profile | -j | --jobs | --manifest-path | --exclude | \
      --color | --message-format | --config | -Z | --target-dir | --lockfile-path)
      value_for=doc
      doc_args+=("$arg")
      ;;
    *) doc_args+=("$arg") ;;
  esac
done

workspace=(--workspace)
[ "$select_packages" = 1 ] && workspace=() # cargo ignores -p next to --workspace
targets=()
[ "$select_targets" = 0 ] && [ "$all_targets" = 0 ] && targets=(--all-targets)
[ "${#harness_args[@]}" -gt 0 ] && harness_args=(-- "${harness_args[@]}")

run_cargo() {
  say "running: cargo $*"
  cargo "$@"
}
if [ "$doc_only" = 0 ]; then
  run_cargo test "${workspace[@]}" "${targets[@]}" "${cargo_args[@]}" "${harness_args[@]}"
fi
if [ "$select_targets" = 0 ] && [ "$no_run" = 0 ]; then
  run_cargo test "${workspace[@]}" --doc "${doc_args[@]}" "${harness_args[@]}"
fi
