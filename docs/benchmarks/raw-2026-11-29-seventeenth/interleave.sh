#!/usr/bin/env bash
# Fresh process sets of paired.sh (PATHS=/baseline/me /me, ROUNDS=6 rounds of N=200 000 requests), one
# per arm and batch, the arms' order reversed every batch; each arm's rounds go to DIR/ARM.txt,
# numbered batch*100 + round. Run from anywhere:
#   BATCHES=8 interleave.sh groups shared:DEMO_GROUP=shared own:DEMO_GROUP=own
#   BATCHES=8 interleave.sh alloc glibc:BIN=target/bin-glibc mi:BIN=target/bin-mi
# (bin-glibc: target/release's auth-center, loadgen and demo-service; bin-mi: the same with the
# demo-service of `cargo build --release -p demo-service --features mimalloc`.)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$here/$1; shift
mkdir -p "$out"
for arm in "$@"; do
    [[ ! -s $out/${arm%%:*}.txt ]] || { echo "$out/${arm%%:*}.txt has rounds already: choose another directory" >&2; exit 2; }
done
cd "$here/../../.."
paired=docs/benchmarks/raw-2026-11-27-fifth/paired/paired.sh
arms=("$@")
for b in $(seq "${BATCHES:-8}"); do
    for arm in "${arms[@]}"; do
        name=${arm%%:*}
        env "${arm#*:}" ROUNDS="${ROUNDS:-6}" N="${N:-200000}" PATHS="/baseline/me /me" $paired 2>>"$out/stderr.log" |
            awk -v b="$b" '{ $1 = b * 100 + $1; print }' >>"$out/$name.txt"
        echo "$(date +%T) batch $b $name: paired.sh exit ${PIPESTATUS[0]}" >>"$out/progress.log"
    done
    arms=($(printf '%s\n' "${arms[@]}" | tac))
done
