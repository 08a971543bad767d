"""Recording windows: ``record()`` (context manager and decorator), ``start()``/``stop()``.

The steps in the trace are compared with the interpreter's own ``sys.settrace`` line
events counted only while a stand-in ``ctinstrument`` module's flag is on
(settrace_driver.py, ORACLE_WINDOWS), and every directory ``stop()`` leaves behind must be a
complete, conformant trace."""

from tracetools import (assert_conformant, kind, load_events, record, run_plain,
                        settrace_lines, steps_by_thread, write_program)
from test_selection import functions_and_calls

MOD = '''\
def f(i):
    j = i + 1
    return j * 2
'''

WINDOWS = '''\
import ctinstrument
import mod


def work(n):
    t = 0
    for i in range(n):
        t += mod.f(i)
    return t


work(2)
ctinstrument.stop()
work(3)
ctinstrument.stop()
with ctinstrument.record():
    work(2)
    with ctinstrument.record():
        work(1)
    work(1)
work(4)


@ctinstrument.record()
def decorated(k):
    return work(k)


decorated(2)
print(ctinstrument.is_recording())
ctinstrument.start()
ctinstrument.start()
print(work(1), ctinstrument.is_recording())
'''


def test_windows_record_exactly_the_lines_inside_them(tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    write_program(app, MOD, "mod.py")
    script = write_program(app, WINDOWS, "main.py")
    trace = tmp_path / "trace"
    recorded = record(script, trace, options=["-i", "mod"], cwd=app)
    assert recorded.returncode == 0, recorded.stderr
    assert recorded.stdout == "False\n2 True\n"
    assert_conformant(trace)
    events = load_events(trace)
    oracle = settrace_lines(script, app, cwd=app, ORACLE_WINDOWS="1")
    steps = steps_by_thread(events)
    assert sorted(steps.values()) == sorted(oracle.values())
    _functions, calls = functions_and_calls(events)
    # work() runs 8 times; work(3) and work(4) run while recording is off.
    assert calls.count("work") == 6
    assert calls.count("f") == 2 + (2 + 1 + 1) + 2 + 1
    assert calls.count("decorated") == 1


SNAPSHOTS = '''\
import shutil
import sys

import ctinstrument

handle = ctinstrument.install_hook("mod", out_dir=sys.argv[1])
import mod  # noqa: E402
print(mod.f(1))
ctinstrument.stop()
shutil.copytree(sys.argv[1], sys.argv[2])
print(mod.f(2))
with ctinstrument.record():
    print(mod.f(3))
shutil.copytree(sys.argv[1], sys.argv[3])
handle.uninstall()
print(mod.f(4))
'''


def test_stop_leaves_a_complete_trace_each_time(tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    write_program(app, MOD, "mod.py")
    script = write_program(app, SNAPSHOTS, "main.py")
    trace, first, second = tmp_path / "trace", tmp_path / "first", tmp_path / "second"
    result = run_plain(script, args=[str(trace), str(first), str(second)], cwd=app)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "4\n6\n8\n10\n"
    returns = {}
    for directory in (first, second, trace):
        assert_conformant(directory)
        events = load_events(directory)
        _functions, calls = functions_and_calls(events)
        returns[directory] = [e["Return"]["return_value"].get("i") for e in events
                              if kind(e) == "Return"]
        assert calls.count("f") == (1 if directory == first else 2)
    # The module body of mod returns None; f(1) and f(3) are inside windows.
    assert returns[first] == [None, 4]
    assert returns[second] == [None, 4, 8]
    # The final trace ends with the top-level return (exit status unknown to the API).
    assert returns[trace] == [None, 4, 8, None]
    assert load_events(trace)[-1] == {"Return": {"return_value": {"kind": "None",
                                                                  "type_id": 0}}}


def test_cli_program_stopping_at_once_records_nothing_after(tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    write_program(app, MOD, "mod.py")
    script = write_program(app, "import ctinstrument\nctinstrument.stop()\nimport mod\n"
                                "print(mod.f(1))\n", "main.py")
    trace = tmp_path / "trace"
    recorded = record(script, trace, options=["-i", "mod"], cwd=app)
    assert recorded.returncode == 0, recorded.stderr
    assert_conformant(trace)
    steps = steps_by_thread(load_events(trace))
    assert [line for _path, line in steps[1]] == [1, 2]
    _functions, calls = functions_and_calls(load_events(trace))
    assert calls == ["<toplevel>", "<__main__>"]
