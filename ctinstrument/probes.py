"""The functions instrumented code calls: do the least possible work and hand over.

Each probe finds the calling thread's shadow stack (a ``threading.local`` attribute, so a
new thread gets a new stack and number even when the OS reuses its ident), appends one
record ``(thread number, event)`` to the recorder's buffer (a single ``list.append``, so
records of different threads never interleave inside one logical event) and returns.  A probe never raises into the program: failures are
counted and reported once by the recorder.  While recording is off (``_enabled`` false) a
probe costs one global check.

Shadow frames are lists ``[function_id, last_line, last_site]``.  A frame left without a
probe (a 3.10 ``yield from`` suspension, a ``throw()`` into a suspended generator) is
repaired by ``_resync``, which keeps calls and returns balanced.

The probes are bound into ``builtins`` under the names in ``rewriter.PROBE_NAMES`` so that
instrumented code reaches them by name (cacheable bytecode, see PITFALLS.md).
"""

import builtins
import threading

from . import rewriter

_enabled = False
_recorder = None
_sites = []
_functions = []
_buffer = []
_append = _buffer.append
_limit = 1 << 14
_encode = None
_local = threading.local()
_sent_variable = 0
_lost_return = None


class ThreadStack(list):
    """A thread's shadow frames ``[function_id, last_line, last_site]``; ``number`` names the
    thread in the trace."""

    __slots__ = ("number",)


class _ThreadEnd:
    """Stored in a thread's ``threading.local`` slot: freed when the thread ends."""

    __slots__ = ("number",)

    def __init__(self, number):
        self.number = number

    def __del__(self):
        if _enabled:
            _append((self.number, {"ThreadExit": self.number}))


def bind(recorder):
    """Route every probe to ``recorder`` and switch recording on (call from the main thread)."""
    global _recorder, _sites, _functions, _buffer, _append, _limit, _encode
    global _sent_variable, _lost_return, _enabled
    _recorder = recorder
    _sites = recorder.sites
    _functions = recorder.functions
    _buffer = recorder.buffer
    _append = _buffer.append
    _limit = recorder.buffer_limit
    _encode = recorder.encoder.encode
    _sent_variable = recorder.variable_id("<sent>")
    _lost_return = {"Return": {"return_value": recorder.encoder.lost_frame_value()}}
    _local.stack = recorder.main_stack
    named = dict(zip(rewriter.PROBE_NAMES, (step, call, return_, unwind, yield_, resume)))
    builtins.__dict__.update(named)
    builtins.__dict__[_TeardownGuard.NAME] = _TeardownGuard(builtins.__dict__, named)
    _enabled = True


def new_thread_stack(number):
    """An empty shadow stack for thread ``number``."""
    stack = ThreadStack()
    stack.number = number
    return stack


def _thread_stack():
    stack = _recorder.new_thread()
    _local.stack = stack
    _local.end = _ThreadEnd(stack.number)
    return stack


def disable():
    """Switch recording off; probes stay callable and return at once."""
    global _enabled
    _enabled = False


class _TeardownGuard:
    """Puts the probe names back into ``builtins`` after interpreter shutdown resets it.

    At shutdown CPython clears the builtins dict and refills it from a copy taken at start-up,
    *before* module globals are cleared; generators closed and ``__del__`` methods run after
    that still execute instrumented code, whose probe lookups must not fail.  This object lives
    in the builtins dict, so it is finalised by that very reset and can restore the names
    (the probes are disabled by then and return at once).
    """

    NAME = "__ctinstrument_guard__"

    def __init__(self, namespace, probes):
        self.namespace = namespace
        self.probes = probes

    def __del__(self):
        self.namespace.update(self.probes)


def _resync(stack, fid):
    """Return the shadow frame of ``fid`` on ``stack``, repairing the stack if needed."""
    number = stack.number
    floor = 1 if stack and stack[0][0] == 0 else 0
    for index in range(len(stack) - 1, floor - 1, -1):
        if stack[index][0] == fid:
            while len(stack) > index + 1:
                stack.pop()
                _append((number, _lost_return))
            return stack[index]
    _append((number, (_functions[fid][0], {"Call": {"function_id": fid, "args": []}})))
    frame = [fid, -1, -1]
    stack.append(frame)
    return frame


def step(site):
    if not _enabled:
        return
    try:
        fid, line, event = _sites[site]
        try:
            stack = _local.stack
        except AttributeError:
            stack = _thread_stack()
        frame = stack[-1] if stack else None
        if frame is None or frame[0] != fid:
            frame = _resync(stack, fid)
        if line != frame[1] or site <= frame[2]:
            frame[1] = line
            _append((stack.number, event))
            if len(_buffer) > _limit:
                _recorder.flush()
        frame[2] = site
    except Exception:
        _recorder.probe_failed()


def _enter(fid, arg_ids, args, line, site):
    encoded = [{"variable_id": v, "value": _encode(a)} for v, a in zip(arg_ids, args)]
    try:
        stack = _local.stack
    except AttributeError:
        stack = _thread_stack()
    _append((stack.number, (_functions[fid][0],
                            {"Call": {"function_id": fid, "args": encoded}})))
    stack.append([fid, line, site])


def call(fid, args):
    if not _enabled:
        return
    try:
        _enter(fid, _functions[fid][1], args, -1, -1)
    except Exception:
        _recorder.probe_failed()


def resume(sent, fid, line, site):
    if not _enabled:
        return
    try:
        _enter(fid, (_sent_variable,), (sent,), line, site)
    except Exception:
        _recorder.probe_failed()


def _leave(value, fid):
    try:
        stack = _local.stack
    except AttributeError:
        stack = _thread_stack()
    if not stack or stack[-1][0] != fid:
        _resync(stack, fid)
    stack.pop()
    _append((stack.number, {"Return": {"return_value": _encode(value)}}))
    if len(_buffer) > _limit:
        _recorder.flush()


def return_(value, fid):
    if not _enabled:
        return
    try:
        _leave(value, fid)
    except Exception:
        _recorder.probe_failed()


def unwind(exception, fid):
    if not _enabled:
        return
    try:
        _leave(exception, fid)
    except Exception:
        _recorder.probe_failed()


def yield_(value, fid):
    if not _enabled:
        return
    try:
        _leave(value, fid)
    except Exception:
        _recorder.probe_failed()
