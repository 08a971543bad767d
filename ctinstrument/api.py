"""The Python API: ``install_hook``, ``record``, ``start``, ``stop``.

``install_hook`` creates the process's recording session (see session.py) from inside a
running program; under ``python -m ctinstrument`` the CLI has created it already, and
``record``/``start``/``stop`` act on whichever session exists.  Recording windows are per
process (every thread); while recording is off, instrumented code pays one flag check per
probe.
"""

import functools
import inspect
import os
import sys

from .disabled import NULL_SESSION, is_disabled as _disabled
from .errors import UsageError
from .selection import split_patterns
from . import session as _sessions


class Handle:
    """What ``install_hook`` returns: the session of this process.

    A context manager (leaving it uninstalls); ``uninstall()`` finalises the trace and
    removes the hook (idempotent); ``start()``/``stop()`` as the module functions;
    ``out_dir`` is the trace directory (absolute path).
    """

    def __init__(self, session, key):
        self._session = session
        self._key = key
        self.out_dir = session.out_dir

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.uninstall()

    def __repr__(self):
        state = ("finished" if self._session.finished else
                 "recording" if self._session.recording else "paused")
        return "<ctinstrument.Handle %s %s>" % (self.out_dir, state)

    @property
    def recording(self):
        """Whether instrumented code is being recorded now."""
        return self._session.recording

    @property
    def decisions(self):
        """{module name: (instrumented?, reason)} for every module the hook was asked about."""
        return dict(self._session.hook.decisions)

    def start(self):
        """Start a recording window (see ``start``)."""
        self._session.start()

    def stop(self):
        """End the recording window (see ``stop``)."""
        self._session.stop()

    def uninstall(self, exit_code=None):
        """Finalise the trace directory and remove the import hook; later calls do nothing.
        Modules already instrumented keep running, unrecorded.  ``exit_code`` (an int, if
        the caller knows the program's status) becomes the top-level return value and the
        ``exit_code`` of ``trace_metadata.json``."""
        self._session.finish(exit_code)


_handle = None


def install_hook(patterns=None, *, exclude=None, out_dir=None, paused=None, redact=None,
                 redact_names=None, capture_output=None, explain=None, debug=None,
                 cache=None):
    """Instrument the modules matching ``patterns`` that are imported from now on, and record
    them into the trace directory ``out_dir``; returns a ``Handle``.

    Every keyword is an option of the table in config.py; ``None`` means "not given": the
    value then comes from ``$CTINSTRUMENT_*`` (and ``$CODETRACER_DB_TRACE_PATH`` for
    ``out_dir``), else from ``[tool.ctinstrument]`` in the nearest ``pyproject.toml`` above
    the working directory, else the table's default.

    ``patterns``/``exclude``: a pattern string or a list of them (see selection.py: module
    names, globs, paths, ``module:Function.qualname`` activation roots); no pattern records
    the modules of the project (the directory of ``__main__``, else the working directory).
    ``out_dir`` defaults to ``./trace-out``.  ``paused``: record nothing until ``start()``.
    ``redact``/``redact_names``: as the CLI's ``--no-redact``/``--redact``.
    ``capture_output``: record stdout/stderr/stdin as events (default off here, unlike the
    CLI).  ``explain``/``debug``: print why each module was or was not recorded when the
    trace is finalised.  ``cache``: use the private code cache (code_cache.py).

    Matching modules already imported cannot be rewritten: a warning names each one, once.
    The trace is finalised by ``uninstall()``, leaving the handle's ``with`` block, or at
    interpreter exit.  Calling again with the same effective options returns the same
    handle.  Raises UsageError for a bad option (in the arguments, the environment or
    pyproject.toml), an unwritable ``out_dir``, or if this process already records with
    other options or has finished its recording.
    """
    global _handle
    if _disabled():
        return Handle(NULL_SESSION, None)
    from .config import OPTIONS, resolve
    from .writer import prepare_out_dir
    arguments = {"patterns": patterns, "exclude": exclude, "out_dir": out_dir,
                 "paused": paused, "redact": redact, "redact_names": redact_names,
                 "capture_output": capture_output, "explain": explain, "debug": debug,
                 "cache": cache}
    given = {option.name: arguments[option.api] for option in OPTIONS
             if arguments[option.api] is not None}
    settings = resolve(given, os.getcwd(), frontend="api")
    include = split_patterns(settings["include"])
    excluded = split_patterns(settings["exclude"], allow_function=False)
    metadata = settings.as_metadata()
    metadata["out_dir"] = os.path.abspath(settings["out_dir"])
    key = tuple((name, tuple(value) if isinstance(value, list) else value)
                for name, value in sorted(metadata.items()) if name != "sources")
    existing = _sessions.current()
    if existing is not None and _handle is not None and _handle._session is existing:
        if _handle._key == key:
            return _handle
        raise UsageError("ctinstrument is already recording this process into %s with "
                         "other options; uninstall that first" % existing.out_dir)
    _sessions.check_no_session()  # before anything is created on disk
    out_dir = prepare_out_dir(settings["out_dir"], option="out_dir")
    metadata["out_dir"] = out_dir
    main = sys.modules.get("__main__")
    main_file = getattr(main, "__file__", None)
    program = os.path.abspath(main_file) if isinstance(main_file, str) else sys.executable
    project_dir = os.path.dirname(program) if isinstance(main_file, str) else os.getcwd()
    session = _sessions.Session(
        out_dir, program, sys.argv[1:], include, excluded, project_dir,
        redact=settings["redact"], redact_names=settings["redact_names"],
        capture_output=settings["capture_output"], paused=settings["paused"],
        settings=metadata, explain="all" if settings["debug"] else settings["explain"],
        cache=settings["cache"])
    for line in settings.warnings:
        session.recorder.warn(line)
    if settings["debug"]:
        session.recorder.report(["debug: " + line for line in settings.describe()])
    session.install()
    session.warn_already_imported()
    _handle = Handle(session, key)
    return _handle


def _session():
    session = _sessions.current()
    if session is None and _disabled():
        return NULL_SESSION
    if session is None:
        raise UsageError("ctinstrument is not recording this process: call "
                         "ctinstrument.install_hook() first, or run the program with "
                         "python -m ctinstrument")
    return session


def start():
    """Switch recording on for the whole process (a new window in the same trace); does
    nothing if it is on.  Frames already running appear as calls from their next line on.
    Raises UsageError if there is no recording session."""
    _session().start()


def stop():
    """Switch recording off for the whole process and leave a complete trace directory on
    disk (``start`` continues the same trace); does nothing if it is off.  Raises UsageError
    if there is no recording session."""
    _session().stop()


def is_recording():
    """Whether instrumented code is being recorded now (False without a session)."""
    session = _sessions.current()
    return session is not None and session.recording


class record:
    """Record only inside a ``with ctinstrument.record():`` block or a call of a function
    decorated with ``@ctinstrument.record()``.

    Nested windows keep recording until the outermost one ends; a window is per process,
    not per thread.  The lines of the ``with`` statement itself and of the decorated
    function's callers are not recorded.  Coroutine functions are supported (the window
    spans the whole ``await``).  Raises UsageError on entry if there is no session.
    """

    def __init__(self):
        self._started = []

    def __enter__(self):
        session = _session()
        started = not session.recording
        self._started.append(started)
        if started:
            session.start()
        return self

    def __exit__(self, *exc_info):
        if self._started.pop():
            session = _sessions.current()
            if session is not None:
                session.stop()

    def __call__(self, function):
        if inspect.iscoroutinefunction(function):
            @functools.wraps(function)
            async def recorded_coroutine(*args, **kwargs):
                with record():
                    return await function(*args, **kwargs)
            return recorded_coroutine

        if inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function):
            raise UsageError("record() cannot decorate the generator function %s: its body "
                             "runs when it is iterated, after the call has returned; put "
                             "'with ctinstrument.record():' around the iteration instead"
                             % getattr(function, "__qualname__", function))

        @functools.wraps(function)
        def recorded(*args, **kwargs):
            with record():
                return function(*args, **kwargs)
        return recorded
