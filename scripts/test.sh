#!/usr/bin/env bash
# The project's one test command.
#
# Builds the tests, starts private test services on free loopback ports -- one standalone Redis,
# a Redis Cluster of 3 masters with one replica each, one PostgreSQL server, and TLS servers
# with a throwaway CA (a TLS-only Redis, one demanding client certificates, a TLS-only Redis
# Cluster of 3 masters, a PostgreSQL over TLS only) -- through
# test-support's launcher (the `test-services` binary), runs the whole test suite against them
# and stops them again, whatever happens.
#
#   scripts/test.sh                               # everything
#   scripts/test.sh -p verifier                   # one package
#   scripts/test.sh -p auth-center login -- --nocapture
#
# Arguments go to `cargo test`. Runs `cargo test --workspace --all-targets "$@"`, then the doc
# tests (`cargo test --workspace --doc`, with the same package selection, test-name filter and
# `--`-arguments). With -p/--package the run is limited to those packages; with an explicit
# target selection (--lib, --test NAME, ...) or --no-run the doc tests are skipped, and so
# they are when none of the selected packages has doc tests (loadgen has no library).
#
# The tests find the services through the variables the launcher exports:
#   TEST_REDIS_URL           redis://127.0.0.1:<port>
#   TEST_REDIS_CLUSTER_URLS  redis://127.0.0.1:<p1>,redis://127.0.0.1:<p2>,redis://127.0.0.1:<p3>
#                            (the 3 masters; each has a replica)
#   TEST_DATABASE_URL        postgres://postgres@127.0.0.1:<port>/postgres  (superuser, trust auth)
#   TEST_PG_BINDIR           directory of initdb/pg_ctl/postgres/psql
#   TEST_REDIS_TLS_URL       rediss://127.0.0.1:<port>  (TLS only: --port 0 --tls-port; a client
#                            certificate is optional; `default` user without password, the
#                            tests create ACL users)
#   TEST_REDIS_MTLS_URL      rediss://127.0.0.1:<port>  (TLS only, client certificate required)
#   TEST_REDIS_TLS_CLUSTER_URLS  rediss://127.0.0.1:<p1>,...  (a TLS-only Redis Cluster of 3
#                            masters: clients, cluster bus and replication over TLS)
#   TEST_DATABASE_TLS_URL    postgres://postgres@127.0.0.1:<port>/postgres?sslmode=verify-full&sslrootcert=<CA>
#                            (ssl=on, pg_hba takes TCP connections over TLS only)
#   TEST_TLS_CA_FILE         the throwaway CA (rcgen, ECDSA P-256) that signed the servers'
#                            certificates (for 127.0.0.1 and localhost) and the client's
#   TEST_TLS_OTHER_CA_FILE   a CA that signed nothing here ("wrong CA" tests)
#   TEST_TLS_CLIENT_CERT_FILE, TEST_TLS_CLIENT_KEY_FILE   a client certificate and key (PEM)
# and, set up by this script (see setup_oauth_python below):
#   TEST_OAUTH_PYTHON        python of a virtualenv with tests/requirements.txt: Authlib,
#                            requests and PyJWT with cryptography (the OAuth e2e test, its DPoP
#                            proofs included; the native reference checker; the gateway test's
#                            Python application), the Grafana Foundation SDK (the dashboard
#                            generator deploy/grafana/dashboard.py, checked by the e2e tests),
#                            Schemathesis and openapi-spec-validator (the OpenAPI contract test),
#                            matplotlib (the benchmark report's figures, scripts/draw-report.sh),
#                            and Playwright (the hosted pages' browser test, see setup_browser)
#   TEST_CHROMIUM            Debian's chromium, which that browser test drives headless
#
# With the whole suite (no package or target selection) it also checks the deployment files
# offline first: scripts/check-deploy.sh (deploy/k8s against the Kubernetes schemas, the compose
# files with `docker-compose config`).
#
# Needs redis-server, redis-cli and the PostgreSQL server binaries, nginx for the gateway's
# e2e tests and prometheus (with promtool) for the monitoring ones; when they are missing and
# we are root they are installed with apt-get. Services already running on the machine (e.g. on
# 6379/5432) are never used or touched.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '[test.sh] %s\n' "$*" >&2; }
die() {
  say "ERROR: $*"
  exit 1
}

command -v cargo >/dev/null 2>&1 || die "cargo not found in PATH"

# Whether process $1 exists and is not a zombie.
alive() {
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# --- arguments -----------------------------------------------------------------------------------

cargo_args=() harness_args=() doc_args=() packages=()
select_packages=0 select_targets=0 all_targets=0 doc_only=0 no_run=0 own_message_format=0
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
    [ "$value_for" = doc ] || [ "$value_for" = package ] && doc_args+=("$arg")
    [ "$value_for" = package ] && packages+=("$arg")
    value_for=""
    continue
  fi
  case $arg in
    -p | --package)
      select_packages=1
      value_for=package
      doc_args+=("$arg")
      ;;
    -p* | --package=*)
      select_packages=1
      case $arg in
        --package=*) packages+=("${arg#--package=}") ;;
        -p=*) packages+=("${arg#-p=}") ;;
        *) packages+=("${arg#-p}") ;;
      esac
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
    --message-format | --message-format=*)
      own_message_format=1
      [ "$arg" = --message-format ] && value_for=doc
      doc_args+=("$arg")
      ;;
    --features | -F | --target | --profile | -j | --jobs | --manifest-path | --exclude | \
      --color | --config | -Z | --target-dir | --lockfile-path)
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

# --- build ---------------------------------------------------------------------------------------

# Prints the path of the test-services binary named in cargo's JSON messages on stdin.
launcher_path() { sed -n 's/.*"executable":"\([^"]*\/test-services\)".*/\1/p' | tail -n 1; }

# The tests are built first, in the invocation that runs them later. When that build includes
# test-support's launcher (it does for the whole workspace), it is taken from there: a separate
# `cargo build -p test-support` would build many dependencies a second time, with the features
# of that package alone.
LAUNCHER=
if [ "$doc_only" = 0 ] && [ "$own_message_format" = 0 ]; then
  build=(test "${workspace[@]}" "${targets[@]}" "${cargo_args[@]}" --no-run)
  say "building: cargo ${build[*]}"
  built=$(cargo "${build[@]}" --message-format=json-render-diagnostics) || die "the build failed"
  LAUNCHER=$(launcher_path <<<"$built")
fi
if [ -z "$LAUNCHER" ]; then
  say "building the test-service launcher"
  built=$(cargo build -p test-support --bin test-services --message-format=json-render-diagnostics) ||
    die "could not build the test-service launcher"
  LAUNCHER=$(launcher_path <<<"$built")
fi
[ -x "$LAUNCHER" ] || die "cargo named no test-services binary"

# --- binaries ------------------------------------------------------------------------------------

# `check` exits 3 when a binary (or, as root, the postgres user or runuser) is missing. It
# looks for nginx and Prometheus (with promtool) too: the gateway's e2e tests run a private
# nginx of their own, the monitoring e2e tests a private Prometheus (never the system's
# service, its configuration or its logs). Without them those tests are skipped with a
# warning, except in CI (CI=true), where that is an error.
check_rc=0
"$LAUNCHER" check || check_rc=$?
if [ "$check_rc" = 3 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "redis-server/redis-cli, the PostgreSQL server binaries, nginx or prometheus are missing; installing them"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    # Debian's prometheus has promtool; its own service is never used by the tests.
    apt-get install -y redis-server postgresql nginx prometheus
    "$LAUNCHER" check || die "still missing something after apt-get install (see above)"
  elif "$LAUNCHER" check --only redis,redis-cluster,postgres >/dev/null 2>&1; then
    [ "${CI:-}" = true ] && die "nginx or prometheus is missing (CI=true): install them (Debian/Ubuntu: sudo apt-get install nginx prometheus)"
    say "WARNING: nginx or prometheus is missing: the gateway's e2e tests behind nginx or the
  monitoring e2e tests (a real Prometheus, promtool) will be SKIPPED. Install them
  (Debian/Ubuntu: sudo apt-get install nginx prometheus); running this script as root installs them."
  else
    die "need redis-server, redis-cli and the PostgreSQL server binaries (initdb, pg_ctl, postgres, psql).
  Install them (Debian/Ubuntu: sudo apt-get install redis-server postgresql nginx prometheus), or point
  TEST_PG_BINDIR at the PostgreSQL bindir. Running this script as root installs them automatically."
  fi
elif [ "$check_rc" != 0 ]; then
  die "the test-service launcher failed (exit code $check_rc)"
fi

# --- the test services ---------------------------------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/auth-tests.XXXXXX")
LAUNCHER_PID=

# Stops the launcher, which stops every server it started; should it not exit within 60 s it is
# killed, and the watchdog of each server stops that server.
cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  set +e
  if [ -n "$LAUNCHER_PID" ]; then
    kill -TERM "$LAUNCHER_PID" 2>/dev/null
    for ((i = 0; i < 600; i++)); do
      alive "$LAUNCHER_PID" || break
      sleep 0.1
    done
    kill -KILL "$LAUNCHER_PID" 2>/dev/null
    wait "$LAUNCHER_PID" 2>/dev/null
  fi
  rm -rf "$WORK"
  say "stopped the test services (exit code $rc)"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The launcher stops the servers on SIGTERM, or by itself when this script dies (it watches its
# parent), so no server outlives the run.
"$LAUNCHER" --env-file "$WORK/env" </dev/null >/dev/null &
LAUNCHER_PID=$!
until [ -s "$WORK/env" ]; do
  if ! alive "$LAUNCHER_PID"; then
    wait "$LAUNCHER_PID" && rc=0 || rc=$?
    LAUNCHER_PID=
    die "the test services did not start (exit code $rc, see above)"
  fi
  sleep 0.1
done
# shellcheck source=/dev/null
. "$WORK/env"

# --- the Python OAuth client of the e2e tests ----------------------------------------------------

# tests/e2e/oauth_clients.rs drives the auth-center with an independent OAuth client library:
# Authlib, with requests and PyJWT (its crypto extra, `cryptography`, signs the DPoP proofs and
# checks RFC 9068 signatures), in a virtualenv under the cargo target directory (made once,
# then reused). TEST_OAUTH_PYTHON names its interpreter. tests/e2e/native.rs runs the reference
# checker of docs/native-revocation.md (PyJWT and cryptography) with it too, and
# tests/e2e/gateway.rs its echo application. Without Python and pip these tests are skipped,
# except in CI (CI=true), where that is an error. As root on Debian, a missing python3 or
# its venv module is installed with apt-get.
# The packages are pinned in tests/requirements.txt (with the Grafana Foundation SDK that
# deploy/grafana/dashboard.py uses, and Schemathesis and openapi-spec-validator, with which
# tests/e2e/contract.rs checks the OpenAPI document, and, through scripts/bench-requirements.txt,
# the matplotlib with which tests/e2e/report.rs draws the benchmark report's figures); the
# virtualenv is made again when either file changed.
PY_REQUIREMENTS=tests/requirements.txt
# What the virtualenv was made from: tests/requirements.txt and the file it includes.
requirements_stamp() { cat "$PY_REQUIREMENTS" scripts/bench-requirements.txt; }
setup_oauth_python() {
  local venv python
  venv="$(cargo_target_dir)/oauth-venv"
  python_ok() {
    "$1" -c 'import authlib, cryptography, joserfc, jwt, requests, grafana_foundation_sdk, schemathesis, openapi_spec_validator, matplotlib' >/dev/null 2>&1 &&
      cmp -s <(requirements_stamp) "$venv/requirements.txt"
  }
  if [ -x "$venv/bin/python" ] && python_ok "$venv/bin/python"; then
    export TEST_OAUTH_PYTHON="$venv/bin/python"
    say "python OAuth client TEST_OAUTH_PYTHON=$TEST_OAUTH_PYTHON (reused)"
    return 0
  fi
  python=$(command -v python3 || true)
  if { [ -z "$python" ] || ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; } &&
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "python3 or its venv module is missing; installing them"
    DEBIAN_FRONTEND=noninteractive apt-get install -y python3 python3-venv python3-pip >&2 ||
      { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y python3 python3-venv python3-pip >&2; } || true
    python=$(command -v python3 || true)
  fi
  rm -rf "$venv"
  if [ -n "$python" ] && "$python" -m venv "$venv" >&2 &&
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$PY_REQUIREMENTS" >&2 &&
    requirements_stamp > "$venv/requirements.txt" && python_ok "$venv/bin/python"; then
    export TEST_OAUTH_PYTHON="$venv/bin/python"
    say "python OAuth client TEST_OAUTH_PYTHON=$TEST_OAUTH_PYTHON ($("$venv/bin/python" -m pip list 2>/dev/null | grep -iE '^(authlib|pyjwt) ' | tr -s ' ' | paste -sd, -))"
    return 0
  fi
  [ "${CI:-}" = true ] && die "could not set up Python with $PY_REQUIREMENTS for the e2e tests (CI=true)"
  say "WARNING: no Python virtualenv with $PY_REQUIREMENTS: the OAuth client e2e test and the dashboard check will be skipped"
}

# The cargo target directory (CARGO_TARGET_DIR, or target/ here), absolute.
cargo_target_dir() {
  local dir=${CARGO_TARGET_DIR:-target}
  mkdir -p "$dir" && (cd "$dir" && pwd)
}

setup_oauth_python

# --- the browser of the hosted pages' e2e test -------------------------------------------------

# tests/e2e/browser.rs drives the hosted pages in Debian's Chromium, headless, with Playwright
# for Python (tests/e2e/browser.py), pinned, installed into the virtualenv above. Playwright
# never downloads a browser here: the script launches /usr/bin/chromium (TEST_CHROMIUM). As
# root on Debian a missing chromium is installed with apt-get, like nginx. Without Chromium or
# Playwright the test is skipped with a warning, except in CI (CI=true), where that is an error.
PLAYWRIGHT_PACKAGE="playwright==1.65.2"
setup_browser() {
  if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "chromium is missing; installing it"
    DEBIAN_FRONTEND=noninteractive apt-get install -y chromium >&2 ||
      { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium >&2; } || true
  fi
  if command -v chromium >/dev/null 2>&1; then
    TEST_CHROMIUM=$(command -v chromium)
    export TEST_CHROMIUM
  else
    [ "${CI:-}" = true ] && die "chromium is missing (CI=true): install it (Debian: sudo apt-get install chromium)"
    say "WARNING: chromium is missing: the hosted pages' browser test will be SKIPPED"
    return 0
  fi
  [ -n "${TEST_OAUTH_PYTHON:-}" ] || return 0 # setup_oauth_python warned (or died in CI)
  if "$TEST_OAUTH_PYTHON" -c 'import playwright.sync_api' >/dev/null 2>&1 ||
    "$TEST_OAUTH_PYTHON" -m pip install --quiet --disable-pip-version-check "$PLAYWRIGHT_PACKAGE" >&2; then
    say "browser test: $TEST_CHROMIUM with $("$TEST_OAUTH_PYTHON" -m pip list 2>/dev/null | grep -i '^playwright ' | tr -s ' ')"
    return 0
  fi
  [ "${CI:-}" = true ] && die "could not install $PLAYWRIGHT_PACKAGE for the browser test (CI=true)"
  say "WARNING: no Playwright: the hosted pages' browser test will be SKIPPED"
}

setup_browser

# --- the deployment files ------------------------------------------------------------------------

if [ "$select_packages" = 0 ] && [ "$select_targets" = 0 ] && [ "$no_run" = 0 ] && [ "$doc_only" = 0 ]; then
  scripts/check-deploy.sh || die "the deployment files do not validate"
fi

# --- cargo test ----------------------------------------------------------------------------------

run_cargo() {
  say "running: cargo $*"
  cargo "$@"
}
if [ "$doc_only" = 0 ]; then
  run_cargo test "${workspace[@]}" "${targets[@]}" "${cargo_args[@]}" "${harness_args[@]}"
fi
# Doc tests live in library targets: cargo refuses `--doc` for a package that has none (loadgen).
# Exit status 1 only when cargo's metadata says so; anything else runs the doc tests, so that
# a failure to tell is cargo's to report.
has_doc_tests() {
  local metadata
  metadata=$(cargo metadata --no-deps --format-version 1 2>/dev/null) || return 0
  python3 -c '
import json, sys
name = sys.argv[1]
try:
    packages = json.loads(sys.stdin.read())["packages"]
except Exception:
    sys.exit(0)
for p in packages:
    if p["name"] == name:
        sys.exit(0 if any(t.get("doctest") for t in p["targets"]) else 1)
sys.exit(0)  # not a workspace package: let cargo say so
' "$1" <<<"$metadata"
}
doc_tests=1
if [ "$select_packages" = 1 ] && [ "${#packages[@]}" -gt 0 ]; then
  doc_tests=0
  for package in "${packages[@]}"; do
    has_doc_tests "$package" && doc_tests=1
  done
  [ "$doc_tests" = 1 ] || say "no doc tests: ${packages[*]} has no library target"
fi
if [ "$select_targets" = 0 ] && [ "$no_run" = 0 ] && [ "$doc_tests" = 1 ]; then
  run_cargo test "${workspace[@]}" --doc "${doc_args[@]}" "${harness_args[@]}"
fi
