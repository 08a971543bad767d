"""Helpers shared by the tests: run the recorder, read traces, run the independent oracles.

Oracles: ``settrace_lines`` (the interpreter's own ``sys.settrace`` line events for the same
program, see settrace_driver.py) and ``assert_conformant`` (the shared conformance checker,
../shared/tools/ct_trace_check.py, run with --strict).
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"
SHARED = REPO.parent / "shared"
CHECKER = SHARED / "tools" / "ct_trace_check.py"
LOCALS_TOOL = SHARED / "tools" / "ct_locals.py"
CORPUS = SHARED / "corpus"
DRIVER = Path(__file__).resolve().parent / "settrace_driver.py"
DEFINITIONS = {"Path", "Function", "Type", "VariableName"}
# What may stand between an entry step and its Call: definitions, and the caller's bindings
# dropped for the call's duration (probes.py).
ENTRY_GAP = DEFINITIONS | {"DropVariables"}


def child_env(**extra):
    # Hermetic: no Python settings and no ctinstrument configuration from the outside.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "CTINSTRUMENT_")) and k != "CODETRACER_DB_TRACE_PATH"}
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONHASHSEED"] = "0"
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(extra)
    return env


def write_program(directory, text, name="prog.py"):
    """Write ``text`` to ``directory/name``; returns the path."""
    path = directory / name
    path.write_text(text)
    return path


def run_plain(script, args=(), cwd=None, flags=()):
    return subprocess.run([sys.executable, *flags, str(script), *args], cwd=cwd,
                          capture_output=True, text=True, env=child_env(), timeout=300)


def record(target, out_dir, args=(), options=(), cwd=None, module=False, flags=(), env=None):
    """Run ``python -m ctinstrument`` on a script (or ``-m`` module); returns CompletedProcess."""
    where = ["-m", str(target)] if module else [str(target)]
    cmd = [sys.executable, *flags, "-m", "ctinstrument", "-o", str(out_dir), *options,
           *where, *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                          env=env or child_env(), timeout=300)


def load_events(trace_dir):
    with open(os.path.join(trace_dir, "trace.json"), "rb") as handle:
        return json.load(handle)


def load_paths(trace_dir):
    with open(os.path.join(trace_dir, "trace_paths.json"), "rb") as handle:
        return json.load(handle)


def shown_locals(events, paths):
    """What CodeTracer shows as the locals of each step: the dicts of
    ``../shared/tools/ct_locals.py`` (``{"step", "path", "line", "locals"}``, one per Step,
    entry steps included); skips if ../shared is not there."""
    if not LOCALS_TOOL.is_file():
        pytest.skip("ct_locals.py not found at %s (../shared is absent)" % LOCALS_TOOL)
    spec = importlib.util.spec_from_file_location("ct_locals", LOCALS_TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return list(tool.steps_with_locals(events, paths))


def kind(event):
    return event if isinstance(event, str) else next(iter(event))


def steps_by_thread(events, root=None):
    """Line steps (entry steps left out) per thread, as {thread: [(realpath, line), ...]}.

    An entry step is the Step immediately followed (ENTRY_GAP aside) by a Call.  With
    ``root``, only steps in files under that directory are kept.
    """
    prefix = os.path.realpath(root) + os.sep if root else None
    # The kind of the next non-definition event after each index, computed backwards.
    following = [None] * len(events)
    upcoming = None
    for index in range(len(events) - 1, -1, -1):
        following[index] = upcoming
        name = kind(events[index])
        if name not in ENTRY_GAP:
            upcoming = name
    paths = []
    threads = {}
    current = 1
    for index, event in enumerate(events):
        name = kind(event)
        if name == "Path":
            paths.append(os.path.realpath(event["Path"]))
        elif name in ("ThreadStart", "ThreadSwitch"):
            current = event[name]
        elif name == "Step" and following[index] != "Call":
            step = event["Step"]
            path = paths[step["path_id"]]
            if prefix is None or path.startswith(prefix):
                threads.setdefault(current, []).append((path, step["line"]))
    return threads


def settrace_lines(script, root, args=(), cwd=None, **oracle_env):
    """The plain interpreter's line events under ``root``, per thread (first seen first).
    ``oracle_env``: ORACLE_WINDOWS / ORACLE_ROOTS (see settrace_driver.py)."""
    out = Path(cwd or root) / ".settrace-lines.json"
    subprocess.run([sys.executable, str(DRIVER), str(out), str(root), str(script), *args],
                   cwd=cwd, capture_output=True, env=child_env(**oracle_env), timeout=300)
    try:
        with open(out) as handle:
            data = json.load(handle)
    finally:
        out.unlink()
    threads = {}
    for thread, path, line in data:
        threads.setdefault(thread, []).append((path, line))
    return threads


def assert_conformant(trace_dir):
    """Run the shared conformance checker with --strict; skip if ../shared is not there."""
    if not CHECKER.is_file():
        pytest.skip("conformance checker not found at %s (../shared is absent)" % CHECKER)
    result = subprocess.run([sys.executable, str(CHECKER), "--strict", str(trace_dir)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
