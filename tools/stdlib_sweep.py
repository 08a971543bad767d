"""Instrument and import every pure-Python module of this interpreter's standard library.

Usage: python tools/stdlib_sweep.py [--sample N] [--chunk N] [--json FILE] [MODULE ...]

For each module (the stdlib directory's ``.py`` files; tests, GUI packages, ``__main__``
modules and a few with side effects on import are left out, see ``SKIP``):

1. imported under the recorder in a subprocess (``python -m ctinstrument --no-cache
   --include MODULE``, several modules per process), and also imported plainly: a module
   that imports plainly but not under the recorder, or a recorder process that dies of a
   signal, is a failure (a crashed chunk is re-run one module per process to name it);
   the verifier's rejections come from ``trace_metadata.json``, instrumentation errors
   from the recorder's warnings;
2. a module that was already imported when the program started (the launcher's own
   imports: ``os``, ``re``, ...) or that the recorded run could not import is instead
   compiled and instrumented in this process, every code object checked by the verifier.  Prints the figures and
exits with status 1 on any crash, mismatch, rejection or instrumentation error.  The
working tree is put on ``PYTHONPATH``, so no install is needed; ``--no-cache`` keeps
instrumented code out of the stdlib's ``__pycache__``.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import sysconfig
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from ctinstrument.binding import instrument_portable, rejections  # noqa: E402
from ctinstrument.errors import InstrumentationError  # noqa: E402

# Packages and modules not imported: test suites, GUIs, and modules whose import does
# something to the machine or the terminal (a browser, a print, an interactive prompt).
SKIP = ("test", "idlelib", "tkinter", "turtledemo", "turtle", "lib2to3.tests", "antigravity",
        "this", "ensurepip", "venv", "pydoc_data", "__phello__", "__hello__", "xxlimited",
        "_pyrepl", "msilib", "distutils.tests", "unittest.test", "ctypes.test",
        "sqlite3.test", "tkinter.test", "idlelib.idle_test")

IMPORTER = r"""
import importlib, json, sys
results = {}
for name in sys.argv[2:]:
    if name in sys.modules:
        results[name] = "preloaded"
        continue
    try:
        importlib.import_module(name)
        results[name] = "ok"
    except BaseException as exc:
        results[name] = type(exc).__name__
with open(sys.argv[1], "w") as handle:
    json.dump(results, handle)
"""


def stdlib_modules():
    """(name, path) of the stdlib's pure-Python modules and packages, sorted (found on disk,
    nothing imported)."""
    root = sysconfig.get_paths()["stdlib"]
    found = []

    def walk(directory, prefix):
        for entry in sorted(os.listdir(directory)):
            path = os.path.join(directory, entry)
            if entry.endswith(".py"):
                stem = entry[:-3]
                name = prefix[:-1] if stem == "__init__" else prefix + stem
                if name and stem.isidentifier():
                    found.append((name, path))
            elif entry.isidentifier() and os.path.isfile(os.path.join(path, "__init__.py")):
                walk(path, prefix + entry + ".")

    walk(root, "")
    return sorted((name, path) for name, path in found
                  if not any(name == skip or name.startswith(skip + ".") for skip in SKIP)
                  and not name.endswith("__main__"))


def instrument_in_process(name, origin):
    """([(qualname, reason) rejected], error or None, why it was skipped or None)."""
    with open(origin, "rb") as handle:
        source = handle.read()
    try:
        code = compile(source, origin, "exec", dont_inherit=True)
    except SyntaxError as exc:  # a file of the stdlib that is not valid here (templates)
        return [], None, "syntax: %s" % exc
    try:
        portable = instrument_portable(code, name, origin)
    except InstrumentationError as exc:
        return [], str(exc), None
    return rejections(portable), None, None


def _env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "CTINSTRUMENT_"))}
    env["PYTHONPATH"] = REPO
    return env


def import_chunk(names, recorded, workdir):
    """({module: "ok" | "preloaded" | exception type name}, returncode, metadata or None,
    stderr) for one subprocess."""
    script = os.path.join(workdir, "importer.py")
    with open(script, "w") as handle:
        handle.write(IMPORTER)
    out = os.path.join(workdir, "result.json")
    if os.path.exists(out):
        os.unlink(out)
    if recorded:
        cmd = [sys.executable, "-m", "ctinstrument", "--no-cache", "--no-capture-output",
               "--include", ",".join(names), "-o", os.path.join(workdir, "trace"),
               script, out, *names]
    else:
        cmd = [sys.executable, script, out, *names]
    try:
        result = subprocess.run(cmd, cwd=workdir, env=_env(), stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=3600)
        code, stderr = result.returncode, result.stderr
    except subprocess.TimeoutExpired:
        code, stderr = "timeout", ""
    metadata = None
    if recorded:
        try:
            with open(os.path.join(workdir, "trace", "trace_metadata.json")) as handle:
                metadata = json.load(handle)
        except (OSError, ValueError):
            pass
    try:
        with open(out) as handle:
            return json.load(handle), code, metadata, stderr
    except (OSError, ValueError):
        return {}, code, metadata, stderr


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, help="a seeded random sample of N modules")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk", type=int, default=40, help="modules per subprocess")
    parser.add_argument("--no-import", action="store_true",
                        help="instrument every module in this process, import none")
    parser.add_argument("--json", help="write the figures and failures to this file")
    parser.add_argument("modules", nargs="*")
    options = parser.parse_args(argv)
    started = time.time()
    modules = stdlib_modules()
    if options.modules:
        modules = [m for m in modules if m[0] in options.modules]
    if options.sample:
        modules = sorted(random.Random(options.seed).sample(modules, min(options.sample,
                                                                         len(modules))))
    figures = {"python": "%d.%d.%d" % sys.version_info[:3], "modules": len(modules),
               "instrumented": 0, "instrumented_in_process": 0, "rejected": 0, "errors": 0,
               "imported_plain": 0, "imported_recorded": 0, "crashes": 0, "mismatches": 0}
    failures = []
    in_process = []
    if options.no_import:
        in_process = list(modules)
    else:
        origins = dict(modules)
        names = [name for name, _ in modules]
        with tempfile.TemporaryDirectory() as workdir:
            for start in range(0, len(names), options.chunk):
                chunk = names[start:start + options.chunk]
                plain, _, _, _ = import_chunk(chunk, False, workdir)
                recorded, code, metadata, stderr = import_chunk(chunk, True, workdir)
                if not isinstance(code, int) or code < 0:
                    # Name the module that crashes, one per process.
                    recorded, stderr = {}, ""
                    for name in chunk:
                        one, one_code, _, one_err = import_chunk([name], True, workdir)
                        recorded.update(one)
                        stderr += one_err
                        if not isinstance(one_code, int) or one_code < 0:
                            figures["crashes"] += 1
                            failures.append({"module": name, "crash": one_code})
                elif metadata is not None:
                    verifier = metadata.get("verifier", {})
                    figures["rejected"] += verifier.get("rejected", 0)
                    failures.extend({"rejected": entry} for entry in verifier.get(
                        "functions", ()))
                for line in stderr.splitlines():
                    if line.startswith("ctinstrument: warning: cannot instrument"):
                        figures["errors"] += 1
                        failures.append({"error": line})
                for name in chunk:
                    figures["imported_plain"] += plain.get(name) == "ok"
                    outcome = recorded.get(name)
                    if outcome == "ok":
                        figures["imported_recorded"] += 1
                        figures["instrumented"] += 1
                    else:
                        in_process.append((name, origins[name]))
                    if outcome not in (None, "preloaded") and plain.get(name) != outcome:
                        figures["mismatches"] += 1
                        failures.append({"module": name, "plain": plain.get(name),
                                         "recorded": outcome})
    for name, origin in in_process:
        rejected, error, skipped = instrument_in_process(name, origin)
        if skipped:
            continue
        figures["rejected"] += len(rejected)
        for qualname, reason in rejected:
            failures.append({"module": name, "rejected": qualname, "reason": reason})
        if error:
            figures["errors"] += 1
            failures.append({"module": name, "error": error})
        else:
            figures["instrumented"] += 1
            figures["instrumented_in_process"] += 1
    figures["seconds"] = round(time.time() - started)
    print(json.dumps(figures))
    for failure in failures:
        print("FAIL", json.dumps(failure))
    if options.json:
        with open(options.json, "w") as handle:
            json.dump({"figures": figures, "failures": failures}, handle, indent=1)
    bad = figures["crashes"] + figures["mismatches"] + figures["rejected"] + figures["errors"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
