#!/usr/bin/env bash
# A login flood's CPU by thread group (../../raw-2026-11-27-fifth/login-split/loginsplit.sh) for
# two auth-center binaries in alternating runs (2 cores unless CPUS says otherwise): BEFORE (three SQL statements per
# login: the user, the re-read, the audit row) and AFTER (two: the user, then the audit row
# whose condition is the re-read). Build each binary at its commit and copy it into a directory
# of its own beside a link to target/release/loadgen, then, from the repository root:
#   BEFORE=/tmp/bin-before AFTER=/tmp/bin-after ROUNDS=4 docs/benchmarks/raw-2026-11-27-sixth/login-ab/ab.sh
# ab.txt: 2 cores, ROUNDS=4; ab-1core.txt: CPUS=0, ROUNDS=3. BEFORE was da9e7f5; AFTER was
# 75d0dbb's login built before its two audit inserts shared their SQL text (the same statements).
set -euo pipefail
for i in $(seq "${ROUNDS:-4}"); do
    for v in before after; do
        dir=BEFORE; [[ $v == after ]] && dir=AFTER
        echo "== $v $i"
        BIN=${!dir} CPUS=${CPUS:-0,1} bash docs/benchmarks/raw-2026-11-27-fifth/login-split/loginsplit.sh 2>&1
    done
done
