"""Per-version instruction sequences for probes: the only place that knows CPython's bytecode.

Each function returns a list of ``bytecode.Instr`` that calls one probe and leaves the value
stack exactly as it found it.  The rewriter composes them; it never builds a call sequence
itself.  Supported: CPython 3.10 to 3.13; anything else raises ``UnsupportedPython``
(see PITFALLS.md §Inserting instructions for why guessing is worse than refusing).
"""

import dis
import opcode

from bytecode import CellVar, FreeVar, Instr, Label

from .errors import InstrumentationError
from .protocol import (  # noqa: F401 (named here too, see protocol.py)
    CALLS, PROBE_CALL_DEPTH, SUPPORTED, UNPROBED_DELEGATION, UNSEEN_RESUME_KEEPS_LINE, VERSION,
    check_supported)

_EXTENDED_ARG = dis.opmap["EXTENDED_ARG"]
_NOP = dis.opmap["NOP"]

# Behaviours named once, tested by name elsewhere.
HAS_PRECALL = VERSION == (3, 11)
HAS_EXCEPTION_TABLE = VERSION >= (3, 11)
HAS_RESUME = VERSION >= (3, 11)
# 3.11's gen.throw() into a yield-from/await finds the end of the send loop by reading the
# oparg of the instruction just before YIELD_VALUE, assuming it is the SEND.
THROW_READS_ARG_BEFORE_YIELD = VERSION == (3, 11)
# 3.12+ inline comprehensions (PEP 709): LOAD_FAST_AND_CLEAR saves a local, STORE_FAST
# restores it (possibly to "unbound") after the loop.
HAS_INLINED_COMPREHENSIONS = VERSION >= (3, 12)
# bytecode (0.17) drops the whole 3.10 line table of a code object whose first instruction has
# no line and whose next one is on co_firstlineno (comprehensions, generator expressions start
# with GEN_START), so tracebacks there said "line -1": the prologue takes the body's line.
PROLOGUE_TAKES_BODY_LINE = VERSION == (3, 10)
# ... and then loses it again (unlined_prologue): 3.10 jumps an assignment to f_lineno to the
# first instruction of the line, which must not be the prologue (a GEN_START run again pops
# an empty stack and crashes the interpreter; a call probe and SETUP_FINALLY run again
# record a second call and stack a second block).
PROLOGUE_WITHOUT_LINE = VERSION == (3, 10)
# On 3.10 a generator's frame restarts its line tracking on every resume.
RESUME_RESETS_LINE = VERSION == (3, 10)
# 3.10, 3.12+: a line event fires when the previously executed instruction had another
# line, so one without a line number makes the next one a line event even on the same line.
NO_LINE_RESETS_LINE = VERSION == (3, 10) or VERSION >= (3, 12)
# Where the exception is at the entry of a handler (3.10 pushed tb, value, type).
HANDLER_EXCEPTION_DEPTH = 1 if VERSION >= (3, 11) else 2


def is_async_generator_wrap(instr):
    """Whether ``instr`` wraps an async generator's yielded value (3.11: ASYNC_GEN_WRAP,
    3.12+: CALL_INTRINSIC_1 INTRINSIC_ASYNC_GEN_WRAP; 3.10 wraps inside YIELD_VALUE)."""
    if instr is None:
        return False
    if instr.name == "ASYNC_GEN_WRAP":
        return True
    return instr.name == "CALL_INTRINSIC_1" and getattr(instr.arg, "name", "") == \
        "INTRINSIC_ASYNC_GEN_WRAP"


def is_handler_entry(opcodes):
    """Whether a handler starting with ``opcodes`` (its first few opcode names) is an
    except/finally/with handler, not a compiler cleanup (the ``del e`` of ``except ... as e``,
    a send loop's CLEANUP_THROW, an ``async for``'s end)."""
    if VERSION >= (3, 11):
        return opcodes[0] == "PUSH_EXC_INFO"
    if opcodes[0] == "END_ASYNC_FOR":
        return False
    return opcodes[:3] not in (["LOAD_CONST", "STORE_FAST", "DELETE_FAST"],
                               ["LOAD_CONST", "STORE_NAME", "DELETE_NAME"],
                               ["LOAD_CONST", "STORE_DEREF", "DELETE_DEREF"],
                               ["LOAD_CONST", "STORE_GLOBAL", "DELETE_GLOBAL"])
# 3.10 frames have a block stack of at most 20 entries; the catch-all handler takes one.
MAX_BLOCKS = 20 if VERSION == (3, 10) else None
BLOCK_SETUPS = frozenset({"SETUP_FINALLY", "SETUP_WITH", "SETUP_ASYNC_WITH"})

# Opcodes that start a code object and must stay first (PITFALLS.md §Generator prologues).
PROLOGUE_OPCODES = frozenset({"GEN_START", "RETURN_GENERATOR", "POP_TOP", "MAKE_CELL",
                              "COPY_FREE_VARS", "RESUME"})
# A probe must never be inserted right before these (they are fused to what precedes them,
# or the interpreter jumps past them; 3.12 reports a line event at the first instruction of
# every exception handler except END_ASYNC_FOR, the exit of an ``async for``).
NO_PROBE_BEFORE = frozenset({"END_FOR", "END_SEND", "CACHE", "YIELD_FROM"}
                            | ({"END_ASYNC_FOR"} if VERSION == (3, 12) else set()))
# ... nor right after these (they are fused to what follows them).
NO_PROBE_AFTER = frozenset({"KW_NAMES", "PRECALL", "EXTENDED_ARG", "YIELD_VALUE", "SEND",
                            "RETURN_GENERATOR"}
                           # 3.13's exhausted FOR_ITER jumps past END_FOR *and* the POP_TOP.
                           | ({"END_FOR"} if VERSION >= (3, 13) else set()))


# Instructions that may run other code, which may change objects in place (calls,
# imports, context managers, awaiting, container updates that call user code): after a line
# that has one, every variable of the frame is checked for a change.  Stores into objects
# have a probe of their own; attribute reads, operators and iteration can run user code too
# (properties, dunders, iterators) but are left out: checking after each of them would be
# checking after every line (an instrumented callee's return is noticed anyway).
RUNS_CODE = frozenset({
    "CALL", "CALL_FUNCTION", "CALL_FUNCTION_KW", "CALL_FUNCTION_EX", "CALL_METHOD",
    "CALL_KW", "CALL_INTRINSIC_1", "CALL_INTRINSIC_2",
    "IMPORT_NAME", "IMPORT_STAR", "SETUP_WITH", "BEFORE_WITH", "SETUP_ASYNC_WITH",
    "BEFORE_ASYNC_WITH", "WITH_EXCEPT_START", "GET_AWAITABLE", "GET_ANEXT", "YIELD_FROM",
    "SEND", "LIST_EXTEND", "SET_UPDATE", "DICT_UPDATE", "DICT_MERGE"})


def runs_code(instr):
    """Whether ``instr`` may run other code that changes objects in place (RUNS_CODE).
    In-place operators need no check of their own: their result is stored, and a store
    into a name or an object is probed."""
    return instr.name in RUNS_CODE


# Builtins that change no object, by their number of positional arguments (``type`` of
# three makes a class): at most they call a dunder of their argument's class (``__len__``,
# ``__instancecheck__``), which is left out as operators and attribute reads are
# (RUNS_CODE).  A global of that name (the module's own ``len``) is called instead only if
# the module or the program defines one.
PURE_BUILTINS = {"len": 1, "isinstance": 2, "issubclass": 2, "type": 1, "id": 1,
                 "callable": 1, "chr": 1, "ord": 1}
# What the LOAD_GLOBAL of a called global pushes: the callable, and from 3.11 on a NULL.
_CALLEE_PUSHES = 2 if VERSION >= (3, 11) else 1


def calls_pure_builtin(items, index):
    """Whether the call instruction ``items[index]`` (of a list of Instr, Label and pseudo
    instructions) calls a global of PURE_BUILTINS with positional arguments only: the
    LOAD_GLOBAL that pushed the callable is found by walking back over the stack effects
    of the instructions in between, which must be straight-line code (no label, no jump)."""
    call = items[index]
    if call.name not in ("CALL", "CALL_FUNCTION") or not isinstance(call.arg, int):
        return False
    at = index - 1
    if HAS_PRECALL and isinstance(items[at], Instr) and items[at].name == "PRECALL":
        at -= 1  # it takes no part in the stack count
    depth = call.arg  # of the callable's slot (3.13: the NULL above it), from the top
    while at >= 0 and index - at < 64:  # arguments longer than that: not looked into
        item = items[at]
        at -= 1
        if isinstance(item, Label):
            return False
        if not isinstance(item, Instr):
            continue  # TryBegin, TryEnd, SetLineno
        if item.has_jump() or item.name == "KW_NAMES":  # a branch, keyword arguments
            return False
        pre, post = item.pre_and_post_stack_effect()
        pops, pushes = (0, pre + post) if pre >= 0 else (-pre, post)
        if depth < pushes:
            if item.name != "LOAD_GLOBAL" or depth != 0 or pushes != _CALLEE_PUSHES:
                return False
            name = item.arg[1] if VERSION >= (3, 11) else item.arg
            return PURE_BUILTINS.get(name) == call.arg
        depth += pops - pushes
    return False


def _load_probe(name):
    if VERSION >= (3, 11):
        return [Instr("LOAD_GLOBAL", (True, name))]
    return [Instr("LOAD_GLOBAL", name)]


def _call(nargs):
    if VERSION >= (3, 12):
        return [Instr("CALL", nargs), Instr("POP_TOP")]
    if HAS_PRECALL:
        return [Instr("PRECALL", nargs), Instr("CALL", nargs), Instr("POP_TOP")]
    return [Instr("CALL_FUNCTION", nargs), Instr("POP_TOP")]


def call_with_consts(name, *consts):
    """``name(*consts)``, result discarded."""
    return _load_probe(name) + [Instr("LOAD_CONST", c) for c in consts] + _call(len(consts))


def call_with_top(name, *consts):
    """``name(TOS, *consts)`` keeping TOS on the stack, result discarded."""
    return call_with_stack_item(name, 1, *consts)


def call_with_stack_item(name, depth, *consts):
    """``name(item, *consts)`` where item is the stack entry ``depth`` down (1 = TOS).

    Raises InstrumentationError for a depth this interpreter cannot copy (3.10: beyond 2).
    """
    if VERSION >= (3, 11):
        body = _load_probe(name) + [Instr("COPY", depth + 2)]
    elif depth == 1:
        body = [Instr("DUP_TOP")] + _load_probe(name) + [Instr("ROT_TWO")]
    elif depth == 2:
        body = [Instr("DUP_TOP_TWO"), Instr("POP_TOP")] + _load_probe(name) + [Instr("ROT_TWO")]
    elif depth == 3:  # rotate it to depth 2, copy it, rotate back (three ROT_THREEs: identity)
        return ([Instr("ROT_THREE")] + call_with_stack_item(name, 2, *consts)
                + [Instr("ROT_THREE"), Instr("ROT_THREE")])
    else:
        raise InstrumentationError("cannot copy stack item %d on %d.%d" % (depth, *VERSION))
    return body + [Instr("LOAD_CONST", c) for c in consts] + _call(1 + len(consts))


# Instructions that only reorder the stack, between an operator and the store of its result.
STACK_SHUFFLES = frozenset({"SWAP", "ROT_TWO", "ROT_THREE", "ROT_FOUR"})


def is_inplace_operator(instr):
    """Whether ``instr`` is an augmented assignment's operator (``+=`` and the others), whose
    result may be its left operand changed in place."""
    if VERSION >= (3, 11):
        return instr.name == "BINARY_OP" and int(instr.arg) >= _NB_INPLACE_ADD
    return instr.name.startswith("INPLACE_")


_NB_INPLACE_ADD = 13  # the first in-place oparg of BINARY_OP (3.11+, Include/opcode.h)


def call_with_top_before_send_yield(name, *consts):
    """Like ``call_with_top`` for the YIELD_VALUE of a 3.11 send loop: it ends with a NOP
    whose oparg byte ``with_throw_distances`` sets to the distance CPython reads there (see
    THROW_READS_ARG_BEFORE_YIELD).  A NOP, not a jump that is never taken: 3.11's f_lineno
    setter models the stack along every jump, and such a jump to the loop's end (one value
    deeper than the SEND's exit) made it pop one value too many on a jump out of the block,
    which crashed the interpreter."""
    return call_with_top(name, *consts) + [Instr("NOP")]


def with_throw_distances(code):
    """3.11: ``code`` with the oparg byte of the NOP before each send loop's YIELD_VALUE set
    to the distance from that YIELD_VALUE to the loop's end, in code units.

    Decodes ``co_code`` itself rather than through ``dis``: this runs at import time of the
    program's modules, and ``dis`` calls builtins the program may have replaced."""
    raw = bytearray(code.co_code)
    send_target = None
    extended = 0
    offset = 0
    while offset < len(raw):
        op = raw[offset]
        arg = raw[offset + 1] | extended
        extended = arg << 8 if op == _EXTENDED_ARG else 0
        following = offset + 2 + 2 * _CACHES[op]
        if op == _SEND:
            send_target = following + 2 * arg  # a forward jump, relative to the next unit
        elif op == _YIELD_VALUE and send_target is not None and raw[offset - 2] == _NOP:
            distance = (send_target - offset) // 2
            if not 0 < distance < 256:
                raise InstrumentationError("a send loop too long for gen.throw() on 3.11")
            raw[offset - 1] = distance
        offset = following
    return code.replace(co_code=bytes(raw))


if THROW_READS_ARG_BEFORE_YIELD:
    _SEND = dis.opmap["SEND"]
    _YIELD_VALUE = dis.opmap["YIELD_VALUE"]
    _CACHES = opcode._inline_cache_entries  # code units of inline cache after each opcode


def _packed(loads):
    if loads:
        return list(loads) + [Instr("BUILD_TUPLE", len(loads))]
    return [Instr("LOAD_CONST", ())]


def call_with_tuples(name, const, *tuples):
    """``name(const, (v, ...), ...)``: each of ``tuples`` is a list of instructions pushing
    one value each, packed into one tuple argument."""
    body = _load_probe(name) + [Instr("LOAD_CONST", const)]
    for loads in tuples:
        body += _packed(loads)
    return body + _call(1 + len(tuples))


def load_variable(name, is_cell):
    """Push the value of a parameter at function entry (cells after MAKE_CELL)."""
    if is_cell:
        return Instr("LOAD_DEREF", CellVar(name))
    return Instr("LOAD_FAST", name)


def load_cell(name, is_free):
    """Push the cell object (not its content) of a cell or free variable."""
    variable = FreeVar(name) if is_free else CellVar(name)
    if VERSION >= (3, 13):  # LOAD_CLOSURE became a pseudo-op for LOAD_FAST of the cell slot
        return Instr("LOAD_FAST", variable)
    return Instr("LOAD_CLOSURE", variable)


def split_superinstruction(instr):
    """3.13 fuses stores with loads; return the equivalent plain instructions, or None."""
    if instr.name == "STORE_FAST_STORE_FAST":
        first, second = instr.arg
        return [Instr("STORE_FAST", first, location=instr.location),
                Instr("STORE_FAST", second, location=instr.location)]
    if instr.name == "STORE_FAST_LOAD_FAST":
        first, second = instr.arg
        return [Instr("STORE_FAST", first, location=instr.location),
                Instr("LOAD_FAST", second, location=instr.location)]
    return None


def unwind_handler(name, const):
    """Body of the catch-all handler: ``name(exception, const)`` then re-raise unchanged.

    3.11+: the exception table entry pushes (lasti, exc); RERAISE 1 restores lasti so the
    frame's f_lineno stays that of the raising instruction.  3.10: SETUP_FINALLY pushed
    (tb, value, type) and RERAISE 1 restores f_lasti from the handler block.
    """
    if VERSION >= (3, 11):
        return (_load_probe(name) + [Instr("COPY", 3), Instr("LOAD_CONST", const)]
                + _call(2) + [Instr("RERAISE", 1)])
    return ([Instr("DUP_TOP_TWO"), Instr("POP_TOP")] + _load_probe(name)
            + [Instr("ROT_TWO"), Instr("LOAD_CONST", const)] + _call(2) + [Instr("RERAISE", 1)])



def unlined_prologue(code, count):
    """3.10: ``code`` with no line for its first ``count`` instructions (as CPython compiles
    GEN_START), so that no f_lineno jump can land in them."""
    end = 0
    raw = code.co_code
    while count and end < len(raw):
        if raw[end] != _EXTENDED_ARG:
            count -= 1
        end += 2
    table = []
    line = code.co_firstlineno
    for start, stop, number in code.co_lines():
        if start < end:
            table.append((min(stop, end) - start, None))
            start = min(stop, end)
        if start < stop:
            table.append((stop - start, number))
    packed = bytearray()
    for length, number in table:
        if number is None:
            delta = -128
        else:
            delta = number - line
            line = number
            while delta > 127 or delta < -127:
                step = 127 if delta > 0 else -127
                packed += bytes((0, step & 0xFF))
                delta -= step
        while length > 254:
            packed += bytes((254, delta & 0xFF))
            length -= 254
            delta = -128 if number is None else 0
        packed += bytes((length, delta & 0xFF))
    return code.replace(co_linetable=bytes(packed))
