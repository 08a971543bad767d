"""CPython's own tests, recorded: ``python -m ctinstrument --include test.test_X -m unittest -v
test.test_X`` gives the same per-test outcomes as the same run without the recorder, and the
trace conforms.  test_grammar covers the language; test_sys_settrace line, call and exception
events and f_lineno jumps under a tracer the tests install; test_inspect, test_frame and
test_traceback read code objects (``co_consts``, ``co_names``), frames and tracebacks of the
recorded module itself (issue 10.5).  Helper modules they import (``test.inspect_fodder``)
run unrecorded: only test.test_X is included."""

import re
import subprocess
import sys

import pytest

from tracetools import assert_conformant, child_env, load_events

VERSION = sys.version_info[:2]
OUTCOME = re.compile(r"^(\w+) \(([\w.]+)\)(?:\s*\n.*?)? \.\.\. "
                     r"(ok|FAIL|ERROR|skipped.*|expected failure|unexpected success)$", re.M)

# Left out of both runs (the same tests are run plain and recorded): its loop runs about
# 10^5 iterations of recorded lines (minutes under the recorder) around calls into
# traceback._levenshtein_distance, which is not in the recorded module.
LEFT_OUT = {"test_traceback": {"MiscTest.test_levenshtein_distance_short_circuit"}}

# Differences inherent to recording: (interpreter, module) -> {"Class.test": recorded
# outcome}.  Each listed test must have exactly that outcome and differ from the plain run's;
# every other test must match the plain run.
#
# test_inspect: inspect.getclosurevars reports every name in co_names that is not a global
# as a builtin (or unbound), and instrumented code calls its probes by name (builtins
# ``__ctinstrument_*``): as constants they would make the program's code objects
# unmarshallable (marshal.dumps(f.__code__), see the shared corpus case pickle_copy).
CLOSURE_VARS = {"TestGetClosureVars." + name: "FAIL" for name in (
    "test_generator_closure", "test_method_closure", "test_name_resolution",
    "test_getclosurevars_empty")}
# test_frame: the test arms a garbage collection for the very next allocation of a
# GC-tracked object (gc.set_threshold(1, 0, 0)) and expects it while the frame object of a
# resumed generator is created on ``next(g)``; recorded, the step probe of that line
# allocates (it records the step) before, so the collection happens in the probe.  3.13 does
# not collect on that allocation; 3.10 has no such test.
SNEAKY_FRAME = {"TestIncompleteFrameAreInvisible.test_sneaky_frame_object": "FAIL"}
# test_sys_settrace: test_no_line_event_after_creating_generator also records the events of
# a C-level trace function (_testcapi.settrace_to_record, installed with PyEval_SetTrace past
# sys.settrace): the tracing shield cannot stand between it and the probes, so it sees their
# frames.  It exists from 3.11 on, in one class per tracing mode.
_C_TRACER_CLASSES = {
    (3, 11): ("TraceTestCase", "SkipLineEventsTraceTestCase", "TraceOpcodesTestCase"),
    (3, 12): ("TraceTestCase", "SkipLineEventsTraceTestCase", "TraceOpcodesTestCase",
              "TestSetLocalTrace", "TestLinesAfterTraceStarted"),
    (3, 13): ("TraceTestCase", "SkipLineEventsTraceTestCase", "TraceOpcodesTestCase",
              "TestSetLocalTrace", "TestLinesAfterTraceStarted"),
}
C_TRACER = {version: {cls + ".test_no_line_event_after_creating_generator": "FAIL"
                      for cls in classes}
            for version, classes in _C_TRACER_CLASSES.items()}
# test_traceback on 3.10: at the recursion limit the deepest frame of the recursing function
# is one level deeper than plain (the limit is raised so that probes fit) and its first
# probe, in the prologue, raises the RecursionError; 3.10 prologues have no line (an f_lineno
# jump must not land in them), so that innermost traceback entry reads "line -1".  3.11+
# show it with the function's line, one more "[Previous line repeated]", which the tests
# match by a regular expression.
RECURSIVE_TRACEBACK = {"TracebackFormatTests." + name: "FAIL" for name in (
    "test_recursive_traceback_python", "test_recursive_traceback_cpython_internal")}
KNOWN_DIFFERENCES = {
    ((3, 10), "test_traceback"): RECURSIVE_TRACEBACK,
    **{(version, "test_sys_settrace"): known for version, known in C_TRACER.items()},
    **{(version, "test_inspect"): CLOSURE_VARS for version in ((3, 10), (3, 11), (3, 12),
                                                                (3, 13))},
    ((3, 11), "test_frame"): SNEAKY_FRAME,
    ((3, 12), "test_frame"): SNEAKY_FRAME,
}

# The test names to pass to unittest for a module with tests left out: every TestCase class
# defined in it, except that the class of a left-out test is given method by method.
LISTER = """\
import importlib, sys, unittest
module = importlib.import_module(sys.argv[1])
left_out = set(sys.argv[2:])
loader = unittest.TestLoader()
for name, value in sorted(vars(module).items()):
    if not (isinstance(value, type) and issubclass(value, unittest.TestCase)
            and value.__module__ == module.__name__):
        continue
    methods = loader.getTestCaseNames(value)
    if left_out.isdisjoint(name + "." + method for method in methods):
        print(module.__name__ + "." + name)
    else:
        for method in methods:
            if name + "." + method not in left_out:
                print(module.__name__ + "." + name + "." + method)
"""


def _outcomes(text):
    """{"Class.test": outcome} of a ``unittest -v`` run (3.10 prints the class's dotted
    name, 3.11+ the test's)."""
    found = {}
    for method, where, outcome in OUTCOME.findall(text):
        parts = where.split(".")
        cls = parts[-2] if parts[-1] == method else parts[-1]
        found[cls + "." + method] = outcome
    return found


def _targets(module, env, cwd):
    left_out = LEFT_OUT.get(module)
    if not left_out:
        return ["test." + module]
    listed = subprocess.run([sys.executable, "-c", LISTER, "test." + module, *left_out],
                            capture_output=True, text=True, env=env, cwd=cwd, timeout=300)
    assert listed.returncode == 0, listed.stderr
    return listed.stdout.split()


@pytest.mark.parametrize("module", ["test_grammar", "test_sys_settrace", "test_inspect",
                                    "test_frame", "test_traceback"])
def test_outcomes_unchanged(tmp_path, module):
    pytest.importorskip("test." + module, reason="this interpreter ships without its tests")
    # The same environment for both runs: tests that start interpreters compare what they
    # see (test_inspect's TestMain reads __cached__, which the prefix changes).
    env = child_env(PYTHONPYCACHEPREFIX=str(tmp_path / "pycache"))  # not into the stdlib
    cmd = ["-m", "unittest", "-v", *_targets(module, env, tmp_path)]
    plain = subprocess.run([sys.executable, *cmd], capture_output=True, text=True, env=env,
                           cwd=tmp_path, timeout=600)
    recorded = subprocess.run(
        [sys.executable, "-m", "ctinstrument", "-o", str(tmp_path / "t"), "--include",
         "test." + module, *cmd], capture_output=True, text=True, env=env, cwd=tmp_path,
        timeout=900)
    expected = _outcomes(plain.stderr)
    assert len(expected) > 10
    got = _outcomes(recorded.stderr)
    known = KNOWN_DIFFERENCES.get((VERSION, module), {})
    for test_id, outcome in known.items():
        assert expected.get(test_id) not in (None, outcome), (test_id, "matches plain now")
        assert got.get(test_id) == outcome, (test_id, got.get(test_id))
    differing = {test_id for test_id in expected.keys() | got.keys()
                 if expected.get(test_id) != got.get(test_id)}
    assert differing == set(known), [(t, expected.get(t), got.get(t)) for t in differing]
    if not known:
        assert recorded.returncode == plain.returncode
    events = load_events(tmp_path / "t")
    paths = [e["Path"] for e in events if "Path" in e]
    assert any(path.endswith("test/%s.py" % module) or "/%s/" % module in path
               for path in paths), paths
    assert sum(1 for e in events if "Step" in e) > 300
    assert_conformant(tmp_path / "t")
