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
from ``frame.f_locals`` on the hot path).  Values are recorded as changes, in the shape
CodeTracer's backend replays (FORMAT.md §"What CodeTracer shows", ``ct_locals.py``): each
variable of a call is bound once to a place (``VariableCell``) and its value is written
(``AssignCell``) only when its encoding changed; a mutable object's record of some size is
written once per distinct content, to a place that never changes, and a change moves the
bindings that show it to the place of the new content (``_place_of``), so an object shown
again, or a structure that returns to an earlier state, costs a binding, not a copy.  What a
line changed is written after the *next* Step of its frame, where it is first true.  A line
that cannot run other code (no call, no store into an object: ``SITE_RUNS_CODE`` from the
rewriter) is checked only for the variables it stored; after any other line, a return into
the frame or a resume, every variable is checked (by identity for immutable values, by
re-encoding otherwise), so changes made in place, through aliases or by callees are seen at
the next step.  The backend gives a step the bindings of the call that is current at the
*next* step, so a call's entry drops the caller's bindings (``DropVariables``), which its
next step binds again, and a frame that returns right after its own step binds its variables
again before the ``Return``.

A frame left without a probe (a 3.10 ``yield from`` suspension, a ``throw()`` into a
suspended generator) is repaired by ``_resync``, which keeps calls and returns balanced.

The probes are bound into ``builtins`` under the names in ``protocol.PROBE_NAMES`` so that
instrumented code reaches them by name (cacheable bytecode, see PITFALLS.md).
"""

import builtins
import sys
import threading
import types
import weakref

import orjson

from . import protocol, values
from .native import speedups as _speedups
from .protocol import CACHE_OPCODE, CALL_OPCODES, UNPROBED_DELEGATION, UNSEEN_RESUME_KEEPS_LINE
from .values import class_attribute, plain_instance_dict

_enabled = False
_gated = False
# One item (its window) per root frame on any thread's shadow stack (list.append/remove are
# atomic): while it is empty, the gate of every probe is a check of two globals.
_roots_running = []
# Recording windows ended so far; a shadow stack from an earlier window is emptied on use.
_window = 0
_recorder = None
_code_functions = {}  # Recorder.code_functions
_sites = []
# One byte per function id: 1 if it is usually called back by C code (a dunder other than
# __init__ or __call__), so its calls do not count as the CALLs of a line.
_callbacks = bytearray()
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
# A copy of bytes, its size exactly: orjson's output keeps the buffer it was written into
# (about 4 KB), so a record kept (ShadowFrame.shown, ObjectPlace.data, _shared_places)
# would cost that much.  Measured: 15,000 records of 325 bytes kept, 73 MB of RSS -> 19 MB.
_kept = b"%b".__mod__
_I64 = 1 << 63
_int_type = _str_type = 0
_short_string = 0
_getframe = sys._getframe
_exc_info = sys.exc_info
# Line of the last yield of each function: where a frame resumed unseen (throw()) stands.
_yield_lines = {}
_Module = types.ModuleType
# Values whose encoding cannot change while they stay the same object: a later check of
# such a variable is an identity test.  (Functions are not among them: keeping the last one
# shown would keep its closure alive after the program dropped it.)
_KEEP = frozenset({int, float, str, bytes, bool, complex, type(None), range})
# Stands for "compare by encoding" in ShadowFrame.shown (never a program value).
_MUTABLE = object()
_VARIABLE_CELL = b'{"VariableCell":{"variable_id":%d,"place":%d}}'
_ASSIGN_CELL = b'{"AssignCell":{"place":%d,"new_value":%s}}'
# Call and Return events: the writer knows them by these first bytes (writer._CALL_PREFIX).
_CALL = b'{"Call":{"function_id":%d,"args":[%b]}}'
_ARGUMENT = b'{"variable_id":%d,"value":%b}'
_RETURN = b'{"Return":{"return_value":%b}}'
_DROP_VARIABLE = b'{"DropVariable":%d}'
_DROP_VARIABLES = b'{"DropVariables":[%s]}'
_INT_VALUE = b'{"kind":"Int","i":%d,"type_id":%d}'
_STRING_VALUE = b'{"kind":"String","text":%s,"type_id":%d}'
_new_place = None
_items = 100  # Limits.items of the encoder (bind sets it)
_depth = 3  # Limits.depth of the encoder (bind sets it)
_nodes = values.NODES  # Limits.nodes of the encoder (bind sets it)
# A walk spends the record's node budget as the encoder does, in its ``seen`` dict.
_BUDGET = values.NODES_LEFT
_spend = values.spend_nodes
_scalars = _KEEP.issuperset
_Function = types.FunctionType
# Class -> getter of its instances' __dict__ when that alone is what they show, or None.
_plain_classes = {}
# Class -> how the encoder shows its instances (values.shown_as), or _UNKNOWN.
_shapes = {}
_UNKNOWN = "unknown"
_BuiltinFunction = types.BuiltinFunctionType
_str_only = values.str_only
_dict_keys = dict.keys
_dict_values = dict.values
_dict_items = dict.items
_Method = types.MethodType
# Site flags (protocol.SITE_FORCED, protocol.SITE_RUNS_CODE, protocol.SITE_CALLS_SHIFT).
_FORCED = protocol.SITE_FORCED
_RUNS_CODE = protocol.SITE_RUNS_CODE
_CALLS_SHIFT = protocol.SITE_CALLS_SHIFT
_ANY = -1  # in a thread's log: anything may have changed (never an id())
_LOG_LIMIT = 4096
# Class -> whether a store into its instances may run code no probe sees.
_unseen_setters = {}
# id() of a mutable object -> its ObjectPlace, while a binding shows it.
_object_places = {}
# Record (bytes, of a mutable object) -> the place showing it, for records of at least
# _SHARED_MIN bytes (see _place_of); emptied past _SHARED_LIMIT bytes of records.  Measured
# (pyperformance's hexiom, small): 96 MB with no sharing, 86 MB from 160 bytes, 81 from 80.
_shared_places = {}
_shared_bytes = 0
_SHARED_MIN = 80
_SHARED_LIMIT = 16 << 20
# Shadow frames of suspended generators and coroutines, by id() of their frame object
# (removed when the frame resumes or finishes, and at the end of a recording window).
_suspended = {}
_SUSPENDED_LIMIT = 10_000


class ThreadStack(list):
    """A thread's shadow frames; ``number`` names the thread in the trace."""

    __slots__ = ("number", "roots", "window", "stepper", "log", "epoch")


class ShadowFrame:
    """The recorder's view of one running frame.

    ``line``/``site``: last line event and last line site (for sys.settrace line rules);
    ``variables``: variable id -> value (the module namespace dict for module bodies);
    ``cells``: variable id -> cell object of the cell and free variables (read when
    checked); ``places``: variable id -> place of its binding in this call, ``bindings`` the
    same as encoded ``VariableCell`` events; ``shown``: variable id -> what ``_encoded``
    returned for the immutable value last written to its place, or the ObjectPlace of
    the mutable object it shows;
    ``dirty``: variables stored since the last step; ``cursor``/``epoch``: how far this
    frame has read its thread's log of objects changed in place (by stores into objects,
    in any frame, or found changed) and of _ANY (code that may have changed anything ran);
    ``entered``: calls made from this frame since its last step, ``expected``: how many
    the line makes (-2: unknown, 0: none), so a line whose calls all went to recorded code
    needs only the log (a C function that changes objects and calls back recorded code as
    often as the line has calls goes unseen: callbacks named like dunders, and resumes, do
    not count); ``recheck``: check every variable at the
    next step; ``unbound``: the bindings must be written again at the next step (the caller
    of a call, a resumed generator); ``saved``: locals borrowed by inlined comprehensions;
    ``namespace``: module or class body.
    """

    __slots__ = ("function_id", "line", "site", "variables", "cells", "places", "bindings",
                 "shown", "dirty", "cursor", "epoch", "entered", "expected", "recheck",
                 "unbound", "saved", "namespace", "root")

    def __init__(self, function_id, line, site, variables, cells, namespace, root=False):
        self.function_id = function_id
        self.line = line
        self.site = site
        self.variables = variables
        self.cells = dict(cells)
        self.places = {}
        self.bindings = {}
        self.shown = {}
        self.dirty = []
        self.cursor = 0
        self.epoch = -1
        self.entered = 0
        self.expected = 0
        self.recheck = True
        self.unbound = False
        self.saved = []
        self.namespace = namespace
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
    global _recorder, _sites, _callbacks, _root_sites, _stores, _functions, _buffer, _append
    global _limit
    global _encode, _gated
    global _sent_variable, _lost_return, _enabled, _redacted, _int_type, _str_type, _short_string
    global _new_place, _items, _depth, _nodes, _code_functions
    _recorder = recorder
    _code_functions = recorder.code_functions
    _gated = gated
    _sites = recorder.sites
    _callbacks = recorder.callbacks
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
    _items = recorder.encoder.limits.items
    _depth = recorder.encoder.limits.depth
    _nodes = recorder.encoder.limits.nodes
    _redacted = recorder.redacted
    _sent_variable = recorder.variable_id("<sent>")
    _lost_return = _RETURN % _dumps(recorder.encoder.lost_frame_value())
    _local.stack = recorder.main_stack
    _new_place = recorder.new_place
    _choose_native(recorder.encoder)
    named = dict(zip(protocol.PROBE_NAMES, (step, call, return_, unwind, yield_, resume, store,
                                            delete, mutate, save, restore, catch)))
    builtins.__dict__.update(named)
    builtins.__dict__[_TeardownGuard.NAME] = _TeardownGuard(builtins.__dict__, named)
    _enabled = True


def _choose_native(encoder):
    """Use the C walk and encoder (for ``encoder``, a ValueEncoder whose limits are the
    walk's) when they are built and speak this version's protocol, else the Python ones
    (the same fingerprints and bytes: tests/test_speedups.py)."""
    global _walk, _matches, _encode_json
    _walk = _walk_python
    _matches = _matches_python
    _encode_json = _encode_json_python
    if _speedups is None:
        return
    _speedups.configure(_KEEP, values.shown_as, plain_instance_dict, values.first_items,
                        class_attribute, _walk_raw, _depth, _items, _BUDGET)
    nested = encoder.encode_nested
    _speedups.configure_encoder(
        lambda value, depth, seen: _kept(_dumps(nested(value, depth, seen))),
        lambda value, seen: _kept(_dumps(encoder.encode(value, 0, seen))),
        encoder.struct_type, encoder.raw_type_id, encoder.sequence_type_id, encoder.is_secret,
        lambda: _dumps(encoder.redacted_value()),
        (encoder.int_type, encoder.bool_type, encoder.float_type, encoder.str_type,
         encoder.list_type, encoder.tuple_type, encoder.dict_type, encoder.raw_type),
        encoder.limits.string, encoder.limits.nodes)
    _walk = _speedups.walk
    _matches = _speedups.same
    _encode_json = _speedups.encode


def new_thread_stack(number):
    """An empty shadow stack for thread ``number``."""
    stack = ThreadStack()
    stack.number = number
    stack.roots = 0
    stack.window = _window
    stack.stepper = None  # the shadow frame whose Step is the thread's latest
    stack.log = []  # ids of objects changed in place, or _ANY (see ShadowFrame.cursor)
    stack.epoch = 0  # counts the times the log was emptied
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
        _lose(stack)
    return True


def end_window():
    """A recording window ended (recording is off; call from the thread that ended it):
    every thread's shadow frames are stale; each thread empties its stack when it next
    records (never another thread's)."""
    global _window
    stack = _getattr(_local, "stack", None)
    if stack is not None and stack.window == _window and stack.stepper is not None \
            and stack.stepper.bindings:
        # The window's last step (this thread's) would get no bindings: its calls end now.
        _append((stack.number, tuple(stack.stepper.bindings.values())))
    _window += 1
    del _roots_running[:]
    _suspended.clear()
    _object_places.clear()


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
    Call carrying the exception being handled, if any, and its shadow from its suspension
    (or its variables as they are now, read from the instrumented frame ``depth`` levels
    above this function).
    """
    floor = 1 if stack and stack[0].function_id == 0 else 0
    for index in range(len(stack) - 1, floor - 1, -1):
        if stack[index].function_id == fid:
            while len(stack) > index + 1:
                _lose(stack)
            return stack[index]
    if UNPROBED_DELEGATION and _gated and _outside_roots(stack, fid, _getframe(depth)):
        raise Unrecorded
    if thrown is None:
        thrown = _exc_info()[1]
    args = () if thrown is None else ((_recorder.variable_id("<thrown>"), thrown),)
    line = _yield_lines.get(fid, -1) if UNSEEN_RESUME_KEEPS_LINE else -1
    frame = _resumed(_getframe(depth), fid, line, -1)
    _open(stack, fid, args, frame)
    return frame


def _lose(stack):
    """The innermost shadow frame ended unseen: write its Return (of the lost-frame value),
    its bindings first if its step is the latest (as _leave does)."""
    frame = stack[-1]
    if stack.stepper is frame and frame.bindings:
        _append((stack.number, tuple(frame.bindings.values())))
    stack.stepper = None
    _pop(stack)
    _append((stack.number, _lost_return))
    _release_all(frame)


def _suspend(real, frame):
    """Keep the shadow frame of a suspended generator or coroutine (frame object ``real``)
    for its resume: its places and what they show, not its values (a generator that is
    never resumed must not keep them alive; 3.13 finalises one suspended outside a ``try``
    without running it, so no probe sees its end)."""
    frame.variables = {}
    frame.cells = {}
    if len(_suspended) >= _SUSPENDED_LIMIT:
        del _suspended[next(iter(_suspended))]  # the oldest: resumed later, it starts afresh
    _suspended[id(real)] = frame


def _resumed(real, fid, line, site):
    """The shadow frame of the generator or coroutine frame ``real`` resuming: the one kept
    at its suspension if any, with its variables read again from ``real``."""
    frame = _suspended.pop(id(real), None)
    variables = _locals_of(real, fid)
    if frame is None or frame.function_id != fid:
        return _new_frame(fid, line, site, variables, ())
    frame.variables = variables
    frame.line, frame.site = line, site
    return frame


def _locals_of(frame, fid):
    """Variable ids and values of a suspended-then-resumed frame (rare path, see resume)."""
    if frame is None or frame.f_code.co_filename != _recorder.function_path(fid):
        return {}
    variable_id = _recorder.variable_id
    # Implicit names (a generator expression's ".0") are not shown.
    return {variable_id(name): value for name, value in frame.f_locals.items()
            if name[:1] != "."}


def _encoded(vid, value):
    """(value record as JSON bytes, the value if it is immutable else ``_MUTABLE``, the ids
    of the containers and objects the record shows (a dict) or None) for ``value``: what
    ShadowFrame.shown keeps of an immutable value, and what an ObjectPlace starts from."""
    if vid in _redacted:
        return _kept(_dumps(_recorder.redacted_value(vid))), _MUTABLE, None
    cls = type(value)
    # Fast paths for the commonest values, byte-for-byte what the encoder would produce.
    if cls is int and -_I64 <= value < _I64:
        return _INT_VALUE % (value, _int_type), value, None
    if cls is str and len(value) <= _short_string:
        try:
            return _STRING_VALUE % (_dumps(value), _str_type), value, None
        except TypeError:  # lone surrogates: the encoder escapes them
            pass
    if cls in _KEEP:
        return _encode_json(value, {}), value, None
    seen = {}
    return _encode_json(value, seen), _MUTABLE, seen


def _encode_json_python(value, seen):
    """The JSON bytes of the value record of ``value``, ``seen`` filled as by
    ValueEncoder.encode (the reference of _ctinstrument_speedups.encode)."""
    return _kept(_dumps(_encode(value, 0, seen)))


_encode_json = _encode_json_python  # or its C version (see _choose_native)


def _fingerprint(value):
    """What the encoding of ``value`` depends on, cheaper to take than the encoding: (a
    list of ints and names, the scalars it names), or None when ``value`` holds something
    it cannot describe.  Equal lists mean an equal encoding showing the same objects (so
    ObjectPlace.visited stays true): scalars count by identity (they are held, so their
    ids cannot be reused), names made afresh on each read (of classes, builtins) by value,
    containers and objects by identity, type, length, keys and items, within the
    encoder's limits (its node budget too, spent in the same order, so the walk stops
    where the record does); no user code runs."""
    ids = []
    held = []
    try:
        if _walk(value, 0, ids, held, {_BUDGET: _nodes}):
            return ids, held
    except Exception:  # RecursionError, or a container changed size while walked
        pass
    return None


def _walk_python(value, depth, ids, held, seen):
    """The walk of _fingerprint (the reference of _ctinstrument_speedups.walk, which must do
    the same appends): appends to ``ids`` and ``held``, fills ``seen``; returns whether
    ``value`` could be described."""
    cls = type(value)
    if cls in _KEEP:
        ids.append(id(value))
        held.append(value)
        return True
    shape = _shapes.get(cls)
    if shape is None:
        if len(_shapes) > 10_000:  # classes made at run time must not pile up here
            _shapes.clear()
        shape = _shapes[cls] = values.shown_as(cls) or _UNKNOWN
    # Every object shown counts by identity too: equal contents in another object would
    # leave the ids of ObjectPlace.visited stale, and stores into the new one unseen.
    key = id(value)
    ids.append(key)
    if shape == "raw":  # a Raw record at any depth, never a Reference
        return _walk_raw(value, cls, ids, held)
    if shape is _UNKNOWN:
        return False
    if depth >= _depth or seen[_BUDGET] <= 0:
        # Shown as a Raw naming the type (and the length of a builtin container).
        ids.append(id(cls))
        if cls is list or cls is tuple or cls is dict or cls is set or cls is frozenset:
            ids.append(len(value))
        return True
    index = seen.get(key)
    if index is not None:  # shown as a Reference
        ids.append(-1)
        ids.append(index)
        return True
    seen[key] = len(seen)
    ids.append(id(cls))
    if shape == "items":  # the base type's C methods: a subclass cannot intercept them
        if cls is list or cls is tuple:
            items, total = value, len(value)
        else:
            items, total = values.first_items(value, cls, _items)
        ids.append(total)
        count = total if total <= _items else _items
        if depth:
            count = _spend(seen, count)
        if count < len(items):
            items = items[:count]
        if _scalars(map(type, items)):  # the common case, in C
            ids.extend(map(id, items))
            held.extend(items)
            return True
        for item in items:
            if not _walk_python(item, depth + 1, ids, held, seen):
                return False
        return True
    if shape == "named tuple":
        names = class_attribute(cls, "_fields")
        total = tuple.__len__(value)
        if type(names) is not tuple or len(names) != total:
            return False
        ids.append(id(names))
        held.append(names)
        if depth:
            _spend(seen, total)  # a Struct shows all its fields
        for item in tuple.__iter__(value):
            if not _walk_python(item, depth + 1, ids, held, seen):
                return False
        return True
    if shape == "mapping":  # read through dict's own views: no user __hash__ or __iter__
        total = dict.__len__(value)
        count = total if total <= _items else _items
        if depth:
            count = _spend(seen, count)
    elif shape == "object":  # all its fields (up to the item limit), whatever the budget
        getter = _plain(cls)
        if getter is None:
            return False
        value = getter(value, cls)
        if type(value) is not dict or not _str_only(map(type, value)):
            return False  # the encoder leaves out a field not named by a str
        total = len(value)
        count = total if total <= _items else _items
        if depth:
            _spend(seen, count)
    else:  # "opaque": shown as <T object>
        return True
    ids.append(total)
    keys = _dict_keys(value)
    if count == total and _scalars(map(type, keys)) \
            and _scalars(map(type, _dict_values(value))):  # the common case, in C
        ids.extend(map(id, keys))
        ids.extend(map(id, _dict_values(value)))
        held.extend(keys)
        held.extend(_dict_values(value))
        return True
    for name, item in _dict_items(value):
        if not count:
            break
        count -= 1
        if type(name) not in _KEEP:
            return False
        ids.append(id(name))
        held.append(name)
        if not _walk_python(item, depth + 1, ids, held, seen):
            return False
    return True


_walk = _walk_python  # or its C version (see _choose_native)


def _walk_raw(value, cls, ids, held):
    """Fingerprint of a value shown as a Raw record (see ValueEncoder._describe): what its
    text is made of (objects by id, held so that the ids stay unique; names by value)."""
    if cls is _Function:  # its __qualname__, a str the function holds
        name = value.__qualname__
        ids.append(id(name))
        held.append(name)
    elif cls is _BuiltinFunction:  # its name, made afresh from its __self__'s type
        ids.append(value.__qualname__)
    elif cls is _Method:
        function = value.__func__
        ids.append(id(function))
        held.append(function)
        if type(function) is _Function:
            name = function.__qualname__
            ids.append(id(name))
            held.append(name)
    elif cls is _Module:
        ids.append(id(value))
        ids.append(values.plain_text(value.__dict__.get("__name__")))
    elif issubclass(cls, BaseException):
        args = values.exception_args(value)
        ids.append(id(cls))
        ids.append(id(args))
        held.append(args)
    else:  # a class: its name, read afresh (a builtin type's is made on each read)
        ids.append(values.type_name(value))
    return True


def _plain(cls):
    getter = _plain_classes.get(cls, _MUTABLE)
    if getter is _MUTABLE:
        if len(_plain_classes) > 10_000:  # classes made at run time must not pile up here
            _plain_classes.clear()
        getter = _plain_classes[cls] = plain_instance_dict(cls)
    return getter


def _same(value, fingerprint):
    """Whether ``value`` still has ``fingerprint`` (what _fingerprint returned)."""
    try:
        return _matches(value, 0, fingerprint[0], {_BUDGET: _nodes})
    except Exception:  # as in _fingerprint
        return False


def _matches_python(value, depth, ids, seen):
    """Whether the walk of ``value`` appends exactly ``ids`` (the reference of
    _ctinstrument_speedups.same, which compares as it walks and stops at a difference)."""
    now = []
    return _walk_python(value, depth, now, [], seen) and now == ids


_matches = _matches_python  # or its C version (see _choose_native)


def _containing(shown, ids):
    """Variables whose shown value contains (or is) an object of ``ids``."""
    return [vid for vid, entry in shown.items()
            if type(entry) is ObjectPlace and not entry.visited.keys().isdisjoint(ids)]


def _changes(frame, parts, stack):
    """Append to ``parts`` (after a Step of ``frame``) the bindings and changes that Step
    must carry: bindings again if the call's were dropped, then a VariableCell (first
    binding), AssignCell (new encoding) or DropVariable (unbound) per variable to check:
    every variable after code that may have changed anything, else those stored and those
    that show an object of the thread's log since the frame last read it (an object
    changed in place, a cell, a module namespace)."""
    if frame.unbound:
        frame.unbound = False
        parts.extend(frame.bindings.values())
    log = stack.log
    touched = None
    if frame.epoch != stack.epoch:
        frame.recheck = True
        frame.epoch = stack.epoch
    elif frame.cursor < len(log):
        touched = log[frame.cursor:]
        if _ANY in touched:
            frame.recheck = True
        if frame.cells:
            # Stored by another frame: checked as stored here (the object shown may be gone
            # and its id reused, so the ObjectPlace of that id proves nothing).
            frame.dirty.extend([vid for vid, cell in frame.cells.items() if id(cell) in touched])
    if frame.recheck:
        frame.recheck = False
        vids = list(frame.variables)
        vids.extend(frame.cells)
        vids.extend(_gone(frame))
        changed = _reconcile(frame, parts, vids, stack)
    else:
        vids = frame.dirty
        if touched:
            vids = vids + _containing(frame.shown, touched)
            if frame.namespace and id(frame.variables) in touched:
                # A function stored or deleted a global.
                vids.extend(frame.variables)
                vids.extend(_gone(frame))
        changed = _reconcile(frame, parts, vids, stack) if vids else None
        if changed:  # objects changed in place: the other names that show them
            others = [vid for vid in _containing(frame.shown, [e.ident for e in changed])
                      if vid not in vids]
            if others:
                _reconcile(frame, parts, others, stack)
    if changed:
        log.extend([entry.ident for entry in changed])  # for the callers' frames
        for entry in changed:
            entry.at = len(log)
    frame.dirty.clear()
    if len(log) > _LOG_LIMIT:  # the callers check every variable instead
        del log[:]
        stack.epoch += 1
        frame.epoch = stack.epoch
    frame.cursor = len(log)


def _gone(frame):
    """Variables ``frame`` shows that are bound no more and had no delete probe of its own
    (a function deleted a global, a namespace changed behind it)."""
    return [vid for vid in frame.places if vid not in frame.variables and vid not in frame.cells]


class ObjectPlace:
    """What the recorder knows of one mutable object, shared by every variable (of any
    frame) that holds it, so a change made through one name or frame is found once.

    ``ident``: id() of the object (alive while a shadow frame holds it, so the id cannot be
    reused while a binding shows this entry); ``place``: the place that shows its record
    now, which bindings showing it must point at (see _place_of), ``own``/``owned``: its own
    place for short records, or None, and the record last written there;
    ``data``/``visited``: its last written encoding and the ids of what that shows;
    ``fingerprint``: taken once the encoding was found unchanged (see _fingerprint);
    ``bound``: bindings showing it (the entry is forgotten at 0, which keeps
    ``_object_places`` as small as the live bindings); ``log``/``epoch``/``at``: the thread
    log and its position when ``data`` was last found true (see _still_true)."""

    __slots__ = ("ident", "place", "own", "owned", "data", "visited", "fingerprint", "bound",
                 "log", "epoch", "at")

    def __init__(self, ident, data, visited):
        self.ident = ident
        self.place = None
        self.own = None
        self.owned = None
        self.data = data
        self.visited = visited
        self.fingerprint = None
        self.bound = 0
        self.log = None


def _place_of(entry, data):
    """Point ``entry`` at a place that shows ``data`` (its new record); returns the
    AssignCell to write (bytes), or None when that place already shows it.

    A record of at least _SHARED_MIN bytes gets the place of its content (_shared_places):
    written once and never assigned again, so whatever binding shows that record later
    (another object, frame or time) points at it with a VariableCell instead of a copy.
    A shorter record is written to the object's own place (unless it holds it already)."""
    global _shared_bytes
    if len(data) < _SHARED_MIN:
        place = entry.own
        if place is None:
            place = entry.own = _new_place()
        entry.place = place
        if entry.owned == data:
            return None
        entry.owned = data
        return _ASSIGN_CELL % (place, data)
    place = _shared_places.get(data)
    if place is not None:
        entry.place = place
        return None
    if _shared_bytes > _SHARED_LIMIT:
        _shared_places.clear()
        _shared_bytes = 0
    place = entry.place = _shared_places[data] = _new_place()
    _shared_bytes += len(data)
    return _ASSIGN_CELL % (place, data)


def _still_true(entry, stack):
    """Whether ``entry.data`` is known to be still true on ``stack``'s thread: found true
    since the log was last emptied, and nothing logged since then (no code no probe sees,
    no store into what it shows).  Not for a variable stored on the current line (``xs +=
    ys`` changes xs with no log entry until the next step)."""
    if entry.log is not stack.log or entry.epoch != stack.epoch:
        return False
    if entry.at == len(stack.log):
        return True
    tail = stack.log[entry.at:]
    return _ANY not in tail and entry.visited.keys().isdisjoint(tail)


def _unbind(known):
    """A binding no longer shows ``known`` (what ShadowFrame.shown had for it)."""
    if type(known) is ObjectPlace:
        known.bound -= 1
        if known.bound <= 0 and _object_places.get(known.ident) is known:
            del _object_places[known.ident]


def _release(shown, vid):
    """Forget what ``shown`` had for ``vid``."""
    _unbind(shown.pop(vid, None))


def _release_all(frame):
    """A frame ended: its bindings no longer show their object places."""
    for known in frame.shown.values():
        _unbind(known)
    frame.shown.clear()


def _reconcile(frame, parts, vids, stack):
    """The events for ``vids`` (see _changes); returns the ObjectPlaces of the objects found
    changed in place.  Immutable values get a place per variable (compared by identity,
    then by encoding); mutable ones the place their object's ObjectPlace points at (not
    compared while its value is still true, see _still_true), bound again whenever that
    place moved (a change found here or in another frame)."""
    dirty = frame.dirty
    log = stack.log
    variables = frame.variables
    cells = frame.cells
    shown = frame.shown
    places = frame.places
    namespace = frame.namespace
    changed_in_place = None
    for vid in vids:
        cell = cells.get(vid)
        if cell is None:
            value = variables.get(vid, _MUTABLE)
        else:
            try:
                value = cell.cell_contents
            except ValueError:  # unbound
                value = _MUTABLE
        cls = type(value)
        if value is _MUTABLE or namespace and cls is _Module:
            place = places.pop(vid, None)
            if place is not None:
                del frame.bindings[vid]
                _release(shown, vid)
                parts.append(_DROP_VARIABLE % vid)
            continue
        known = shown.get(vid)
        if cls in _KEEP or vid in _redacted:
            if known is not None and type(known) is tuple and known[1] is value:
                continue
            entry = _encoded(vid, value)
            if type(known) is tuple and known[0] == entry[0]:
                shown[vid] = entry
                continue
            if type(known) is not tuple:  # from an object's place to one of its own
                _release(shown, vid)
                place = None
            else:
                place = places.get(vid)
            shown[vid] = entry
            data = entry[0]
            if place is None:
                place = places[vid] = _new_place()
                binding = frame.bindings[vid] = _VARIABLE_CELL % (vid, place)
                parts.append(binding)
            parts.append(_ASSIGN_CELL % (place, data))
            continue
        ident = id(value)
        entry = known if type(known) is ObjectPlace and known.ident == ident \
            else _object_places.get(ident)
        assign = None
        if entry is None:
            data, _keep, visited = _encoded(vid, value)
            entry = _object_places[ident] = ObjectPlace(ident, data, visited)
            assign = _place_of(entry, data)
        elif vid not in dirty and _still_true(entry, stack):
            pass
        elif entry.fingerprint is None or not _same(value, entry.fingerprint):
            data, _keep, visited = _encoded(vid, value)
            entry.visited = visited  # the same encoding may show other objects now
            if data == entry.data:
                entry.fingerprint = _fingerprint(value)
            else:
                entry.data = data
                entry.fingerprint = None
                moved = _place_of(entry, data)
                if moved is not None:
                    parts.append(moved)
                if changed_in_place is None:
                    changed_in_place = []
                changed_in_place.append(entry)
        entry.log = log
        entry.epoch = stack.epoch
        entry.at = len(log)
        place = entry.place
        if known is not entry:
            _release(shown, vid)
            shown[vid] = entry
            entry.bound += 1
        elif places.get(vid) == place:
            continue
        # A new binding, or its object's record moved to another place (changed here, or
        # in another frame, which logged it for this one).
        places[vid] = place
        binding = frame.bindings[vid] = _VARIABLE_CELL % (vid, place)
        parts.append(binding)
        if assign is not None:
            parts.append(assign)
    return changed_in_place


def step(site):
    # On 3.10 a root's own lines always count: its frame may resume unseen (YIELD_FROM).
    if not _enabled or _gated and not (_roots_running and _roots_here()) and not (
            UNPROBED_DELEGATION and _root_sites[site]):
        return
    try:
        window = _window
        fid, line, event, flags = _sites[site]
        try:  # _stack, inlined
            stack = _local.stack
        except AttributeError:
            stack = _thread_stack()
        if stack.window != window:
            _forget_frames(stack)
        frame = stack[-1] if stack else None
        if frame is None or frame.function_id != fid:
            frame = _resync(stack, fid, 2)
        if line != frame.line or site <= frame.site or flags & _FORCED:
            frame.line = line
            expected = frame.expected
            if expected and (expected < 0 or frame.entered != expected):
                # The line ran code no probe sees: it may have changed anything.
                frame.recheck = True
                stack.log.append(_ANY)
            frame.entered = 0
            frame.expected = flags >> _CALLS_SHIFT or -(flags & _RUNS_CODE)
            if frame.recheck or frame.dirty or frame.unbound \
                    or frame.cursor != len(stack.log) or frame.epoch != stack.epoch:
                parts = [event]
                _changes(frame, parts, stack)
                record = tuple(parts)
            else:
                record = event
            if window != _window:
                return  # the window ended while this probe ran on this thread
            stack.stepper = frame
            _append((stack.number, record))
            if len(_buffer) > _limit:
                _recorder.flush()
        frame.site = site
    except RecursionError:
        pass  # at the program's recursion limit: no room for the probe's work, not even a call
    except Exception:
        _recorder.probe_failed()


_CONTAINERS = frozenset({list, tuple, dict, set, frozenset})


def _summary(value):
    """The value record of a mutable ``value`` in a Call or Return (whose values the
    variables holding them show in full): a builtin container one level deep, anything
    else as the ``Raw`` its type names (what ``repr`` conventionally shows of an object)."""
    return _encode(value, _depth - 1 if type(value) in _CONTAINERS else _depth)


def _open(stack, fid, args, frame, called_from=None):
    """Write the entry Step and Call of ``frame`` (function ``fid``, ``args`` pairs of
    variable id and value) and push it; the caller's bindings are dropped until its next
    step.  Everything that can fail (even RecursionError near the limit) happens before the
    record is appended and the frame pushed, so the two stay together; nothing is appended
    if the recording window ended while this probe ran (a check then a C call: no thread
    switch).  ``called_from``: the frame object that called this one (None for a resume):
    the call counts as one of the caller's line (see ShadowFrame.expected) if that is the
    caller's frame making a call instruction (not a property read or a store running a
    setter, nor unrecorded code in between) and the callee is not a dunder callback nor a
    class body (``__build_class__`` runs the metaclass and ``__init_subclass__`` too); if
    that is unrecorded Python code (``functools.cached_property``), the caller's line ran
    code no probe sees."""
    window = _window
    encoded = []
    for vid, value in args:
        if type(value) in _KEEP or vid in _redacted:
            data = _encoded(vid, value)[0]
        else:  # shown in full from the first step on (its binding): a summary here
            data = _dumps(_summary(value))
        encoded.append(_ARGUMENT % (vid, data))
    call = _CALL % (fid, b",".join(encoded))
    caller = stack[-1] if stack else None
    if caller is not None:
        if called_from is not None:
            code = called_from.f_code
            known = _code_functions.get(id(code))
            if known is None or known[0] is not code:
                caller.expected = -1
            elif known[1] == caller.function_id and not _callbacks[fid] \
                    and _functions[fid][3] != "class":
                instructions = code.co_code
                at = called_from.f_lasti
                while at > 0 and instructions[at] == CACHE_OPCODE:
                    at -= 2
                if instructions[at] in CALL_OPCODES:
                    caller.entered += 1
        _before_entry(caller, stack.log)
    if caller is not None and caller.bindings and not caller.unbound:
        drop = _DROP_VARIABLES % b",".join([b"%d" % vid for vid in caller.bindings])
        record = (_functions[fid][0], drop, call)
    else:
        caller = None
        record = (_functions[fid][0], call)
    if window == _window:
        if caller is not None:
            caller.unbound = True
        stack.stepper = None  # the entry step belongs to the callee
        frame.recheck = True
        frame.unbound = bool(frame.bindings)
        _append((stack.number, record))
        _push(stack, frame)


def _before_entry(caller, log):
    """Log, for the callee's first step, what ``caller``'s line may have changed so far
    without a log entry: anything, unless every call of the line so far went to recorded
    code (see ShadowFrame.expected); objects changed in place by its stores."""
    expected = caller.expected
    if expected < 0 or expected and caller.entered != expected:
        log.append(_ANY)
    _log_stored(caller, log)


def _log_stored(frame, log):
    """Log the objects that ``frame``'s variables stored since its last step hold: a store
    may have changed one in place (``xs += ys``), which other frames may show."""
    for vid in frame.dirty:
        cell = frame.cells.get(vid)
        if cell is None:
            value = frame.variables.get(vid)
        else:
            try:
                value = cell.cell_contents
            except ValueError:  # unbound
                continue
        if type(value) not in _KEEP:
            log.append(id(value))


def _enter(fid, arg_ids, args, cells, line, site, variables, called_from=None):
    frame = _new_frame(fid, line, site, variables, cells)
    _open(_stack(), fid, [(vid, arg) for vid, arg in zip(arg_ids, args) if vid >= 0], frame,
          called_from)


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
        # A class body's locals never include free variables (nor its __class__ cell).
        shown_cells = tuple(zip(cell_ids, cells)) if cells and function[3] != "class" else ()
        _enter(fid, arg_ids, args, shown_cells, -1, -1, variables, _getframe(1).f_back)
    except RecursionError:
        pass  # at the program's recursion limit: no room for the probe's work, not even a call
    except Exception:
        _recorder.probe_failed()


def resume(sent, fid, line, site):
    """A generator or coroutine resumed: a Call carrying the sent value.

    Its shadow frame is the one kept at its suspension; a frame suspended unseen (or before
    recording started) has its locals read from the resumed frame (on 3.12 and older this
    refreshes the dict ``locals()`` returned in that frame, PITFALLS.md).
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
        frame = _resumed(_getframe(1), fid, line, site)
        _open(_stack(), fid, ((_sent_variable, sent),), frame)
        # The rest of the yielding line runs now: calls there are not counted.
        frame.expected = -(_sites[site][3] & _RUNS_CODE) if site >= 0 else 0
    except RecursionError:
        pass  # at the program's recursion limit: no room for the probe's work, not even a call
    except Exception:
        _recorder.probe_failed()


def _leave(value, fid, suspends=False):
    """Write the Return of the innermost frame (``fid``) with ``value``; returns its
    shadow frame (``suspends``: a yield, the frame goes on later)."""
    window = _window  # as in _open
    record = _RETURN % _dumps(_encode(value) if type(value) in _KEEP else _summary(value))
    stack = _stack()
    if not stack or stack[-1].function_id != fid:
        _resync(stack, fid, 3)
    frame = stack[-1]
    if window != _window:
        return frame
    expected = frame.expected
    if expected and (expected < 0 or frame.entered != expected):
        stack.log.append(_ANY)  # its last line ran code no probe sees (see step)
    frame.expected = 0
    _log_stored(frame, stack.log)  # stored on its last line
    frame.dirty.clear()
    if stack.stepper is frame and frame.bindings:
        # This frame's step is the latest: the backend would give it the caller's bindings.
        _append((stack.number, tuple(frame.bindings.values())))
    stack.stepper = None
    _append((stack.number, record))
    _pop(stack)
    if not suspends:
        _release_all(frame)
    if len(_buffer) > _limit:
        _recorder.flush()
    return frame


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
        _suspend(_getframe(1), _leave(value, fid, True))
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


def store(value, site):
    if not _enabled or _gated and not (_roots_running and _roots_here()):
        return
    try:
        fid, vid, namespace = _stores[site]
        try:  # _current_frame, inlined: this is the commonest probe
            stack = _local.stack
            frame = stack[-1]
        except (AttributeError, IndexError):
            frame = None
        if frame is None or frame.function_id != fid or stack.window != _window:
            _number, frame = _current_frame(fid)
            stack = _local.stack
        if namespace is not None:
            namespace[vid] = value
            if frame.variables is not namespace:
                # A global of a function: the module's frame shows it (and, if the value
                # changed in place, as ``xs += ys`` does, whoever holds it).
                stack.log.append(id(namespace))
                if type(value) not in _KEEP:
                    stack.log.append(id(value))
                return
        elif vid in frame.cells:
            stack.log.append(id(frame.cells[vid]))  # other frames may show the cell too
        else:
            frame.variables[vid] = value
        frame.dirty.append(vid)
    except RecursionError:
        pass  # at the program's recursion limit: no room for the probe's work, not even a call
    except Exception:
        _recorder.probe_failed()


def delete(site):
    if not _enabled or _gated and not (_roots_running and _roots_here()):
        return
    try:
        fid, vid, namespace = _stores[site]
        _number, frame = _current_frame(fid)
        (frame.variables if namespace is None else namespace).pop(vid, None)
        if namespace is None or frame.variables is namespace:
            cell = frame.cells.get(vid)
            if cell is not None:
                _local.stack.log.append(id(cell))  # other frames may show the cell too
            frame.dirty.append(vid)
        else:
            _local.stack.log.append(id(namespace))
    except RecursionError:
        pass  # at the program's recursion limit: no room for the probe's work, not even a call
    except Exception:
        _recorder.probe_failed()


def mutate(target, fid):
    """``target`` is about to change in place (attribute, item or slice store or delete):
    the variables that show it are checked at the next step."""
    if not _enabled or _gated and not (_roots_running and _roots_here()):
        return
    try:
        cls = type(target)
        unseen = _unseen_setters.get(cls)
        if unseen is None:
            if len(_unseen_setters) > 10_000:  # classes made at run time must not pile up
                _unseen_setters.clear()
            unseen = _unseen_setters[cls] = _has_unseen_setter(cls)
        # A store through code no probe sees (ChainMap.__setitem__) may change anything.
        _stack().log.append(_ANY if unseen else id(target))
    except RecursionError:
        pass  # at the program's recursion limit: no room for the probe's work, not even a call
    except Exception:
        _recorder.probe_failed()


_STORES_ELSEWHERE = frozenset({memoryview, weakref.ProxyType, weakref.CallableProxyType})


def _has_unseen_setter(cls):
    """Whether storing into or deleting from an instance of ``cls`` may run Python code
    that is not recorded (a ``__setattr__``/``__delattr__``/``__setitem__``/``__delitem__``,
    a property setter or deleter or a descriptor's ``__set__``/``__delete__`` defined in a
    module that is not instrumented) or changes another object, which the probe cannot name
    (a memoryview's exporter, a weakref proxy's referent)."""
    if cls in _STORES_ELSEWHERE:
        return True
    codes = _recorder.code_functions
    def unseen(function):
        if type(function) is not _Function:
            return False
        known = codes.get(id(function.__code__))
        return known is None or known[0] is not function.__code__
    for name in ("__setattr__", "__delattr__", "__setitem__", "__delitem__"):
        if unseen(class_attribute(cls, name)):
            return True
    for klass in type.__dict__["__mro__"].__get__(cls):
        for attribute in type.__dict__["__dict__"].__get__(klass).values():
            if type(attribute) is property and (unseen(attribute.fset)
                                               or unseen(attribute.fdel)):
                return True
            kind = type(attribute)  # a data descriptor: PropertyMock, an ORM's field
            if unseen(class_attribute(kind, "__set__")) \
                    or unseen(class_attribute(kind, "__delete__")):
                return True
    return False


def catch(exception, fid):
    """A handler of the frame is entered with ``exception`` (raised in this frame or
    propagated into it): an ``Event`` (TraceLogEvent) at the step that raised it."""
    if not _enabled or _gated and not (_roots_running and _roots_here()):
        return
    try:
        number, frame = _current_frame(fid, exception)
        frame.recheck = True  # code that raised may have changed things before it did
        _local.stack.log.append(_ANY)
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
        frame.dirty.append(vid)
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
        frame.dirty.append(vid)
    except RecursionError:
        pass  # at the program's recursion limit: no room for the probe's work, not even a call
    except Exception:
        _recorder.probe_failed()


_MISSING = object()
