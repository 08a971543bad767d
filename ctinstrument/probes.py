"""The functions instrumented code calls: do the least possible work and hand over.

Each probe finds the calling thread's shadow stack (a ``threading.local`` attribute, so a
new thread gets a new stack and number even when the OS reuses its ident), appends one
record ``(thread number, event)`` to the recorder's buffer (a single ``list.append``, so
records of different threads never interleave inside one logical event) and returns.  A
probe never raises into the program: failures are counted and reported once by the
recorder.  While recording is off (``_enabled`` false) a probe costs one global check.

Activation roots: when the selection names root functions (``_gated``), a probe records only
while a root frame is on its thread's shadow stack (``ThreadStack.roots`` counts them,
``_roots_running`` all threads' together); the call and resume probes of a root always
record.

A ``ShadowFrame`` mirrors one running frame: its line-event state and its variables as the
store probes saw them (values taken from the stack, never read back from the target, never
from ``frame.f_locals`` on the hot path).  After each line step the probe appends a
``Value`` event per visible variable; an immutable value that is the same object as at the
previous step of that frame reuses its encoding.  Stores also write the assignment history
as ``VariableCell``/``AssignCell`` events (FORMAT.md).

A frame left without a probe (a 3.10 ``yield from`` suspension, a ``throw()`` into a
suspended generator) is repaired by ``_resync``, which keeps calls and returns balanced.

The probes are bound into ``builtins`` under the names in ``rewriter.PROBE_NAMES`` so that
instrumented code reaches them by name (cacheable bytecode, see PITFALLS.md).
"""

import builtins
import sys
import threading
import types

import orjson

from . import rewriter
from .instructions import UNPROBED_DELEGATION, UNSEEN_RESUME_KEEPS_LINE
from .isolation import PRIVATE_BUILTINS as __builtins__  # noqa: F401 (see isolation.py)

_enabled = False
_gated = False
# One item (its window) per root frame on any thread's shadow stack (list.append/remove are
# atomic): while it is empty, the gate of every probe is a check of two globals.
_roots_running = []
# Recording windows ended so far; a shadow stack from an earlier window is emptied on use.
_window = 0
_recorder = None
_sites = []
_root_sites = bytearray()
_stores = []
_functions = []
_buffer = []
_append = _buffer.append
_limit = 1 << 14
_encode = None
_redacted = frozenset()
_local = threading.local()
_sent_variable = 0
_lost_return = None
_dumps = orjson.dumps
_I64 = 1 << 63
_int_type = _str_type = 0
_short_string = 0
_getframe = sys._getframe
# Line of the last yield of each function: where a frame resumed unseen (throw()) stands.
_yield_lines = {}
_Module = types.ModuleType
# Values whose encoding cannot change while they stay the same object.
_IMMUTABLE = frozenset({int, float, str, bytes, bool, complex, type(None), types.FunctionType,
                        types.BuiltinFunctionType, range})


class ThreadStack(list):
    """A thread's shadow frames; ``number`` names the thread in the trace."""

    __slots__ = ("number", "roots", "window")


class ShadowFrame:
    """The recorder's view of one running frame.

    ``line``/``site``: last line event and last line site (for sys.settrace line rules);
    ``variables``: variable id -> value (the module namespace dict for module bodies);
    ``cells``: (variable id, cell) pairs read at each step (``cell_ids`` their ids: stores
    to them are history only, the value is read live); ``places``: variable id -> place of
    the assignment history; ``cache``: variable id -> (value, encoded Value event);
    ``saved``: locals borrowed by inlined comprehensions; ``namespace``: module or class body.
    """

    __slots__ = ("function_id", "line", "site", "variables", "cells", "places", "cache",
                 "saved", "namespace", "pending", "cell_ids", "root")

    def __init__(self, function_id, line, site, variables, cells, namespace, root=False):
        self.function_id = function_id
        self.line = line
        self.site = site
        self.variables = variables
        self.cells = cells
        self.places = {}
        self.cache = {}
        self.saved = []
        self.namespace = namespace
        self.pending = None
        self.cell_ids = frozenset(vid for vid, _cell in cells)
        self.root = root


class _ThreadEnd:
    """Stored in a thread's ``threading.local`` slot: freed when the thread ends."""

    __slots__ = ("number",)

    def __init__(self, number):
        self.number = number

    def __del__(self):
        if _enabled:
            _append((self.number, {"ThreadExit": self.number}))


def bind(recorder, gated=False):
    """Route every probe to ``recorder`` and switch recording on (call from the main thread).

    ``gated``: record only while an activation root is on the thread's stack."""
    global _recorder, _sites, _root_sites, _stores, _functions, _buffer, _append, _limit
    global _encode, _gated
    global _sent_variable, _lost_return, _enabled, _redacted, _int_type, _str_type, _short_string
    _recorder = recorder
    _gated = gated
    _sites = recorder.sites
    _root_sites = recorder.root_sites
    _stores = recorder.stores
    _functions = recorder.functions
    _buffer = recorder.buffer
    _append = _buffer.append
    _limit = recorder.buffer_limit
    _encode = recorder.encoder.encode
    _int_type = recorder.encoder.int_type
    _str_type = recorder.encoder.str_type
    _short_string = recorder.encoder.limits.string
    _redacted = recorder.redacted
    _sent_variable = recorder.variable_id("<sent>")
    _lost_return = {"Return": {"return_value": recorder.encoder.lost_frame_value()}}
    _local.stack = recorder.main_stack
    named = dict(zip(rewriter.PROBE_NAMES, (step, call, return_, unwind, yield_, resume, store,
                                            delete, mutate, save, restore, catch)))
    builtins.__dict__.update(named)
    builtins.__dict__[_TeardownGuard.NAME] = _TeardownGuard(builtins.__dict__, named)
    _enabled = True


def new_thread_stack(number):
    """An empty shadow stack for thread ``number``."""
    stack = ThreadStack()
    stack.number = number
    stack.roots = 0
    stack.window = _window
    return stack


# What the gate sees on a thread that has no shadow stack yet: no root is running there.
_NO_STACK = new_thread_stack(0)
_getattr = getattr


def current_thread_number():
    """The trace thread number of the calling thread (allocated on first use)."""
    try:
        return _local.stack.number
    except AttributeError:
        return _thread_stack().number


def _thread_stack():
    stack = _recorder.new_thread()
    _local.stack = stack
    _local.end = _ThreadEnd(stack.number)
    return stack


def _stack():
    """The calling thread's shadow stack (created on first use, emptied if it is from an
    earlier recording window: the writer has ended those calls in the trace)."""
    try:
        stack = _local.stack
    except AttributeError:
        return _thread_stack()
    if stack.window != _window:
        _forget_frames(stack)
    return stack


def _forget_frames(stack):
    del stack[1 if stack is _recorder.main_stack else 0:]
    stack.roots = 0
    stack.window = _window


def _roots_here():
    """Root frames on the calling thread's shadow stack (the gate, when some root runs)."""
    stack = _getattr(_local, "stack", _NO_STACK)
    if stack.window != _window:
        _forget_frames(stack)
    return stack.roots


class Unrecorded(Exception):
    """Raised inside a probe whose frame turned out to run outside every activation root;
    the recorder ignores it (see _outside_roots)."""


def _instrumented_frames(frame):
    """(frame, function id) for ``frame`` and its callers that run instrumented code,
    innermost first (the rare paths only: a frame walk)."""
    codes = _recorder.code_functions
    while frame is not None:
        known = codes.get(id(frame.f_code))
        if known is not None and known[0] is frame.f_code:
            yield frame, known[1]
        frame = frame.f_back


def _root_is_live(frame):
    """Whether a frame of an activation root is ``frame`` or one of its callers."""
    return any(_functions[fid][7] for _frame, fid in _instrumented_frames(frame))


def _outside_roots(stack, fid, frame):
    """On 3.10 (UNPROBED_DELEGATION), before a non-root frame ``frame`` gets a new Call in
    gated mode: if no root is on the real stack, the root shadow frames are of generators
    or coroutines suspended in ``yield from``/``await``: they end here (a Return each, as a
    yield would be) and the caller must not record.  Returns whether that happened."""
    if _functions[fid][7] or _root_is_live(frame):
        return False
    floor = 1 if stack is _recorder.main_stack else 0
    while len(stack) > floor and stack.roots:
        _pop(stack)
        _append((stack.number, _lost_return))
    return True


def end_window():
    """A recording window ended (recording is off): every thread's shadow frames are
    stale; each thread empties its stack when it next records (never another thread's)."""
    global _window
    _window += 1
    del _roots_running[:]


def reenter(frame):
    """Enter again, as calls (outermost first), the instrumented frames on the stack of
    ``frame``, which were running when a recording window opened: only from the outermost
    activation root on when recording is gated."""
    if not _enabled:
        return
    try:
        running = list(_instrumented_frames(frame))
        stack = _stack()
        for frame, fid in reversed(running):
            function = _functions[fid]
            if _gated and not stack.roots and not function[7]:
                continue
            variables = _locals_of(frame, fid)
            arg_ids = tuple(v for v in function[1] if v in variables)
            _enter(fid, arg_ids, tuple(variables[v] for v in arg_ids), (), frame.f_lineno, -1,
                   variables)
    except RecursionError:
        pass
    except Exception:
        _recorder.probe_failed()


def disable():
    """Switch recording off; probes stay callable and return at once."""
    global _enabled
    _enabled = False


def enable():
    """Switch recording back on after ``disable`` (the probes stay bound)."""
    global _enabled
    _enabled = True


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


def _new_frame(fid, line, site, variables, cells):
    function = _functions[fid]
    namespace = function[4]
    if namespace is not None:
        variables = namespace
    return ShadowFrame(fid, line, site, variables, cells, function[3] != "function",
                       function[7])


def _push(stack, frame):
    stack.append(frame)
    if frame.root:
        stack.roots += 1
        _roots_running.append(stack.window)


def _pop(stack):
    if stack.pop().root:
        stack.roots -= 1
        try:
            _roots_running.remove(stack.window)
        except ValueError:
            pass  # emptied by end_window since


def _resync(stack, fid, depth, thrown=None):
    """Return the shadow frame of ``fid`` on ``stack``, repairing the stack if needed.

    A frame found deeper means the frames above it ended unseen: they get a Return.  A frame
    not found at all was resumed unseen (throw() into a generator, 3.10 yield from): it gets a
    Call carrying the exception being handled, if any, and its variables as they are now
    (read from the instrumented frame ``depth`` levels above this function).
    """
    number = stack.number
    floor = 1 if stack and stack[0].function_id == 0 else 0
    for index in range(len(stack) - 1, floor - 1, -1):
        if stack[index].function_id == fid:
            while len(stack) > index + 1:
                _pop(stack)
                _append((number, _lost_return))
            return stack[index]
    if UNPROBED_DELEGATION and _gated and _outside_roots(stack, fid, _getframe(depth)):
        raise Unrecorded
    if thrown is None:
        thrown = sys.exc_info()[1]
    args = [] if thrown is None else [{"variable_id": _recorder.variable_id("<thrown>"),
                                       "value": _encode(thrown)}]
    _append((number, (_functions[fid][0], {"Call": {"function_id": fid, "args": args}})))
    line = _yield_lines.get(fid, -1) if UNSEEN_RESUME_KEEPS_LINE else -1
    frame = _new_frame(fid, line, -1, _locals_of(_getframe(depth), fid), ())
    _push(stack, frame)
    return frame


def _locals_of(frame, fid):
    """Variable ids and values of a suspended-then-resumed frame (rare path, see resume)."""
    if frame is None or frame.f_code.co_filename != _recorder.function_path(fid):
        return {}
    variable_id = _recorder.variable_id
    return {variable_id(name): value for name, value in frame.f_locals.items()}


def _value_event(vid, value):
    if vid in _redacted:
        return _recorder.redacted_value_event(vid)
    cls = type(value)
    # Fast paths for the commonest values, byte-for-byte what the encoder would produce.
    if cls is int and -_I64 <= value < _I64:
        return b'{"Value":{"variable_id":%d,"value":{"kind":"Int","i":%d,"type_id":%d}}}' % (
            vid, value, _int_type)
    if cls is str and len(value) <= _short_string:
        try:
            text = _dumps(value)
        except TypeError:  # lone surrogates: the encoder escapes them
            pass
        else:
            return b'{"Value":{"variable_id":%d,"value":{"kind":"String","text":%s,' \
                   b'"type_id":%d}}}' % (vid, text, _str_type)
    return b'{"Value":{"variable_id":%d,"value":%s}}' % (vid, _dumps(_encode(value)))


def _snapshot(frame, event):
    """The Step event followed by a Value event per visible variable of ``frame``."""
    parts = [event]
    cache = frame.cache
    namespace = frame.namespace
    for vid, value in frame.variables.items():
        cls = type(value)  # never value.__class__: a user __getattribute__ would run
        cached = cache.get(vid)
        if cached is not None and cached[0] is value and cls in _IMMUTABLE:
            parts.append(cached[1])
            continue
        if namespace and cls is _Module:
            continue
        data = _value_event(vid, value)
        cache[vid] = (value, data)
        parts.append(data)
    for vid, cell in frame.cells:
        try:
            value = cell.cell_contents
        except ValueError:
            continue  # unbound
        cached = cache.get(vid)
        if cached is not None and cached[0] is value and type(value) in _IMMUTABLE:
            parts.append(cached[1])
            continue
        data = _value_event(vid, value)
        cache[vid] = (value, data)
        parts.append(data)
    return tuple(parts)


def _flush_pending(frame, number):
    """AssignCell events for objects changed in place since the last step of ``frame``."""
    pending = frame.pending
    frame.pending = None
    for vid, value in pending:
        _assign(number, frame, vid, value)


def step(site):
    # On 3.10 a root's own lines always count: its frame may resume unseen (YIELD_FROM).
    if not _enabled or _gated and not (_roots_running and _roots_here()) and not (
            UNPROBED_DELEGATION and _root_sites[site]):
        return
    try:
        window = _window
        fid, line, event, forced = _sites[site]
        stack = _stack()
        frame = stack[-1] if stack else None
        if frame is None or frame.function_id != fid:
            frame = _resync(stack, fid, 2)
        if line != frame.line or site <= frame.site or forced:
            frame.line = line
            if frame.pending:
                _flush_pending(frame, stack.number)
            snapshot = _snapshot(frame, event)
            if window != _window:
                return  # the window ended while this probe ran on this thread
            _append((stack.number, snapshot))
            if len(_buffer) > _limit:
                _recorder.flush()
        frame.site = site
    except RecursionError:
        pass  # at the program's recursion limit: no room for the probe's work, not even a call
    except Exception:
        _recorder.probe_failed()


def _enter(fid, arg_ids, args, cells, line, site, variables):
    # Everything that can fail (even RecursionError near the limit) happens before the record
    # is appended and the frame pushed, so the two stay together; nothing is appended if the
    # recording window ended while this probe ran (a check then a C call: no thread switch).
    window = _window
    encoded = [{"variable_id": v, "value": _recorder.redacted_value(v) if v in _redacted
                else _encode(a)} for v, a in zip(arg_ids, args) if v >= 0]
    frame = _new_frame(fid, line, site, variables, cells)
    record = (_functions[fid][0], {"Call": {"function_id": fid, "args": encoded}})
    stack = _stack()
    if window == _window:
        _append((stack.number, record))
        _push(stack, frame)


def call(fid, args, cells):
    if not _enabled or _gated and not (_functions[fid][7] or _roots_running
                                       and _roots_here()):
        return
    try:
        if UNPROBED_DELEGATION and _gated and _outside_roots(_stack(), fid, _getframe(1)):
            return
        function = _functions[fid]
        arg_ids = function[1]
        cell_ids = function[2]
        variables = {vid: value for vid, value in zip(arg_ids, args)
                     if vid >= 0 and vid not in cell_ids}
        _enter(fid, arg_ids, args, tuple(zip(cell_ids, cells)) if cells else (), -1, -1,
               variables)
    except RecursionError:
        pass  # at the program's recursion limit: no room for the probe's work, not even a call
    except Exception:
        _recorder.probe_failed()


def resume(sent, fid, line, site):
    """A generator or coroutine resumed: a Call carrying the sent value.

    Its locals are re-read from the resumed frame: a shadow frame cannot follow a generator
    while it is suspended.  On 3.12 and older this refreshes the dict ``locals()`` returned in
    that frame (PITFALLS.md), the price of correct values in generators and coroutines.
    """
    if not _enabled:
        return
    try:
        if _gated and not (_functions[fid][7] or _roots_running and _roots_here()):
            # On 3.10 a root suspended in ``yield from``/``await`` resumes unseen: if it is
            # delegating to this frame, it is entered again first (as at a window's start).
            if not (UNPROBED_DELEGATION and _root_is_live(_getframe(1))):
                return
            reenter(_getframe(1).f_back)
        elif UNPROBED_DELEGATION and _gated and _outside_roots(_stack(), fid, _getframe(1)):
            return
        _enter(fid, (_sent_variable,), (sent,), (), line, site, _locals_of(_getframe(1), fid))
    except RecursionError:
        pass  # at the program's recursion limit: no room for the probe's work, not even a call
    except Exception:
        _recorder.probe_failed()


def _leave(value, fid):
    window = _window  # as in _enter
    record = {"Return": {"return_value": _encode(value)}}
    stack = _stack()
    if not stack or stack[-1].function_id != fid:
        _resync(stack, fid, 3)
    if stack[-1].pending:
        _flush_pending(stack[-1], stack.number)
    if window != _window:
        return
    _append((stack.number, record))
    _pop(stack)
    if len(_buffer) > _limit:
        _recorder.flush()


def return_(value, fid):
    if not _enabled or _gated and not (_roots_running and _roots_here()):
        return
    try:
        _leave(value, fid)
    except RecursionError:
        pass  # at the program's recursion limit: no room for the probe's work, not even a call
    except Exception:
        _recorder.probe_failed()


def unwind(exception, fid):
    if not _enabled or _gated and not (_roots_running and _roots_here()):
        return
    try:
        _leave(exception, fid)
    except RecursionError:
        pass  # at the program's recursion limit: no room for the probe's work, not even a call
    except Exception:
        _recorder.probe_failed()


def yield_(value, fid, line):
    if not _enabled or _gated and not (_roots_running and _roots_here()):
        return
    try:
        _yield_lines[fid] = line
        _leave(value, fid)
    except RecursionError:
        pass  # at the program's recursion limit: no room for the probe's work, not even a call
    except Exception:
        _recorder.probe_failed()


def _current_frame(fid, thrown=None):
    stack = _stack()
    frame = stack[-1] if stack else None
    if frame is None or frame.function_id != fid:
        frame = _resync(stack, fid, 3, thrown)
    return stack.number, frame


def _assign(number, frame, vid, value):
    """Record ``vid = value`` in ``frame``: shadow update plus assignment history."""
    frame.cache.pop(vid, None)
    places = frame.places
    place = places.get(vid)
    if place is None:
        place = places[vid] = _recorder.new_place()
        history = {"VariableCell": {"variable_id": vid, "place": place}}
    else:
        history = None
    if vid in _redacted:
        assigned = _recorder.redacted_value(vid)
    else:
        assigned = _encode(value)
    assign = {"AssignCell": {"place": place, "new_value": assigned}}
    _append((number, (history, assign) if history is not None else assign))


def store(value, site):
    if not _enabled or _gated and not (_roots_running and _roots_here()):
        return
    try:
        fid, vid, namespace = _stores[site]
        number, frame = _current_frame(fid)
        if namespace is not None:
            namespace[vid] = value
        elif vid not in frame.cell_ids:
            frame.variables[vid] = value
        if frame.saved and any(saved[0] == vid for saved in frame.saved):
            return  # an inlined comprehension's variable: not the history of the outer one
        _assign(number, frame, vid, value)
    except RecursionError:
        pass  # at the program's recursion limit: no room for the probe's work, not even a call
    except Exception:
        _recorder.probe_failed()


def delete(site):
    if not _enabled or _gated and not (_roots_running and _roots_here()):
        return
    try:
        fid, vid, namespace = _stores[site]
        number, frame = _current_frame(fid)
        (frame.variables if namespace is None else namespace).pop(vid, None)
        frame.cache.pop(vid, None)
        _append((number, {"DropVariable": vid}))
    except RecursionError:
        pass  # at the program's recursion limit: no room for the probe's work, not even a call
    except Exception:
        _recorder.probe_failed()


def mutate(target, fid):
    """``target`` is about to change in place (attribute, item or slice store or delete)."""
    if not _enabled or _gated and not (_roots_running and _roots_here()):
        return
    try:
        _number, frame = _current_frame(fid)
        for vid, value in frame.variables.items():
            if value is target:
                break
        else:
            for vid, cell in frame.cells:
                try:
                    if cell.cell_contents is target:
                        break
                except ValueError:
                    pass
            else:
                return
        if frame.pending is None:
            frame.pending = []
        frame.pending.append((vid, target))
    except RecursionError:
        pass  # at the program's recursion limit: no room for the probe's work, not even a call
    except Exception:
        _recorder.probe_failed()


def catch(exception, fid):
    """A handler of the frame is entered with ``exception`` (raised in this frame or
    propagated into it): an ``Event`` (TraceLogEvent) at the step that raised it."""
    if not _enabled or _gated and not (_roots_running and _roots_here()):
        return
    try:
        number, _frame = _current_frame(fid, exception)
        _append((number, {"Event": {"kind": 12, "metadata": "exception",
                                    "content": _recorder.describe_exception(exception)}}))
    except RecursionError:
        pass  # at the program's recursion limit: no room for the probe's work, not even a call
    except Exception:
        _recorder.probe_failed()


def save(site):
    """An inlined comprehension (3.12+) borrows a local: remember its value."""
    if not _enabled or _gated and not (_roots_running and _roots_here()):
        return
    try:
        fid, vid, _namespace = _stores[site]
        _number, frame = _current_frame(fid)
        frame.saved.append((vid, frame.variables.pop(vid, _MISSING)))
        frame.cache.pop(vid, None)
    except RecursionError:
        pass  # at the program's recursion limit: no room for the probe's work, not even a call
    except Exception:
        _recorder.probe_failed()


def restore(site):
    """The comprehension gives the local back (possibly unbound)."""
    if not _enabled or _gated and not (_roots_running and _roots_here()):
        return
    try:
        fid, vid, _namespace = _stores[site]
        _number, frame = _current_frame(fid)
        frame.cache.pop(vid, None)
        for index in range(len(frame.saved) - 1, -1, -1):
            if frame.saved[index][0] == vid:
                value = frame.saved.pop(index)[1]
                break
        else:
            value = _MISSING
        if value is _MISSING:
            frame.variables.pop(vid, None)
        else:
            frame.variables[vid] = value
    except RecursionError:
        pass  # at the program's recursion limit: no room for the probe's work, not even a call
    except Exception:
        _recorder.probe_failed()


_MISSING = object()
