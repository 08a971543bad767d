"""Run a script plainly under ``sys.settrace`` and dump its line events (the test oracle).

Usage: python settrace_driver.py OUT.json ROOT SCRIPT [ARGS]...
Writes a JSON list of [thread_index, filename, line] for every ``line`` event in a frame
whose file lies under ROOT, in the order the interpreter reported them.
"""

import json
import os
import runpy
import sys
import threading

out, root, script = sys.argv[1], os.path.realpath(sys.argv[2]), sys.argv[3]
events = []
# Thread identity by threading.local: OS thread idents are reused by later threads.
thread_slot = threading.local()
count = [0]


def tracer(frame, event, arg):
    filename = frame.f_code.co_filename
    if not os.path.isabs(filename) or not os.path.realpath(filename).startswith(root + os.sep):
        return None

    def local(frame, event, arg):
        if event == "line":
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
