#!/usr/bin/env python3
"""Start-up benchmark of the code cache: recording the import of a large pure-Python package.

    python benchmarks/startup.py [--package docutils] [--imports MOD,MOD,...] [-n N]
                                 [--json FILE]

The package (default: docutils, ``pip install docutils``) must be importable by the
interpreter running this script; it is copied into a temporary directory so that every
bytecode cache involved is under this script's control.  A script doing nothing but the
imports (default: ``docutils.core``, ``docutils.parsers.rst``,
``docutils.writers.html5_polyglot``) is run, in this one invocation and with this
interpreter, as

* ``plain-source``   -- ``python script.py`` with no ``.pyc`` (PYTHONDONTWRITEBYTECODE=1)
* ``plain-pyc``      -- ``python script.py`` with the normal ``.pyc`` files in place
* ``ct-nocache``     -- ``python -m ctinstrument --include PKG script.py``, CTINSTRUMENT_CACHE=0
* ``ct-cold``        -- the same with the cache on and empty (it is filled by this run)
* ``ct-cached``      -- the same with the cache filled by the previous run

Repetitions are interleaved (plain-source, plain-pyc, ct-nocache, ct-cold, ct-cached, ...).
The ``code_cache`` counts of every recorded run's ``trace_metadata.json`` are checked: a
cold run must write every module it rewrote, a cached run must load them all.  Nothing here
asserts on timings; see benchmarks/README.md.
"""

import argparse
import importlib.util
import json
import os
import platform
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from run import ctinstrument_version, dir_files, run_process  # noqa: E402

DEFAULT_IMPORTS = {"docutils": "docutils.core,docutils.parsers.rst,"
                               "docutils.writers.html5_polyglot"}
CONFIGS = ("plain-source", "plain-pyc", "ct-nocache", "ct-cold", "ct-cached")


def copy_package(name, destination):
    """Copy package ``name`` (as this interpreter finds it) under ``destination``, without
    any ``__pycache__``; returns the copy's directory."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        sys.exit("startup.py: package %r is not importable by %s; install it first "
                 "(`%s -m pip install %s`)" % (name, sys.executable, sys.executable, name))
    source = list(spec.submodule_search_locations)[0]
    target = os.path.join(destination, name)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def clear_caches(root, private_only):
    """Remove ctinstrument's cache entries under ``root`` (and, unless ``private_only``,
    every ``__pycache__``)."""
    for directory, dirs, files in os.walk(root):
        if os.path.basename(directory) != "__pycache__":
            continue
        if not private_only:
            shutil.rmtree(directory)
            continue
        for name in files:
            if ".ctinstrument-" in name:
                os.unlink(os.path.join(directory, name))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--package", default="docutils")
    parser.add_argument("--imports", help="comma-separated modules the script imports "
                                          "(default for docutils: %s)"
                                          % DEFAULT_IMPORTS["docutils"])
    parser.add_argument("-n", "--repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--json", metavar="FILE")
    options = parser.parse_args(argv)
    imports = (options.imports or DEFAULT_IMPORTS.get(options.package)
               or options.package).split(",")

    work = tempfile.mkdtemp(prefix="ct-startup-")
    try:
        return _measure(options, imports, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _measure(options, imports, work):
    lib = os.path.join(work, "lib")
    package_dir = copy_package(options.package, lib)
    modules = sum(1 for _d, _s, files in os.walk(package_dir) for f in files
                  if f.endswith(".py"))
    script = os.path.join(work, "imports.py")
    with open(script, "w", encoding="utf-8") as handle:
        handle.write("".join("import %s\n" % name for name in imports))
    python = sys.executable
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PYTHON") and not k.startswith("CTINSTRUMENT")}
    env["PYTHONPATH"] = os.pathsep.join([lib, REPO])
    trace_dir = os.path.join(work, "trace")
    record = [python, "-m", "ctinstrument", "-o", trace_dir, "--include", options.package,
              script]

    def run(config):
        if config == "plain-source":
            clear_caches(lib, private_only=False)
            return run_process([python, script], work, dict(env, PYTHONDONTWRITEBYTECODE="1"),
                               options.timeout)
        if config == "plain-pyc":
            return run_process([python, script], work, env, options.timeout)
        if config in ("ct-nocache", "ct-cold"):
            clear_caches(lib, private_only=True)
        extra = {"CTINSTRUMENT_CACHE": "0"} if config == "ct-nocache" else {}
        result = run_process(record, work, dict(env, **extra), options.timeout)
        try:
            with open(os.path.join(trace_dir, "trace_metadata.json"), encoding="utf-8") as f:
                result["code_cache"] = json.load(f).get("code_cache")
            result["trace_bytes"] = sum(dir_files(trace_dir).values())
        except (OSError, ValueError):
            result["code_cache"] = None
        shutil.rmtree(trace_dir, ignore_errors=True)
        return result

    # Warm-up: the normal .pyc of the package, the standard library's and ctinstrument's.
    run("plain-pyc")
    run("ct-nocache")
    runs = {config: [] for config in CONFIGS}
    for _ in range(options.repeat):
        for config in CONFIGS:
            print("running %s ..." % config, file=sys.stderr)
            runs[config].append(run(config))

    print("Python %s (%s), %s cpus; ctinstrument %s; %s (%d .py files), importing %s; "
          "best of %d" % (platform.python_version(), sys.executable, os.cpu_count(),
                          ctinstrument_version(), options.package, modules,
                          ", ".join(imports), options.repeat))
    if hasattr(os, "getloadavg"):
        print("load average at end: %.2f %.2f %.2f" % os.getloadavg())
    print("%-13s %8s %8s %9s %11s  %s" % ("config", "wall s", "cpu s", "x pyc", "trace MB",
                                          "status / code_cache"))
    reference = min(r["wall"] for r in runs["plain-pyc"])
    summary = {}
    for config in CONFIGS:
        wall = min(r["wall"] for r in runs[config])
        cpus = [r["cpu"] for r in runs[config] if r["cpu"] is not None]
        cpu = min(cpus) if cpus else None
        status = _status(config, runs[config])
        trace = runs[config][-1].get("trace_bytes")
        summary[config] = {"wall": wall, "cpu": cpu, "status": status,
                           "walls": [r["wall"] for r in runs[config]], "trace_bytes": trace,
                           "code_cache": runs[config][-1].get("code_cache")}
        print("%-13s %8.3f %8s %9.1f %11s  %s"
              % (config, wall, "%.3f" % cpu if cpu is not None else "-", wall / reference,
                 "%.1f" % (trace / 1e6) if trace else "-", status))
    for key in ("wall", "cpu"):
        cold, cached = summary["ct-cold"][key], summary["ct-cached"][key]
        if cold is None or cached is None:
            continue
        print("cache gain (%s): ct-cold - ct-cached = %.3f s, ct-cold / ct-cached = %.2fx; "
              "ct-cold - ct-nocache = %.3f s (writing the cache)"
              % (key, cold - cached, cold / cached, cold - summary["ct-nocache"][key]))
    if options.json:
        with open(options.json, "w", encoding="utf-8") as handle:
            json.dump({"python": platform.python_version(), "package": options.package,
                       "imports": imports, "repeat": options.repeat, "results": summary},
                      handle, indent=2)
    return 0


def _status(config, runs):
    """``ok`` plus the code cache counts, or what went wrong in any repetition."""
    for result in runs:
        if result["timed_out"]:
            return "timed out"
        if result["rc"] != 0:
            return "exit %d: %s" % (result["rc"], result["stderr"].strip()[-200:])
    if not config.startswith("ct-"):
        return "ok"
    for result in runs:
        stats = result.get("code_cache")
        if not stats:
            return "no code_cache in trace_metadata.json"
        rewritten = stats["rewritten"]  # the script itself is cached too
        if config == "ct-cold" and (stats["loaded"] or stats["written"] != rewritten):
            return "cold run did not fill the cache: %s" % stats
        if config == "ct-cached" and (rewritten or not stats["loaded"]):
            return "cached run rewrote modules: %s" % stats
    stats = runs[-1]["code_cache"]
    return "ok (rewritten %d, loaded %d, written %d)" % (
        stats["rewritten"], stats.get("loaded", 0), stats.get("written", 0))


if __name__ == "__main__":
    sys.exit(main())
