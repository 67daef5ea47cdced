#!/usr/bin/env bash
# Raw Argon2 capacity (`auth-center passwords capacity`, 5 s) with and without glibc's
# transparent-huge-page tunable, 1 slot on CPU 0 and 2 slots on both, ROUNDS rounds, one line
# per measurement: "round arm slots {json}". The recorded capacity-thp.txt (ROUNDS=3) ran the
# plain arm first in every round; this script now swaps the arms' order every round.
#   ROUNDS=3 OUT=/tmp/thp.txt docs/benchmarks/raw-2026-11-29-seventeenth/capacity-thp.sh
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../../.."
out=${OUT:-$here/capacity-thp-new.txt}
[[ ! -s $out ]] || { echo "$out exists: set OUT" >&2; exit 2; }
arms=(plain thp)
for r in $(seq "${ROUNDS:-4}"); do
    for arm in "${arms[@]}"; do
        for slots in 1 2; do
            cpus=0; [[ $slots == 2 ]] && cpus=0,1
            envs=(AUTH_PASSWORDS__MAX_CONCURRENT_HASHES=$slots)
            [[ $arm == thp ]] && envs+=(GLIBC_TUNABLES=glibc.malloc.hugetlb=1)
            res=$(env "${envs[@]}" taskset -c $cpus target/release/auth-center passwords capacity --seconds 5 --json)
            echo "$r $arm $slots $res" >>"$out"
        done
    done
    arms=("${arms[1]}" "${arms[0]}")
done
