"""Every 50 ms: CLOCK_MONOTONIC, and for each pid the sum over its threads of
/proc/<pid>/task/*/schedstat (run ns, runqueue wait ns), plus /proc/pressure/cpu some total."""
import os, sys, time
pids = sys.argv[1].split(","); out = open(sys.argv[2], "w"); secs = float(sys.argv[3])
end = time.monotonic() + secs
while time.monotonic() < end:
    row = [f"{time.monotonic():.4f}"]
    for p in pids:
        run = wait = 0
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                try:
                    a, b, _ = open(f"/proc/{p}/task/{t}/schedstat").read().split()
                    run += int(a); wait += int(b)
                except OSError:
                    pass
        except OSError:
            pass
        row += [str(run), str(wait)]
    psi = open("/proc/pressure/cpu").readline().split("total=")[1].strip()
    row.append(psi)
    out.write(" ".join(row) + "\n")
    time.sleep(0.05)
