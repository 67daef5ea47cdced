# What scripts/bench.sh and scripts/bench-cluster.sh share; sourced, not run.
#
# The sourcing script sets BENCH_TAG (its log prefix) and BIN (the binaries' directory), then
# calls bench_binaries once its own checks are done and bench_tmp before it starts anything.

log() { printf '[%s] %s\n' "$BENCH_TAG" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Dies unless every named command is on the PATH.
require_tools() { # tool...
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || die "$tool not found"
    done
}

# Builds the release binaries unless BENCH_NO_BUILD=1 or BENCH_BIN is set, then checks that
# each is in BIN.
bench_binaries() {
    if [[ "${BENCH_NO_BUILD:-}" != 1 && -z "${BENCH_BIN:-}" ]]; then
        log "building release binaries (auth-center, demo-service, gateway, loadgen)"
        cargo build --release -p auth-center -p demo-service -p gateway -p loadgen >&2
    fi
    local b
    for b in auth-center demo-service gateway loadgen; do
        [[ -x $BIN/$b ]] || die "$BIN/$b missing (build it or unset BENCH_NO_BUILD)"
    done
}

# Makes the run's temporary directory (TMP, named after `name`) and the list of processes it
# starts (PIDS), and stops those on exit: SIGTERM, a bounded wait, then SIGKILL, our own PIDs
# only. TMP is kept with BENCH_KEEP=1 or when the run fails. Result numbering starts at 0.
bench_tmp() { # name
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    PIDS=()
    n=0
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}
bench_cleanup() {
    local status=$? pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ "${BENCH_KEEP:-}" == 1 || $status -ne 0 ]]; then
        log "logs and results kept in $TMP"
    else
        rm -rf "$TMP"
    fi
    exit $status
}

free_port() { "$BIN/loadgen" free-port; }

# Drops a process that has ended from PIDS, so that the clean-up never signals its number
# once the system has given it to another process.
forget_pid() { # pid
    local keep=() p
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# Waits up to 10 s for `url` to answer 2xx; dies naming `what` otherwise.
wait_http() { # url what
    for _ in $(seq 200); do
        curl -sf -o /dev/null "$1" && return 0
        sleep 0.05
    done
    die "$2 did not come up ($1); see $TMP"
}

# Result files: $TMP/NNN-<kind>.json, numbered in the order they are made (three digits, so
# that `loadgen table`, which pairs rounds in file order, reads them in that order). Moves on
# to the next number; RESULT is its path without the "-<kind>.json".
next_result() {
    n=$((n + 1))
    RESULT="$TMP/$(printf '%03d' "$n")"
}
