"""Per-version instruction sequences for probes: the only place that knows CPython's bytecode.

Each function returns a list of ``bytecode.Instr`` that calls one probe and leaves the value
stack exactly as it found it.  The rewriter composes them; it never builds a call sequence
itself.  Supported: CPython 3.10 to 3.13; anything else raises ``UnsupportedPython``
(see PITFALLS.md §Inserting instructions for why guessing is worse than refusing).
"""

import sys

from bytecode import CellVar, Instr

from .errors import UnsupportedPython

VERSION = sys.version_info[:2]
SUPPORTED = ((3, 10), (3, 11), (3, 12), (3, 13))

# Behaviours named once, tested by name elsewhere.
HAS_PRECALL = VERSION == (3, 11)
HAS_EXCEPTION_TABLE = VERSION >= (3, 11)
HAS_RESUME = VERSION >= (3, 11)
HAS_RETURN_CONST = VERSION >= (3, 12)
HAS_KW_NAMES = (3, 11) <= VERSION < (3, 13)
# 3.11's gen.throw() into a yield-from/await finds the end of the send loop by reading the
# oparg of the instruction just before YIELD_VALUE, assuming it is the SEND.
THROW_READS_ARG_BEFORE_YIELD = VERSION == (3, 11)
# On 3.10 a generator's frame restarts its line tracking on every resume.
RESUME_RESETS_LINE = VERSION == (3, 10)

# Opcodes that start a code object and must stay first (PITFALLS.md §Generator prologues).
PROLOGUE_OPCODES = frozenset({"GEN_START", "RETURN_GENERATOR", "POP_TOP", "MAKE_CELL",
                              "COPY_FREE_VARS", "RESUME"})
# A probe must never be inserted right before these (they are fused to what precedes them,
# or the interpreter jumps past them).
NO_PROBE_BEFORE = frozenset({"END_FOR", "END_SEND", "CACHE", "YIELD_FROM"})
# ... nor right after these (they are fused to what follows them).
NO_PROBE_AFTER = frozenset({"KW_NAMES", "PRECALL", "EXTENDED_ARG", "YIELD_VALUE", "SEND",
                            "RETURN_GENERATOR"}
                           # 3.13's exhausted FOR_ITER jumps past END_FOR *and* the POP_TOP.
                           | ({"END_FOR"} if VERSION >= (3, 13) else set()))


def check_supported():
    """Raise UnsupportedPython unless this interpreter's bytecode is one we generate for."""
    if sys.implementation.name != "cpython" or VERSION not in SUPPORTED:
        raise UnsupportedPython(
            "ctinstrument rewrites bytecode for CPython 3.10-3.13 only; this is %s %d.%d"
            % (sys.implementation.name, VERSION[0], VERSION[1]))


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
    if VERSION >= (3, 11):
        body = _load_probe(name) + [Instr("COPY", 3)]
    else:
        body = [Instr("DUP_TOP")] + _load_probe(name) + [Instr("ROT_TWO")]
    return body + [Instr("LOAD_CONST", c) for c in consts] + _call(1 + len(consts))


def call_with_top_before_send_yield(name, send_target, *consts):
    """Like ``call_with_top`` for the YIELD_VALUE of a 3.11 send loop.

    The result is discarded by ``POP_JUMP_IF_TRUE send_target`` instead of ``POP_TOP``: the
    probe returns None so it never jumps, and its oparg is the distance CPython expects to
    read there (see THROW_READS_ARG_BEFORE_YIELD).
    """
    body = call_with_top(name, *consts)
    assert body[-1].name == "POP_TOP"
    return body[:-1] + [Instr("POP_JUMP_FORWARD_IF_TRUE", send_target)]


def call_with_locals(name, const, loads):
    """``name(const, (local, ...))`` where ``loads`` are instructions pushing one value each."""
    if loads:
        packed = list(loads) + [Instr("BUILD_TUPLE", len(loads))]
    else:
        packed = [Instr("LOAD_CONST", ())]
    return _load_probe(name) + [Instr("LOAD_CONST", const)] + packed + _call(2)


def load_variable(name, is_cell):
    """Push the value of a parameter at function entry (cells after MAKE_CELL)."""
    if is_cell:
        return Instr("LOAD_DEREF", CellVar(name))
    return Instr("LOAD_FAST", name)


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
