# The A/B of sqlite-ping/: per arm the means of the login ratio (logins/s over the raw rate
# of the capacity rounds before and after), the server's CPU per login (ms), a raw hash (ms)
# and each thread group's run time per login (ms); then new minus old per pair with its 95 %
# interval.   python3 summary.py DIR
import json,sys,glob,os,statistics as st
out=sys.argv[1]
res={}
for d in sorted(glob.glob(out+'/*-*')):
    arm,p=os.path.basename(d).split('-')
    cap=[json.loads(l) for l in open(d+'/capacity.jsonl')]
    raw=st.mean(c['ms_per_hash'] for c in cap)
    rawrate=st.mean(c['hashes_per_second'] for c in cap)
    L=json.load(open(d+'/login-1.json'))
    tot={}
    for s in L['server_threads']['slices']:
        for g,(run,wait) in s['groups'].items():
            tot[g]=tot.get(g,0)+run
    ok=L['ok']
    res[(arm,int(p))]=dict(ratio=L['ok_per_s']/rawrate, cpu=L['server_cpu_us_per_ok']/1000, raw=raw,
        argon=tot.get('argon2',0)/ok, tokio=tot.get('tokio-rt-worker',0)/ok, sqlite=tot.get('sqlx-sqlite-wor',0)/ok)
keys=['ratio','cpu','raw','argon','tokio','sqlite']
for arm in ('old','new'):
    rows=[v for (a,p),v in sorted(res.items()) if a==arm]
    print(arm, len(rows), ' '.join(f"{k} {st.mean(r[k] for r in rows):.3f}" for k in keys))
pairs=sorted({p for _,p in res})
for k in keys:
    d=[res[('new',p)][k]-res[('old',p)][k] for p in pairs if ('new',p) in res and ('old',p) in res]
    if len(d)>1:
        t={5: 2.571, 11: 2.201}[len(d)-1]  # Student's t, two-sided 95 %
        m=st.mean(d); h=t*st.stdev(d)/len(d)**0.5
        print(f"new-old {k}: {m:+.3f} ± {h:.3f}  ({' '.join(f'{x:+.3f}' for x in d)})")
