#!/usr/bin/env python3
"""What selective recording costs: code that is not selected, and activation roots.

    python benchmarks/selective.py [--repeat N] [--json FILE] [--peer-size N]

Two programs in ``benchmarks/programs/selective``, run in this one invocation with the
interpreter running this script; each prints the time of its own hot loop, so the ratios
below are per unit of work (start-up is reported separately as wall time):

* ``unselected.py`` -- the hot loop is in ``hotlib``, which is never selected; the run is
  recorded with ``--include tiny`` (a module called once).  This is the cost users pay for
  code they did not select: the target is "within noise of plain".
* ``roots.py`` -- one million calls of ``jobs.handle_request`` (an included module) outside
  any activation root, then the root ``jobs:nightly_report`` once.  Measured with the root
  (``-i jobs -i jobs:nightly_report``) and, at a smaller size, recording all of ``jobs``.

Where ``codetracer-python-recorder`` is importable (CPython 3.12+), it records both
programs at ``--peer-size`` iterations: it has no module selection, so it pays for every line.
A measurement, not a test: nothing asserts on timings.
"""

import argparse
import json
import os
import platform
import re
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PROGRAMS = os.path.join(HERE, "programs", "selective")
sys.path.insert(0, HERE)

from run import PEER_PACKAGE, peer_status, run_process  # noqa: E402


def loop_seconds(stdout):
    match = re.search(r"^loop_seconds ([0-9.]+)$", stdout, re.M)
    return float(match.group(1)) if match else None


def scenarios(peer_size):
    """(program, label, argv maker, size) for every measured run."""
    python = sys.executable

    def recorder(*options):
        return lambda script, size, out: [python, "-m", "ctinstrument", "-o", out,
                                          *options, script, str(size)]

    def plain(script, size, out):
        return [python, script, str(size)]

    runs = [
        ("unselected.py", "plain", plain, 3_000_000),
        ("unselected.py", "ctinstrument -i tiny", recorder("-i", "tiny"), 3_000_000),
        ("roots.py", "plain", plain, 1_000_000),
        ("roots.py", "ctinstrument -i jobs -i jobs:nightly_report",
         recorder("-i", "jobs", "-i", "jobs:nightly_report"), 1_000_000),
        ("roots.py", "ctinstrument -i jobs (everything)", recorder("-i", "jobs"), 2_000),
    ]
    if peer_size and peer_status()["available"]:
        peer = (lambda script, size, out: [python, "-m", PEER_PACKAGE, "--trace-dir", out,
                                           "--format", "json", script, str(size)])
        runs.append(("unselected.py", "peer (json)", peer, peer_size))
        runs.append(("roots.py", "peer (json)", peer, peer_size))
    return runs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", "-n", type=int, default=5, help="runs per row (best kept)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--peer-size", type=int, default=2_000,
                        help="iterations for the peer recorder (0: skip it)")
    options = parser.parse_args(argv)

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([REPO] + ([env["PYTHONPATH"]]
                                                   if env.get("PYTHONPATH") else []))
    results = []
    with tempfile.TemporaryDirectory() as work:
        empty = os.path.join(work, "empty.py")
        with open(empty, "w") as handle:
            handle.write("")
        startup = {
            "plain": min(run_process([sys.executable, empty], work, env, 60)["wall"]
                         for _ in range(options.repeat)),
            "ctinstrument": min(run_process([sys.executable, "-m", "ctinstrument", "-o",
                                             os.path.join(work, "t0"), empty], work, env,
                                            60)["wall"] for _ in range(options.repeat)),
        }
        # Rounds interleave the rows, so that a slow phase of the machine hits them alike.
        rows = scenarios(options.peer_size)
        best = [None] * len(rows)
        failed = set()
        for attempt in range(options.repeat):
            for index, (program, label, make_argv, size) in enumerate(rows):
                if index in failed:
                    continue
                out = os.path.join(work, "trace-%d" % index)
                run = run_process(make_argv(os.path.join(PROGRAMS, program), size, out),
                                  PROGRAMS, env, 1800)
                seconds = loop_seconds(run["stdout"])
                if run["rc"] != 0 or seconds is None:
                    print("%s %s failed: %s" % (program, label, run["stderr"][-500:]))
                    failed.add(index)
                elif best[index] is None or seconds < best[index]["loop"]:
                    best[index] = {"loop": seconds, "wall": run["wall"]}
        for (program, label, _make_argv, size), row in zip(rows, best):
            if row is not None:
                results.append({"program": program, "tool": label, "size": size,
                                "loop_seconds": row["loop"], "wall_seconds": row["wall"],
                                "per_unit_ns": row["loop"] / size * 1e9})

    print("CPython %s on %s, best of %d; start-up (empty program): plain %.3f s, "
          "ctinstrument %.3f s" % (platform.python_version(), platform.machine(),
                                  options.repeat, startup["plain"], startup["ctinstrument"]))
    print("%-14s %-44s %10s %12s %12s %9s" % ("program", "tool", "size", "loop s",
                                             "ns/unit", "x plain"))
    baseline = {r["program"]: r["per_unit_ns"] for r in results if r["tool"] == "plain"}
    for r in results:
        ratio = r["per_unit_ns"] / baseline[r["program"]] if r["program"] in baseline else None
        r["ratio"] = ratio
        print("%-14s %-44s %10d %12.4f %12.1f %9s" % (
            r["program"], r["tool"], r["size"], r["loop_seconds"], r["per_unit_ns"],
            "%.3f" % ratio if ratio is not None else "-"))
    if options.json:
        with open(options.json, "w") as handle:
            json.dump({"python": platform.python_version(), "startup": startup,
                       "results": results}, handle, indent=2)


if __name__ == "__main__":
    main()
