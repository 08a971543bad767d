"""Checks a code object against what CPython relies on before it is allowed to run.

CPython trusts the bytecode it executes: a stack deeper than ``co_stacksize``, a jump into
the middle of an instruction, an exception table entry deeper than the stack, a NULL handed
to an instruction that dereferences it, or a split fused pair is not an exception but memory
corruption.  ``verify`` is an abstract interpretation of the final instruction stream
(decoded from ``co_code`` and ``co_exceptiontable`` here, independently of the ``bytecode``
library that produced it), following every path including exception edges:

* every opcode is one this interpreter defines, its inline caches are in place, its
  ``EXTENDED_ARG`` prefixes are not jumped over, its constant, name and local indices are in
  range;
* every jump target and handler is the start of an instruction; no path falls off the end;
* each instruction is reached with one stack depth (``dis.stack_effect`` per edge, along
  every edge: the ``f_lineno`` setter models the stack along every jump, one never taken
  included, and pops what it finds there on a jump), never
  below what it pops, never above ``co_stacksize``; on 3.11+ an exception table entry's
  depth is no deeper than the stack of any instruction it covers, and the handler is reached
  with that depth plus ``lasti`` and the exception;
* NULL and maybe-NULL stack slots (``PUSH_NULL``, the method/NULL bit of ``LOAD_GLOBAL``
  and ``LOAD_ATTR``, ``LOAD_FAST_AND_CLEAR``) reach only the instructions that accept them
  (the call slot of a call, ``STORE_FAST``, ``SWAP``);
* fused pairs are intact: 3.12+ ``FOR_ITER`` targets ``END_FOR`` (3.13: and ``POP_TOP``),
  ``SEND`` targets ``END_SEND``; 3.11+ ``YIELD_VALUE`` is followed by ``RESUME``, and on 3.11
  the unit before the ``YIELD_VALUE`` of a send loop carries the distance to the loop's end
  (``gen.throw`` reads it); generator prologues (``GEN_START``, ``RETURN_GENERATOR``,
  ``COPY_FREE_VARS``) are in place.

It checks one code object, not the ones in its constants (the rewriter calls it on each).
It never executes or changes the code.
"""

import dis
import opcode
import sys

from .errors import InstrumentationError

VERSION = sys.version_info[:2]

CO_GENERATOR, CO_COROUTINE, CO_ASYNC_GENERATOR = 0x20, 0x80, 0x200
GENERATOR_FLAGS = CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR

# Stack slot kinds (only non-values are stored, as (position from the bottom, kind)).
NULL, MAYBE_NULL = 1, 2

OPNAME = opcode.opname
OP = opcode.opmap
EXTENDED_ARG = OP["EXTENDED_ARG"]
CACHE = OP.get("CACHE")
HAS_JREL = frozenset(dis.hasjrel)
HAS_JABS = frozenset(dis.hasjabs)
HAS_CONST = frozenset(dis.hasconst)
HAS_NAME = frozenset(dis.hasname)
HAS_LOCAL = frozenset(dis.haslocal)
HAS_FREE = frozenset(dis.hasfree)
BACKWARD = frozenset(op for op in HAS_JREL if "BACKWARD" in OPNAME[op])
# Real opcodes only: no pseudo-instructions, no specialised or instrumented forms.
VALID = frozenset(op for name, op in OP.items()
                  if op < 256 and not name.startswith("INSTRUMENTED_") and op != CACHE)

_caches = getattr(opcode, "_inline_cache_entries", None)
if isinstance(_caches, dict):  # 3.13: by name
    CACHES = {OP[name]: count for name, count in _caches.items() if name in OP}
elif _caches is not None:  # 3.11, 3.12: by opcode
    CACHES = {op: count for op, count in enumerate(_caches) if count}
else:
    CACHES = {}

HAVE_ARGUMENT = opcode.HAVE_ARGUMENT
# Instructions after which execution never falls through to the next one.
TERMINAL = frozenset(OP[name] for name in (
    "RETURN_VALUE", "RETURN_CONST", "RAISE_VARARGS", "RERAISE", "JUMP_FORWARD",
    "JUMP_ABSOLUTE", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT", "JUMP",
    "JUMP_NO_INTERRUPT") if name in OP)

# How many stack items an instruction pops, where that is not ``1 - stack_effect`` (that
# is, where it does not push exactly one item); ``arg`` -> count.
_POPS = {
    "POP_TOP": 1, "STORE_FAST": 1, "STORE_NAME": 1, "STORE_GLOBAL": 1, "STORE_DEREF": 1,
    "STORE_ATTR": 2, "STORE_SUBSCR": 3, "STORE_SLICE": 4, "DELETE_SUBSCR": 2,
    "DELETE_ATTR": 1, "DELETE_FAST": 0, "DELETE_NAME": 0, "DELETE_GLOBAL": 0,
    "DELETE_DEREF": 0, "NOP": 0, "RESUME": 0, "EXTENDED_ARG": 0, "KW_NAMES": 0,
    "COPY_FREE_VARS": 0, "MAKE_CELL": 0, "RETURN_VALUE": 1, "RETURN_CONST": 0,
    "POP_BLOCK": 0, "SETUP_FINALLY": 0, "SETUP_WITH": 1, "SETUP_ASYNC_WITH": 0,
    "LIST_APPEND": 1, "SET_ADD": 1, "MAP_ADD": 2, "LIST_EXTEND": 1, "SET_UPDATE": 1,
    "DICT_UPDATE": 1, "DICT_MERGE": 1, "PRINT_EXPR": 1, "IMPORT_STAR": 1,
    "SETUP_ANNOTATIONS": 0, "GEN_START": 1, "CLEANUP_THROW": 3, "CHECK_EXC_MATCH": 2,
    "CHECK_EG_MATCH": 2, "PUSH_EXC_INFO": 1, "BEFORE_WITH": 1, "BEFORE_ASYNC_WITH": 1,
    "GET_ANEXT": 1, "FOR_ITER": 1, "UNPACK_SEQUENCE": 1, "UNPACK_EX": 1,
    "MATCH_MAPPING": 1, "MATCH_SEQUENCE": 1, "MATCH_KEYS": 2, "GET_LEN": 1,
    "LOAD_METHOD": 1, "LOAD_ATTR": 1, "LOAD_GLOBAL": 0, "LOAD_SUPER_ATTR": 3,
    "JUMP_IF_FALSE_OR_POP": 1, "JUMP_IF_TRUE_OR_POP": 1, "JUMP_IF_NOT_EXC_MATCH": 2,
    "SEND": 2, "COPY_DICT_WITHOUT_KEYS": 2, "LOAD_FAST_LOAD_FAST": 0,
    "STORE_FAST_STORE_FAST": 2, "END_ASYNC_FOR": 7 if VERSION == (3, 10) else 2,
    "POP_EXCEPT": 3 if VERSION == (3, 10) else 1,
    "END_FOR": 2 if VERSION == (3, 12) else 1,
    "MATCH_CLASS": 3, "WITH_EXCEPT_START": 0, "YIELD_VALUE": 1,
    "DUP_TOP": 0, "DUP_TOP_TWO": 0, "COPY": 0,
}
POPS = {OP[name]: count for name, count in _POPS.items() if name in OP}
for _name in ("POP_JUMP_IF_FALSE", "POP_JUMP_IF_TRUE", "POP_JUMP_IF_NONE",
              "POP_JUMP_IF_NOT_NONE", "POP_JUMP_FORWARD_IF_FALSE", "POP_JUMP_FORWARD_IF_TRUE",
              "POP_JUMP_FORWARD_IF_NONE", "POP_JUMP_FORWARD_IF_NOT_NONE",
              "POP_JUMP_BACKWARD_IF_FALSE", "POP_JUMP_BACKWARD_IF_TRUE",
              "POP_JUMP_BACKWARD_IF_NONE", "POP_JUMP_BACKWARD_IF_NOT_NONE"):
    if _name in OP:
        POPS[OP[_name]] = 1
for _op in TERMINAL:
    POPS.setdefault(_op, 0)
# dis.stack_effect leaves out the generator object RETURN_GENERATOR pushes (the compiler adds
# the RETURN_GENERATOR/POP_TOP prefix after computing depths); 3.13 counts it.
EFFECTS = {OP["RETURN_GENERATOR"]: 1} if "RETURN_GENERATOR" in OP else {}
if "RETURN_GENERATOR" in OP:
    POPS[OP["RETURN_GENERATOR"]] = 0

# Calls: opcode -> (number of items popped beyond the oparg, index of the input slot that
# may hold NULL).  3.13 moved the NULL after the callable.
_CALL_NULL = 1 if VERSION >= (3, 13) else 0
# (3.11's PRECALL takes the call's inputs and leaves two values for CALL.)
_calls = {"CALL_KW": (3, 1), "CALL_METHOD": (2, 0), "PRECALL": (2, 0)}
if VERSION >= (3, 12):
    _calls["CALL"] = (2, _CALL_NULL)
CALLS = {OP[name]: spec for name, spec in _calls.items() if name in OP}
CALL_FUNCTION_EX = OP["CALL_FUNCTION_EX"]
STORES_NULL = frozenset(OP[name] for name in ("STORE_FAST", "STORE_FAST_STORE_FAST",
                                                "STORE_FAST_LOAD_FAST") if name in OP)
LOAD_FAST_AND_CLEAR = OP.get("LOAD_FAST_AND_CLEAR")
PUSH_NULL = OP.get("PUSH_NULL")
SWAP = OP.get("SWAP")
ROTATIONS = {OP[name]: depth for name, depth in (("ROT_TWO", 2), ("ROT_THREE", 3),
                                                  ("ROT_FOUR", 4)) if name in OP}
ROT_N = OP.get("ROT_N")
COPY = OP.get("COPY")
DUP_TOP, DUP_TOP_TWO = OP.get("DUP_TOP"), OP.get("DUP_TOP_TWO")
LOAD_GLOBAL, LOAD_ATTR = OP["LOAD_GLOBAL"], OP["LOAD_ATTR"]
LOAD_METHOD, LOAD_SUPER_ATTR = OP.get("LOAD_METHOD"), OP.get("LOAD_SUPER_ATTR")
FOR_ITER, SEND = OP["FOR_ITER"], OP.get("SEND")
END_FOR, END_SEND, YIELD_VALUE = OP.get("END_FOR"), OP.get("END_SEND"), OP["YIELD_VALUE"]
RESUME, POP_TOP = OP.get("RESUME"), OP["POP_TOP"]
GEN_START, RETURN_GENERATOR = OP.get("GEN_START"), OP.get("RETURN_GENERATOR")
COPY_FREE_VARS = OP.get("COPY_FREE_VARS")
LOAD_FAST_LOAD_FAST = OP.get("LOAD_FAST_LOAD_FAST")
STORE_FAST_STORE_FAST = OP.get("STORE_FAST_STORE_FAST")
STORE_FAST_LOAD_FAST = OP.get("STORE_FAST_LOAD_FAST")
# Opcodes whose name index is shifted (low bits are flags) on this version.
NAME_SHIFT = {}
if VERSION >= (3, 11):
    NAME_SHIFT[LOAD_GLOBAL] = 1
if VERSION >= (3, 12):
    NAME_SHIFT[LOAD_ATTR] = 1
    NAME_SHIFT[LOAD_SUPER_ATTR] = 2


class VerificationError(InstrumentationError):
    """A code object CPython could not run safely; the message says where and why."""


class _Instruction:
    # ``offset``: first unit of the EXTENDED_ARG group (where jumps land); ``unit``: the
    # opcode's own unit (what the exception table is looked up by).
    __slots__ = ("offset", "unit", "op", "arg", "next", "target", "handler")

    def __init__(self, offset, unit, op, arg, next_offset):
        self.offset = offset
        self.unit = unit
        self.op = op
        self.arg = arg
        self.next = next_offset
        self.target = None
        self.handler = None  # (target offset, depth, lasti) of the covering table entry


def _fail(code, offset, message):
    raise VerificationError("%s (line %s) at offset %s: %s"
                            % (getattr(code, "co_qualname", code.co_name),
                               code.co_firstlineno, offset, message))


def _decode(code):
    """Instructions by offset (each at the first unit of its EXTENDED_ARG group)."""
    raw = code.co_code
    if len(raw) % 2:
        _fail(code, len(raw), "odd code length")
    instructions = {}
    order = []
    start = None
    ext = 0
    offset = 0
    size = len(raw)
    while offset < size:
        op, arg = raw[offset], raw[offset + 1] | ext
        if start is None:
            start = offset
        if op not in VALID:
            _fail(code, offset, "opcode %d (%s) is not executable here" % (op, OPNAME[op]))
        after = offset + 2
        if op == EXTENDED_ARG:
            ext = arg << 8
            offset = after
            continue
        for cache in range(CACHES.get(op, 0)):
            if after >= size or raw[after] != CACHE:
                _fail(code, offset, "%s lacks its inline cache" % OPNAME[op])
            after += 2
        instr = _Instruction(start, offset, op, arg, after)
        instructions[start] = instr
        order.append(instr)
        start, ext, offset = None, 0, after
    if start is not None:
        _fail(code, start, "EXTENDED_ARG at the end of the code")
    for instr in order:
        op = instr.op
        if op in HAS_JREL:
            distance = instr.arg * 2
            instr.target = instr.next - distance if op in BACKWARD else instr.next + distance
        elif op in HAS_JABS:
            instr.target = instr.arg * 2
        if instr.target is not None and instr.target not in instructions:
            _fail(code, instr.offset, "%s jumps to %d, not the start of an instruction"
                  % (OPNAME[op], instr.target))
    return instructions, order


def _exception_table(code):
    """Entries (start, end, target, depth, lasti) of a 3.11+ ``co_exceptiontable``."""
    data = code.co_exceptiontable
    entries = []
    index = 0
    size = len(data)

    def varint():
        nonlocal index
        byte = data[index]
        value = byte & 63
        while byte & 64:
            index += 1
            byte = data[index]
            value = (value << 6) | (byte & 63)
        index += 1
        return value

    try:
        while index < size:
            if not data[index] & 128:
                raise IndexError
            start = varint() * 2
            end = start + varint() * 2
            target = varint() * 2
            depth_lasti = varint()
            entries.append((start, end, target, depth_lasti >> 1, depth_lasti & 1))
    except IndexError:
        _fail(code, None, "malformed exception table")
    return entries


def _check_indices(code, instr):
    op, arg = instr.op, instr.arg
    if op in HAS_CONST and arg >= len(code.co_consts):
        _fail(code, instr.offset, "constant index %d out of range" % arg)
    elif op in HAS_NAME and arg >> NAME_SHIFT.get(op, 0) >= len(code.co_names):
        _fail(code, instr.offset, "name index %d out of range" % arg)
    elif op in HAS_LOCAL:
        limit = code.co_nlocals if VERSION < (3, 11) else (
            code.co_nlocals + len(code.co_cellvars) + len(code.co_freevars))
        indices = (arg >> 4, arg & 15) if op in (LOAD_FAST_LOAD_FAST, STORE_FAST_STORE_FAST,
                                                 STORE_FAST_LOAD_FAST) else (arg,)
        if max(indices) >= limit:
            _fail(code, instr.offset, "local index %d out of range" % arg)
    elif op in HAS_FREE:
        limit = len(code.co_cellvars) + len(code.co_freevars)
        if VERSION >= (3, 11):
            limit += code.co_nlocals
        if arg >= limit:
            _fail(code, instr.offset, "cell index %d out of range" % arg)


def _check_forms(code, instructions, order):
    """Fused pairs and prologues (see the module docstring)."""
    send_target = None
    for index, instr in enumerate(order):
        op = instr.op
        if VERSION >= (3, 12) and op == FOR_ITER:
            end = instructions[instr.target]
            if end.op != END_FOR or (VERSION >= (3, 13)
                                     and instructions.get(end.next, end).op != POP_TOP):
                _fail(code, instr.offset, "FOR_ITER does not target END_FOR")
        elif op == SEND:
            send_target = instr.target
            if VERSION >= (3, 12) and instructions[instr.target].op != END_SEND:
                _fail(code, instr.offset, "SEND does not target END_SEND")
        elif op == YIELD_VALUE and VERSION >= (3, 11):
            following = order[index + 1] if index + 1 < len(order) else None
            if following is None or following.op != RESUME:
                _fail(code, instr.offset, "YIELD_VALUE is not followed by RESUME")
            if VERSION == (3, 11) and following.arg >= 2:
                # gen.throw() jumps by the oparg byte of the unit before YIELD_VALUE.
                distance = code.co_code[instr.offset - 1]
                if send_target is None or instr.offset + 2 * distance != send_target:
                    _fail(code, instr.offset, "the unit before a send loop's YIELD_VALUE "
                          "does not hold the distance to the loop's end")
    flags = code.co_flags
    first = order[0].op if order else None
    if VERSION == (3, 10) and flags & GENERATOR_FLAGS and first != GEN_START:
        _fail(code, 0, "generator code does not start with GEN_START")
    if VERSION >= (3, 11):
        prologue = []
        for instr in order:
            prologue.append(instr)
            if instr.op == RESUME:
                break
        ops = [instr.op for instr in prologue]
        if flags & GENERATOR_FLAGS and RETURN_GENERATOR not in ops:
            _fail(code, 0, "generator code without RETURN_GENERATOR in its prologue")
        if code.co_freevars and not any(instr.op == COPY_FREE_VARS
                                        and instr.arg == len(code.co_freevars)
                                        for instr in prologue):
            _fail(code, 0, "closure code without COPY_FREE_VARS in its prologue")


def _pushed_kinds(op, arg, base, pushes):
    """Kinds of the slots ``op`` pushes at positions base..base+pushes-1 (non-values only)."""
    if op == PUSH_NULL:
        return ((base, NULL),)
    if op == LOAD_FAST_AND_CLEAR:
        return ((base, MAYBE_NULL),)
    if pushes == 2:
        if op == LOAD_GLOBAL and arg & 1:
            return ((base + 1, NULL),) if VERSION >= (3, 13) else ((base, NULL),)
        if (op == LOAD_ATTR and arg & 1 and VERSION >= (3, 12)) or op == LOAD_METHOD or (
                op == LOAD_SUPER_ATTR and arg & 1):
            return ((base + 1, MAYBE_NULL),) if VERSION >= (3, 13) else ((base, MAYBE_NULL),)
    return ()


def verify(code):
    """Return None if ``code`` (one code object) is safe to run on this interpreter.

    Raises VerificationError naming the function, its first line, the offset and the rule
    broken.  Nested code objects are not visited.
    """
    instructions, order = _decode(code)
    if not order:
        _fail(code, 0, "empty code")
    for instr in order:
        _check_indices(code, instr)
    if VERSION >= (3, 11):
        entries = _exception_table(code)
        # A range may start or end at an EXTENDED_ARG prefix or at its opcode.
        units = set(instructions) | {instr.unit for instr in order} | {len(code.co_code)}
        last_end = 0
        for start, end, target, depth, lasti in entries:
            if start < last_end or end <= start or start not in units or end not in units:
                _fail(code, start, "exception table entry %d-%d out of order or misaligned"
                      % (start, end))
            if target not in instructions:
                _fail(code, start, "exception handler %d is not an instruction" % target)
            last_end = end
        entry_index = 0
        for instr in order:
            while entry_index < len(entries) and entries[entry_index][1] <= instr.unit:
                entry_index += 1
            if entry_index < len(entries) and entries[entry_index][0] <= instr.unit:
                instr.handler = entries[entry_index][2:]
    _check_forms(code, instructions, order)
    _check_stack(code, instructions, order)


def _check_stack(code, instructions, order):
    limit = code.co_stacksize
    size = len(code.co_code)
    start_depth = 1 if order[0].op == GEN_START else 0
    states = {order[0].offset: (start_depth, ())}
    work = [order[0].offset]
    stack_effect = dis.stack_effect

    def reach(offset, depth, kinds, source):
        known = states.get(offset)
        if known is None:
            states[offset] = (depth, kinds)
            work.append(offset)
            return
        if known[0] != depth:
            _fail(code, source, "reaches offset %d with stack depth %d, elsewhere %d"
                  % (offset, depth, known[0]))
        if known[1] != kinds:
            merged = _merge(known[1], kinds)
            if merged != known[1]:
                states[offset] = (depth, merged)
                work.append(offset)

    while work:
        offset = work.pop()
        instr = instructions[offset]
        depth, kinds = states[offset]
        op, arg = instr.op, instr.arg
        effect_arg = arg if op >= HAVE_ARGUMENT else None
        edges = []
        if instr.target is not None:
            edges.append((instr.target, stack_effect(op, effect_arg, jump=True)))
        if op not in TERMINAL:
            if instr.next >= size:
                _fail(code, offset, "falls off the end of the code")
            if op in EFFECTS:
                effect = EFFECTS[op]
            elif instr.target is not None:
                effect = stack_effect(op, effect_arg, jump=False)
            else:
                effect = stack_effect(op, effect_arg)
            edges.append((instr.next, effect))
        if instr.handler is not None:
            target, level, lasti = instr.handler
            if level > depth:
                _fail(code, offset, "exception table depth %d exceeds the stack (%d)"
                      % (level, depth))
            handler_kinds = tuple(k for k in kinds if k[0] < level)
            reach(target, level + lasti + 1, handler_kinds, offset)
        for destination, effect in edges:
            pops = _pops(op, arg, effect)
            if pops > depth:
                _fail(code, offset, "%s pops %d items from a stack of %d"
                      % (OPNAME[op], pops, depth))
            after = depth + effect
            if after > limit:
                _fail(code, offset, "stack depth %d exceeds co_stacksize %d" % (after, limit))
            new_kinds = _apply(code, instr, depth, pops, after, kinds)
            reach(destination, after, new_kinds, offset)


def _pops(op, arg, effect):
    call = CALLS.get(op)
    if call is not None:
        return arg + call[0]
    if op == CALL_FUNCTION_EX:
        return 1 - effect
    if op == SWAP:
        return arg
    if op in ROTATIONS:
        return ROTATIONS[op]
    if op == ROT_N:
        return arg
    pops = POPS.get(op)
    return 1 - effect if pops is None else pops


def _merge(left, right):
    """Kinds at a join: NULL on both sides stays NULL; any other disagreement is MAYBE_NULL."""
    left, right = dict(left), dict(right)
    return tuple(sorted((position, left.get(position) if left.get(position) == right.get(
        position) else MAYBE_NULL) for position in left.keys() | right.keys()))


def _apply(code, instr, depth, pops, after, kinds):
    """Kinds after ``instr``; fails if it consumes a NULL it cannot take."""
    op, arg = instr.op, instr.arg
    base = depth - pops
    if not kinds:
        return _pushed_kinds(op, arg, base, after - base)
    below = tuple(k for k in kinds if k[0] < base)
    inputs = {position - base: kind for position, kind in kinds if position >= base}
    if op == SWAP or op in ROTATIONS or op == ROT_N:
        count = pops
        if op == SWAP:
            order = list(range(count))
            order[0], order[-1] = order[-1], order[0]
        else:  # TOS moves down to the bottom of the rotated items
            order = [count - 1] + list(range(count - 1))
        moved = tuple((base + new, inputs[old]) for new, old in enumerate(order)
                      if old in inputs)
        return below + tuple(sorted(moved))
    if op == COPY or op == DUP_TOP or op == DUP_TOP_TWO:
        copied = (1 if op == DUP_TOP else 2) if op != COPY else arg
        for position, _kind in kinds:
            if position >= depth - copied and (op != COPY or position == depth - copied):
                _fail(code, instr.offset, "%s copies a NULL" % OPNAME[op])
        return kinds
    allowed = ()
    call = CALLS.get(op)
    if call is not None:
        allowed = (call[1],)
    elif op == CALL_FUNCTION_EX and VERSION >= (3, 11):
        allowed = (_CALL_NULL,)
    elif op in STORES_NULL:
        allowed = (0, 1) if op == STORE_FAST_STORE_FAST else (pops - 1,)
    for position, kind in inputs.items():
        if position not in allowed:
            _fail(code, instr.offset, "%s consumes a %sNULL" % (
                OPNAME[op], "maybe-" if kind == MAYBE_NULL else ""))
    return below + _pushed_kinds(op, arg, base, after - base)
