"""The 0.5-of-saturation refresh points of the TCP_NODELAY pairs, as a markdown table.

python3 ab_table.py nodelay-ab   (directories PAIR-before/ and PAIR-after/ holding NNN-refresh.json)
"""
import glob, json, os, sys

root = sys.argv[1]
print("| pair | cores | without NODELAY: p99 ms (rotation > 1 ms %, stalls) | with: p99 ms (rotation > 1 ms %, stalls) |")
print("|---|---|---|---|")
pairs = sorted({os.path.basename(d).split("-")[0] for d in glob.glob(f"{root}/*-before")})
for pair in pairs:
    cells = {}
    for side in ("before", "after"):
        for f in sorted(glob.glob(f"{root}/{pair}-{side}/*-refresh.json")):
            x = json.load(open(f))
            if "0.5 of saturation" not in x["label"]:
                continue
            cores = x["label"].split(", ")[-1]
            rot = [h for h in x.get("server_histograms", []) if "session_rotate" in h["series"]]
            over1 = dict(map(tuple, rot[0]["over_ms"])).get(1.0) if rot else None
            stalls = (x.get("machine_stalls") or {}).get("stalls")
            cells.setdefault((cores, side), []).append(f"{x['p99_us'] / 1000:.1f} ({over1:.1f} %, {stalls})")
    for cores in ("1 core", "2 cores"):
        print(f"| {pair} | {cores} | {'; '.join(cells.get((cores, 'before'), []))} | {'; '.join(cells.get((cores, 'after'), []))} |")
