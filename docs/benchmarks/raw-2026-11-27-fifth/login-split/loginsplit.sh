#!/usr/bin/env bash
# Where the CPU time of a login flood goes, by thread group: the auth-center's hashing threads,
# its async workers, its SQLite workers, the rest of it, Redis and the load generator; read
# from /proc/<pid>/task/*/schedstat (time on the CPU, ns) before and after one measured run of
# `loadgen login` (16 clients, closed loop), and the machine's /proc/stat for the total.
# Usage, from the repository root: CPUS=0 (or 0,1) docs/benchmarks/raw-2026-11-27-fifth/login-split/loginsplit.sh
# (Redis and loadgen on cpu 1, as in scripts/bench.sh)
set -euo pipefail
BIN=${BIN:-target/release}
CPUS=${CPUS:-0,1}
DUR=${DUR:-6}
T=$(mktemp -d /tmp/ls.XXXX)
trap 'kill $APID $RPID 2>/dev/null; wait 2>/dev/null; rm -rf $T' EXIT
RP=$($BIN/loadgen free-port); AP=$($BIN/loadgen free-port)
taskset -c 1 redis-server --port $RP --bind 127.0.0.1 --save "" --appendonly no --dir $T --logfile $T/redis.log &
RPID=$!
renice -n -20 -p $RPID >/dev/null 2>&1 || true
sleep 0.5
env DATABASE_URL=sqlite:$T/a.db REDIS_URL=redis://127.0.0.1:$RP LISTEN_ADDR=127.0.0.1:$AP AUTH_ISSUER=http://127.0.0.1:$AP \
  AUTH_REDIS_PREFIX=ls RUST_LOG=warn AUTH_LIMITS__LOGIN_IP_MAX=100000000 AUTH_LIMITS__REFRESH_IP_MAX=0 \
  AUTH_SESSIONS__MAX_PER_USER=100000 AUTH_LIMITS__REGISTER_IP_MAX=1000 \
  taskset -c $CPUS $BIN/auth-center serve > $T/auth.log 2>&1 &
APID=$!
for i in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:$AP/healthz && break; sleep 0.05; done
export LOADGEN_PASSWORD="bench-password-12345-long-enough"
taskset -c 1 $BIN/loadgen login --auth-url http://127.0.0.1:$AP --username lsuser --register -c 16 -d 2 --warmup 1 > /dev/null
snap() { # threads of the auth-center by group, then redis: "group ticks" lines
    for t in /proc/$APID/task/*; do
        c=$(cat $t/comm); ns=$(awk '{print $1}' $t/schedstat)
        case $c in argon2*) g=hashing;; tokio-rt-worker) g=async-workers;; sqlx-sqlite*) g=sqlite-workers;; *) g=auth-other;; esac
        echo "$g $ns"
        echo "$g-switches $(awk '/ctxt_switches/ {n += $2} END {print n}' $t/status)"
    done
    for t in /proc/$RPID/task/*; do echo "redis $(awk '{print $1}' $t/schedstat)"; done
    awk '/^cpu /{print "machine-busy", ($2 + $3 + $4 + $7 + $8 + $9) * 1e7; print "machine-idle", ($5 + $6) * 1e7; exit}' /proc/stat
}
snap > $T/before
/usr/bin/time -f "loadgen %U %S" -o $T/lgtime taskset -c 1 $BIN/loadgen login --auth-url http://127.0.0.1:$AP \
    --username lsuser -c 16 -d $DUR --warmup 0 --label split > $T/login.json
snap > $T/after
python3 - "$T" "$CPUS" <<'PY'
import json, sys, collections, os
t, cpus = sys.argv[1], sys.argv[2]
hz = os.sysconf("SC_CLK_TCK")
def load(f):
    d = collections.Counter()
    for line in open(f):
        g, v = line.split(); d[g] += int(v)
    return d
b, a = load(f"{t}/before"), load(f"{t}/after")
sw = {g[:-9]: a[g] - b[g] for g in a if g.endswith("-switches")}
d = {g: (a[g] - b[g]) / 1e9 for g in a if not g.endswith("-switches")}
u, s = open(f"{t}/lgtime").read().split()[1:3]
d["loadgen"] = float(u) + float(s)
r = json.load(open(f"{t}/login.json"))
n = r["ok"]
busy = d.pop("machine-busy"); idle = d.pop("machine-idle")
known = sum(v for g, v in d.items())
print(f"cpus {cpus}: {n} logins in {r['seconds']:.1f} s ({r['ok_per_s']:.1f}/s); machine busy {busy:.2f} s, idle {idle:.2f} s")
for g in ("hashing", "async-workers", "sqlite-workers", "auth-other", "redis", "loadgen"):
    extra = f"  {sw[g] / n:5.1f} context switches/login" if g in sw else ""
    print(f"  {g:15} {d.get(g, 0):6.2f} s  {d.get(g, 0) * 1000 / n:6.2f} ms/login  {d.get(g, 0) / busy:6.1%} of busy{extra}")
print(f"  {'unattributed':15} {busy - known:6.2f} s  {(busy - known) * 1000 / n:6.2f} ms/login  {(busy - known) / busy:6.1%} of busy (softirq, other processes)")
PY
# Raw hashing of the same slots right after, same CPUs, same measure (schedstat of its threads).
env DATABASE_URL=sqlite:$T/a.db REDIS_URL=redis://127.0.0.1:$RP AUTH_REDIS_PREFIX=ls RUST_LOG=warn \
  chrt --idle 0 taskset -c $CPUS $BIN/auth-center passwords capacity --seconds $DUR --json > $T/cap.json &
CP=$!
sleep 1
: > $T/capns
while kill -0 $CP 2>/dev/null; do
  for t in /proc/$CP/task/*; do [[ -e $t/comm ]] && echo "$(cat $t/comm 2>/dev/null) $(awk '{print $1}' $t/schedstat 2>/dev/null)"; done > $T/capns.tmp 2>/dev/null || true
  grep -q capacity $T/capns.tmp && cp $T/capns.tmp $T/capns
  sleep 0.2
done
python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
c = json.load(open(f"{t}/cap.json"))
ns = sum(int(l.split()[1]) for l in open(f"{t}/capns") if l.startswith("capacity") and len(l.split()) == 2)
print(f"  raw hashing right after: {c['hashes']} hashes, {c['ms_per_hash']:.2f} ms per hash by the clock, "
      f"{ns / 1e6 / c['hashes']:.2f} ms of CPU per hash (schedstat, last sample {ns / 1e9:.2f} s)")
PY
