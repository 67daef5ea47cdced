#!/usr/bin/env python3
"""Compares the two layouts of layouts.sh batch by batch: per batch (one fresh set of processes
per layout, run back to back), the mean over its rounds of /me minus /baseline/me for each
layout, then the whole-router batch's difference minus the route-layer batch's, with a 95 %
Student's t interval over the batches. Usage: compare-layouts.py route-layer.txt whole-router.txt"""
import statistics, sys
from collections import defaultdict

T975 = {2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228, 15: 2.131, 20: 2.086}


def per_batch(path):
    rounds = defaultdict(dict)
    for line in open(path):
        parts = line.split()
        if len(parts) == 6 and parts[0].isdigit():
            rounds[int(parts[0])][parts[1]] = float(parts[4])
    batches = defaultdict(list)
    for r, paths in rounds.items():
        if "/baseline/me" in paths and "/me" in paths:
            batches[r // 100].append((paths["/baseline/me"], paths["/me"]))
    return {b: (statistics.mean(x for x, _ in v), statistics.mean(y - x for x, y in v)) for b, v in batches.items()}


def interval(d):
    n = len(d)
    m = statistics.mean(d)
    if n < 2:
        return m, float("nan"), float("nan")
    half = T975.get(n - 1, 2.0) * statistics.stdev(d) / n ** 0.5
    return m, m - half, m + half


route, whole = per_batch(sys.argv[1]), per_batch(sys.argv[2])
common = sorted(set(route) & set(whole))
print("batch  route-layer: baseline, /me - baseline   whole-router: baseline, /me - baseline   whole - route")
for b in common:
    print(f"{b:5}  {route[b][0]:8.2f} {route[b][1]:+8.2f}              {whole[b][0]:8.2f} {whole[b][1]:+8.2f}               {whole[b][1] - route[b][1]:+8.2f}")
for name, data in (("route-layer", route), ("whole-router", whole)):
    m, lo, hi = interval([data[b][1] for b in common])
    print(f"{name}: /me - /baseline/me over {len(common)} batches {m:+.2f} µs (95 % CI {lo:+.2f} to {hi:+.2f})")
m, lo, hi = interval([whole[b][1] - route[b][1] for b in common])
print(f"whole-router minus route-layer: {m:+.2f} µs (95 % CI {lo:+.2f} to {hi:+.2f})")
