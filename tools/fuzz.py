"""The long run of the differential fuzz test (tests/test_fuzz.py): seeds from ``--start``
on, until ``--count`` programs or ``--seconds`` have gone by; prints one line per mismatch
and the figures, exits 1 if any program differed.

Usage: python tools/fuzz.py [--start N] [--count N] [--seconds S] [--show SEED]
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))

from fuzzgen import differences, program  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=int, default=1000)
    parser.add_argument("--count", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--show", type=int, help="print the program of this seed and exit")
    options = parser.parse_args(argv)
    if options.show is not None:
        print(program(options.show))
        return 0
    started = time.monotonic()
    tried, mismatched = 0, []
    seed = options.start
    while time.monotonic() - started < options.seconds and (
            options.count is None or tried < options.count):
        with tempfile.TemporaryDirectory() as workdir:
            found = differences(seed, Path(workdir))
        tried += 1
        if found:
            mismatched.append(seed)
            print("seed %d: %s" % (seed, "; ".join(found)), flush=True)
        seed += 1
    print("python %d.%d: %d programs (seeds %d-%d), %d mismatches%s, %.0f s" % (
        sys.version_info[0], sys.version_info[1], tried, options.start, seed - 1,
        len(mismatched), (" (seeds %s)" % ", ".join(map(str, mismatched))) if mismatched
        else "", time.monotonic() - started))
    return 1 if mismatched else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
