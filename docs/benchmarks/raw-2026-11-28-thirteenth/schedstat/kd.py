import json, sys, bisect
T = sys.argv[1]; off = float(open(T + "/clock-offset").read())
d = json.load(open(T + "/r.json")); w0 = d["window_start_unix_ms"] / 1000 - off
rows = [list(map(float, l.split())) for l in open(T + "/sched.txt")]
ts = [r[0] for r in rows]
def kd(t0, t1):  # kdamond run ms in [t0, t1]
    i = max(bisect.bisect_right(ts, t0) - 1, 0); j = min(bisect.bisect_left(ts, t1), len(rows) - 1)
    return (rows[j][7] - rows[i][7]) / 1e6
sl = d["slowest_us_per_100ms"]
slow = [i for i, x in enumerate(sl) if x > 5000]
k_slow = [kd(w0 + i / 10 - 0.05, w0 + i / 10 + 0.1) for i in slow]
k_all = [kd(w0 + i / 10 - 0.05, w0 + i / 10 + 0.1) for i in range(len(sl))]
busy = [i for i, v in enumerate(k_all) if v >= 1.0]
print("slow slices", len(slow), "with >=1 ms of kdamond in or 50 ms before:", sum(v >= 1.0 for v in k_slow))
print("all slices", len(sl), "with >=1 ms of kdamond:", len(busy))
print("slow:", slow)
print("kdamond>=1ms:", busy)
