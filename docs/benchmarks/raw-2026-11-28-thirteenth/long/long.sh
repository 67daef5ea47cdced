#!/bin/bash
set -euo pipefail
# Run from the repository root after a release build; BIN overrides the binaries.
B=${BIN:-target/release}
HERE=$(dirname "$0")
T=$(mktemp -d "${TMPDIR:-/tmp}/long.XXXXXX"); mkdir -p $T
RP=$($B/loadgen free-port)
taskset -c 1 nice -n -20 redis-server --port $RP --bind 127.0.0.1 --save "" --appendonly no --dir $T --logfile $T/redis.log --latency-monitor-threshold 1 &
RPID=$!
sleep 0.5
P=$($B/loadgen free-port)
env DATABASE_URL="sqlite:$T/auth.db" REDIS_URL=redis://127.0.0.1:$RP LISTEN_ADDR=127.0.0.1:$P AUTH_ISSUER=http://127.0.0.1:$P AUTH_REDIS_PREFIX=x RUST_LOG=warn,auth_center::domain::selftest=debug AUTH_LIMITS__LOGIN_IP_MAX=100000000 AUTH_LIMITS__REFRESH_IP_MAX=0 AUTH_SESSIONS__MAX_PER_USER=100000 AUTH_LIMITS__REGISTER_IP_MAX=1000 ${EXTRA:-} taskset -c 0 nice -n ${ANICE:-0} $B/auth-center serve > $T/auth.log 2>&1 &
APID=$!
trap 'kill $APID $RPID 2>/dev/null' EXIT
for i in $(seq 100); do curl -sf http://127.0.0.1:$P/healthz >/dev/null && break; sleep 0.1; done
date +%s.%N > $T/auth-start
export LOADGEN_PASSWORD=correct-horse-battery-staple-42
LG="taskset -c 1 nice -n ${LNICE:-0} $B/loadgen"
ACCT="--auth-url http://127.0.0.1:$P --username expuser --register"
if [[ -n ${PERFSECS:-} ]]; then perf sched record -a -o $T/perf.data -- sleep ${PERFSECS:-40} > $T/perf.log 2>&1 & PPID2=$!; else PPID2=; fi
$LG refresh $ACCT --sessions 400 --rate ${RATE:-2500} -d ${DUR:-30} --warmup 1 --watch-cpus 0,1 --server-pid $APID --label "refresh long" > $T/r.json
[[ -z $PPID2 ]] || wait $PPID2 || true; python3 "$HERE/show.py" $T/r.json
redis-cli -p $RP latency history command > $T/lat-command.txt
redis-cli -p $RP latency history fast-command > $T/lat-fast.txt
python3 - $T <<'PY'
import json,sys
T=sys.argv[1]
d=json.load(open(T+"/r.json"))
w=d["window_start_unix_ms"]/1000
start=float(open(T+"/auth-start").read())
print("window starts %.3f s after the auth-center" % (w-start))
sl=d["slowest_us_per_100ms"]
for i,x in enumerate(sl):
    if x>5000: print("slow slice %3d at %.1f s since auth start: %.1f ms" % (i, w-start+i/10, x/1000))
prev=None
for line in []:
    t,a_min,a_maj,r_min,r_maj=line.split(); t=float(t)
    cur=(int(a_min),int(a_maj),int(r_min),int(r_maj))
    if prev and (cur[1]!=prev[1] or cur[3]!=prev[3] or cur[0]-prev[0]>50):
        print("faults at %.1f s: auth minor +%d major +%d, redis minor +%d major +%d" % (t-start, cur[0]-prev[0], cur[1]-prev[1], cur[2]-prev[2], cur[3]-prev[3]))
    prev=cur
for s in d["machine_stalls"]["list"]:
    if s[2]>=4000: print("stall cpu%d at %.1f s: %.1f ms" % (s[0], w-start+s[1]/1000, s[2]/1000))
PY
grep -i "self-test\|selftest" $T/auth.log | head -5
echo $T
