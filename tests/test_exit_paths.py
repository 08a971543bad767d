"""Every way a program ends leaves a complete, conformant trace and the program's own exit
status, output and traceback."""

import json
import signal
import subprocess
import sys
import time

import pytest

from tracetools import (FIXTURES, assert_conformant, child_env, load_events, record, run_plain,
                        write_program)


def _metadata(trace_dir):
    with open(trace_dir / "trace_metadata.json") as handle:
        return json.load(handle)


def _last_return_value(events):
    returns = [e["Return"]["return_value"] for e in events if "Return" in e]
    return returns[-1]


def test_normal_end(tmp_path):
    script = write_program(tmp_path, "def f(x):\n    return x + 1\nprint(f(1))\n")
    result = record(script, tmp_path / "t", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, "2\n")
    events = load_events(tmp_path / "t")
    assert _last_return_value(events)["i"] == 0
    meta = _metadata(tmp_path / "t")
    assert meta["exit_code"] == 0 and meta["program"] == str(script) and meta["args"] == []
    assert_conformant(tmp_path / "t")


@pytest.mark.parametrize("exit_call, status, stderr", [
    ("sys.exit(3)", 3, ""), ("sys.exit()", 0, ""), ("sys.exit('bye')", 1, "bye\n"),
    ("raise SystemExit(7)", 7, "")])
def test_sys_exit_through_finally_and_functions(tmp_path, exit_call, status, stderr):
    script = write_program(tmp_path, (
        "import sys\n"
        "def leave():\n"
        "    try:\n"
        "        %s\n"
        "    finally:\n"
        "        print('finally ran')\n"
        "leave()\n") % exit_call)
    result = record(script, tmp_path / "t", cwd=tmp_path)
    assert result.returncode == status
    assert result.stdout == "finally ran\n"
    assert result.stderr == stderr
    assert _metadata(tmp_path / "t")["exit_code"] == status
    assert_conformant(tmp_path / "t")


def test_uncaught_exception_prints_the_plain_traceback_and_records_it(tmp_path):
    script = tmp_path / "raises.py"
    script.write_text((FIXTURES / "raises.py").read_text())
    plain = run_plain(script, cwd=tmp_path)
    result = record(script, tmp_path / "t", cwd=tmp_path)
    assert plain.returncode == result.returncode == 1
    assert result.stdout == plain.stdout
    assert result.stderr == plain.stderr
    events = load_events(tmp_path / "t")
    errors = [e["Event"] for e in events if "Event" in e and e["Event"]["kind"] == 11]
    assert len(errors) == 1
    assert errors[0]["content"] == plain.stderr
    # The three frames the exception left are closed by Returns of the exception.
    exception_returns = [e for e in events if "Return" in e
                         and "ValueError" in json.dumps(e["Return"]["return_value"])]
    assert len(exception_returns) >= 4  # three functions and the module body
    assert _metadata(tmp_path / "t")["exit_code"] == 1
    assert_conformant(tmp_path / "t")


def test_uncaught_keyboard_interrupt_dies_of_sigint_like_python(tmp_path):
    script = write_program(tmp_path, "print('before')\nraise KeyboardInterrupt\n")
    plain = run_plain(script, cwd=tmp_path)
    result = record(script, tmp_path / "t", cwd=tmp_path)
    assert result.returncode == plain.returncode == -signal.SIGINT
    assert result.stdout == plain.stdout
    assert result.stderr == plain.stderr
    assert_conformant(tmp_path / "t")


def test_ctrl_c_during_a_loop_leaves_a_valid_trace(tmp_path):
    script = write_program(tmp_path, (
        "import time\n"
        "def spin(n):\n"
        "    return n + 1\n"
        "print('ready', flush=True)\n"
        "n = 0\n"
        "while True:\n"
        "    n = spin(n)\n"
        "    time.sleep(0.001)\n"))
    cmd = [sys.executable, "-m", "ctinstrument", "-o", str(tmp_path / "t"), str(script)]
    # A shell without job control starts background jobs with SIGINT ignored; the program
    # must see Ctrl-C as a terminal would deliver it.
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=child_env(),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert proc.stdout.readline() == "ready\n"
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == -signal.SIGINT
    assert "KeyboardInterrupt" in err and "ctinstrument" not in err
    events = load_events(tmp_path / "t")
    assert sum(1 for e in events if "Call" in e) > 10
    assert_conformant(tmp_path / "t")


def test_atexit_handlers_of_the_program_are_recorded(tmp_path):
    script = write_program(tmp_path, (
        "import atexit\n"
        "def goodbye():\n"
        "    print('goodbye')\n"
        "atexit.register(goodbye)\n"
        "print('main done')\n"))
    result = record(script, tmp_path / "t", cwd=tmp_path)
    assert result.stdout == "main done\ngoodbye\n"
    events = load_events(tmp_path / "t")
    names = [e["Function"]["name"] for e in events if "Function" in e]
    called = [names[e["Call"]["function_id"]] for e in events if "Call" in e]
    assert called[-1] == "goodbye"
    assert_conformant(tmp_path / "t")
