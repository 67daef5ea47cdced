"""Server-side share of refreshes over 2.5/5/10 ms (http_request_duration_seconds deltas) against
the client's (loadgen's percentile spectrum, interpolated)."""
import json, re, sys
def buckets(path):
    b = {}
    for line in open(path):
        m = re.match(r'http_request_duration_seconds_bucket\{(.*)\} (\S+)', line)
        if not m or 'route="/v1/refresh"' not in m.group(1) or 'status="200"' not in m.group(1): continue
        le = re.search(r'le="([^"]+)"', m.group(1)).group(1)
        b[le] = b.get(le, 0) + float(m.group(2))
    return b
a, b = buckets(sys.argv[1]), buckets(sys.argv[2])
tot = b["+Inf"] - a.get("+Inf", 0)
d = json.load(open(sys.argv[3])); sp = d["percentile_spectrum"]
def client_over(us):
    prev = (0.0, 0.0)
    for p, v in sp:
        if v > us:
            (p0, v0) = prev
            frac = p0 + (p - p0) * (us - v0) / (v - v0) if v > v0 else p
            return 100 - frac
        prev = (p, v)
    return 0.0
print(f"refreshes counted by the server {int(tot)} (window + warm-up), by the client {d['ok']} (window)")
for le in ["0.0025", "0.005", "0.01"]:
    srv = 100 * (tot - (b[le] - a.get(le, 0))) / tot
    print(f"  over {float(le)*1000:g} ms: server {srv:.2f} %, client {client_over(float(le)*1e6):.2f} %")
