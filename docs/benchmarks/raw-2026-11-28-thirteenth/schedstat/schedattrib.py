import json, sys, bisect, statistics
res, samples, offset = sys.argv[1], sys.argv[2], float(sys.argv[3])
names = sys.argv[4].split(",")
d = json.load(open(res)); w0 = d["window_start_unix_ms"] / 1000 - offset
rows = [list(map(float, l.split())) for l in open(samples)]
ts = [r[0] for r in rows]
m = d["machine_stalls"]; touched = set()
for cpu, at, late in m["list"]:
    if late >= 2000:
        touched.update(range(int(max(at, 0) // 100), int((at + late / 1000) // 100) + 2))
def over(t0, t1):
    i = max(bisect.bisect_right(ts, t0) - 1, 0); j = min(bisect.bisect_left(ts, t1), len(rows) - 1)
    a, b = rows[i], rows[j]; span = b[0] - a[0]
    if span <= 0: return None
    vals = {}
    for k, n in enumerate(names):
        vals[n + " run"] = (b[1 + 2 * k] - a[1 + 2 * k]) / 1e6 / span / 10   # % of a core
        vals[n + " wait"] = (b[2 + 2 * k] - a[2 + 2 * k]) / 1e6 / span / 10  # ms waiting per 100 ms
    vals["psi some"] = (b[-1] - a[-1]) / 1e3 / span / 10
    return vals
groups = {"slow, no stall": [], "slow, stall": [], "other": []}
slow = d["slowest_us_per_100ms"]
for i, us in enumerate(slow):
    v = over(w0 + i / 10 - 0.02, w0 + i / 10 + 0.1 + min(us, 50000) / 1e6)
    if v is None: continue
    g = "other" if us <= 5000 else ("slow, stall" if i in touched else "slow, no stall")
    groups[g].append(v)
keys = list(groups["other"][0].keys())
print("per 100 ms slice, medians (run: % of a core; wait: ms runnable but not running per 100 ms; psi: ms some task waited per 100 ms)")
print("%-16s %4s " % ("slices", "n") + " ".join("%14s" % k for k in keys))
for g, vs in groups.items():
    if not vs: continue
    print("%-16s %4d " % (g, len(vs)) + " ".join("%14.1f" % statistics.median(v[k] for v in vs) for k in keys))
