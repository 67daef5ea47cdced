#!/usr/bin/env python3
"""gdb-sites.sh's output, one line per malloc on the request path (under hyper): the size and
the four innermost frames that are not the allocator's."""
import re, sys
txt = open(sys.argv[1]).read()
blocks = txt.split('=== ')[1:]
out = []
for b in blocks:
    if 'serve_connection' not in b and 'hyper' not in b: continue
    lines = b.strip().split('\n')
    head = lines[0]
    frames = [re.sub(r'^#\d+\s+0x[0-9a-f]+ in ', '', l).split('::h')[0] for l in lines[1:] if l.startswith('#')]
    frames = [re.sub(r'\[[0-9a-f]{16}\]', '', f) for f in frames]
    frames = [re.sub(r'<[^<>]*>', '<>', f) for f in frames]
    frames = [f for f in frames if 'raw_vec' not in f and 'alloc::alloc' not in f and '__GI' not in f and 'Oneshot' not in f]
    out.append(f"{head:13s} " + ' <- '.join(x[:60] for x in frames[:4]))
print('\n'.join(out))
