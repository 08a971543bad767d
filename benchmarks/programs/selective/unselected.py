"""Hot loop in a module that is not selected (hotlib); ``tiny`` is the one included module.

    python unselected.py N      (N loop iterations; prints the loop's own time)
"""

import sys
import time

import hotlib
import tiny

DEFAULT_SIZE = 3_000_000

size = int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SIZE
started = time.perf_counter()
result = hotlib.work(size)
loop_seconds = time.perf_counter() - started
tiny.report(result)
print("loop_seconds %.6f" % loop_seconds)
