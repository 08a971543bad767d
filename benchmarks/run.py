#!/usr/bin/env python3
"""Recording-overhead benchmark: plain CPython vs ctinstrument vs codetracer-python-recorder.

    python benchmarks/run.py [--repeat N] [--json FILE] [--only NAME ...] [--scale F]
                             [--size NAME=N ...] [--peer-format json,binary | none]

Every workload in ``benchmarks/programs`` is run, in this one invocation and with the
interpreter running this script (``sys.executable``), under

* ``plain``        -- ``python SCRIPT N``
* ``ctinstrument`` -- ``python -m ctinstrument -o DIR SCRIPT N`` (the repository root is put
                      on PYTHONPATH, so the working tree is what gets measured)
* ``peer-json`` / ``peer-binary`` -- ``python -m codetracer_python_recorder --trace-dir DIR
                      --format json|binary SCRIPT N`` when that package is importable by
                      this interpreter (it needs CPython 3.12+); otherwise skipped with a note.

Recording costs about three orders of magnitude, so the recorded runs use a small size N
(see ``WORKLOADS``); plain CPython is also run at the script's default size so that its cost
per unit of work is measured precisely.  See benchmarks/README.md for every column.

This is a measurement, not a test: nothing here asserts on timings.  It exits non-zero
only when it cannot run at all (bad arguments).
"""

import argparse
import collections
import datetime
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PROGRAMS = os.path.join(HERE, "programs")

# name -> size of the recorded runs.  It keeps one recorded run around 1-5 s on a 2-core
# machine; plain CPython is also run at the script's own DEFAULT_SIZE (0.2-0.5 s).
WORKLOADS = collections.OrderedDict([
    ("assignments", 1000),   # loop iterations
    ("calls", 300),          # rounds (fib + methods + generators)
    ("realistic", 10),       # JSON lines tokenized, parsed and aggregated
])

PEER_PACKAGE = "codetracer_python_recorder"
PEER_DIST = "codetracer-python-recorder"
PEER_FORMATS = ("json", "binary")


def default_size(name):
    """The DEFAULT_SIZE of ``programs/NAME.py`` (what ``python NAME.py`` runs)."""
    with open(os.path.join(PROGRAMS, name + ".py"), encoding="utf-8") as f:
        match = re.search(r"^DEFAULT_SIZE = ([0-9_]+)$", f.read(), re.M)
    return int(match.group(1).replace("_", ""))


# ----------------------------------------------------------------------------------------
# running one process


def run_process(argv, cwd, env, timeout):
    """Run ``argv``; returns wall seconds, child CPU seconds, exit code and output."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err)
        cpu = None
        timed_out = False
        if hasattr(os, "wait4"):
            deadline = start + timeout
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() > deadline:
                    proc.kill()
                    timed_out = True
                    pid, status, usage = os.wait4(proc.pid, 0)
                    break
                time.sleep(0.002)
            wall = time.perf_counter() - start
            proc.returncode = os.waitstatus_to_exitcode(status)
            cpu = usage.ru_utime + usage.ru_stime
        else:  # pragma: no cover - not Linux/macOS
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                timed_out = True
            wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        return {"wall": wall, "cpu": cpu, "rc": proc.returncode,
                "timed_out": timed_out,
                "stdout": out.read().decode("utf-8", "replace"),
                "stderr": err.read().decode("utf-8", "replace")}


# ----------------------------------------------------------------------------------------
# tools


class Tool:
    def __init__(self, name, make_argv, env=None, records=True):
        self.name = name
        self.make_argv = make_argv      # (script, args, trace_dir) -> argv
        self.env = env
        self.records = records


def make_tools(peer_formats):
    """The tools to measure, and notes about the ones left out."""
    python = sys.executable
    notes = []
    tools = [Tool("plain", lambda script, args, out: [python, script] + args,
                  records=False)]

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([REPO] + ([env["PYTHONPATH"]]
                                                   if env.get("PYTHONPATH") else []))
    probe = subprocess.run([python, "-c", "import ctinstrument.cli"], env=env, cwd=REPO,
                           capture_output=True, text=True)
    if probe.returncode == 0:
        tools.append(Tool("ctinstrument",
                          lambda script, args, out: [python, "-m", "ctinstrument", "-o", out,
                                                     script] + args, env=env))
    else:
        notes.append("ctinstrument skipped: cannot import it with %s (%s)"
                     % (python, (probe.stderr.strip().splitlines() or ["?"])[-1]))

    peer = peer_status()
    if peer["available"] and peer_formats:
        for fmt in peer_formats:
            tools.append(Tool("peer-" + fmt,
                              lambda script, args, out, fmt=fmt:
                              [python, "-m", PEER_PACKAGE, "--trace-dir", out, "--format", fmt,
                               script] + args))
    elif not peer_formats:
        notes.append("peer skipped: --peer-format none")
    else:
        notes.append("peer skipped: " + peer["note"])
    return tools, notes, peer


def peer_status():
    """Whether codetracer-python-recorder can be used by this interpreter, and why not."""
    installed = importlib.util.find_spec(PEER_PACKAGE) is not None
    version = None
    if installed:
        try:
            from importlib import metadata
            version = metadata.version(PEER_DIST)
        except Exception:
            version = "?"
    if sys.version_info < (3, 12):
        note = ("%s needs CPython 3.12+ (it is built on sys.monitoring); this is %s"
                % (PEER_DIST, platform.python_version()))
        if installed:
            note += " (installed, but unsupported)"
        else:
            note += "; run this benchmark with a 3.12/3.13 venv that has `pip install %s`" \
                    % PEER_DIST
        return {"available": False, "version": version, "note": note}
    if not installed:
        return {"available": False, "version": None,
                "note": "%s is not installed for %s (`%s -m pip install %s`)"
                        % (PEER_DIST, sys.executable, sys.executable, PEER_DIST)}
    return {"available": True, "version": version, "note": ""}


def ctinstrument_version():
    try:
        with open(os.path.join(REPO, "ctinstrument", "__init__.py"), encoding="utf-8") as f:
            match = re.search(r'__version__\s*=\s*"([^"]+)"', f.read())
        return match.group(1) if match else None
    except OSError:
        return None


# ----------------------------------------------------------------------------------------
# traces


def dir_files(path):
    """{relative path: bytes} of every file under ``path``."""
    sizes = {}
    for root, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            try:
                sizes[os.path.relpath(full, path)] = os.path.getsize(full)
            except OSError:
                pass
    return sizes


_SEPARATORS = re.compile(r"[\s,]*")


def count_events(trace_dir):
    """Event counts by kind in ``trace_dir/trace.json``, or None when there is no JSON trace.

    ctinstrument writes one event per line, which is counted line by line; any other JSON
    array (the peer writes all of it on one line) is decoded one element at a time.
    """
    path = os.path.join(trace_dir, "trace.json")
    if not os.path.isfile(path):
        return None
    counts = collections.Counter()
    with open(path, "rb") as f:
        first = f.readline()
        if first.strip() == b"[":
            for line in f:
                if line.startswith(b'{"'):
                    counts[line[2:line.index(b'"', 2)].decode()] += 1
                elif line.strip() not in (b"]", b""):
                    break   # not one event per line after all
            else:
                return counts
    counts.clear()
    with open(path, encoding="utf-8") as f:
        text = f.read()
    decoder = json.JSONDecoder()
    index = _SEPARATORS.match(text, text.index("[") + 1).end()
    while index < len(text) and text[index] != "]":
        event, index = decoder.raw_decode(text, index)
        counts[next(iter(event)) if isinstance(event, dict) and event else "?"] += 1
        index = _SEPARATORS.match(text, index).end()
    return counts


# ----------------------------------------------------------------------------------------
# the benchmark


def best(runs, key="wall"):
    values = [r[key] for r in runs if r.get(key) is not None]
    return min(values) if values else None


def measure(tool, script, args, workdir, repeat, timeout, keep_dir=None, label=None):
    """Run ``tool`` ``repeat`` times; the last run's trace is kept for counting."""
    runs = []
    trace_dir = None
    for i in range(repeat):
        trace_dir = os.path.join(workdir, "trace-%s-%s" % (tool.name, label or "x"))
        shutil.rmtree(trace_dir, ignore_errors=True)
        runs.append(run_process(tool.make_argv(script, args, trace_dir), workdir,
                                tool.env, timeout))
        if i < repeat - 1:
            shutil.rmtree(trace_dir, ignore_errors=True)
    return runs, trace_dir


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", "-n", type=int, default=3,
                        help="repetitions of every measurement; the best is reported "
                             "(default 3)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--only", action="append", choices=list(WORKLOADS),
                        help="run only this workload (repeatable)")
    parser.add_argument("--size", action="append", default=[], metavar="NAME=N",
                        help="size of the recorded runs of workload NAME")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply every recorded size (default 1)")
    parser.add_argument("--peer-format", default="json,binary",
                        help="peer trace formats to measure: comma-separated among "
                             "json,binary, or none (default json,binary)")
    parser.add_argument("--timeout", type=float, default=600,
                        help="seconds before one run is killed (default 600)")
    parser.add_argument("--keep-traces", metavar="DIR",
                        help="keep the last trace of every recorder run under DIR")
    options = parser.parse_args(argv)

    if options.repeat < 1:
        parser.error("--repeat must be at least 1")
    sizes = {name: max(1, int(round(rec * options.scale))) for name, rec in WORKLOADS.items()}
    for item in options.size:
        name, _, value = item.partition("=")
        if name not in WORKLOADS or not value.isdigit() or int(value) < 1:
            parser.error("--size wants NAME=N with NAME among %s" % ", ".join(WORKLOADS))
        sizes[name] = int(value)
    formats = [f.strip() for f in options.peer_format.split(",") if f.strip()]
    if formats == ["none"]:
        formats = []
    for fmt in formats:
        if fmt not in PEER_FORMATS:
            parser.error("--peer-format: unknown format %r" % fmt)
    workloads = [name for name in WORKLOADS if not options.only or name in options.only]

    tools, notes, peer = make_tools(formats)
    header = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "ctinstrument_version": ctinstrument_version(),
        "peer": peer,
        "repeat": options.repeat,
        "tools": [t.name for t in tools],
        "notes": list(notes),
        "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    print("Python %s (%s), %s, %s cpus; ctinstrument %s; peer %s; best of %d"
          % (header["python"], sys.executable, header["platform"], header["cpus"],
             header["ctinstrument_version"],
             peer["version"] if peer["available"] else "n/a", options.repeat))
    for note in notes:
        print("note: " + note)
    if header["loadavg_start"]:
        print("load average at start: %.2f %.2f %.2f" % tuple(header["loadavg_start"]))
    sys.stdout.flush()

    results = []
    workdir = tempfile.mkdtemp(prefix="ctbench-")
    try:
        # Start-up cost of every tool: the same command on an empty script.
        empty = os.path.join(workdir, "empty.py")
        with open(empty, "w") as f:
            f.write("pass\n")
        # Start-up and plain's reference are short runs that every figure depends on:
        # they get at least 5 repetitions.
        short_repeat = max(options.repeat, 5)
        startup = {}
        for tool in tools:
            runs, trace_dir = measure(tool, empty, [], workdir, short_repeat,
                                      options.timeout, label="empty")
            startup[tool.name] = best(runs) if all(r["rc"] == 0 for r in runs) else None
            shutil.rmtree(trace_dir, ignore_errors=True)
        header["startup"] = startup

        for name in workloads:
            script = os.path.join(PROGRAMS, name + ".py")
            size = sizes[name]
            ref_size = default_size(name)
            print("running %s (recorded size %d) ..." % (name, size), file=sys.stderr)

            # plain at the reference size: the precise cost of one unit of work
            ref_runs, _ = measure(tools[0], script, [str(ref_size)], workdir,
                                  short_repeat, options.timeout, label=name)
            ref_wall = best(ref_runs)
            plain_unit = None
            if ref_wall is not None and startup.get("plain") is not None \
                    and ref_wall > startup["plain"]:
                plain_unit = (ref_wall - startup["plain"]) / ref_size

            # every tool at the recorded size, repetitions interleaved across the tools
            per_tool = {tool.name: [] for tool in tools}
            last_dir = {}
            for rep in range(options.repeat):
                for tool in tools:
                    runs, trace_dir = measure(tool, script, [str(size)], workdir, 1,
                                              options.timeout, label=name)
                    per_tool[tool.name].extend(runs)
                    if rep < options.repeat - 1:
                        shutil.rmtree(trace_dir, ignore_errors=True)
                    last_dir[tool.name] = trace_dir
            plain_out = per_tool["plain"][-1]["stdout"]
            plain_wall = best(per_tool["plain"])

            for tool in tools:
                runs = per_tool[tool.name]
                row = collections.OrderedDict(
                    program=name, tool=tool.name, size=size,
                    wall_best=best(runs), wall_all=[round(r["wall"], 4) for r in runs],
                    cpu_best=best(runs, "cpu"), startup=startup.get(tool.name))
                problems = []
                for r in runs:
                    if r["timed_out"]:
                        problems.append("timed out")
                    elif r["rc"] != 0:
                        problems.append("exit %s: %s" % (r["rc"], (r["stderr"].strip()
                                                                  .splitlines() or [""])[-1]))
                    elif r["stdout"] != plain_out:
                        problems.append("output differs from plain")
                row["status"] = "; ".join(sorted(set(problems))) or "ok"

                row["slowdown_wall"] = (row["wall_best"] / plain_wall
                                        if plain_wall and row["wall_best"] else None)
                net = None
                if row["wall_best"] is not None and row["startup"] is not None:
                    net = row["wall_best"] - row["startup"]
                row["net"] = net
                row["unit_cost"] = net / size if net is not None and net > 0 else None
                if tool.name == "plain":
                    row["unit_cost"] = plain_unit
                    row["reference_size"] = ref_size
                    row["reference_wall_best"] = ref_wall
                row["slowdown_net"] = (row["unit_cost"] / plain_unit
                                       if row["unit_cost"] and plain_unit else None)

                if tool.records:
                    trace_dir = last_dir[tool.name]
                    files = dir_files(trace_dir) if os.path.isdir(trace_dir) else {}
                    row["trace_files"] = {k: v for k, v in files.items()
                                          if not k.startswith("files" + os.sep)}
                    row["trace_bytes"] = sum(files.values()) if files else None
                    try:
                        counts = count_events(trace_dir) if files else None
                    except (ValueError, OSError) as exc:
                        counts = None
                        row["status"] += "; cannot count events: %s" % exc
                    row["event_counts"] = dict(counts) if counts is not None else None
                    row["events"] = sum(counts.values()) if counts is not None else None
                    rate_time = net if net and net > 0 else None
                    for key, kind in (("events_per_s", None), ("steps_per_s", "Step"),
                                      ("values_per_s", "Value")):
                        if counts is None or rate_time is None:
                            row[key] = None
                        else:
                            n = row["events"] if kind is None else counts.get(kind, 0)
                            row[key] = n / rate_time
                    if options.keep_traces and os.path.isdir(trace_dir):
                        dest = os.path.join(options.keep_traces,
                                            "%s-%s-py%s" % (name, tool.name,
                                                            header["python"]))
                        shutil.rmtree(dest, ignore_errors=True)
                        shutil.copytree(trace_dir, dest)
                    shutil.rmtree(trace_dir, ignore_errors=True)
                results.append(row)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    header["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    print_table(header, results)
    if options.json:
        with open(options.json, "w", encoding="utf-8") as f:
            json.dump({"environment": header, "results": results}, f, indent=2)
            f.write("\n")
        print("JSON results written to %s" % options.json)
    return 0


# ----------------------------------------------------------------------------------------
# output


def fmt_seconds(value):
    return "-" if value is None else "%.3f" % value


def fmt_ratio(value):
    if value is None:
        return "-"
    return "%.0fx" % value if value >= 100 else "%.1fx" % value


def fmt_count(value):
    if value is None:
        return "-"
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            return "%.2f%s" % (value / limit, suffix)
    return "%d" % value


def fmt_bytes(value):
    if value is None:
        return "-"
    for limit, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if value >= limit:
            return "%.1f %s" % (value / limit, suffix)
    return "%d B" % value


def print_table(header, results):
    columns = [("program", "program", str), ("recorder", "tool", str), ("size", "size", str),
               ("wall s", "wall_best", fmt_seconds), ("cpu s", "cpu_best", fmt_seconds),
               ("wall x", "slowdown_wall", fmt_ratio), ("net x", "slowdown_net", fmt_ratio),
               ("events", "events", fmt_count), ("events/s", "events_per_s", fmt_count),
               ("Step/s", "steps_per_s", fmt_count), ("Value/s", "values_per_s", fmt_count),
               ("trace", "trace_bytes", fmt_bytes), ("status", "status", str)]
    rows = [[title for title, _key, _f in columns]]
    for result in results:
        row = []
        for _title, key, fmt in columns:
            value = result.get(key)
            row.append("-" if value is None else fmt(value))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(columns))]
    left = {0, 1, len(columns) - 1}
    print()
    for index, row in enumerate(rows):
        cells = [cell.ljust(widths[i]) if i in left else cell.rjust(widths[i])
                 for i, cell in enumerate(row)]
        print("  ".join(cells).rstrip())
        if index == 0:
            print("  ".join("-" * w for w in widths))
    startup = header.get("startup") or {}
    print()
    print("start-up (empty script): " + ", ".join(
        "%s %s s" % (name, fmt_seconds(value)) for name, value in startup.items()))
    for result in results:
        if result["tool"] == "plain" and result.get("unit_cost"):
            print("plain reference: %s at size %d: %s s (%.3g us per unit)"
                  % (result["program"], result["reference_size"],
                     fmt_seconds(result["reference_wall_best"]), result["unit_cost"] * 1e6))
    if header.get("loadavg_start") and header.get("loadavg_end"):
        print("load average: %.2f at start, %.2f at end (1-minute)"
              % (header["loadavg_start"][0], header["loadavg_end"][0]))
    print("wall x = wall time / plain wall time at the same size; net x = cost per unit of "
          "work\nafter start-up / plain's cost per unit at its reference size; rates use the "
          "net time;\n'events' counts trace.json elements (a binary trace is not counted).")
    for note in header.get("notes", []):
        print("note: " + note)


if __name__ == "__main__":
    sys.exit(main())
