#!/usr/bin/env python3
"""Replays an allocation trace (trace.c's file) through a model of glibc 2.36's per-thread
cache (tcache: 7 chunks per size class, chunks up to 1040 bytes, requests up to 1032; malloc
takes from it, calloc, realloc's new chunk and the aligned allocations do not; every free goes
to it while there is room) and reports, for each window [start, end) of record numbers, per
request and per chunk size: allocations, malloc's cache misses, allocations that bypass the
cache (calloc, realloc, aligned), frees that found the cache full, and consolidations (an
allocation of a large chunk while small chunks sit in the fastbins). Also, per request of the
worker thread (from one 8 KiB read buffer to the next), the peak number of 32-byte chunks taken
since the request began (allocations minus frees of that class): what the cache must hold.

Not modelled: a realloc that shrinks in place frees its split-off tail; a free of 64 KiB or
more also consolidates.

usage: replay.py TRACE COUNT name:start:end:requests [...]   (COUNT: tcache_count, 7 by default)
"""
import collections, mmap, struct, sys

REC = struct.Struct("<IIQQQ")
OPS = {1: "malloc", 2: "calloc", 3: "realloc", 4: "free", 5: "memalign", 6: "memalign", 7: "memalign"}


def chunk(n):
    return max(32, (n + 8 + 15) & ~15)


def main():
    path, tcount = sys.argv[1], int(sys.argv[2])
    windows = []
    for w in sys.argv[3:]:
        name, a, b, req = w.split(":")
        windows.append((name, int(a), int(b), int(req)))
    with open(path, "rb") as f:
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    total = struct.unpack_from("<Q", m, 0)[0]
    end = max(b for _, _, b, _ in windows)
    size_of = {}  # pointer -> chunk size (0: mmapped / untracked)
    tc = collections.defaultdict(lambda: collections.defaultdict(int))  # tid -> size -> count
    pool = collections.defaultdict(lambda: collections.defaultdict(int))  # tid -> size -> overflowed
    fast = collections.defaultdict(bool)  # tid -> fastbins non-empty
    stats = {w[0]: collections.defaultdict(lambda: [0, 0, 0, 0, 0]) for w in windows}  # size -> alloc, miss, full-free, consolidate, bypass
    peaks = {w[0]: collections.Counter() for w in windows}  # peak 32-byte chunks taken in a request -> requests
    seg = {"tid": None, "net": 0, "peak": 0}
    cons = {w[0]: 0 for w in windows}
    tids = {w[0]: collections.Counter() for w in windows}

    def cur(i):
        for name, a, b, _ in windows:
            if a <= i < b:
                return name
        return None

    def alloc(i, tid, c, through_cache):
        w = cur(i)
        if w:
            stats[w][c][0] += 1
        if c <= 1040 and through_cache and tc[tid][c] > 0:
            tc[tid][c] -= 1
            return
        if w and c <= 1040:
            stats[w][c][1 if through_cache else 4] += 1
        if c >= 1024 and fast[tid]:
            fast[tid] = False
            if w:
                cons[w] += 1
                stats[w][c][3] += 1
            for s in list(pool[tid]):
                if s <= 128:
                    pool[tid][s] = 0
        if pool[tid][c] > 0:
            pool[tid][c] -= 1
            if c <= 1040:  # the rest of that bin is stashed in the cache
                move = min(pool[tid][c], tcount - tc[tid][c])
                pool[tid][c] -= move
                tc[tid][c] += move

    def free(i, tid, c):
        if c > 1040:
            return
        if tc[tid][c] < tcount:
            tc[tid][c] += 1
            return
        w = cur(i)
        if w:
            stats[w][c][2] += 1
        pool[tid][c] += 1
        if c <= 128:
            fast[tid] = True

    def track(w, tid, c, delta):
        # The worker thread's requests: a segment starts at each 8 KiB read buffer.
        if w is None or c is None:
            return
        if c == 8208 and delta > 0:
            if seg["tid"] == tid:
                peaks[w][seg["peak"]] += 1
            seg.update(tid=tid, net=0, peak=0)
        elif c == 32 and tid == seg["tid"]:
            seg["net"] += delta
            seg["peak"] = max(seg["peak"], seg["net"])

    for i in range(min(end, total)):
        op, tid, ptr, size, ret = REC.unpack_from(m, 64 + i * REC.size)
        w = cur(i)
        if w:
            tids[w][tid] += 1
            if op == 4:
                track(w, tid, size_of.get(ptr), -1)
            elif op == 3:
                if ret != ptr:
                    track(w, tid, size_of.get(ptr), -1)
                    track(w, tid, chunk(size), +1)
            elif ret:
                track(w, tid, chunk(size), +1)
        if op == 4:
            c = size_of.pop(ptr, None)
            if c:
                free(i, tid, c)
        elif op == 3:
            old = size_of.pop(ptr, None) if ptr else None
            c = chunk(size)
            if ret:
                if old is not None and ret == ptr:  # shrunk or grown in place: no new chunk
                    size_of[ret] = max(c, old)
                    continue
                alloc(i, tid, c, ptr == 0)
                size_of[ret] = c if size < 128 * 1024 else 0
                if old:
                    free(i, tid, old)
        elif ret:
            c = chunk(size)
            alloc(i, tid, c, op == 1)
            size_of[ret] = c if size < 128 * 1024 else 0
    for name, a, b, req in windows:
        print(f"## {name}: records {a}..{b}, {req} requests, {(b - a) / req:.1f} records per request")
        print(f"threads (records): {dict(tids[name].most_common(5))}")
        print(f"consolidations per request: {cons[name] / req:.3f}")
        print("peak 32-byte chunks taken per request (peak: requests): "
              + ", ".join(f"{p}: {n}" for p, n in sorted(peaks[name].items())))
        print("chunk  allocs/req  misses/req  bypass/req  full-frees/req")
        for c in sorted(stats[name]):
            al, mi, ff, _, by = stats[name][c]
            if al / req >= 0.05 or mi / req >= 0.05 or ff / req >= 0.05:
                print(f"{c:5d}  {al / req:9.2f}  {mi / req:9.2f}  {by / req:9.2f}  {ff / req:9.2f}")
        tot = [sum(v[k] for v in stats[name].values()) / req for k in (0, 1, 4, 2)]
        print(f"total  {tot[0]:9.2f}  {tot[1]:9.2f}  {tot[2]:9.2f}  {tot[3]:9.2f}\n")


main()
