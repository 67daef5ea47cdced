#!/usr/bin/env bash
# From the repository root: gdb-sites.sh PATH NAME. Starts the paired measurement's services,
# warms the demo-service up (200 requests to each path), attaches gdb with a breakpoint on
# malloc that prints a backtrace and goes on, sends two requests to PATH with curl, and leaves
# gdb's output in /tmp/gdb-NAME.txt; `stacks.py /tmp/gdb-NAME.txt` keeps the request path's
# allocations (those under hyper), one line each. gdb's stops slow everything down, so this
# says where allocations come from, not what they cost.
set -euo pipefail
source docs/benchmarks/raw-2026-11-27-fifth/paired/services.sh
# warm up
for p in /baseline/me /me; do LOADGEN_TOKEN="$ACCESS_TOKEN" taskset -c 1 $BIN/loadgen http --url "http://127.0.0.1:$P$p" -c 2 -n 200 --warmup 0 >/dev/null; done
cat > $TMP/cmds <<G
set pagination off
set print demangle on
set print asm-demangle on
break malloc
commands
silent
printf "=== malloc(%d)\n", \$rdi
bt 14
continue
end
continue
G
gdb -p $S -batch -x $TMP/cmds > /tmp/gdb-$2.txt 2>&1 &
G=$!
sleep 4
for i in 1 2; do curl -s -o /dev/null -H "Authorization: Bearer $ACCESS_TOKEN" http://127.0.0.1:$P$1; done
sleep 3
kill -INT $G 2>/dev/null || true; sleep 1; kill $G 2>/dev/null || true
