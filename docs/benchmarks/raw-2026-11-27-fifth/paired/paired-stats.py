#!/usr/bin/env python3
"""Summarises paired.sh's output: per path, the server CPU per request against /baseline/me of
the same round (paired differences), with a 95 % confidence interval for the mean difference
(Student's t) and a bootstrap interval for the median difference, and the ratio of the mean
CPU per request (baseline / path) with the ratio's bootstrap interval."""
import random, statistics, sys
from collections import defaultdict

rows = defaultdict(dict)  # round -> path -> (user, sys, total, rps)
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) != 6 or not parts[0].isdigit():
        continue
    r, p, u, s, t, rps = parts
    rows[int(r)][p] = (float(u), float(s), float(t), float(rps))
rounds = sorted(rows)
base = "/baseline/me"
paths = sorted({p for r in rounds for p in rows[r]} - {base})
T975 = {4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228, 15: 2.131, 20: 2.086, 25: 2.060, 29: 2.045, 30: 2.042, 40: 2.021}
def t975(df):
    return T975.get(df) or T975[min(T975, key=lambda k: abs(k - df))]
random.seed(14)
print(f"{len(rounds)} rounds; server CPU per request (µs, utime+stime); baseline {base}")
bt = [rows[r][base][2] for r in rounds if base in rows[r]]
print(f"  {base}: mean {statistics.mean(bt):.2f}, median {statistics.median(bt):.2f}, sd {statistics.stdev(bt):.2f}")
for p in paths:
    pairs = [(rows[r][base], rows[r][p]) for r in rounds if base in rows[r] and p in rows[r]]
    d = [b2[2] - b1[2] for b1, b2 in pairs]
    du = [b2[0] - b1[0] for b1, b2 in pairs]
    n = len(d)
    m, sd = statistics.mean(d), statistics.stdev(d)
    half = t975(n - 1) * sd / n ** 0.5
    meds, ratios = [], []
    for _ in range(10000):
        sample = [random.choice(pairs) for _ in range(n)]
        meds.append(statistics.median([b2[2] - b1[2] for b1, b2 in sample]))
        ratios.append(sum(b1[2] for b1, _ in sample) / sum(b2[2] for _, b2 in sample))
    meds.sort(); ratios.sort()
    ratio = sum(b1[2] for b1, _ in pairs) / sum(b2[2] for _, b2 in pairs)
    rps_ratio = statistics.median([b2[3] / b1[3] for b1, b2 in pairs])
    print(f"  {p}: mean {statistics.mean([b2[2] for _, b2 in pairs]):.2f}; difference to the baseline, "
          f"mean {m:+.2f} µs (95 % CI {m - half:+.2f} to {m + half:+.2f}), median {statistics.median(d):+.2f} "
          f"(bootstrap 95 % {meds[250]:+.2f} to {meds[9750]:+.2f}); user part {statistics.mean(du):+.2f}; "
          f"ratio of means {ratio:.3f} (bootstrap 95 % {ratios[250]:.3f} to {ratios[9750]:.3f}); "
          f"median req/s ratio {rps_ratio:.3f}; path dearer in {sum(x > 0 for x in d)} of {n} rounds")
    # Rounds numbered batch*100 + round (batches.sh): each batch is a fresh set of processes,
    # so the batch, not the round, is the independent unit.
    batches = sorted({r // 100 for r in rounds})
    if len(batches) > 1 and max(rounds) >= 100:
        bd, br, bb = [], [], []
        for b in batches:
            bp = [(rows[r][base], rows[r][p]) for r in rounds if r // 100 == b and base in rows[r] and p in rows[r]]
            if not bp:  # a path only some batches measured (pooled files)
                continue
            bd.append(statistics.mean([y[2] - x[2] for x, y in bp]))
            br.append(sum(x[2] for x, _ in bp) / sum(y[2] for _, y in bp))
            bb.append(statistics.mean([x[2] for x, _ in bp]))
        k = len(bd); bm, bsd = statistics.mean(bd), statistics.stdev(bd)
        h = t975(k - 1) * bsd / k ** 0.5
        rm, rsd = statistics.mean(br), statistics.stdev(br)
        rh = t975(k - 1) * rsd / k ** 0.5
        print(f"    by batch ({k} fresh processes; {base} {min(bb):.1f} to {max(bb):.1f} µs): difference {bm:+.2f} µs (95 % CI {bm - h:+.2f} to {bm + h:+.2f}); "
              f"ratio {rm:.3f} (95 % CI {rm - rh:.3f} to {rm + rh:.3f}); batches' differences "
              + " ".join(f"{x:+.2f}" for x in bd))
