"""Self cost per function, per request, of one callgrind_annotate listing against another.

    python3 compare.py baseline_me.txt me.txt 10000

The listings are `callgrind_annotate --threshold=100 <dump>` of a tracked demo-service
under `valgrind --tool=callgrind`, each dump 10 000 requests over 32 connections (after
2 000 uncounted), zeroed and dumped with callgrind_control as BENCH_CALLGRIND does.
Prints the largest increases, then the largest decreases: difference, cost in the second.
"""
import re,sys
def load(f):
    d={}
    for line in open(f):
        m=re.match(r'\s*([\d,]+) \([^)]*\)\s+(\S.*)',line)
        if m:
            k=re.sub(r' \[.*\]$','',m.group(2)); k=re.sub(r'::h[0-9a-f]{16}','',k)
            d[k]=d.get(k,0)+int(m.group(1).replace(',',''))
    return d
a=load(sys.argv[1]); b=load(sys.argv[2]); n=int(sys.argv[3]) if len(sys.argv)>3 else 10000
keys=set(a)|set(b)
diffs=sorted(((b.get(k,0)-a.get(k,0))/n,k) for k in keys)
for d,k in diffs[::-1][:40]: print(f"{d:8.1f} {b.get(k,0)/n:8.1f} {k[:160]}")
print('...')
for d,k in diffs[:10]: print(f"{d:8.1f} {b.get(k,0)/n:8.1f} {k[:160]}")
