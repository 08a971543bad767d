"""Run a script plainly under ``sys.settrace`` and dump its line events (the test oracle).

Usage: python settrace_driver.py OUT.json ROOT SCRIPT [ARGS]...
Writes a JSON list of [thread_index, filename, line] for every ``line`` event in a frame
whose file lies under ROOT, in the order the interpreter reported them.

Recording windows and activation roots, computed independently of ctinstrument:

* ``ORACLE_WINDOWS=1``: a stand-in ``ctinstrument`` module whose ``start``/``stop``/
  ``record`` switch a flag; line events count only while it is on (initially on).
* ``ORACLE_ROOTS=module:name,...``: line events count only while a frame of one of these
  functions (matched by module ``__name__`` and ``co_qualname``, else ``co_name``) is on
  the thread's stack, as seen through ``call`` and ``return`` events.

``ORACLE_STACK_DEPTH=N``: the script's module frame runs with N frames below it (padded
with calls of this driver), as under a launcher with N frames: for programs that count the
frames on their stack (Markdown's ``util._get_stack_depth``).
"""

import json
import os
import runpy
import sys
import threading

import window_stand_in

out, root, script = sys.argv[1], os.path.realpath(sys.argv[2]), sys.argv[3]
events = []
window = [True]
roots = {tuple(item.split(":", 1)) for item in os.environ.get("ORACLE_ROOTS", "").split(",")
         if item}


if os.environ.get("ORACLE_WINDOWS"):
    window_stand_in.install(window)


def _is_root(frame):
    code = frame.f_code
    name = getattr(code, "co_qualname", code.co_name)
    return (frame.f_globals.get("__name__"), name) in roots
# Thread identity by threading.local: OS thread idents are reused by later threads.
thread_slot = threading.local()
count = [0]


def tracer(frame, event, arg):
    filename = frame.f_code.co_filename
    if not os.path.isabs(filename) or not os.path.realpath(filename).startswith(root + os.sep):
        return None

    is_root = roots and _is_root(frame)

    def local(frame, event, arg):
        if is_root and event in ("call", "return"):
            thread_slot.roots = getattr(thread_slot, "roots", 0) + (1 if event == "call" else -1)
        if event == "line" and window[0] and (not roots or getattr(thread_slot, "roots", 0)):
            index = getattr(thread_slot, "index", None)
            if index is None:
                index = thread_slot.index = count[0]
                count[0] += 1
            events.append([index, os.path.realpath(frame.f_code.co_filename), frame.f_lineno])
        return local

    return local(frame, event, arg)


def _frames_below():
    """The number of frames below the caller's."""
    frame, depth = sys._getframe(2), 0
    while frame is not None:
        depth += 1
        frame = frame.f_back
    return depth


def _run_padded(target, below_runpy):
    """runpy.run_path(script) with ``target`` frames below the script's module frame;
    ``below_runpy``: how many frames runpy.run_path puts between its caller and it."""
    if _frames_below() + 1 + below_runpy < target:
        return _run_padded(target, below_runpy)
    return runpy.run_path(script, run_name="__main__")


def _runpy_frames():
    """How many frames runpy.run_path puts between its caller and the script it runs."""
    import tempfile
    with tempfile.TemporaryDirectory() as directory:
        probe = os.path.join(directory, "depth_probe.py")
        with open(probe, "w") as handle:
            handle.write("import sys\nframe, n = sys._getframe(1), 0\n"
                         "while frame.f_code is not CALLER:\n    frame, n = frame.f_back, n + 1\n"
                         "FOUND = n\n")
        return runpy.run_path(probe, {"CALLER": sys._getframe().f_code})["FOUND"]


def dump():
    sys.settrace(None)
    threading.settrace(None)
    with open(out, "w") as handle:
        json.dump(events, handle)


target = os.environ.get("ORACLE_STACK_DEPTH")
if target is not None:
    target, below_runpy = int(target), _runpy_frames()
sys.argv = [script] + sys.argv[4:]
sys.path[0] = os.path.dirname(os.path.realpath(script))
threading.settrace(tracer)
sys.settrace(tracer)
try:
    if target is None:
        runpy.run_path(script, run_name="__main__")
    else:
        _run_padded(target, below_runpy)
except SystemExit:
    pass
except BaseException:
    pass
finally:
    dump()
