import sys, statistics, collections
# args: files; each file's rounds "round path user sys total rps"; sets = round//100 per file
T={29:2.045,37:2.026,7:2.365,5:2.571,15:2.131,31:2.04,38:2.024}
sets=[]
for f in sys.argv[1:]:
    rows=collections.defaultdict(lambda: collections.defaultdict(list))
    for l in open(f):
        p=l.split()
        if len(p)!=6 or not p[0].isdigit(): continue
        rows[int(p[0])//100][p[1]].append(float(p[4]))
    for b,d in rows.items():
        if '/baseline/me' in d and '/me' in d:
            base=statistics.mean(d['/baseline/me']); me=statistics.mean(d['/me'])
            sets.append((f.split('/')[-2]+'/'+f.split('/')[-1], base, me-base, base/me))
n=len(sets); diffs=[s[2] for s in sets]; ratios=[s[3] for s in sets]
m=statistics.mean(diffs); sd=statistics.stdev(diffs); t=T.get(n-1,2.03)
mr=statistics.mean(ratios); sr=statistics.stdev(ratios)
print(f"{n} sets: no-auth handler {statistics.mean(s[1] for s in sets):.2f} µs (sets {min(s[1] for s in sets):.1f}-{max(s[1] for s in sets):.1f}); /me minus it {m:+.2f} µs (95 % CI {m-t*sd/n**.5:+.2f} to {m+t*sd/n**.5:+.2f}), sd over sets {sd:.2f}; ratio {mr:.3f} (95 % CI {mr-t*sr/n**.5:.3f} to {mr+t*sr/n**.5:.3f})")
