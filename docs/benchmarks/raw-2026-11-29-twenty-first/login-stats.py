#!/usr/bin/env python3
"""Item 3 in paired rounds: logins/s of a flood ÷ raw Argon2 hashes/s measured beside it.

    login-stats.py DIR...

Reads bench.sh's NNN-capacity.json and NNN-login.json in file order and pairs the i-th raw
round with the i-th flood of the same label ("1 core", "2 cores"), as bench.sh alternates
them. Prints, per label: the rounds, the mean ratio with its 95 % confidence interval
(Student's t over the rounds' ratios), and the ratio of the summed rates.
"""
import glob
import json
import math
import os
import sys
from collections import defaultdict

# Two-sided 95 % Student t quantiles by degrees of freedom (normal beyond 40).
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
       9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131,
       16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086, 21: 2.080, 22: 2.074,
       23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048, 29: 2.045,
       30: 2.042, 35: 2.030, 40: 2.021}


def t95(df):
    if df in T95:
        return T95[df]
    below = [k for k in T95 if k <= df]
    return T95[max(below)] if df < 40 else 1.96


def main(dirs):
    raw, login = defaultdict(list), defaultdict(list)
    for d in dirs:
        for path in sorted(glob.glob(os.path.join(d, "*-capacity.json")) + glob.glob(os.path.join(d, "*-login.json"))):
            r = json.load(open(path))
            label = r["label"].split(", ", 1)[1]
            if r["kind"] == "capacity":
                raw[(d, label)].append((path, r["hashes_per_second"]))
            elif r["kind"] == "login" and r["label"].startswith("logins alone"):
                login[(d, label)].append((path, r["ok_per_s"]))
    pairs = defaultdict(list)
    for key in raw:
        a, b = sorted(raw[key]), sorted(login.get(key, []))
        if len(a) != len(b):
            sys.exit(f"{key}: {len(a)} raw rounds, {len(b)} floods")
        pairs[key[1]] += [(x[1], y[1]) for x, y in zip(a, b)]
    for label, ps in sorted(pairs.items()):
        ratios = [l / r for r, l in ps]
        k = len(ratios)
        mean = sum(ratios) / k
        sd = math.sqrt(sum((x - mean) ** 2 for x in ratios) / (k - 1)) if k > 1 else float("nan")
        half = t95(k - 1) * sd / math.sqrt(k) if k > 1 else float("nan")
        summed = sum(l for _, l in ps) / sum(r for r, _ in ps)
        at_least = sum(x >= 0.9 for x in ratios)
        print(f"{label}: {k} rounds, raw {min(r for r, _ in ps):.1f}-{max(r for r, _ in ps):.1f} hashes/s, "
              f"logins {min(l for _, l in ps):.1f}-{max(l for _, l in ps):.1f}/s")
        print(f"  ratio mean {mean:.3f} (95 % CI {mean - half:.3f}-{mean + half:.3f}), "
              f"summed {summed:.3f}, rounds >= 0.9: {at_least} of {k}")
        print("  rounds: " + " ".join(f"{x:.2f}" for x in ratios))


if __name__ == "__main__":
    main(sys.argv[1:] or ["."])
