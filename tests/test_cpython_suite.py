"""CPython's own language tests, recorded: ``test.test_grammar`` run by unittest under the
recorder gives the same per-test outcomes as the plain run, and the trace conforms."""

import re
import subprocess
import sys

import pytest

from tracetools import assert_conformant, child_env, load_events

OUTCOME = re.compile(r"^(\w+) \(([\w.]+)\)(?:\s*\n.*?)? \.\.\. "
                     r"(ok|FAIL|ERROR|skipped.*|expected failure|unexpected success)$", re.M)


def _outcomes(text):
    return sorted(OUTCOME.findall(text))


def test_test_grammar_outcomes_unchanged(tmp_path):
    pytest.importorskip("test.test_grammar", reason="this interpreter ships without its tests")
    cmd = ["-m", "unittest", "-v", "test.test_grammar"]
    plain = subprocess.run([sys.executable, *cmd], capture_output=True, text=True,
                           env=child_env(), cwd=tmp_path, timeout=600)
    recorded = subprocess.run(
        [sys.executable, "-m", "ctinstrument", "-o", str(tmp_path / "t"), "--include",
         "test.test_grammar", *cmd], capture_output=True, text=True,
        env=child_env(PYTHONPYCACHEPREFIX=str(tmp_path / "pycache")),  # not into the stdlib
        cwd=tmp_path, timeout=600)
    assert recorded.returncode == plain.returncode
    expected = _outcomes(plain.stderr)
    assert len(expected) > 50
    assert _outcomes(recorded.stderr) == expected
    events = load_events(tmp_path / "t")
    names = {e["Function"]["name"] for e in events if "Function" in e}
    assert "GrammarTests.test_funcdef" in names
    assert sum(1 for e in events if "Step" in e) > 1000
    assert_conformant(tmp_path / "t")
