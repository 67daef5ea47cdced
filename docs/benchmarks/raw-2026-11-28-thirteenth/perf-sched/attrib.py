"""For each slow 100 ms slice of a loadgen result that no watcher stall touched, which tasks
ran on each CPU around it (perf sched timehist, recorded with -k CLOCK_REALTIME)."""
import json, sys, collections, re
res, th = sys.argv[1], sys.argv[2]
ours_pids = set(sys.argv[3].split(","))
offset = float(sys.argv[4])  # CLOCK_REALTIME - CLOCK_MONOTONIC when the run was made
d = json.load(open(res))
w0 = d["window_start_unix_ms"] / 1000 - offset
slow = d["slowest_us_per_100ms"]
m = d["machine_stalls"]
touched = set()
for cpu, at_ms, late_us in m["list"]:
    if late_us < 2000: continue
    a = int(max(at_ms, 0) // 100); b = int((at_ms + late_us / 1000) // 100) + 1
    touched.update(range(a, b + 1))
runs = []  # (start, end, cpu, task, pid, schdelay)
for line in open(th):
    f = line.split()
    if len(f) < 6 or not re.match(r"^\d+\.\d+$", f[0]): continue
    t = float(f[0]); cpu = f[1]
    try:
        run = float(f[-1]); sch = float(f[-2])
    except ValueError:
        continue
    task = " ".join(f[2:-3])
    mm = re.search(r"\[(\d+)(?:/(\d+))?\]", task)
    pid = (mm.group(2) or mm.group(1)) if mm else "?"
    runs.append((t - run / 1000, t, cpu, task, pid, sch))
runs.sort()
def who(t0, t1):
    busy = collections.defaultdict(float); delay = collections.defaultdict(float)
    for s, e, cpu, task, pid, sch in runs:
        if e < t0 or s > t1: continue
        ov = min(e, t1) - max(s, t0)
        name = re.sub(r"\[.*", "", task)
        key = (cpu, name + ("*" if pid in ours_pids else ""))
        if "<idle>" in task: key = (cpu, "<idle>")
        busy[key] += ov * 1000
        if pid in ours_pids and t0 <= e <= t1: delay[name] = max(delay[name], sch)
    return busy, delay
for i, us in enumerate(slow):
    if us <= 5000 or i in touched: continue
    t0 = w0 + i / 10
    busy, delay = who(t0 - 0.02, t0 + 0.1 + us / 1e6)
    top = sorted(busy.items(), key=lambda kv: -kv[1])
    others = [f"{c} {n} {ms:.1f}" for (c, n), ms in top if not n.endswith("*") and n != "<idle>" and ms >= 0.5]
    idle = {c: ms for (c, n), ms in busy.items() if n == "<idle>"}
    print(f"slice {i:3d} slowest {us/1000:6.1f} ms | idle cpu0 {idle.get('[0000]',0):5.1f} cpu1 {idle.get('[0001]',0):5.1f} ms | ours max sch delay " +
          ", ".join(f"{k} {v:.1f}" for k, v in sorted(delay.items(), key=lambda kv: -kv[1])[:3]) + " | others: " + "; ".join(others[:6]))
