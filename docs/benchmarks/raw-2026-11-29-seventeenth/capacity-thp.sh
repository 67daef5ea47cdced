#!/usr/bin/env bash
# Raw argon2 capacity with and without glibc's THP tunable, alternating, 1 slot on cpu 0 and 2 slots on both.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../../.."
out=$here
for r in $(seq ${ROUNDS:-4}); do
  for arm in plain thp; do
    for slots in 1 2; do
      cpus=0; [[ $slots == 2 ]] && cpus=0,1
      envs=(); [[ $arm == thp ]] && envs=(GLIBC_TUNABLES=glibc.malloc.hugetlb=1)
      res=$(env "${envs[@]}" AUTH_PASSWORDS__MAX_CONCURRENT_HASHES=$slots taskset -c $cpus target/release/auth-center passwords capacity --seconds 5 --json 2>>$out/err.log)
      echo "$r $arm $slots $res" >> $out/results.txt
    done
  done
done
echo done >> $out/results.txt
