#!/usr/bin/env bash
# Run from anywhere: rss.sh, or GLIBC_TUNABLES=glibc.malloc.tcache_count=64 rss.sh.
# The demo-service's resident set after 200 000 /me requests over 32 connections (and 500 connections), with the environment given.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../../.."
source docs/benchmarks/raw-2026-11-27-fifth/paired/services.sh
for c in 32 500; do
  LOADGEN_TOKEN="$ACCESS_TOKEN" taskset -c 1 $BIN/loadgen http --url http://127.0.0.1:$P/me -c $c -n 200000 --warmup 0 > /dev/null
  echo "${GLIBC_TUNABLES:-default} c=$c: $(grep -E 'VmRSS|VmHWM' /proc/$S/status | tr -s ' \t' ' ' | tr '\n' ' ')"
done
