"""Run the program as ``python SCRIPT`` / ``python -m MODULE`` would, under the recorder.

The script is compiled, instrumented and executed as the real ``__main__`` module (same
``sys.argv``, ``sys.path[0]``, ``__file__`` and module attributes as a plain run).  An
uncaught exception is printed by ``sys.excepthook`` without ctinstrument's own frames and
recorded as an ``Event`` of kind Error; the exit status is the program's.
"""

import builtins
import importlib.machinery
import os
import runpy
import sys
import traceback
import types

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


def _strip_own_frames(tb):
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_OWN_PREFIX):
        tb = tb.tb_next
    return tb


def _main_module(path):
    module = types.ModuleType("__main__")
    module.__dict__.update({
        "__file__": path, "__cached__": None, "__package__": None, "__spec__": None,
        "__loader__": importlib.machinery.SourceFileLoader("__main__", path),
        "__annotations__": {}, "__builtins__": builtins,
    })
    return module


def compile_script(path):
    """Compile the script at ``path``; raises SyntaxError (or OSError) like ``python path``."""
    with open(path, "rb") as handle:
        source = handle.read()
    return compile(source, path, "exec", dont_inherit=True)


def run_script(code, script, args, state, recorder):
    """Execute the (instrumented) module ``code`` of ``script`` as ``__main__``."""
    path = os.path.abspath(script)
    module = _main_module(path)
    sys.modules["__main__"] = module
    sys.argv[:] = [script] + list(args)
    sys.path[0] = os.path.dirname(os.path.realpath(path))
    _guarded(lambda: exec(code, module.__dict__), state, recorder)


def run_module(name, args, state, recorder):
    """Execute module ``name`` as ``__main__`` through ``runpy`` (so tracebacks match)."""
    sys.argv[:] = [name] + list(args)
    sys.path[0] = os.getcwd()
    fresh = types.ModuleType("__main__")
    fresh.__dict__.update({"__annotations__": {}, "__builtins__": builtins})
    sys.modules["__main__"] = fresh
    _guarded(lambda: runpy._run_module_as_main(name, alter_argv=True), state, recorder)


def _guarded(body, state, recorder):
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
    try:
        text = "".join(traceback.format_exception(etype, exc, tb))
    except Exception:
        text = "%s (traceback unavailable)" % etype.__name__
    recorder.record_error(text)
    state.exit_code = 1
    state.interrupted = issubclass(etype, KeyboardInterrupt)
    exc.__traceback__ = tb
    sys.excepthook(etype, exc, tb)
