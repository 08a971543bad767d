"""Run the program as ``python SCRIPT`` / ``python -m MODULE`` would, under the recorder.

The script is compiled, instrumented and executed as the real ``__main__`` module (same
``sys.argv``, ``sys.path[0]``, ``__file__`` and module attributes as a plain run; the CLI
has removed its own launcher's ``sys.path[0]`` before).  An
uncaught exception is printed by ``sys.excepthook`` without ctinstrument's own frames and
recorded as an ``Event`` of kind Error; the exit status is the program's.
"""

import builtins
import importlib.machinery
import os
import runpy
import sys
import types
from sys import _getframe  # bound now: programs replace it (see isolation.py)

from .capture import without_wrapper_frames
from .protocol import PROBE_CALL_DEPTH
from .session import current
from .tracing_shield import passes_through, set_floor, stands_for

_OWN_PREFIX = os.path.dirname(os.path.abspath(__file__)) + os.sep


class ExitState:
    """What the finaliser needs to know about how the program ended."""

    def __init__(self):
        self.exit_code = 0
        self.interrupted = False


def exit_code_of(exc):
    """The process exit status Python derives from a ``SystemExit``."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    return 1


def _is_own(tb):
    return tb.tb_frame.f_code.co_filename.startswith(_OWN_PREFIX)


def _strip_own_frames(tb):
    """``tb`` without ctinstrument's frames: the runner's at the top and, when an exception
    (KeyboardInterrupt) arrived while a probe ran, the probe's at the bottom."""
    while tb is not None and _is_own(tb):
        tb = tb.tb_next
    last_user = None
    entry = tb
    while entry is not None:
        if not _is_own(entry):
            last_user = entry
        entry = entry.tb_next
    if last_user is not None and last_user.tb_next is not None:
        last_user.tb_next = None
    return tb


def script_path(script):
    """The path Python gives a script's ``__file__`` and code: absolute, not normalised."""
    return script if os.path.isabs(script) else os.path.join(os.getcwd(), script)


def forget_shadowed_modules(preloaded, directory):
    """Drop from ``sys.modules`` what ctinstrument imported that the program's own directory
    shadows (a local ``uuid.py``), so that the program imports its own module, as it would
    without the recorder.  ``preloaded``: the module names present before ctinstrument."""
    for name in [n for n in sys.modules if n not in preloaded and "." not in n]:
        if os.path.isfile(os.path.join(directory, name + ".py")) or os.path.isfile(
                os.path.join(directory, name, "__init__.py")):
            for loaded in [n for n in sys.modules if n == name or n.startswith(name + ".")]:
                del sys.modules[loaded]


class RecursionLimitShift:
    """Keeps the recursion depth the program can reach what it is without the recorder.

    The program runs ``offset`` frames deeper than under a plain ``python`` (the launcher's
    frames), and a probe needs one frame more.  The real limit is raised by that much and
    ``sys.getrecursionlimit``/``sys.setrecursionlimit`` are wrapped so the program sees and
    sets the limit it would have: its frames hit RecursionError at the same depth.
    """

    def __init__(self, offset):
        self.extra = offset + PROBE_CALL_DEPTH
        self._get = sys.getrecursionlimit
        self._set = sys.setrecursionlimit
        shift = self

        def getrecursionlimit():
            return shift._get() - shift.extra

        def setrecursionlimit(limit):
            if type(limit) is not int or limit < 1:
                return shift._set(limit)  # the interpreter's own error
            return shift._set(limit + shift.extra)

        getrecursionlimit.__doc__ = self._get.__doc__
        setrecursionlimit.__doc__ = self._set.__doc__
        self._set(self._get() + self.extra)
        sys.getrecursionlimit = stands_for(getrecursionlimit, self._get)
        sys.setrecursionlimit = stands_for(setrecursionlimit, self._set)


def _stack_depth():
    depth = 0
    frame = _getframe(1)
    while frame is not None:
        depth += 1
        frame = frame.f_back
    return depth


def _main_module(path):
    module = types.ModuleType("__main__")
    module.__dict__.update({
        "__file__": path, "__cached__": None, "__package__": None, "__spec__": None,
        "__loader__": importlib.machinery.SourceFileLoader("__main__", path),
        "__annotations__": {}, "__builtins__": builtins,
    })
    return module


def read_script(path):
    """The bytes of the script at ``path``; raises OSError."""
    with open(path, "rb") as handle:
        return handle.read()


def compile_script(source, path):
    """Compile the script ``source`` (bytes) of ``path``; raises SyntaxError like
    ``python path``."""
    return compile(source, path, "exec", dont_inherit=True)


def run_script(code, script, args, state, recorder):
    """Execute the (instrumented) module ``code`` of ``script`` as ``__main__``."""
    path = script_path(script)
    module = _main_module(path)
    sys.modules["__main__"] = module
    sys.argv[:] = [script] + list(args)
    sys.path.insert(0, os.path.dirname(os.path.realpath(path)))
    _guarded(lambda: exec(code, module.__dict__), state, recorder)


def run_module(name, args, state, recorder):
    """Execute module ``name`` as ``__main__`` through ``runpy`` (so tracebacks match)."""
    sys.argv[:] = [name] + list(args)
    sys.path.insert(0, os.getcwd())
    fresh = types.ModuleType("__main__")
    fresh.__dict__.update({"__annotations__": {}, "__builtins__": builtins})
    sys.modules["__main__"] = fresh
    _guarded(passes_through(lambda: runpy._run_module_as_main(name, alter_argv=True)), state,
             recorder)


def _guarded(body, state, recorder):
    # The program's module frame will sit below this frame and the lambda calling it.
    RecursionLimitShift(_stack_depth() + 1)
    set_floor(sys._getframe())
    try:
        body()
    except SystemExit as exc:
        state.exit_code = exit_code_of(exc)
        raise
    except BaseException as exc:
        tb = _strip_own_frames(exc.__traceback__)
        report_uncaught(type(exc), exc, tb, state, recorder)
        raise SystemExit(1)
    state.exit_code = 0


def report_uncaught(etype, exc, tb, state, recorder):
    """Record and print an exception that escaped the program, as Python would."""
    tb = without_wrapper_frames(tb)
    try:
        # Imported only when needed (not at start-up), as start-up would have imported it.
        traceback = current().hook.import_own("traceback")
        text = "".join(traceback.format_exception(etype, exc, tb))
    except Exception:
        text = "%s (traceback unavailable)" % etype.__name__
    recorder.record_error(text)
    state.exit_code = 1
    state.interrupted = issubclass(etype, KeyboardInterrupt)
    exc.__traceback__ = tb
    sys.last_type, sys.last_value, sys.last_traceback = etype, exc, tb
    if sys.version_info >= (3, 12):
        sys.last_exc = exc
    sys.excepthook(etype, exc, tb)
