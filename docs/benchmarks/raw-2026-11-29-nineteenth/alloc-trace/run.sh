#!/usr/bin/env bash
# From the repository root: docs/benchmarks/raw-2026-11-29-nineteenth/alloc-trace/run.sh OUT [N]
# Starts the paired measurement's services (services.sh), then a second tracked demo-service on
# CPU 0 with trace.so preloaded (every allocation and free recorded), sends N requests (32
# connections, the bench's token) to /baseline/me and /me in turn, twice, after a warm-up, and
# replays the trace through replay.py with glibc's default cache (7) and with 64.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$1; N=${2:-4000}
mkdir -p "$OUT"
gcc -O2 -Wall -shared -fPIC -o /tmp/alloc-trace.so "$HERE/trace.c" -ldl
source docs/benchmarks/raw-2026-11-27-fifth/paired/services.sh
TP=$($BIN/loadgen free-port); TRACE=$TMP/trace.bin
env AUTH_JWKS_URL=$ISS/.well-known/jwks.json AUTH_ISSUER=$ISS AUTH_AUDIENCE=api REDIS_URL=redis://127.0.0.1:$RP \
    LISTEN_ADDR=127.0.0.1:$TP AUTH_REDIS_PREFIX=$PREFIX AUTH_REVOCATION=tracked RUST_LOG=warn \
    ${DEMO_ENV:-} LD_PRELOAD=/tmp/alloc-trace.so ALLOC_TRACE_FILE=$TRACE taskset -c 0 $BIN/demo-service > $TMP/traced.log 2>&1 &
PIDS+=($!)
for _ in $(seq 600); do curl -sf -o /dev/null http://127.0.0.1:$TP/healthz && break; sleep 0.1; done
count() { python3 -c 'import struct,sys; print(struct.unpack("<Q", open(sys.argv[1],"rb").read(8))[0])' "$TRACE"; }
send() { LOADGEN_TOKEN="$ACCESS_TOKEN" taskset -c 1 $BIN/loadgen http --url "http://127.0.0.1:$TP$1" -c 32 -n "$2" --warmup 0 >/dev/null; }
send /baseline/me 2000; send /me 2000
windows=()
for round in 1 2; do
    for path in /baseline/me /me; do
        a=$(count); send $path "$N"; b=$(count)
        windows+=("r$round${path//\//_}:$a:$b:$N")
    done
done
echo "windows: ${windows[*]}" | tee "$OUT/windows.txt"
for tc in 7 64; do
    python3 "$HERE/replay.py" "$TRACE" $tc "${windows[@]}" > "$OUT/replay-tcache-$tc.txt"
done
# The trace itself (tens of MB) only on request: KEEP_TRACE=1.
if [[ ${KEEP_TRACE:-} == 1 ]]; then
    cp "$TRACE" "$OUT/trace.bin" && truncate -s "$((64 + $(count) * 32))" "$OUT/trace.bin"
fi
echo done
