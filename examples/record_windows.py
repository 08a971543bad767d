"""The Python API on a real program: record two of the expression evaluator's runs.

    python examples/record_windows.py [TRACE_DIR]

Imports ``real_program`` (the evaluator in ``fixtures/``) after ``install_hook``, records
only the calls inside ``ctinstrument.record()`` windows, and prints the results.
"""

import os
import sys

import ctinstrument

out_dir = sys.argv[1] if len(sys.argv) > 1 else "trace-out"
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
with ctinstrument.install_hook(["real_program"], out_dir=out_dir, paused=True) as handle:
    import real_program

    with ctinstrument.record():
        first = real_program.run(["x = 2 * (3 + 4)", "x * x"])
    second = real_program.run(["1 + 1"])  # not recorded
    with ctinstrument.record():
        third = real_program.run(["y = 10", "y / 4"])
print(first, second, third)
print("trace written to", handle.out_dir)
