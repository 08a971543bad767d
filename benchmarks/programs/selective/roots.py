"""Many calls of an included function outside any activation root, then the root once.

    python roots.py N           (N requests; prints the request loop's own time)
"""

import sys
import time

import jobs

DEFAULT_SIZE = 1_000_000

size = int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SIZE
started = time.perf_counter()
total = 0
for i in range(size):
    total += jobs.handle_request(i)
loop_seconds = time.perf_counter() - started
print("report", jobs.nightly_report(3), total)
print("loop_seconds %.6f" % loop_seconds)
