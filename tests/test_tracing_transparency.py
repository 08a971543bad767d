"""Tracing and profiling hooks the program installs see it as if it were not recorded: the
same events from ``sys.settrace`` (global and local functions), ``sys.setprofile``,
``threading.settrace``, ``sys.monitoring`` (3.12+) and the same pdb session, with the
getters returning the program's own functions.  Each program prints what its hooks saw; the
recorded run must print exactly what the plain run prints, and its trace must conform."""

import subprocess
import sys
import textwrap

import pytest

from tracetools import assert_conformant, child_env, load_events

HELPER = """\
def helper(values):
    total = 0
    for value in values:
        total += value * 2
    return total
"""


def _run(cmd, cwd, stdin):
    return subprocess.run(cmd, cwd=cwd, input=stdin, capture_output=True, text=True,
                          env=child_env(), timeout=300)


def _same_as_plain(tmp_path, body, stdin=None, expect=(), prefix="", status=0):
    """Run ``prefix`` + ``body`` (dedented) as prog.py beside helper.py, plainly and
    recorded (both modules included); the outputs must be equal, end with exit ``status``
    and contain each of ``expect``."""
    (tmp_path / "helper.py").write_text(HELPER)
    script = tmp_path / "prog.py"
    script.write_text(prefix + textwrap.dedent(body))
    plain = _run([sys.executable, str(script)], tmp_path, stdin)
    recorded = _run([sys.executable, "-m", "ctinstrument", "-o", str(tmp_path / "trace"),
                     "--include", "prog,helper", str(script)], tmp_path, stdin)
    assert (recorded.returncode, recorded.stdout, recorded.stderr) == (
        plain.returncode, plain.stdout, plain.stderr)
    assert plain.returncode == status, plain.stderr
    for text in expect:
        assert text in plain.stdout + plain.stderr
    assert_conformant(tmp_path / "trace")
    names = {e["Function"]["name"] for e in load_events(tmp_path / "trace") if "Function" in e}
    assert "helper" in names  # the program was recorded
    return plain.stdout


PROGRAM = """\
import helper

def gen(n):
    for i in range(n):
        yield i

def fails(k=2):
    if k > 1:  # the exception leaves the frame before its last line
        raise ValueError("x")
    return k

class Box:
    size = helper.helper([1])

def work():
    try:
        fails()
    except ValueError:
        pass
    return helper.helper(gen(3)) + Box.size
"""


def test_settrace_sees_the_events_of_a_plain_run(tmp_path):
    out = _same_as_plain(tmp_path, prefix=PROGRAM, body="""\
        import sys, threading
        seen = []
        def local(frame, event, arg):
            seen.append((event, frame.f_code.co_name, frame.f_lineno))
            return local
        def tracer(frame, event, arg):
            seen.append(("global " + event, frame.f_code.co_name, frame.f_lineno))
            return local
        sys.settrace(tracer)
        work()
        print(sys.gettrace() is tracer, threading.gettrace())
        sys.settrace(None)
        for item in seen:
            print(item)
        """, expect=["True None", "('global call', 'helper', 1)", "('exception', 'work',",
                     "('return', 'gen',"])
    assert "probes" not in out


def test_setprofile_sees_the_events_of_a_plain_run(tmp_path):
    # Builtins ctinstrument wraps are seen as builtins (c_call), signal.signal as itself
    # (for a signal the recorder does not hold: for SIGTERM _signal.getsignal returns the
    # recorder's handler, and signal.getsignal takes another path before the wrapper hides
    # it).
    _same_as_plain(tmp_path, prefix=PROGRAM, body="""\
        import signal, sys
        seen = []
        def profiler(frame, event, arg):
            name = arg.__name__ if event.startswith("c_") else None
            seen.append((event, frame.f_code.co_name, name))
        sys.setprofile(profiler)
        work()
        len([sorted([2, 1])])
        sys.setrecursionlimit(sys.getrecursionlimit())
        signal.signal(signal.SIGUSR1, signal.getsignal(signal.SIGUSR1))
        print(sys.getprofile() is profiler, sys.gettrace())
        sys.setprofile(None)
        for item in seen:
            print(item)
        """, expect=["True None", "('c_call', '<module>', 'len')",
                     "('c_return', '<module>', 'sorted')", "('call', 'gen', None)",
                     "('c_call', '<module>', 'setrecursionlimit')", "('call', 'signal', None)",
                     "('c_return', '<module>', 'getprofile')", "('c_call', '<module>', 'setprofile')"])


@pytest.mark.skipif(sys.version_info < (3, 11), reason="a 3.10 re-raise adds the frame of "
                    "the filter to the traceback (the runner drops it when uncaught)")
def test_an_error_raised_by_the_tracer_has_the_plain_traceback(tmp_path):
    _same_as_plain(tmp_path, prefix=PROGRAM, body="""\
        import sys, traceback
        def tracer(frame, event, arg):
            if frame.f_code.co_name == "helper":
                raise RuntimeError("from the tracer")
            return tracer
        def profiler(frame, event, arg):
            if event == "c_call" and arg is sorted:
                raise KeyError("from the profiler")
        sys.settrace(tracer)
        try:
            work()
        except RuntimeError:
            traceback.print_exc(file=sys.stdout)
        print(sys.gettrace())
        sys.setprofile(profiler)
        try:
            sorted([1])
        except KeyError:
            traceback.print_exc(file=sys.stdout)
        print(sys.getprofile())
        """, expect=["RuntimeError: from the tracer", "in tracer", "KeyError: 'from the",
                     "None\nTraceback"])


def test_an_uncaught_error_raised_by_the_tracer_has_the_plain_traceback(tmp_path):
    _same_as_plain(tmp_path, prefix=PROGRAM, status=1, body="""\
        import sys
        def tracer(frame, event, arg):
            if frame.f_code.co_name == "helper":
                raise RuntimeError("from the tracer")
            return tracer
        sys.settrace(tracer)
        work()
        """, expect=["RuntimeError: from the tracer", "in tracer"])


def test_threading_settrace_and_setprofile_in_a_thread(tmp_path):
    _same_as_plain(tmp_path, prefix=PROGRAM, body="""\
        import sys, threading
        seen = []
        def tracer(frame, event, arg):
            seen.append(("trace", event, frame.f_code.co_name, frame.f_lineno))
            return tracer
        def profiler(frame, event, arg):
            if frame.f_code.co_name in ("work", "helper", "gen", "fails"):
                seen.append(("profile", event, frame.f_code.co_name))
        def body():
            seen.append(("getters", sys.gettrace() is tracer, sys.getprofile() is profiler))
            work()
            sys.settrace(None)
            sys.setprofile(None)
        threading.settrace(tracer)
        threading.setprofile(profiler)
        thread = threading.Thread(target=body)
        thread.start()
        thread.join()
        print(threading.gettrace() is tracer, threading.getprofile() is profiler)
        for item in seen:
            print(item)
        """, expect=["True True", "('getters', True, True)", "('trace', 'line', 'helper', 4)",
                     "('profile', 'return', 'helper')"])


def test_a_tracer_installed_before_recording_starts(tmp_path):
    # install_hook from inside the program: the tracer it had set already gets the filter.
    (tmp_path / "helper.py").write_text(HELPER)
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent("""\
        import os, sys
        record = os.environ.get("RECORD")
        seen = []
        def tracer(frame, event, arg):
            # Not the import system's frames: it asks ctinstrument's finder.
            if not frame.f_code.co_filename.startswith("<frozen"):
                seen.append((event, frame.f_code.co_name, frame.f_lineno))
            return tracer
        sys.settrace(tracer)
        if record:
            import ctinstrument
            ctinstrument.install_hook(["helper"], out_dir=record)
            seen.clear()  # the events of importing ctinstrument
        import helper
        helper.helper([1, 2])
        print(sys.gettrace() is tracer)
        sys.settrace(None)
        for item in seen:
            if item[1] != "<module>" or item[0] == "call":
                print(item)
        """))
    plain = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                           text=True, env=child_env(), timeout=300)
    recorded = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                              text=True, env=child_env(RECORD=str(tmp_path / "trace")),
                              timeout=300)
    assert (recorded.returncode, recorded.stdout, recorded.stderr) == (
        plain.returncode, plain.stdout, plain.stderr)
    assert "('line', 'helper', 4)" in plain.stdout
    names = {e["Function"]["name"] for e in load_events(tmp_path / "trace") if "Function" in e}
    assert "helper" in names
    assert_conformant(tmp_path / "trace")


@pytest.mark.skipif(sys.version_info < (3, 12), reason="sys.monitoring is new in 3.12")
def test_sys_monitoring_tool_sees_the_events_of_a_plain_run(tmp_path):
    _same_as_plain(tmp_path, prefix=PROGRAM, body="""\
        import sys
        mon = sys.monitoring
        E = mon.events
        seen = []
        def on(kind):
            # Instruction offsets differ in instrumented code: not shown.
            def callback(code, *args):
                detail = {"CALL": lambda: args[1].__name__, "LINE": lambda: args[0],
                          "RAISE": lambda: repr(args[1]), "PY_YIELD": lambda: args[1],
                          "PY_RETURN": lambda: args[1]}.get(kind, lambda: None)()
                seen.append((kind, code.co_name, detail))
            return callback
        mon.use_tool_id(3, "test")
        for kind in ("PY_START", "PY_RETURN", "LINE", "CALL", "RAISE", "PY_YIELD"):
            assert mon.register_callback(3, getattr(E, kind), on(kind)) is None
        mon.set_events(3, E.PY_START | E.PY_RETURN | E.LINE | E.CALL | E.RAISE | E.PY_YIELD)
        work()
        mon.set_events(3, 0)
        print(type(mon.register_callback(3, E.LINE, None)).__name__)
        mon.free_tool_id(3)
        for item in seen:
            print(item)
        """, expect=["function", "('PY_START', 'helper', None)", "('CALL', 'work', 'fails')",
                     "('RAISE', 'fails', \"ValueError('x')\")", "('PY_YIELD', 'gen', 2)",
                     "('LINE', 'helper', 4)"])


PDB_PROGRAM = """\
import helper

def outer(n):
    items = list(range(n))
    result = helper.helper(items)
    return result + 1

breakpoint()
first = outer(2)
second = outer(3)
print("done", first, second)
"""


@pytest.mark.parametrize("commands", [
    # step into the calls, through another recorded module, up to its return
    ["s", "s", "s", "s", "s", "s", "where", "s", "s", "s", "r", "p total", "n", "n", "c"],
    # next over calls, a breakpoint in another module, up/down, until, display
    ["n", "b helper.py:4", "c", "where", "up", "p n", "down", "p value", "cl 1", "n", "n",
     "until", "c"],
    # return out of frames and step again
    ["s", "s", "n", "n", "s", "r", "s", "s", "r", "r", "n", "p first", "c"],
], ids=["step", "breakpoint", "return"])
def test_pdb_session_as_plain(tmp_path, commands):
    out = _same_as_plain(tmp_path, PDB_PROGRAM, stdin="\n".join(commands) + "\n",
                         expect=["done 3 7", "(Pdb)"])
    assert "ctinstrument" not in out
