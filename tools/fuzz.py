"""The long runs of the fuzz tests: seeds from ``--start`` on, until ``--count`` programs or
``--seconds`` have gone by; prints one line per mismatch and the figures, exits 1 if any
program differed.

Default: the differential test (tests/test_fuzz.py, generated programs run plain and
recorded).  ``--compile``: the compile-level test (tests/test_fuzz_compile.py,
pysource-codegen programs compiled, instrumented and verified, never run).

Usage: python tools/fuzz.py [--compile] [--start N] [--count N] [--seconds S] [--show SEED]
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
    parser.add_argument("--compile", action="store_true", help="the compile-level test")
    parser.add_argument("--show", type=int, help="print the program of this seed and exit")
    options = parser.parse_args(argv)
    if options.show is not None:
        print(program(options.show))
        return 0
    started = time.monotonic()
    if options.compile:
        from test_fuzz_compile import compiled, problems

        def check(seed):
            return problems(seed), compiled(seed) is not None
    else:
        def check(seed):
            with tempfile.TemporaryDirectory() as workdir:
                return differences(seed, Path(workdir)), True
    tried, compiled_count, mismatched = 0, 0, []
    seed = options.start
    while time.monotonic() - started < options.seconds and (
            options.count is None or tried < options.count):
        found, ran = check(seed)
        tried += 1
        compiled_count += ran
        if found:
            mismatched.append(seed)
            print("seed %d: %s" % (seed, "; ".join(found)), flush=True)
        seed += 1
    print("python %d.%d: %d programs (seeds %d-%d, %d compiled), %d mismatches%s, %.0f s" % (
        sys.version_info[0], sys.version_info[1], tried, options.start, seed - 1,
        compiled_count,
        len(mismatched), (" (seeds %s)" % ", ".join(map(str, mismatched))) if mismatched
        else "", time.monotonic() - started))
    return 1 if mismatched else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
