"""The Step sequence of a recorded fixture equals the sys.settrace line events of the same
interpreter (entry steps aside), the program behaves as without the recorder, and the trace
passes the conformance checker."""

import shutil

import pytest

from tracetools import (FIXTURES, assert_conformant, record, run_plain, settrace_lines,
                        steps_by_thread)

SINGLE_FILE = sorted(p.name for p in FIXTURES.glob("*.py"))
CASES = SINGLE_FILE + ["pkg_app/main.py"]


@pytest.fixture
def workdir(tmp_path):
    return tmp_path


def _copy_fixture(name, workdir):
    source = FIXTURES / name
    if "/" in name:
        target = workdir / name.split("/")[0]
        shutil.copytree(source.parent, target)
        return target / source.name
    target = workdir / "app"
    target.mkdir()
    shutil.copy(source, target / name)
    return target / name


@pytest.mark.parametrize("name", CASES)
def test_steps_equal_settrace_line_events(name, workdir):
    script = _copy_fixture(name, workdir)
    root = script.parent
    plain = run_plain(script, cwd=root)
    recorded = record(script, workdir / "trace", cwd=root)
    assert recorded.returncode == plain.returncode, recorded.stderr
    assert recorded.stdout == plain.stdout
    assert recorded.stderr == plain.stderr

    oracle = settrace_lines(script, root, cwd=root)
    trace_dir = workdir / "trace"
    from tracetools import load_events
    steps = steps_by_thread(load_events(trace_dir))
    assert sorted(steps.values()) == sorted(oracle.values())
    assert sum(len(v) for v in steps.values()) > 10
    assert_conformant(trace_dir)
