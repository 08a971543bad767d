"""CPython's own tests, recorded: ``test.test_grammar`` (the language) and
``test.test_sys_settrace`` (line, call and exception events, f_lineno jumps, all under a
tracer the tests install) run by unittest under the recorder give the same per-test outcomes
as the plain run, but for the differences listed in KNOWN_DIFFERENCES, and the trace
conforms."""

import re
import subprocess
import sys

import pytest

from tracetools import assert_conformant, child_env, load_events

OUTCOME = re.compile(r"^(\w+) \(([\w.]+)\)(?:\s*\n.*?)? \.\.\. "
                     r"(ok|FAIL|ERROR|skipped.*|expected failure|unexpected success)$", re.M)

# test_no_line_event_after_creating_generator also records the events of a C-level trace
# function (_testcapi.settrace_to_record, installed with PyEval_SetTrace past sys.settrace):
# the tracing shield cannot stand between it and the probes, so it sees their frames.  It
# exists from 3.11 on, in one class per tracing mode.
_C_TRACER = "test_no_line_event_after_creating_generator"
_C_TRACER_CLASSES = {
    (3, 11): ("TraceTestCase", "SkipLineEventsTraceTestCase", "TraceOpcodesTestCase"),
    (3, 12): ("TraceTestCase", "SkipLineEventsTraceTestCase", "TraceOpcodesTestCase",
              "TestSetLocalTrace", "TestLinesAfterTraceStarted"),
    (3, 13): ("TraceTestCase", "SkipLineEventsTraceTestCase", "TraceOpcodesTestCase",
              "TestSetLocalTrace", "TestLinesAfterTraceStarted"),
}
KNOWN_DIFFERENCES = {
    "test.test_grammar": set(),
    "test.test_sys_settrace": {
        (_C_TRACER, "test.test_sys_settrace." + name)
        for name in _C_TRACER_CLASSES.get(sys.version_info[:2], ())},
}
# A function of each module that must be in the trace.
RECORDED_FUNCTION = {
    "test.test_grammar": "GrammarTests.test_funcdef",
    "test.test_sys_settrace": "JumpTestCase.run_test",
}


def _outcomes(text):
    """{(test, class): outcome}; the class is the dotted path unittest prints (3.11+ ends
    it with the test's name, which is dropped)."""
    found = {}
    for name, where, outcome in OUTCOME.findall(text):
        if where.endswith("." + name):
            where = where[:-len(name) - 1]
        found[(name, where)] = outcome
    return found


@pytest.mark.parametrize("module", sorted(KNOWN_DIFFERENCES))
def test_cpython_tests_have_the_outcomes_of_a_plain_run(module, tmp_path):
    pytest.importorskip(module, reason="this interpreter ships without its tests")
    cmd = ["-m", "unittest", "-v", module]
    plain = subprocess.run([sys.executable, *cmd], capture_output=True, text=True,
                           env=child_env(), cwd=tmp_path, timeout=900)
    recorded = subprocess.run(
        [sys.executable, "-m", "ctinstrument", "-o", str(tmp_path / "t"), "--include",
         module, *cmd], capture_output=True, text=True,
        env=child_env(PYTHONPYCACHEPREFIX=str(tmp_path / "pycache")),  # not into the stdlib
        cwd=tmp_path, timeout=900)
    expected = _outcomes(plain.stderr)
    assert len(expected) > 50
    assert plain.returncode == 0, plain.stderr[-3000:]
    got = _outcomes(recorded.stderr)
    differing = {key for key in expected.keys() | got.keys()
                 if expected.get(key) != got.get(key)}
    # Every listed difference must still be one (else the list is out of date), and no
    # other test may differ.
    assert differing == KNOWN_DIFFERENCES[module], recorded.stderr[-5000:]
    assert recorded.returncode == (1 if differing else 0)
    events = load_events(tmp_path / "t")
    names = {e["Function"]["name"] for e in events if "Function" in e}
    assert RECORDED_FUNCTION[module] in names
    assert sum(1 for e in events if "Step" in e) > 1000
    assert_conformant(tmp_path / "t")
