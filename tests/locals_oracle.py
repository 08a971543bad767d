"""Run a script plainly under ``sys.settrace`` and dump its locals at every line event.

Usage: python locals_oracle.py OUT.json ROOT SCRIPT [ARGS]...
Writes ``{"types": [[lang_type, field names or null], ...], "lines": [[path, line,
{name: value record}], ...]}``: one row per ``line`` event in a frame whose file lies under
ROOT (real paths), in the order the interpreter reported them; a record's ``type_id`` indexes
``types`` (id 0 is None, as in a trace).  Single-threaded programs only: other threads are
not traced.

The values are what ctinstrument should show (the oracle of tests/test_locals_oracle.py):
``frame.f_locals`` taken as the line event arrives (before the line runs), each value encoded
by ``ctinstrument.values.ValueEncoder`` with default ``Limits`` and the default redaction.
Module and class bodies: no dunder names, no module objects.  Functions: every bound local,
cell and free variable, except the interpreter's implicit ones (a comprehension's ``.0``).
The program runs as with ``python SCRIPT`` (``sys.argv``, ``sys.path[0]``, ``__main__``),
as in settrace_driver.py.
``ORACLE_WINDOWS=1``: a stand-in ``ctinstrument`` module (settrace_driver.py's) whose
``start``/``stop``/``record`` switch a flag; line events count only while it is on.
"""

import json
import os
import runpy
import sys
import types

import window_stand_in
from ctinstrument.redaction import Redaction
from ctinstrument.values import ValueEncoder

out, root, script = sys.argv[1], os.path.realpath(sys.argv[2]), sys.argv[3]
CO_NEWLOCALS = 0x0002
type_table = [["None", None]]  # id 0 is None: the encoder's NONE_VALUE uses it
is_secret = Redaction().is_secret
lines = []
window = [True]


def intern_type(kind, lang_type, fields=None):
    type_table.append([lang_type, list(fields) if fields is not None else None])
    return len(type_table) - 1


encoder = ValueEncoder(intern_type, is_secret=is_secret)


def visible(frame):
    """(name, value) pairs of ``frame`` as ctinstrument shows them."""
    namespace = frame.f_locals
    if frame.f_code.co_flags & CO_NEWLOCALS:
        return [(name, value) for name, value in namespace.items() if name.isidentifier()]
    return [(name, value) for name, value in namespace.items()
            if not (name[:2] == "__" and name[-2:] == "__")
            and type(value) is not types.ModuleType]


def snapshot(frame):
    shown = {}
    for name, value in visible(frame):
        shown[name] = encoder.redacted_value() if is_secret(name) else encoder.encode(value)
    return shown


def tracer(frame, event, arg):
    filename = frame.f_code.co_filename
    if not os.path.isabs(filename) or not os.path.realpath(filename).startswith(root + os.sep):
        return None
    path = os.path.realpath(filename)

    def local(frame, event, arg):
        if event == "line" and window[0]:
            lines.append([path, frame.f_lineno, snapshot(frame)])
        return local

    return local(frame, event, arg)


def dump():
    sys.settrace(None)
    with open(out, "w") as handle:
        json.dump({"types": type_table, "lines": lines}, handle)


if os.environ.get("ORACLE_WINDOWS"):
    window_stand_in.install(window)
sys.argv = [script] + sys.argv[4:]
sys.path[0] = os.path.dirname(os.path.realpath(script))
sys.settrace(tracer)
try:
    runpy.run_path(script, run_name="__main__")
except BaseException:
    pass  # the program's own outcome; the test compares its output separately
finally:
    dump()
