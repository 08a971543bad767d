"""The Python API: ``install_hook`` before and after imports, the handle, errors."""

from tracetools import (REPO, assert_conformant, load_events, run_plain, steps_by_thread,
                        write_program)
from test_selection import functions_and_calls

MOD = '''\
def f(i):
    j = i + 1
    return j * 2
'''

BEFORE_AND_AFTER = '''\
import sys

import early
import ctinstrument

handle = ctinstrument.install_hook(["early", "mod"], out_dir=sys.argv[1])
assert ctinstrument.install_hook(["early", "mod"], out_dir=sys.argv[1]) is handle
import mod  # noqa: E402

print(mod.f(1), early.f(2), handle.recording)
decisions = handle.decisions
print(decisions["mod"][0], decisions["early"])
'''


def _app(tmp_path, program):
    app = tmp_path / "app"
    app.mkdir()
    write_program(app, MOD, "mod.py")
    write_program(app, MOD, "early.py")
    return write_program(app, program, "main.py")


def test_install_hook_records_later_imports_and_warns_about_earlier(tmp_path):
    script = _app(tmp_path, BEFORE_AND_AFTER)
    trace = tmp_path / "trace"
    result = run_plain(script, args=[str(trace)], cwd=script.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ("4 6 True\n"
                             "True (False, 'imported before ctinstrument was installed')\n")
    # One warning line, naming the module imported too early (and only that one).
    assert result.stderr == ("ctinstrument: warning: imported before ctinstrument was "
                             "installed, so not recorded: early\n")
    assert_conformant(trace)
    events = load_events(trace)
    functions, calls = functions_and_calls(events)
    assert calls == ["<toplevel>", "<mod>", "f"]
    assert not any(path.endswith("early.py") for path in functions.values())
    steps = steps_by_thread(events)
    mod_path = str((script.parent / "mod.py").resolve())
    assert [line for path, line in steps[1] if path == mod_path] == [1, 2, 3]


CONTEXT_MANAGER = '''\
import sys

import ctinstrument

with ctinstrument.install_hook("mod", out_dir=sys.argv[1]) as handle:
    import mod
    print(mod.f(1), ctinstrument.is_recording())
print(mod.f(2), ctinstrument.is_recording(), repr(handle).endswith("finished>"))
handle.uninstall()
for attempt in (lambda: ctinstrument.install_hook("mod", out_dir=sys.argv[1] + "-new"),
                ctinstrument.start, ctinstrument.stop, lambda: ctinstrument.record().__enter__(),
                lambda: ctinstrument.install_hook("mod:", out_dir=sys.argv[1]),
                lambda: ctinstrument.install_hook("mod", paused="no")):
    try:
        attempt()
    except ctinstrument.UsageError as exc:
        print("UsageError:", exc)
'''


def test_handle_context_manager_uninstalls_and_errors_are_clear(tmp_path):
    script = _app(tmp_path, CONTEXT_MANAGER)
    trace = tmp_path / "trace"
    result = run_plain(script, args=[str(trace)], cwd=script.parent)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["4 True", "6 False True"]
    assert lines[2] == ("UsageError: ctinstrument records once per process: the trace in "
                        "%s is finished" % trace)
    not_recording = ("UsageError: ctinstrument is not recording this process: call "
                     "ctinstrument.install_hook() first, or run the program with python -m "
                     "ctinstrument")
    assert lines[3:6] == [not_recording] * 3
    assert lines[6] == ("UsageError: invalid function pattern 'mod:' (expected "
                        "MODULE:QUALNAME such as app.billing:Invoice.total or app.jobs:*) (from "
                        "install_hook(patterns=...))")
    assert lines[7] == "UsageError: install_hook(paused=...) must be true or false, not 'no'"
    assert len(lines) == 8
    assert not (tmp_path / "trace-new").exists()  # refused before creating anything
    assert_conformant(trace)
    _functions, calls = functions_and_calls(load_events(trace))
    assert calls == ["<toplevel>", "<mod>", "f"]  # f(2) ran after uninstall


OTHER_OPTIONS = '''\
import sys

import ctinstrument

ctinstrument.install_hook("mod", out_dir=sys.argv[1])
try:
    ctinstrument.install_hook("other", out_dir=sys.argv[1])
except ctinstrument.UsageError as exc:
    print(exc)
import mod  # noqa: E402
print(mod.f(3))
'''


def test_second_install_with_other_options_is_refused(tmp_path):
    script = _app(tmp_path, OTHER_OPTIONS)
    trace = tmp_path / "trace"
    result = run_plain(script, args=[str(trace)], cwd=script.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ("ctinstrument is already recording this process into %s with "
                             "other options; uninstall that first\n8\n" % trace)
    assert_conformant(trace)
    _functions, calls = functions_and_calls(load_events(trace))
    assert calls == ["<toplevel>", "<mod>", "f"]


def test_readme_api_example_records_only_its_windows(tmp_path):
    trace = tmp_path / "trace"
    result = run_plain(REPO / "examples" / "record_windows.py", args=[str(trace)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-2:] == ["2 1 2", "trace written to %s" % trace]
    assert_conformant(trace)
    _functions, calls = functions_and_calls(load_events(trace))
    # The module body ran while paused; two of the three run() calls are in windows.
    assert calls.count("run") == 2 and "<real_program>" not in calls
    assert calls.count("tokenize") == 4
