"""``CTINSTRUMENT_DISABLED``: a switch that turns ctinstrument off, as CodeTracer's recorder
conventions ask of a recorder.

With it set to a true boolean (``1/true/yes/on``), ``python -m ctinstrument [OPTIONS]
SCRIPT|-m MODULE ARGS...`` replaces itself (``exec``) with ``python SCRIPT|-m MODULE
ARGS...`` under the same interpreter options: the program runs exactly as without
ctinstrument (same process id, ``sys.argv``, ``__main__``, exit status), no configuration is
read and no trace directory is written.  ``install_hook``, ``record``, ``start``, ``stop``
and the pytest plugin do nothing and raise nothing.  Never: record, touch the file system,
or run anything before the program that a plain run would not.
"""

import os
import sys

from .config import _FALSE, _TRUE, DISABLED_ENV
from .errors import UsageError


def is_disabled(environ=None):
    """Whether ``$CTINSTRUMENT_DISABLED`` (in ``environ``, default ``os.environ``) is true;
    unset or empty is false.  Raises UsageError for a value that is not a boolean."""
    text = (os.environ if environ is None else environ).get(DISABLED_ENV, "")
    word = text.strip().lower()
    if not word or word in _FALSE:
        return False
    if word in _TRUE:
        return True
    raise UsageError("$%s must be one of 1/0/true/false/yes/no/on/off, not %r"
                     % (DISABLED_ENV, text))


def interpreter_options(orig_argv, argv):
    """The interpreter's own options in ``orig_argv`` (``sys.orig_argv``) of a process whose
    ``sys.argv`` is ``argv`` and that runs ctinstrument as ``-m ctinstrument`` or as a
    console script: ``["-X", "dev"]`` for ``python -X dev -m ctinstrument prog.py``."""
    head = list(orig_argv[:len(orig_argv) - (len(argv) - 1)])
    if len(head) < 2:
        return []
    if head[-2:] == ["-m", "ctinstrument"]:
        return head[1:-2]
    return head[1:-1]  # "-mctinstrument" or the console script's path


def exec_unrecorded(target, program_args):
    """Replace this process by ``python [options] target program_args`` (``target``:
    ``[script]`` or ``["-m", module]``); does not return."""
    options = interpreter_options(getattr(sys, "orig_argv", [sys.executable]), sys.argv)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os.execv(sys.executable, [sys.executable, *options, *target, *program_args])


class NullSession:
    """What the API acts on while ctinstrument is disabled: records nothing."""

    out_dir = None
    finished = False
    recording = False

    class hook:
        decisions = {}

    def start(self):
        pass

    def stop(self):
        pass

    def finish(self, exit_code=None):
        pass


NULL_SESSION = NullSession()
