"""A recorder that fails inside its probes never changes the program: its output and exit
status are the plain run's, one warning says recording continues, and a failure repeated at
every probe stops recording after ``FAILURE_LIMIT`` of them (a second warning) with the trace
so far kept and conformant."""

import json
import subprocess
import sys
import textwrap

import pytest

from tracetools import assert_conformant, child_env, load_events, run_plain, write_program

PROGRAM = """
    def work(n):
        total = 0
        items = []
        for i in range(n):
            total += i
            items.append(i)
        return total, len(items)
    for round_ in range(3):
        print(work(2000))
    raise SystemExit(3)
"""

# Runs the CLI with one of the recorder's functions replaced by one that raises after
# ``after`` good calls (``after`` < 0: never raises).
LAUNCHER = """
import sys
from ctinstrument import probes
name, after = sys.argv[1], int(sys.argv[2])
real = getattr(probes, name)
calls = [0]
def failing(*args):
    calls[0] += 1
    if 0 <= after < calls[0]:
        raise KeyError("injected")
    return real(*args)
setattr(probes, name, failing)
from ctinstrument.cli import main
sys.argv = ["ctinstrument"] + sys.argv[3:]
main()
"""


def _record_failing(tmp_path, script, name, after):
    return subprocess.run([sys.executable, "-c", LAUNCHER, name, str(after), "-o",
                           str(tmp_path / "trace"), "--include", "prog", str(script)],
                          capture_output=True, text=True, env=child_env(), cwd=tmp_path,
                          timeout=300)


@pytest.mark.parametrize("name, after, stops", [
    ("_changes", 50, True),   # fails at every step after the 50th
    ("_encoded", 30, True),   # every value encoding fails
    ("_leave", 1, False),     # returns only: fewer failures than the limit
])
def test_failing_probe_keeps_program_and_trace(tmp_path, name, after, stops):
    script = write_program(tmp_path, textwrap.dedent(PROGRAM))
    plain = run_plain(script, cwd=tmp_path)
    recorded = _record_failing(tmp_path, script, name, after)
    assert (recorded.returncode, recorded.stdout) == (plain.returncode, plain.stdout) \
        == (3, "(1999000, 2000)\n" * 3)
    warnings = [line for line in recorded.stderr.splitlines()
                if line.startswith("ctinstrument:")]
    assert "internal error while recording (KeyError: 'injected')" in warnings[0]
    stopped = [line for line in warnings if "recording stopped" in line]
    assert len(stopped) == (1 if stops else 0), recorded.stderr
    metadata = json.loads((tmp_path / "trace" / "trace_metadata.json").read_text())
    failures = metadata["probe_failures"]
    assert (failures == 1000) if stops else (0 < failures < 1000)
    events = load_events(tmp_path / "trace")
    assert sum(1 for e in events if "Step" in e) > 10
    assert_conformant(tmp_path / "trace")


def test_launcher_without_failure_records_everything(tmp_path):
    """The launcher itself changes nothing: with no failure injected, no warning and a
    complete trace (the program's last line is recorded)."""
    script = write_program(tmp_path, textwrap.dedent(PROGRAM))
    recorded = _record_failing(tmp_path, script, "_changes", -1)
    assert recorded.returncode == 3 and "ctinstrument:" not in recorded.stderr
    metadata = json.loads((tmp_path / "trace" / "trace_metadata.json").read_text())
    assert metadata["probe_failures"] == 0
    lines = [e["Step"]["line"] for e in load_events(tmp_path / "trace") if "Step" in e]
    assert lines[-1] == 11
    assert_conformant(tmp_path / "trace")
