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


def _app(tmp_path, program, module_name="mod.py", module=MOD):
    """``tmp_path/app`` with ``module`` and ``program`` (main.py); returns main.py's path."""
    app = tmp_path / "app"
    app.mkdir()
    write_program(app, module, module_name)
    return write_program(app, program, "main.py")


def test_windows_record_exactly_the_lines_inside_them(tmp_path):
    script = _app(tmp_path, WINDOWS)
    app = script.parent
    trace = tmp_path / "trace"
    recorded = record(script, trace, options=["-i", "mod"], cwd=script.parent)
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
    script = _app(tmp_path, SNAPSHOTS)
    trace, first, second = tmp_path / "trace", tmp_path / "first", tmp_path / "second"
    result = run_plain(script, args=[str(trace), str(first), str(second)], cwd=script.parent)
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
    script = _app(tmp_path, "import ctinstrument\nctinstrument.stop()\nimport mod\n"
                            "print(mod.f(1))\n")
    trace = tmp_path / "trace"
    recorded = record(script, trace, options=["-i", "mod"], cwd=script.parent)
    assert recorded.returncode == 0, recorded.stderr
    assert_conformant(trace)
    steps = steps_by_thread(load_events(trace))
    assert [line for _path, line in steps[1]] == [1, 2]
    _functions, calls = functions_and_calls(load_events(trace))
    assert calls == ["<toplevel>", "<__main__>"]


THREADS = '''\
import shutil
import sys
import threading
import time

import ctinstrument

handle = ctinstrument.install_hook(["mod"], out_dir=sys.argv[1])
import mod  # noqa: E402

running = True


def worker():
    while running:
        for i in range(20):
            mod.f(i)


workers = [threading.Thread(target=worker) for _ in range(3)]
for thread in workers:
    thread.start()
for cycle in range(8):
    time.sleep(0.01)
    ctinstrument.stop()
    shutil.copytree(sys.argv[1], "%s-%d" % (sys.argv[1], cycle))
    ctinstrument.start()
running = False
for thread in workers:
    thread.join()
handle.uninstall()
print("done")
'''


def test_windows_closed_while_other_threads_record_stay_conformant(tmp_path):
    script = _app(tmp_path, THREADS)
    trace = tmp_path / "trace"
    result = run_plain(script, args=[str(trace)], cwd=script.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "done\n"
    assert result.stderr == ""  # no probe failure was reported
    for directory in [trace] + [tmp_path / ("trace-%d" % cycle) for cycle in range(8)]:
        assert_conformant(directory)
        _functions, calls = functions_and_calls(load_events(directory))
        assert calls.count("f") > 0


ROOT_RUNNING = '''\
import sys

import ctinstrument

handle = ctinstrument.install_hook(["mod2", "mod2:root"], out_dir=sys.argv[1], paused=True)
import mod2  # noqa: E402

print(mod2.root(), mod2.leaf(10))
handle.uninstall()
'''

MOD2 = '''\
import ctinstrument


def leaf(v):
    return v + 1


def root():
    ctinstrument.start()
    a = leaf(1)
    ctinstrument.stop()
    b = leaf(2)
    ctinstrument.start()
    c = leaf(3)
    return a + b + c
'''


def test_start_inside_a_running_root_records_from_there(tmp_path):
    script = _app(tmp_path, ROOT_RUNNING, "mod2.py", MOD2)
    trace = tmp_path / "trace"
    result = run_plain(script, args=[str(trace)], cwd=script.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "9 11\n"
    assert_conformant(trace)
    events = load_events(trace)
    _functions, calls = functions_and_calls(events)
    # root() is entered again at each start(); leaf(2) ran while off, leaf(10) outside root.
    assert calls == ["<toplevel>", "root", "leaf", "root", "leaf"]
    steps = steps_by_thread(events)
    assert [line for _path, line in steps[1]] == [10, 5, 11, 14, 5, 15]


def test_record_refuses_to_decorate_a_generator_function(tmp_path):
    script = write_program(tmp_path, "import ctinstrument\ntry:\n"
                                     "    @ctinstrument.record()\n    def g():\n"
                                     "        yield 1\nexcept ctinstrument.UsageError as exc:\n"
                                     "    print(exc)\n")
    result = run_plain(script, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("record() cannot decorate the generator function g: ")


def test_threads_opening_and_closing_windows_concurrently(tmp_path):
    script = _app(tmp_path, "import threading\n\nimport ctinstrument\nimport mod\n\n\n"
                            "def work():\n    for i in range(200):\n"
                            "        with ctinstrument.record():\n            mod.f(i)\n\n\n"
                            "threads = [threading.Thread(target=work) for _ in range(4)]\n"
                            "for thread in threads:\n    thread.start()\n"
                            "for thread in threads:\n    thread.join()\nprint('ok')\n")
    trace = tmp_path / "trace"
    recorded = record(script, trace, options=["-i", "mod", "--paused"], cwd=script.parent)
    assert recorded.returncode == 0, recorded.stderr
    assert recorded.stdout == "ok\n" and recorded.stderr == ""
    assert_conformant(trace)
    _functions, calls = functions_and_calls(load_events(trace))
    # A call running when another thread's window closes is entered again in the next
    # window, so there can be more calls than the 800 invocations.
    assert calls.count("f") > 0
