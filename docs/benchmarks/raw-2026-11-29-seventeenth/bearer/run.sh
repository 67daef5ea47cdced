#!/usr/bin/env bash
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../../../.."
[[ ! -s $here/rounds.txt ]] || { echo "$here/rounds.txt has rounds already: move it away first" >&2; exit 2; }
# ${BINS:-target}/bin-glibc: target/release's auth-center, loadgen and demo-service.
BIN=${BINS:-target}/bin-glibc BATCHES=${BATCHES:-6} ROUNDS=6 N=200000 PATHS="/baseline/me /baseline/me+bearer /me" docs/benchmarks/raw-2026-11-27-fifth/paired/batches.sh > $here/rounds.txt 2> $here/stderr.log
echo "done $?" >> $here/stderr.log
