#!/usr/bin/env bash
# callgrind instructions per request of the bench's paths, one bench run per arm, in order: `default`
# (glibc's settings) or a number N (GLIBC_TUNABLES=glibc.malloc.tcache_count=N). Results in
# OUT/<n>-<arm>.log (OUT defaults to a new temporary directory). Run from anywhere:
#   run.sh default 64 200 default 200   (as recorded here)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$(mktemp -d /tmp/cg.XXXX)}
cd "$here/../../../.."; mkdir -p "$OUT"
n=0
for arm in "$@"; do
  n=$((n+1))
  case $arm in default) tun=;; *) tun=glibc.malloc.tcache_count=$arm;; esac
  env ${tun:+GLIBC_TUNABLES=$tun} BENCH_NO_BUILD=1 BENCH_AUTH=0 BENCH_ROUNDS=1 BENCH_DURATION=2 BENCH_WARMUP=1 BENCH_TRIALS=10 BENCH_CALLGRIND=20000 scripts/bench.sh > "$OUT/$n-$arm.log" 2>&1
done
echo "results in $OUT"
