import json, sys, statistics as st, os
root = sys.argv[1]; variants = sys.argv[2].split(','); n = int(sys.argv[3])
keys = ['ratio','srv','auth:argon2','auth:tokio-rt-worker','auth:sqlx-sqlite-wor','redis','stat:idle','rds:total_reads_processed','rds:total_commands_processed']
def one(d):
    L = json.load(open(f'{d}/login-1.json'))
    caps = [json.loads(l)['ms_per_hash'] for l in open(f'{d}/capacity.jsonl')]
    raw = sum(caps) / len(caps)
    sp = {l.split()[0]: float(l.split()[1]) for l in open(f'{d}/split.txt') if not l.startswith('#')}
    sp['ratio'] = L['ok_per_s'] / (2000 / raw); sp['srv'] = L['server_cpu_us_per_ok'] / 1000
    return sp
data = {v: [one(f'{root}/{v}-{i}') for i in range(1, n + 1) if os.path.exists(f'{root}/{v}-{i}/split.txt')] for v in variants}
print('%-30s' % '', ''.join('%12s' % v for v in variants), ''.join('%22s' % (v + '-' + variants[0]) for v in variants[1:]))
for k in keys:
    row = '%-30s' % k
    for v in variants:
        row += '%12.3f' % st.mean(x.get(k, 0) for x in data[v])
    for v in variants[1:]:
        d = [a.get(k, 0) - b.get(k, 0) for a, b in zip(data[v], data[variants[0]])]
        se = st.stdev(d) / len(d) ** 0.5 if len(d) > 1 else 0
        row += '%14.3f ± %5.3f' % (st.mean(d), 2.57 * se if len(d) == 6 else 2 * se)
    print(row)
