#!/usr/bin/env python3
"""Start-up benchmark: recording a one-line script, against running it plainly.

    python benchmarks/startup_one_line.py [-n N] [--peer-python PYTHON] [--baseline DIR]
                                          [--callgrind] [--json FILE]

The script is ``print("hello")``.  With this interpreter it is run as

* ``plain``        -- ``python one_line.py``
* ``ctinstrument`` -- ``python -m ctinstrument -o DIR one_line.py`` (code cache warm: a
  warm-up run filled it, as every later run of an unchanged script finds it)
* ``peer``         -- ``PYTHON -m codetracer_python_recorder --trace-dir DIR --format json
  one_line.py``, when ``--peer-python`` names an interpreter that has the peer recorder
  installed (``pip install codetracer-python-recorder``), else left out; its own plain run
  is ``peer-plain``
* ``required``     -- ``python -c "import runpy, click, orjson"``: only what ``python -m``
  and the libraries the project requires (click for the command line, orjson for the JSON)
  cost, with nothing of ctinstrument, so the floor of any ``ctinstrument`` figure
* ``baseline``     -- the ``ctinstrument`` command with the checkout ``--baseline DIR`` on
  ``PYTHONPATH`` instead of this one (another branch, for before/after figures)

Runs are interleaved (plain, ctinstrument, required, baseline, peer-plain, peer, plain, ...),
N times (default 40).  Each run is spawned and reaped with ``os.wait4`` (no polling), so its wall time is the
process's whole life and its CPU time is user + system of the child.  Printed per config:
median and minimum of wall and CPU, and the medians divided by the matching plain medians.
The machine's load average at the end is printed too: wall ratios from a loaded machine are
not results (see benchmarks/README.md).

``--callgrind``: also run each config once under ``valgrind --tool=callgrind`` and print the
instructions it executed (``Ir``) and their ratio to plain's, a count that other processes on
the machine do not change.
"""

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SCRIPT = 'print("hello")\n'


def spawn(argv, env):
    """Run ``argv`` in the working directory with its input and output on /dev/null;
    returns (wall s, cpu s, exit status)."""
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        start = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, env, file_actions=[
            (os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1),
            (os.POSIX_SPAWN_DUP2, devnull, 2)])
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - start
    finally:
        os.close(devnull)
    return wall, usage.ru_utime + usage.ru_stime, os.waitstatus_to_exitcode(status)


def instructions(argv, env):
    """Instructions ``argv`` executes, counted by callgrind (its children not followed)."""
    result = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                             *argv], env=env, capture_output=True, text=True)
    found = re.search(r"Collected : (\d+)", result.stderr)
    if result.returncode != 0 or not found:
        sys.exit("startup_one_line.py: callgrind failed on %s: %s"
                 % (argv, result.stderr[-300:]))
    return int(found.group(1))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--repeat", type=int, default=40)
    parser.add_argument("--peer-python", help="an interpreter with codetracer-python-recorder")
    parser.add_argument("--baseline", metavar="DIR", help="another ctinstrument checkout")
    parser.add_argument("--callgrind", action="store_true",
                        help="also count instructions with valgrind's callgrind")
    parser.add_argument("--json", metavar="FILE")
    options = parser.parse_args(argv)
    work = tempfile.mkdtemp(prefix="ct-startup-one-line-")
    try:
        return _measure(options, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _measure(options, work):
    script = os.path.join(work, "one_line.py")
    with open(script, "w", encoding="utf-8") as handle:
        handle.write(SCRIPT)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "CTINSTRUMENT"))}
    ct_env = dict(env, PYTHONPATH=REPO)
    python = sys.executable
    trace = os.path.join(work, "trace")
    commands = {
        "plain": ([python, script], env),
        "ctinstrument": ([python, "-m", "ctinstrument", "-o", trace, script], ct_env),
        "required": ([python, "-c", "import runpy, click, orjson"], ct_env),
    }
    if options.baseline:
        commands["baseline"] = ([python, "-m", "ctinstrument", "-o", trace + "-baseline",
                                 script], dict(env, PYTHONPATH=os.path.abspath(options.baseline)))
    peer = options.peer_python
    if peer:
        found = subprocess.run([peer, "-c", "import codetracer_python_recorder"],
                               capture_output=True).returncode == 0
        if not found:
            sys.exit("startup_one_line.py: %s cannot import codetracer_python_recorder" % peer)
        commands["peer-plain"] = ([peer, script], env)
        commands["peer"] = ([peer, "-m", "codetracer_python_recorder", "--trace-dir",
                             os.path.join(work, "peer-trace"), "--format", "json", script], env)
    os.chdir(work)
    for argv, run_env in commands.values():  # warm-up: .pyc files and the code cache
        spawn(argv, run_env)
    runs = {name: [] for name in commands}
    for _ in range(options.repeat):
        for name, (argv, run_env) in commands.items():
            wall, cpu, status = spawn(argv, run_env)
            if status != 0:
                sys.exit("startup_one_line.py: %s exited with %d" % (name, status))
            runs[name].append((wall, cpu))
    with open(os.path.join(trace, "trace_metadata.json"), encoding="utf-8") as handle:
        cache = json.load(handle).get("code_cache")

    print("Python %s (%s), %s cpus; %d interleaved runs each; ctinstrument code cache of "
          "the last run: %s" % (platform.python_version(), python, os.cpu_count(),
                                options.repeat, cache))
    if hasattr(os, "getloadavg"):
        print("load average at end: %.2f %.2f %.2f" % os.getloadavg())
    print("%-13s %10s %10s %10s %10s %8s %8s" % ("config", "wall med", "wall min", "cpu med",
                                                "cpu min", "x wall", "x cpu"))
    summary = {}
    for name, samples in runs.items():
        walls = [wall for wall, _ in samples]
        cpus = [cpu for _, cpu in samples]
        base = runs["peer-plain" if name.startswith("peer") else "plain"]
        base_wall = statistics.median(wall for wall, _ in base)
        base_cpu = statistics.median(cpu for _, cpu in base)
        summary[name] = {"wall_median": statistics.median(walls), "wall_min": min(walls),
                         "cpu_median": statistics.median(cpus), "cpu_min": min(cpus),
                         "walls": walls, "cpus": cpus}
        print("%-13s %9.1fms %9.1fms %9.1fms %9.1fms %7.2fx %7.2fx" % (
            name, 1e3 * statistics.median(walls), 1e3 * min(walls),
            1e3 * statistics.median(cpus), 1e3 * min(cpus),
            statistics.median(walls) / base_wall, statistics.median(cpus) / base_cpu))
    if options.callgrind:
        counts = {name: instructions(argv, run_env) for name, (argv, run_env) in commands.items()}
        print("%-13s %14s %8s" % ("config", "instructions", "x"))
        for name, count in counts.items():
            base = counts["peer-plain" if name.startswith("peer") else "plain"]
            summary[name]["instructions"] = count
            print("%-13s %14s %7.2fx" % (name, "{:,}".format(count), count / base))
    if options.json:
        with open(options.json, "w", encoding="utf-8") as handle:
            json.dump({"python": platform.python_version(), "repeat": options.repeat,
                       "results": summary}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
