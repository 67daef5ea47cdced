#!/usr/bin/env bash
# BATCHES fresh sets of processes (Redis, auth-center, demo-service), ROUNDS paired rounds each
# (paired.sh); rounds are numbered batch*100 + round. Run from the repository root.
set -euo pipefail
here=$(dirname "$0")
for b in $(seq ${BATCHES:-10}); do
    ROUNDS=${ROUNDS:-6} "$here/paired.sh" | awk -v b=$b '{ $1 = b * 100 + $1; print }'
done
