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


def dump():
    sys.settrace(None)
    threading.settrace(None)
    with open(out, "w") as handle:
        json.dump(events, handle)


sys.argv = [script] + sys.argv[4:]
sys.path[0] = os.path.dirname(os.path.realpath(script))
threading.settrace(tracer)
sys.settrace(tracer)
try:
    runpy.run_path(script, run_name="__main__")
except SystemExit:
    pass
except BaseException:
    pass
finally:
    dump()
