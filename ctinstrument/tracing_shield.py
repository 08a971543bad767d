"""Tracing and profiling hooks see the program as if it were not recorded.

``install()`` (once per process, from the main thread, when a session starts; it stays for
the process's lifetime because instrumented code keeps calling probes) replaces
``sys.settrace``, ``sys.setprofile``, ``sys._settraceallthreads``/``_setprofileallthreads``
(3.12+) and ``sys.monitoring.register_callback`` (3.12+) with wrappers that hand the
program's function to the interpreter behind a filter, and ``sys.gettrace``/``getprofile``
with getters that return the program's function.  ``threading.settrace``/``setprofile``
(and ``*_all_threads``) go through ``sys``, so they need no wrapper of their own.

Hidden frames (``hidden``): frames of ctinstrument's own code (probes, recorder, import hook,
rewriter, launcher), and frames of the standard library or of ctinstrument's dependencies
(``bytecode``, ...) that ctinstrument's code called on its own behalf.  A trace function gets
no ``call`` event for a hidden frame, so no local tracing happens there; a profile function
gets no event of a hidden frame (``c_call`` and the like name the calling frame); a
``sys.monitoring`` callback gets no event of ctinstrument's code (``DISABLE`` where the
event allows it, so the interpreter stops reporting that location) nor of a call to a
probe.  The program's local trace functions are never wrapped: the events of its own frames
reach them unchanged.

Frames below the program (the launcher's, ``set_floor``) never run while the program does,
but a debugger that sets ``f_trace`` down the whole stack (``bdb.Bdb.set_trace``) would see
them resume at the end: ``sys.settrace`` gives them a local trace function that ignores every
event (bdb keeps an ``f_trace`` it finds), and moves a ``bdb.Bdb``'s bottom frame up to the
program's outermost frame, where a plain run has it.

A profile function sees a call of a builtin that ctinstrument wraps (``sys.settrace``,
``sys.setrecursionlimit``, ...; ``stands_for``) as the ``c_call`` and ``c_return`` of that
builtin, and what a wrapper of a standard-library function (``signal.signal``) calls as the
events of that function (``passes_through``).  Not hidden: a trace or profile function installed from C
(``PyEval_SetTrace``; ``cProfile`` on 3.10 and 3.11).
"""

import os
import sys
import types
from importlib.machinery import PathFinder

from .capture import hide_calling_frame
from .isolation import PATH
from .selection import library_dirs

OWN, SHARED, PROGRAM = 0, 1, 2
_OWN_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _shared_prefixes():
    """Where code lives that both ctinstrument and the program call: the standard library
    and ctinstrument's pure-Python dependencies."""
    prefixes = {"<frozen "}
    for path in library_dirs():
        prefixes.add(PATH.join(path, ""))
        prefixes.add(PATH.join(PATH.realpath(path), ""))
    for name in ("bytecode", "click", "tomli"):
        module = sys.modules.get(name)
        if module is None:  # imported later, on the first rewrite (found, not imported)
            module = PathFinder.find_spec(name)
        origin = getattr(module, "__file__", None) or getattr(module, "origin", None)
        if isinstance(origin, str):
            prefixes.add(PATH.join(PATH.dirname(origin), ""))
    return tuple(prefixes)


_SHARED_PREFIXES = ()
_kinds = {}
# id() of the code objects of ctinstrument's functions that call the standard library for
# the program (``passes_through``): what they call stays visible.
_passing = set()
# id() of the code of ctinstrument's wrappers of builtins -> the builtin (``stands_for``).
_stand_ins = {}
_floor = None
_FunctionType = types.FunctionType
_MethodType = types.MethodType
_getframe = sys._getframe
REAL_SETTRACE = sys.settrace
REAL_SETPROFILE = sys.setprofile
REAL_GETTRACE = sys.gettrace
REAL_GETPROFILE = sys.getprofile
_installed = False


def passes_through(function):
    """Mark ``function`` (of ctinstrument) as calling on the program's behalf; returns it."""
    _passing.add(id(function.__code__))
    return function


def stands_for(function, builtin):
    """Mark ``function`` (of ctinstrument) as the program's ``builtin``: a profile function
    sees a call of it from the program as a ``c_call``/``c_return`` of ``builtin``, as in a
    plain run.  Returns ``function``."""
    _stand_ins[id(function.__code__)] = builtin
    return function


def set_floor(frame):
    """``frame`` and the frames below it are the launcher's: the program runs above it."""
    global _floor
    _floor = frame


def kind(filename):
    """OWN (ctinstrument), SHARED (standard library, dependencies, code without a source
    file) or PROGRAM."""
    found = _kinds.get(filename)
    if found is None:
        if type(filename) is not str or not PATH.isabs(filename):
            found = SHARED  # "<string>" (dataclasses, exec): ctinstrument's or the program's
        elif filename.startswith(_OWN_DIR):
            found = OWN
        elif filename.startswith(_SHARED_PREFIXES):
            found = SHARED
        else:
            found = PROGRAM
        _kinds[filename] = found
    return found


def hidden(frame):
    """Whether ``frame`` runs for ctinstrument rather than for the program.  A SHARED frame
    is hidden when the nearest frame below it that is not SHARED is ctinstrument's (and not
    one that ``passes_through``); ctinstrument never calls the program's own code."""
    found = _kinds.get(frame.f_code.co_filename)
    if found is None:
        found = kind(frame.f_code.co_filename)
    if found != SHARED:
        return found == OWN
    frame = frame.f_back
    while frame is not None:
        code = frame.f_code
        found = _kinds.get(code.co_filename)
        if found is None:
            found = kind(code.co_filename)
        if found == OWN:
            return id(code) not in _passing
        if found == PROGRAM:
            return False
        frame = frame.f_back
    return False


def _trace_filter(tracer):
    def shielded_trace(frame, event, arg):
        # Only 'call' events reach the global function; the program's local functions get
        # the rest directly.
        if hidden(frame):
            return None
        try:
            return tracer(frame, event, arg)
        except BaseException as exc:
            hide_calling_frame(exc)  # the tracer's error reads as raised by the tracer
            raise
    return shielded_trace


def _profile_filter(profiler, unseen=None):
    """``unseen``: the frame of the wrapper installing it when no profile function ran
    before, whose return the interpreter would not report (it reports a ``c_return`` only
    after a ``c_call``)."""
    def shielded_profile(frame, event, arg):
        nonlocal unseen
        if hidden(frame):
            if frame is unseen:
                unseen = None
                return
            if event == "call" or event == "return":
                builtin = _stand_ins.get(id(frame.f_code))
                if builtin is not None and not hidden(frame.f_back):
                    event, arg, frame = "c_" + event, builtin, frame.f_back
                else:
                    return
            else:
                return
        try:
            profiler(frame, event, arg)
        except BaseException as exc:
            hide_calling_frame(exc)
            raise
    return shielded_profile


def _behind(function, code, name):
    """The value of free variable ``name`` when ``function`` is a closure of ``code``."""
    if type(function) is _FunctionType and function.__code__ is code:
        return function.__closure__[code.co_freevars.index(name)].cell_contents
    return function


_TRACE_CODE = _trace_filter(None).__code__
_PROFILE_CODE = _profile_filter(None).__code__


def program_function(function):
    """The program's trace or profile function behind a filter of ours, else ``function``."""
    return _behind(_behind(function, _TRACE_CODE, "tracer"), _PROFILE_CODE, "profiler")


def _ignore(frame, event, arg):
    return _ignore


def _under_launcher(frame):
    """Give every hidden frame on ``frame``'s stack, and the launcher's frames, a local trace
    function that ignores its events; returns the program's outermost frame when the
    launcher's frames are on this stack, else None."""
    outermost = None
    while frame is not None:
        if frame is _floor:
            while frame is not None:
                frame.f_trace = _ignore
                frame = frame.f_back
            return outermost
        if hidden(frame):
            frame.f_trace = _ignore
        else:
            outermost = frame
        frame = frame.f_back
    return None


def _is_launchers(frame):
    """Whether ``frame`` is one of the launcher's (at or below the floor) or hidden."""
    below = _floor
    while below is not None:
        if below is frame:
            return True
        below = below.f_back
    return hidden(frame)


def _adjust_debugger(tracer, outermost):
    """Keep a ``bdb.Bdb`` (pdb) from seeing the launcher's frames below the program: its
    bottom frame (``set_trace`` walks ``f_back`` to the end of the stack for it) becomes the
    program's outermost frame, and a frame to stop in that is the launcher's (``return`` in
    the outermost frame stops in its ``f_back``) becomes None, as in a plain run, where that
    ``f_back`` is None."""
    bdb = sys.modules.get("bdb")
    owner = tracer.__self__ if type(tracer) is _MethodType else None
    if bdb is None or owner is None or not issubclass(type(owner), bdb.Bdb):
        return
    bottom = owner.__dict__.get("botframe")
    if bottom is not None and _is_launchers(bottom):
        owner.botframe = outermost
    current = owner.__dict__.get("_set_stopinfo")
    if type(current) is not _FunctionType or current.__code__ is not _STOPINFO_CODE:
        owner._set_stopinfo = _stopinfo_filter(owner._set_stopinfo)


def _stopinfo_filter(original):
    def set_stopinfo(stopframe, *args, **kwargs):
        if stopframe is not None and _is_launchers(stopframe):
            stopframe = None
        return original(stopframe, *args, **kwargs)
    return set_stopinfo


_STOPINFO_CODE = _stopinfo_filter(None).__code__


def _settrace_wrapper(real):
    def settrace(function):
        if function is not None:
            outermost = _under_launcher(_getframe(1))
            if outermost is not None:
                _adjust_debugger(function, outermost)
            function = _trace_filter(function)
        real(function)
    settrace.__doc__ = real.__doc__
    return stands_for(settrace, real)


def _setprofile_wrapper(real):
    def setprofile(function):
        if function is not None:
            function = _profile_filter(
                function, None if REAL_GETPROFILE() is not None else _getframe())
        real(function)
    setprofile.__doc__ = real.__doc__
    return stands_for(setprofile, real)


def _gettrace():
    return program_function(REAL_GETTRACE())


def _getprofile():
    return program_function(REAL_GETPROFILE())


def _settraceallthreads_wrapper(real):
    def settrace_all_threads(function):
        real(None if function is None else _trace_filter(function))
    settrace_all_threads.__doc__ = real.__doc__
    return stands_for(settrace_all_threads, real)


def _setprofileallthreads_wrapper(real):
    def setprofile_all_threads(function):
        if function is not None:
            function = _profile_filter(
                function, None if REAL_GETPROFILE() is not None else _getframe())
        real(function)
    setprofile_all_threads.__doc__ = real.__doc__
    return stands_for(setprofile_all_threads, real)


def _monitoring_wrappers(monitoring):
    events = monitoring.events
    DISABLE = monitoring.DISABLE
    # Events a callback may disable at their location (the others raise ValueError).
    local = 0
    for name in ("PY_START", "PY_RESUME", "PY_RETURN", "PY_YIELD", "CALL", "LINE",
                 "INSTRUCTION", "JUMP", "BRANCH", "STOP_ITERATION"):
        local |= getattr(events, name, 0)
    real_register = monitoring.register_callback

    def is_probe(callable_):
        if type(callable_) is _MethodType:
            callable_ = callable_.__func__
        return type(callable_) is _FunctionType and kind(
            callable_.__code__.co_filename) == OWN

    def monitor_filter(callback, event):
        quiet = DISABLE if event & local else None
        is_call = event == events.CALL

        def shielded_monitor(code, *args):
            found = _kinds.get(code.co_filename)
            if found is None:
                found = kind(code.co_filename)
            if found == OWN:
                return quiet
            if found == SHARED and hidden(_getframe(1)):
                return None  # the same code runs for the program too: never DISABLE
            if is_call and is_probe(args[1]):
                return quiet  # that instruction only ever calls the probe
            try:
                return callback(code, *args)
            except BaseException as exc:
                hide_calling_frame(exc)
                raise
        return shielded_monitor

    monitor_code = monitor_filter(None, 0).__code__

    def register_callback(tool_id, event, func):
        wrapped = None if func is None else monitor_filter(func, event)
        return _behind(real_register(tool_id, event, wrapped), monitor_code, "callback")

    register_callback.__doc__ = real_register.__doc__
    stands_for(register_callback, real_register)
    # Callbacks registered before recording started get the filter too.
    for tool_id in range(6):
        if monitoring.get_tool(tool_id) is None:
            continue
        for name in dir(events):
            event = getattr(events, name)
            if name.isupper() and event and event & (event - 1) == 0:
                func = real_register(tool_id, event, None)
                if func is not None:
                    real_register(tool_id, event, monitor_filter(func, event))
    return register_callback


def install():
    """Put the wrappers in place (later calls do nothing); a trace or profile function
    already set on this thread gets the filter too."""
    global _installed, _SHARED_PREFIXES
    if _installed:
        return
    _installed = True
    _SHARED_PREFIXES = _shared_prefixes()
    sys.settrace = _settrace_wrapper(REAL_SETTRACE)
    sys.setprofile = _setprofile_wrapper(REAL_SETPROFILE)
    _gettrace.__doc__, _getprofile.__doc__ = REAL_GETTRACE.__doc__, REAL_GETPROFILE.__doc__
    sys.gettrace = stands_for(_gettrace, REAL_GETTRACE)
    sys.getprofile = stands_for(_getprofile, REAL_GETPROFILE)
    if hasattr(sys, "_settraceallthreads"):
        sys._settraceallthreads = _settraceallthreads_wrapper(sys._settraceallthreads)
        sys._setprofileallthreads = _setprofileallthreads_wrapper(sys._setprofileallthreads)
    monitoring = getattr(sys, "monitoring", None)
    if monitoring is not None:
        monitoring.register_callback = _monitoring_wrappers(monitoring)
    tracer, profiler = REAL_GETTRACE(), REAL_GETPROFILE()
    if tracer is not None:
        REAL_SETTRACE(_trace_filter(tracer))
    if profiler is not None:
        REAL_SETPROFILE(_profile_filter(profiler))
