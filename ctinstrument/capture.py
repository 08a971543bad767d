"""The recorded program's standard streams as trace events: what it writes to ``sys.stdout``
and ``sys.stderr`` becomes ``Event``s of kind Write, what it reads from ``sys.stdin`` kind Read,
each at the step of the thread that wrote or read it.

``StreamCapture(recorder).install()`` puts thin proxies in ``sys.stdin``/``sys.stdout``/
``sys.stderr`` (and in ``sys.__stdin__``/... when those are the same objects, so identity
checks keep their answer); ``builtins.input`` gets a wrapper because on a terminal it reads
and prompts through the C stdio layer, past ``sys.stdin`` and ``sys.stdout``.  A proxy passes
every call and attribute to the real stream and looks only at what a successful
``write``/``writelines`` was given and what a read returned.

Never: change what reaches a stream, its buffering or the order of writes; run the program's
code (no ``str()`` of what was written, no ``__eq__``); raise into the program (a recording
failure is counted by the recorder); leave a frame of ours in the tracebacks of the stream's
own exceptions (dropped as they pass on 3.11+, and from uncaught tracebacks by the runner on
3.10, see ``without_wrapper_frames``); take back a stream the program has replaced itself.
Not seen: bytes written to ``sys.stdout.buffer`` or to the file descriptors directly.
"""

import builtins
import functools
import sys

from . import probes
from .recorder import EVENT_READ, EVENT_WRITE
from .values import STAND_INS

_getframe = sys._getframe  # bound now: programs replace it (see isolation.py)

# Modules whose functions stand in for the program's own calls (see without_wrapper_frames).
WRAPPER_MODULES = frozenset({__name__} | {__name__.rpartition(".")[0] + "." + name
                                          for name in ("termination", "tracing_shield")})


def hide_calling_frame(exc):
    """Unlink the caller's frame from the head of ``exc``'s traceback.

    For a wrapper that catches an exception of the call it forwards and re-raises it with a
    bare ``raise``: from 3.11 on that re-raise adds no traceback entry, so the traceback reads
    as if the program had called the real function.  Ineffective (and harmless) on 3.10.
    """
    tb = exc.__traceback__
    if tb is not None and tb.tb_frame is _getframe(1):
        exc.__traceback__ = tb.tb_next


def without_wrapper_frames(tb):
    """The traceback chain ``tb`` with the frames of ``WRAPPER_MODULES`` unlinked."""
    def ours(entry):
        return entry.tb_frame.f_globals.get("__name__") in WRAPPER_MODULES
    while tb is not None and ours(tb):
        tb = tb.tb_next
    entry = tb
    while entry is not None:
        after = entry.tb_next
        while after is not None and ours(after):
            after = after.tb_next
        entry.tb_next = after
        entry = after
    return tb


class _StreamProxy:
    """Forwards everything to ``stream``; ``isinstance`` sees the stream's class."""

    __slots__ = ("_stream", "_name", "_kind", "_recorder", "__weakref__")

    def __init__(self, stream, name, kind, recorder):
        for slot, value in (("_stream", stream), ("_name", name), ("_kind", kind),
                            ("_recorder", recorder)):
            object.__setattr__(self, slot, value)

    @property
    def __class__(self):
        return type(self._stream)

    def __getattr__(self, name):
        return getattr(self._stream, name)

    def __setattr__(self, name, value):
        setattr(self._stream, name, value)

    def __delattr__(self, name):
        delattr(self._stream, name)

    def __repr__(self):
        return repr(self._stream)

    def __dir__(self):
        return dir(self._stream)

    def __enter__(self):
        self._stream.__enter__()
        return self

    def __exit__(self, *exc_info):
        return self._stream.__exit__(*exc_info)

    def __iter__(self):
        self._stream.__iter__()
        return self

    def _observe(self, text):
        """Record ``text`` (what the stream accepted or returned) as an Event."""
        if not probes._enabled:
            return
        try:
            if type(text) is not str:
                if not issubclass(type(text), str):
                    return
                text = str.__str__(text)  # a plain copy, without calling the subclass's code
            if text:
                # A thread that never ran recorded code gets its number (and ThreadStart) now.
                self._recorder.record_io(probes.current_thread_number(), self._kind,
                                         self._name, text)
        except Exception:
            self._recorder.probe_failed()


class _OutputProxy(_StreamProxy):
    __slots__ = ()

    def write(self, *args, **kwargs):
        try:
            count = self._stream.write(*args, **kwargs)
        except BaseException as exc:
            hide_calling_frame(exc)
            raise
        if args:
            self._observe(args[0])
        return count

    def writelines(self, lines):
        # As io.IOBase.writelines does: one write() of the real stream per item.
        try:
            for line in lines:
                self._stream.write(line)
                self._observe(line)
        except BaseException as exc:
            hide_calling_frame(exc)
            raise


def _reader(method, joined=False):
    """A proxy method forwarding to the stream's ``method`` and recording what it returns."""
    def read(self, *args, **kwargs):
        try:
            result = getattr(self._stream, method)(*args, **kwargs)
        except BaseException as exc:
            hide_calling_frame(exc)
            raise
        object.__setattr__(self, "_reads", self._reads + 1)
        self._observe("".join(result) if joined and type(result) is list else result)
        return result
    read.__name__ = read.__qualname__ = method
    return read


class _InputProxy(_StreamProxy):
    # _reads counts the reads through the proxy, so that input() can tell whether it used it.
    __slots__ = ("_reads",)

    def __init__(self, stream, name, kind, recorder):
        super().__init__(stream, name, kind, recorder)
        object.__setattr__(self, "_reads", 0)

    read = _reader("read")
    readline = _reader("readline")
    readlines = _reader("readlines", joined=True)
    __next__ = _reader("__next__")


def _stream_of(proxy):
    return _StreamProxy._stream.__get__(proxy)  # the slot itself: no __getattr__ runs


# A value holding a proxy (``threading.Thread._stderr``) shows the stream, as unrecorded.
STAND_INS[_OutputProxy] = STAND_INS[_InputProxy] = _stream_of


class StreamCapture:
    """Records the program's standard streams into ``recorder`` between ``install()`` and
    ``uninstall()`` (both from the main thread; install after the recorder has started)."""

    def __init__(self, recorder):
        self.recorder = recorder
        self.proxies = {}
        self.real_input = None
        self.input = None

    def install(self):
        """Wrap the standard streams that exist and ``builtins.input``; returns self."""
        for name, kind, proxy_class in (("stdin", EVENT_READ, _InputProxy),
                                        ("stdout", EVENT_WRITE, _OutputProxy),
                                        ("stderr", EVENT_WRITE, _OutputProxy)):
            stream = getattr(sys, name)
            if stream is None:
                continue
            proxy = self.proxies[name] = proxy_class(stream, name, kind, self.recorder)
            setattr(sys, name, proxy)
            if getattr(sys, "__%s__" % name) is stream:
                setattr(sys, "__%s__" % name, proxy)
        if "stdin" in self.proxies:
            self.real_input = builtins.input
            self.input = builtins.input = self._input_wrapper(self.real_input)
        return self

    def uninstall(self):
        """Put back the real streams and ``input`` wherever ours are still in place; a proxy
        the program kept a reference to goes on forwarding (and records nothing once the
        recorder has finished)."""
        for name, proxy in self.proxies.items():
            for attribute in (name, "__%s__" % name):
                if getattr(sys, attribute) is proxy:
                    setattr(sys, attribute, proxy._stream)
        if self.input is not None and builtins.input is self.input:
            builtins.input = self.real_input

    def _input_wrapper(self, real_input):
        stdin = self.proxies["stdin"]
        stdout = self.proxies.get("stdout")

        def input(*args, **kwargs):
            before = stdin._reads
            try:
                line = real_input(*args, **kwargs)
            except BaseException as exc:
                hide_calling_frame(exc)
                raise
            if stdin._reads == before and sys.stdin is stdin:
                # The terminal path (PyOS_Readline) prompted and read past both proxies.
                if args and stdout is not None and type(args[0]) is str:
                    stdout._observe(args[0])
                stdin._observe(line + "\n")
            return line

        return functools.update_wrapper(input, real_input)
