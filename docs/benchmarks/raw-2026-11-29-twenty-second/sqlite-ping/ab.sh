#!/usr/bin/env bash
# A/B of two auth-center builds by split.sh: PAIRS alternating (old first, then new first...)
out=$1; pairs=${2:-6}
for p in $(seq $pairs); do
  if (( p % 2 )); then order="old new"; else order="new old"; fi
  for arm in $order; do
    if [[ $arm == old ]]; then b=/tmp/bin-old; else b=/work/main/target/release; fi
    BIN=$b ROUNDS=1 /tmp/split.sh $out/$arm-$p ${CPUS:-0} 10 >> $out/log.txt 2>&1
  done
done
