#!/usr/bin/env python3
"""pyperformance-derived workloads: work slowdown, bytes per step and peak RSS per recorder.

    python benchmarks/pyperformance_suite.py [-n N] [--only NAME ...] [--json FILE]
                                             [--timeout S] [--max-trace-mb MB]
                                             [--ctinstrument DIR] [--keep-traces DIR]

The workloads are benchmark scripts of pyperformance (``bm_NAME/run_benchmark.py``), which
is not part of this repository: the first run downloads its sdist from PyPI with
``python -m pip download --no-deps --no-binary :all: pyperformance==VERSION`` into the cache
directory (``--cache``, default ``benchmarks/.cache``, ignored by git) and extracts the
scripts it needs there as ``bm_NAME.py``.  A few scripts hard-code their size; the cached
copy then has that one constant replaced (``SIZES`` below lists every replacement).

Every script is run as the main script with ``benchmarks/pyperf_shim`` on ``PYTHONPATH``: a
stand-in ``pyperf`` that runs the work once at the size given and prints the time of the
work alone (``work_seconds``), so start-up, imports and module bodies are not in the
figures.  Each workload runs, repetitions interleaved across the tools, under

* ``plain``        -- ``python bm_NAME.py ARGS``
* ``ctinstrument`` -- ``python -m ctinstrument --include bm_NAME.py -o DIR bm_NAME.py ARGS``
                      (only the workload script is recorded, not the stand-in or the
                      standard library; ``--ctinstrument DIR`` is put first on PYTHONPATH,
                      default this repository)
* ``peer``         -- ``python -m codetracer_python_recorder --trace-dir DIR --format json
                      bm_NAME.py ARGS`` (CPython 3.12+, when installed; it records every
                      module it sees, that is its design)

The workloads of ``benchmarks/programs`` (``run.py``) are included too (``--no-programs``
leaves them out); they do not time their own work, so their ``x work`` is the net cost per
unit of work as in ``run.py`` (wall time less the tool's start-up, per unit, against plain
at the script's DEFAULT_SIZE).

A recorded run that exceeds ``--timeout`` seconds or writes more than ``--max-trace-mb`` is
killed and reported with the bytes and steps written until then; its trace directory is
deleted unless ``--keep-traces``.  This is a measurement, not a test: nothing asserts on
timings.  See benchmarks/README.md for the columns and the figures.
"""

import argparse
import collections
import datetime
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SHIM = os.path.join(HERE, "pyperf_shim")
sys.path.insert(0, HERE)

from run import (PEER_PACKAGE, PROGRAMS, WORKLOADS as PROGRAM_SIZES,  # noqa: E402
                 count_events, ctinstrument_version, default_size, fmt_bytes, fmt_count,
                 peer_status)

PYPERFORMANCE_VERSION = "1.14.0"

# Two size sets.  name -> (arguments of the script: the shim's --loops/--bench-args or the
# script's own options; replacements made in the cached copy, each (old, new) found exactly
# once; what the size is).  "default": the plain work takes about 10-85 ms of CPU (2-core VM,
# CPython 3.12); "small": about 1-4 ms, for recorders that are still thousands of times
# slower than plain, so that a recorded run ends within the time-out.
Workload = collections.namedtuple("Workload", "args replace size")
SIZES = {
    "default": collections.OrderedDict([
        ("richards", Workload([], [], "1 iteration (the script's own size)")),
        ("deltablue", Workload(["--bench-args", "400"], [], "n=400 (script: 100)")),
        ("raytrace", Workload(["--width", "20", "--height", "20"], [],
                              "20x20 pixels (100x100)")),
        ("go", Workload([], [("GAMES = 200", "GAMES = 30")], "30 playouts (200)")),
        ("nbody", Workload(["--iterations", "5000"], [], "5,000 steps (20,000)")),
        ("hexiom", Workload(["--loops", "3"], [], "level 25, solved 3 times")),
        ("generators", Workload([], [("tree(range(100000))", "tree(range(40000))")],
                                "tree of 40,000 (100,000)")),
        ("chaos", Workload(["--iterations", "1500"], [], "1,500 iterations (5,000)")),
        ("fannkuch", Workload(["--bench-args", "8"], [], "n=8 (9)")),
        ("float", Workload(["--bench-args", "20000"], [], "20,000 points (100,000)")),
        ("nqueens", Workload(["--bench-args", "7"], [], "7 queens (8)")),
        ("spectral_norm", Workload([], [("DEFAULT_N = 130", "DEFAULT_N = 50")],
                                   "N=50 (130)")),
        ("coroutines", Workload([], [], "fibonacci(25) (the script's own size)")),
        ("unpack_sequence", Workload(["--loops", "500"], [], "500 loops")),
    ]),
    "small": collections.OrderedDict([
        ("richards", Workload([], [("self.count = 10000", "self.count = 400")],
                              "idle count 400 (10,000; its final check then fails: "
                              "work_result False)")),
        ("deltablue", Workload(["--bench-args", "40"], [], "n=40")),
        ("raytrace", Workload(["--width", "6", "--height", "6"], [], "6x6 pixels")),
        ("go", Workload([], [("GAMES = 200", "GAMES = 2")], "2 playouts")),
        ("nbody", Workload(["--iterations", "500"], [], "500 steps")),
        ("hexiom", Workload(["--level", "10"], [], "level 10, solved once")),
        ("generators", Workload([], [("tree(range(100000))", "tree(range(4000))")],
                                "tree of 4,000")),
        ("chaos", Workload(["--iterations", "50"], [], "50 iterations")),
        ("fannkuch", Workload(["--bench-args", "6"], [], "n=6")),
        ("float", Workload(["--bench-args", "2000"], [], "2,000 points")),
        ("nqueens", Workload(["--bench-args", "6"], [], "6 queens")),
        ("spectral_norm", Workload([], [("DEFAULT_N = 130", "DEFAULT_N = 15")], "N=15")),
        ("coroutines", Workload([], [("fibonacci(25)", "fibonacci(19)")], "fibonacci(19)")),
        ("unpack_sequence", Workload(["--loops", "40"], [], "40 loops")),
    ]),
}
WORKLOADS = SIZES["default"]

TOOLS = ("plain", "ctinstrument", "peer")


# ----------------------------------------------------------------------------------------
# the workload scripts


def fetch_workloads(cache, names, python, sizes):
    """Path of ``bm_NAME.py`` for every name, downloading pyperformance when needed."""
    workloads = SIZES[sizes]
    target = os.path.join(cache, "pyperformance-" + PYPERFORMANCE_VERSION, sizes)
    scripts = {name: os.path.join(target, "bm_%s.py" % name) for name in names}
    missing = [name for name, path in scripts.items() if not os.path.isfile(path)]
    if not missing:
        return scripts
    sdist = os.path.join(cache, "pyperformance-%s.tar.gz" % PYPERFORMANCE_VERSION)
    if not os.path.isfile(sdist):
        os.makedirs(cache, exist_ok=True)
        print("downloading pyperformance %s (sdist) into %s ..."
              % (PYPERFORMANCE_VERSION, cache), file=sys.stderr)
        subprocess.run([python, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        "--dest", cache, "pyperformance==" + PYPERFORMANCE_VERSION],
                       check=True, stdout=subprocess.DEVNULL)
    os.makedirs(target, exist_ok=True)
    prefix = "pyperformance-%s/pyperformance/data-files/benchmarks/" % PYPERFORMANCE_VERSION
    with tarfile.open(sdist) as archive:
        for name in missing:
            member = archive.extractfile(prefix + "bm_%s/run_benchmark.py" % name)
            source = member.read().decode("utf-8")
            for old, new in workloads[name].replace:
                if source.count(old) != 1:
                    raise SystemExit("bm_%s: expected %r once in pyperformance %s"
                                     % (name, old, PYPERFORMANCE_VERSION))
                source = source.replace(old, new)
            with open(scripts[name], "w", encoding="utf-8") as f:
                f.write(source)
    return scripts


# ----------------------------------------------------------------------------------------
# running one process with a time and trace-size limit


def tree_bytes(path):
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


# Runs the program as its child and writes the child's peak RSS (wait4's ru_maxrss) to the
# file named by its first argument.  Measuring through this small process matters on Linux:
# a child's ru_maxrss starts at the memory of the process that forked it, and this
# benchmark's own process grows while it counts large traces.
RSS_LAUNCHER = """\
import os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execv(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
status, usage = os.wait4(pid, 0)[1:]
with open(sys.argv[1], "w") as f:
    f.write("%d" % usage.ru_maxrss)
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def usage_so_far(launcher):
    """(VmHWM in kB, CPU seconds) of the launcher's child (the program), or (None, None)."""
    try:
        with open("/proc/%d/task/%d/children" % (launcher, launcher)) as f:
            child = int(f.read().split()[0])
        with open("/proc/%d/stat" % child) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        with open("/proc/%d/status" % child) as f:
            return next(line.split()[1] for line in f if line.startswith("VmHWM:")), cpu
    except (OSError, IndexError, ValueError, StopIteration):
        return None, None


def run_limited(argv, env, timeout, trace_dir=None, max_bytes=None):
    """Run ``argv`` until it exits, ``timeout`` passes or ``trace_dir`` exceeds ``max_bytes``.

    Returns wall and CPU seconds, peak RSS in bytes (of a killed run: CPU time and peak of
    the program until then, from /proc), the exit code, why it was killed (None, "timeout" or "trace cap") and the output.  The
    program runs under ``RSS_LAUNCHER`` in a session of its own, killed as a group.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", RSS_LAUNCHER, rss.name] + argv,
                                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                start_new_session=True)
        killed = None
        next_size_check = start + 0.5
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            now = time.perf_counter()
            if now - start > timeout:
                killed = "timeout"
            elif trace_dir and max_bytes and now > next_size_check:
                next_size_check = now + 0.5
                if tree_bytes(trace_dir) > max_bytes:
                    killed = "trace cap"
            if killed:
                peak, cpu_so_far = usage_so_far(proc.pid)
                os.killpg(proc.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.005)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        text = rss.read().strip() if not killed else peak
        out.seek(0)
        err.seek(0)
        return {"wall": wall,
                "cpu": usage.ru_utime + usage.ru_stime if not killed else cpu_so_far,
                "rss": int(text) * (1 if sys.platform == "darwin" else 1024) if text else None,
                "rc": proc.returncode, "killed": killed,
                "stdout": out.read().decode("utf-8", "replace"),
                "stderr": err.read().decode("utf-8", "replace")}


WORK_LINE = re.compile(r"^work_seconds ([0-9.]+)\n", re.M)


def work_seconds(stdout):
    match = WORK_LINE.search(stdout)
    return float(match.group(1)) if match else None


# ----------------------------------------------------------------------------------------
# counting steps


def count_steps(path, chunk=1 << 24):
    """Occurrences of ``{"Step":`` in ``path``, read in chunks (any size, even truncated).

    Both recorders write a Step as ``{"Step":{...}}``; inside a JSON string the quotes would
    be escaped, so the pattern only matches events.
    """
    pattern = b'{"Step":'
    count = 0
    tail = b""
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                return count
            data = tail + block
            count += data.count(pattern)
            tail = data[-(len(pattern) - 1):]


def trace_figures(trace_dir, complete):
    """trace.json bytes, Step count and (for small complete traces) counts by kind."""
    path = os.path.join(trace_dir, "trace.json")
    if not os.path.isfile(path):
        return {"trace_bytes": None, "steps": None, "event_counts": None}
    size = os.path.getsize(path)
    figures = {"trace_bytes": size, "steps": count_steps(path), "event_counts": None}
    if complete and size <= 64 << 20:
        try:
            counts = count_events(trace_dir)
        except (ValueError, OSError) as exc:
            figures["count_error"] = str(exc)
        else:
            if counts is not None:
                figures["event_counts"] = dict(counts)
                if counts.get("Step", 0) != figures["steps"]:
                    figures["count_error"] = ("Step events %d, pattern count %d"
                                              % (counts.get("Step", 0), figures["steps"]))
    return figures


# ----------------------------------------------------------------------------------------
# the benchmark


def make_tools(python, ct_path, with_peer, with_ct=True):
    """name -> (argv maker (script, args, trace_dir) -> argv, env); notes on tools left out."""
    def env_with(*paths):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            list(paths) + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        return env

    tools = collections.OrderedDict()
    notes = []
    tools["plain"] = (lambda script, args, out: [python, script] + args, env_with(SHIM))
    ct_env = env_with(ct_path, SHIM)
    probe = subprocess.run([python, "-c", "import ctinstrument.cli"], env=ct_env,
                           capture_output=True, text=True)
    if not with_ct:
        notes.append("ctinstrument skipped: --no-ctinstrument")
    elif probe.returncode == 0:
        tools["ctinstrument"] = (lambda script, args, out: [python, "-m", "ctinstrument",
                                                            "--include", script, "-o", out,
                                                            script] + args, ct_env)
    else:
        notes.append("ctinstrument skipped: cannot import it from %s (%s)"
                     % (ct_path, (probe.stderr.strip().splitlines() or ["?"])[-1]))
    peer = peer_status()
    if peer["available"] and with_peer:
        tools["peer"] = (lambda script, args, out: [python, "-m", PEER_PACKAGE, "--trace-dir",
                                                    out, "--format", "json", script] + args,
                         env_with(SHIM))
    else:
        notes.append("peer skipped: " + (peer["note"] or "--no-peer"))
    return tools, notes, peer


def best_of(runs, key):
    return min(r[key] for r in runs if r[key] is not None)


def summarise(values, stat):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return min(values) if stat == "best" else statistics.median(values)


def run_workload(job, tools, options, workdir, startup):
    """Every tool on one workload, ``options.repeat`` rounds; returns one row per tool."""
    name, script, args, per_unit = job
    runs = {tool: [] for tool in tools}
    traces = {}
    for rep in range(options.repeat):
        done = []
        for tool, (make_argv, env) in tools.items():
            if runs[tool] and runs[tool][-1]["killed"]:
                done.append("%s skipped" % tool)
                continue            # one time-out or trace cap is enough
            trace_dir = os.path.join(workdir, "%s-%s" % (name, tool))
            shutil.rmtree(trace_dir, ignore_errors=True)
            result = run_limited(make_argv(script, args, trace_dir), env, options.timeout,
                                 trace_dir if tool != "plain" else None,
                                 options.max_trace_mb << 20)
            if tool != "plain":
                # figures of the last run that ended (or the one that was killed)
                traces[tool] = trace_figures(trace_dir, result["killed"] is None
                                             and result["rc"] == 0)
                traces[tool]["dir_bytes"] = tree_bytes(trace_dir)
                if options.keep_traces:
                    dest = os.path.join(options.keep_traces, "%s-%s-py%s"
                                        % (name, tool, platform.python_version()))
                    shutil.rmtree(dest, ignore_errors=True)
                    shutil.copytree(trace_dir, dest)
                shutil.rmtree(trace_dir, ignore_errors=True)
            runs[tool].append(result)
            done.append("%s %.2fs%s" % (tool, result["wall"],
                                        " (%s)" % result["killed"] if result["killed"] else ""))
        print("  %s round %d: %s" % (name, rep + 1, ", ".join(done)), file=sys.stderr)

    def comparable(stdout):
        return WORK_LINE.sub("", stdout)

    plain_out = comparable(runs["plain"][-1]["stdout"]) if runs.get("plain") else None
    plain_work = None
    rows = []
    for tool, tool_runs in runs.items():
        problems = []
        for r in tool_runs:
            if r["killed"]:
                problems.append("%s after %.0f s" % (r["killed"], r["wall"]))
            elif r["rc"] != 0:
                problems.append("exit %s: %s" % (r["rc"], (r["stderr"].strip().splitlines()
                                                           or [""])[-1]))
            elif plain_out is not None and comparable(r["stdout"]) != plain_out:
                problems.append("output differs from plain")
        ok = [r for r in tool_runs if not r["killed"] and r["rc"] == 0]
        if per_unit is None:
            work = summarise([work_seconds(r["stdout"]) for r in ok], options.stat)
        else:       # a benchmarks/programs workload: net time, per unit of work
            size, ref_size = per_unit
            net = summarise([r["wall"] - startup[tool]["wall"] for r in ok], options.stat)
            work = net / size if net is not None else None
            if tool == "plain":
                work = plain_unit_cost(tools["plain"], name, ref_size, options, startup)
        if tool == "plain":
            plain_work = work
        row = collections.OrderedDict(
            workload=name, tool=tool, work_s=work,
            x_work=work / plain_work if work and plain_work else None,
            x_work_min=None,
            wall_s=summarise([r["wall"] for r in tool_runs], options.stat),
            cpu_s=summarise([r["cpu"] for r in tool_runs], options.stat),
            peak_rss=max((r["rss"] for r in tool_runs if r["rss"]), default=None),
            status="; ".join(sorted(set(problems))) or "ok",
            walls=[round(r["wall"], 4) for r in tool_runs],
            works=[work_seconds(r["stdout"]) for r in tool_runs])
        if not ok and plain_work and per_unit is None:
            # killed: the work took at least the time it ran, less the start-up
            clock = "cpu" if options.clock == "cpu" else "wall"
            spent = max((r[clock] for r in tool_runs if r[clock]), default=None)
            if spent:
                row["x_work_min"] = max(0.0, spent - startup[tool][clock]) / plain_work
        if tool != "plain":
            row.update(traces.get(tool, {}))
            steps = row.get("steps")
            row["bytes_per_step"] = (row["trace_bytes"] / steps
                                     if steps and row.get("trace_bytes") else None)
            if row["status"] == "output differs from plain":
                row["stdout"] = tool_runs[-1]["stdout"][-2000:]
                row["plain_stdout"] = runs["plain"][-1]["stdout"][-2000:]
        rows.append(row)
    return rows


def plain_unit_cost(plain, name, ref_size, options, startup):
    """Plain's cost per unit of a benchmarks/programs workload at its DEFAULT_SIZE."""
    make_argv, env = plain
    script = os.path.join(PROGRAMS, name + ".py")
    walls = [run_limited(make_argv(script, [str(ref_size)], None), env, options.timeout)["wall"]
             for _ in range(max(options.repeat, 3))]
    return (summarise(walls, options.stat) - startup["plain"]["wall"]) / ref_size


def measure_startup(tools, workdir, repeat):
    """tool -> best wall and CPU seconds of the tool on a script that does nothing."""
    empty = os.path.join(workdir, "empty.py")
    with open(empty, "w") as f:
        f.write("pass\n")
    startup = {}
    for tool, (make_argv, env) in tools.items():
        out = os.path.join(workdir, "empty-trace")
        runs = []
        for _ in range(repeat):
            runs.append(run_limited(make_argv(empty, [], out), env, 60))
            shutil.rmtree(out, ignore_errors=True)
        startup[tool] = {"wall": best_of(runs, "wall"), "cpu": best_of(runs, "cpu")}
    return startup


def git_commit(path):
    probe = subprocess.run(["git", "-C", path, "rev-parse", "--short", "HEAD"],
                           capture_output=True, text=True)
    return probe.stdout.strip() if probe.returncode == 0 else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", "-n", type=int, default=3,
                        help="rounds (each tool once per round, interleaved); default 3")
    parser.add_argument("--stat", choices=("best", "median"), default="best",
                        help="how the rounds are summarised (default best)")
    parser.add_argument("--sizes", choices=sorted(SIZES), default="default",
                        help="size set of the pyperformance workloads (default: default)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="what the work time of a pyperformance workload is: the "
                             "process's CPU time (default; less disturbed by other load) or "
                             "wall time")
    parser.add_argument("--only", action="append",
                        choices=list(WORKLOADS) + list(PROGRAM_SIZES),
                        help="run only this workload (repeatable)")
    parser.add_argument("--no-programs", action="store_true",
                        help="leave out the workloads of benchmarks/programs")
    parser.add_argument("--no-peer", action="store_true", help="do not run the peer")
    parser.add_argument("--no-ctinstrument", action="store_true",
                        help="do not run ctinstrument (with --no-peer: plain only)")
    parser.add_argument("--timeout", type=float, default=120,
                        help="seconds before a run is killed (default 120)")
    parser.add_argument("--max-trace-mb", type=int, default=4096,
                        help="kill a recorded run whose trace directory exceeds this "
                             "(default 4096)")
    parser.add_argument("--ctinstrument", metavar="DIR", default=REPO,
                        help="directory put first on PYTHONPATH for ctinstrument (default: "
                             "this repository)")
    parser.add_argument("--cache", metavar="DIR", default=os.path.join(HERE, ".cache"),
                        help="where pyperformance is downloaded (default benchmarks/.cache)")
    parser.add_argument("--keep-traces", metavar="DIR",
                        help="keep the last trace of every recorded run under DIR")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    options = parser.parse_args(argv)
    if options.repeat < 1:
        parser.error("--repeat must be at least 1")

    python = sys.executable
    names = [n for n in WORKLOADS if not options.only or n in options.only]
    programs = [] if options.no_programs else [
        n for n in PROGRAM_SIZES if not options.only or n in options.only]
    scripts = fetch_workloads(os.path.abspath(options.cache), names, python, options.sizes)
    tools, notes, peer = make_tools(python, os.path.abspath(options.ctinstrument),
                                    not options.no_peer, not options.no_ctinstrument)
    header = collections.OrderedDict(
        date=datetime.datetime.now().isoformat(timespec="seconds"),
        python=platform.python_version(), executable=python, platform=platform.platform(),
        cpus=os.cpu_count(), ctinstrument=os.path.abspath(options.ctinstrument),
        ctinstrument_version=ctinstrument_version(),
        ctinstrument_commit=git_commit(options.ctinstrument),
        peer=peer, pyperformance=PYPERFORMANCE_VERSION, sizes=options.sizes,
        workload_sizes={n: SIZES[options.sizes][n].size for n in names},
        repeat=options.repeat,
        clock=options.clock, stat=options.stat, timeout=options.timeout, max_trace_mb=options.max_trace_mb,
        tools=list(tools), notes=notes,
        loadavg_start=list(os.getloadavg()))
    print("Python %s (%s), %s cpus; ctinstrument %s from %s (%s); peer %s; pyperformance %s; "
          "%s sizes; %s of %d" % (header["python"], python, header["cpus"],
                        header["ctinstrument_version"], header["ctinstrument"],
                        header["ctinstrument_commit"],
                        peer["version"] if "peer" in tools else "n/a",
                        PYPERFORMANCE_VERSION, options.sizes, options.stat,
                        options.repeat))
    for note in notes:
        print("note: " + note)
    sys.stdout.flush()

    rows = []
    workdir = tempfile.mkdtemp(prefix="ctbench-pyperf-")
    try:
        startup = header["startup"] = measure_startup(tools, workdir, max(options.repeat, 5))
        jobs = [(n, scripts[n], SIZES[options.sizes][n].args + ["--clock", options.clock], None)
                for n in names]
        jobs += [(n, os.path.join(PROGRAMS, n + ".py"), [str(PROGRAM_SIZES[n])],
                  (PROGRAM_SIZES[n], default_size(n))) for n in programs]
        for job in jobs:
            print("running %s ..." % job[0], file=sys.stderr)
            rows.extend(run_workload(job, tools, options, workdir, startup))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    header["loadavg_end"] = list(os.getloadavg())

    summary = summary_rows(rows, list(tools), names)
    print_table(header, rows, summary)
    if options.json:
        with open(options.json, "w", encoding="utf-8") as f:
            json.dump({"environment": header, "results": rows, "summary": summary}, f,
                      indent=2)
            f.write("\n")
        print("JSON results written to %s" % options.json)
    return 0


# ----------------------------------------------------------------------------------------
# output


def geomean(values):
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def summary_rows(rows, tools, names):
    """Per recorder, over the pyperformance workloads: geomean and median of x work (the
    completed runs, and with the killed ones at their lower bound), median bytes/step, the
    largest peak RSS."""
    summary = []
    for tool in tools:
        if tool == "plain":
            continue
        mine = [r for r in rows if r["tool"] == tool and r["workload"] in names]
        done = [r["x_work"] for r in mine if r["x_work"]]
        bounded = done + [r["x_work_min"] for r in mine if r["x_work_min"]]
        bps = [r["bytes_per_step"] for r in mine if r.get("bytes_per_step")]
        summary.append(collections.OrderedDict(
            tool=tool, workloads=len(mine), completed=len(done),
            x_work_geomean=geomean(done), x_work_median=(statistics.median(done)
                                                         if done else None),
            x_work_max=max(done) if done else None,
            x_work_geomean_lower_bound=geomean(bounded) if len(bounded) > len(done) else None,
            bytes_per_step_median=statistics.median(bps) if bps else None,
            bytes_per_step_max=max(bps) if bps else None,
            peak_rss_max=max((r["peak_rss"] for r in mine), default=None)))
    return summary


def fmt_x(value, lower=None):
    if value is None:
        return ">%s" % fmt_x(lower) if lower else "-"
    return "%.0f" % value if value >= 100 else "%.1f" % value


def fmt_ms(value):
    return "-" if value is None else "%.1f" % (value * 1e3)


def fmt_us(value):
    return "-" if value is None else "%.2f" % (value * 1e6)


def fmt_mb(value):
    return "-" if value is None else "%.0f" % (value / (1 << 20))


def fmt_bps(value):
    return "-" if value is None else "%.0f" % value


def print_table(header, rows, summary):
    by_workload = collections.OrderedDict()
    for row in rows:
        by_workload.setdefault(row["workload"], {})[row["tool"]] = row
    recorders = [t for t in header["tools"] if t != "plain"]
    titles = ["workload", "plain ms", "plain MB"]
    for tool in recorders:
        titles += ["%s x" % tool, "trace", "steps", "B/step", "MB"]
    titles.append("status")
    table = [titles]
    for name, tools in by_workload.items():
        plain = tools.get("plain", {})
        unit = name in PROGRAM_SIZES        # per unit of work, in microseconds
        cells = [name + (" (net)" if unit else ""),
                 (fmt_us if unit else fmt_ms)(plain.get("work_s")),
                 fmt_mb(plain.get("peak_rss"))]
        status = []
        for tool in recorders:
            r = tools.get(tool, {})
            cells += [fmt_x(r.get("x_work"), r.get("x_work_min")),
                      fmt_bytes(r.get("trace_bytes")), fmt_count(r.get("steps")),
                      fmt_bps(r.get("bytes_per_step")), fmt_mb(r.get("peak_rss"))]
            if r.get("status", "ok") != "ok":
                status.append("%s: %s" % (tool, r["status"]))
        if plain.get("status", "ok") != "ok":
            status.insert(0, "plain: " + plain["status"])
        cells.append("; ".join(status) or "ok")
        table.append(cells)
    for kind, key, fmt in (("geomean", "x_work_geomean", fmt_x),
                           ("median", "x_work_median", fmt_x)):
        cells = [kind, "", ""]
        for s in summary:
            cells += [fmt(s[key]), "", "",
                      fmt_bps(s["bytes_per_step_median"]) if kind == "median" else "",
                      fmt_mb(s["peak_rss_max"]) if kind == "median" else ""]
        cells.append("")
        table.append(cells)
    widths = [max(len(r[i]) for r in table) for i in range(len(titles))]
    print()
    for index, cells in enumerate(table):
        print("  ".join(c.ljust(widths[i]) if i in (0, len(titles) - 1) else
                        c.rjust(widths[i]) for i, c in enumerate(cells)).rstrip())
        if index == 0:
            print("  ".join("-" * w for w in widths))
    print()
    print("start-up (empty script, not in 'x'), wall/CPU: " + ", ".join(
        "%s %.3f/%.3f s" % (tool, value["wall"], value["cpu"])
        for tool, value in header["startup"].items()))
    for s in summary:
        print("%s: x work geomean %s over %d of %d pyperformance workloads (median %s, max %s)"
              "%s; bytes/step median %s, max %s; peak RSS max %s MB"
              % (s["tool"], fmt_x(s["x_work_geomean"]), s["completed"], s["workloads"],
                 fmt_x(s["x_work_median"]), fmt_x(s["x_work_max"]),
                 "; with the killed runs at their lower bound: geomean >= %s"
                 % fmt_x(s["x_work_geomean_lower_bound"])
                 if s["x_work_geomean_lower_bound"] else "",
                 fmt_bps(s["bytes_per_step_median"]), fmt_bps(s["bytes_per_step_max"]),
                 fmt_mb(s["peak_rss_max"])))
    print("load average: %.2f at start, %.2f at end (1-minute)"
          % (header["loadavg_start"][0], header["loadavg_end"][0]))
    print("x = the tool's work time / plain's ('>N': killed, N is a lower bound); 'plain ms' "
          "is plain's work time\n((net) rows: us per unit, see run.py); trace = trace.json "
          "bytes; steps = Step events; B/step = trace / steps; MB = peak RSS of the process.")
    for note in header["notes"]:
        print("note: " + note)


if __name__ == "__main__":
    sys.exit(main())
