"""Code object -> code object with probe calls (the only module that edits bytecode).

What gets inserted, per code object (recursively over nested code objects):

* an entry probe after the prologue, passing the function id and the parameters;
* a step probe at every *line site*: the first instruction of a line in code order, and every
  jump or handler target; the probe decides at run time whether the site is a line event
  (same rules as ``sys.settrace``: the line changed, or a backward jump);
* a return probe before each return, a yield probe before each yield, a resume probe after it;
* a catch-all handler around the body that reports an exception exit and re-raises unchanged.

Inserted instructions take the source location of the instruction they precede, so
tracebacks, ``f_lineno``, warnings and logging see the original positions.  The per-version
instruction sequences come from ``instructions``; this module never names an opcode's calling
convention itself.  It knows nothing about the recorder: ids come from a ``ProbeRegistry``.
"""

import types

from bytecode import Bytecode, Instr, Label, TryBegin, TryEnd

from . import instructions as ins
from .errors import InstrumentationError

STEP = "__ctinstrument_step__"
CALL = "__ctinstrument_call__"
RETURN = "__ctinstrument_return__"
UNWIND = "__ctinstrument_unwind__"
YIELD = "__ctinstrument_yield__"
RESUME = "__ctinstrument_resume__"
PROBE_NAMES = (STEP, CALL, RETURN, UNWIND, YIELD, RESUME)

CO_VARARGS = 0x04
CO_VARKEYWORDS = 0x08


class ProbeRegistry:
    """What the rewriter needs from the recorder: ids for functions and line sites."""

    def function_id(self, path, line, name, argnames):
        """Return the function id for a code object about to be instrumented."""
        raise NotImplementedError

    def line_site(self, function_id, line):
        """Return a new site id (ints increase in code order within one code object)."""
        raise NotImplementedError


def argument_names(code):
    """Names of all parameters of ``code`` in signature order (positional, *args, kw-only, **kw)."""
    count = code.co_argcount + code.co_kwonlyargcount
    count += bool(code.co_flags & CO_VARARGS) + bool(code.co_flags & CO_VARKEYWORDS)
    return code.co_varnames[:count]


def qualified_name(code, parent_qualname, parent_is_function):
    """``co_qualname`` where the interpreter has it, else the same rule computed from nesting."""
    qualname = getattr(code, "co_qualname", None)
    if qualname is not None:
        return qualname
    if parent_qualname is None:
        return code.co_name
    if parent_is_function:
        return parent_qualname + ".<locals>." + code.co_name
    return parent_qualname + "." + code.co_name


def instrument_module_code(code, registry, module_name, path):
    """Return ``code`` (a module's code object) with probes in it and every nested code object.

    ``module_name`` names the module body's function record (``<module_name>``); ``path`` is
    the absolute source path used for every function record.  Raises InstrumentationError if
    the bytecode library cannot rebuild a code object; the caller then runs the original.
    """
    ins.check_supported()
    try:
        return _instrument(code, registry, path, "<%s>" % module_name, None, False)
    except InstrumentationError:
        raise
    except Exception as exc:  # bytecode raises plain ValueError/RuntimeError on bad input
        raise InstrumentationError("cannot instrument %s (%s): %s: %s"
                                   % (module_name, path, type(exc).__name__, exc)) from exc


def _instrument(code, registry, path, module_label, parent_qualname, parent_is_function):
    """``module_label`` is set for a module body only; nested code objects pass None."""
    is_module = module_label is not None
    qualname = module_label if is_module else qualified_name(code, parent_qualname,
                                                             parent_is_function)
    is_function = bool(code.co_flags & 0x02)  # CO_NEWLOCALS: functions, lambdas, comprehensions
    child_parent = None if is_module else qualname
    argnames = argument_names(code) if is_function else ()
    fid = registry.function_id(path, code.co_firstlineno, qualname, argnames)

    bc = Bytecode.from_code(code)
    for item in bc:
        if isinstance(item, Instr) and isinstance(item.arg, types.CodeType):
            item.arg = _instrument(item.arg, registry, path, None, child_parent, is_function)
    cells = set(code.co_cellvars)
    loads = [ins.load_variable(arg, arg in cells) for arg in argnames]
    new = _insert_probes(bc, registry, fid, loads)
    # bytecode numbers locals by first appearance after the arguments; listing every original
    # local as "argnames" keeps co_varnames (and so locals() order) exactly as compiled.
    new.argnames = list(code.co_varnames)
    return new.to_code()


def _located(seq, model):
    for instr in seq:
        instr.location = model.location
    return seq


def _prologue_length(items):
    """Index just after the prologue: leading instructions that must stay first."""
    end = 0
    for index, item in enumerate(items):
        if isinstance(item, Instr):
            if item.name not in ins.PROLOGUE_OPCODES:
                break
            if item.name == "POP_TOP" and (index == 0 or getattr(items[index - 1], "name", None)
                                           != "RETURN_GENERATOR"):
                break
            end = index + 1
            if item.name == "RESUME" or item.name == "GEN_START":
                break
        elif isinstance(item, Label):
            break
    if ins.HAS_RESUME:
        # Keep any TryEnd that closes a range around RESUME inside the prologue.
        while end < len(items) and isinstance(items[end], TryEnd):
            end += 1
    return end


def _insert_probes(bc, registry, fid, arg_loads):
    items = list(bc)
    start = _prologue_length(items)
    handler = Label()
    out = items[:start]
    first = next((i for i in items[start:] if isinstance(i, Instr)), None)
    if first is None:
        raise InstrumentationError("code object without a body")
    out.extend(_located(ins.call_with_locals(CALL, fid, arg_loads), first))

    setup = None
    if not ins.HAS_EXCEPTION_TABLE:
        setup = Instr("SETUP_FINALLY", handler, location=first.location)
        out.append(setup)

    # Labels that start a line event when reached: jump and handler targets, except the
    # 3.11+ send loop's JUMP_BACKWARD_NO_INTERRUPT, which sys.settrace does not report.
    targets = set()
    for item in items:
        if isinstance(item, TryBegin):
            targets.add(item.target)
        elif isinstance(item, Instr) and isinstance(item.arg, Label) \
                and item.name != "JUMP_BACKWARD_NO_INTERRUPT":
            targets.add(item.arg)

    in_user_try = False
    for item in out:
        if isinstance(item, TryBegin):
            in_user_try = True
        elif isinstance(item, TryEnd):
            in_user_try = False
    our_try = None
    prev_line = None
    last_site = -1
    after_label = False
    carried = None  # a line site that could not be placed before a fused instruction
    prev_instr = None
    for item in items[start:]:
        if isinstance(item, TryBegin):
            if our_try is not None:
                out.append(TryEnd(our_try))
                our_try = None
            in_user_try = True
            out.append(item)
            continue
        if isinstance(item, TryEnd):
            in_user_try = False
            out.append(item)
            continue
        if isinstance(item, Label):
            after_label = after_label or item in targets
            out.append(item)
            continue
        if not isinstance(item, Instr):
            out.append(item)
            continue

        if ins.HAS_EXCEPTION_TABLE and not in_user_try and our_try is None:
            our_try = TryBegin(handler, push_lasti=True, stack_depth=0)
            out.append(our_try)

        line = item.lineno
        site_line = None
        if line is not None and (line != prev_line or after_label):
            site_line = line
        elif carried is not None and (line is None or line == carried):
            site_line = carried
        carried = None
        if line is not None:
            prev_line = line
            after_label = False

        blocked = (item.name in ins.NO_PROBE_BEFORE
                   or (prev_instr is not None and prev_instr.name in ins.NO_PROBE_AFTER))
        if site_line is not None:
            if blocked:
                carried = site_line
            else:
                last_site = registry.line_site(fid, site_line)
                out.extend(_located(ins.call_with_consts(STEP, last_site), item))

        name = item.name
        if name == "RETURN_VALUE":
            out.extend(_located(ins.call_with_top(RETURN, fid), item))
        elif name == "RETURN_CONST":
            out.extend(_located(ins.call_with_consts(RETURN, item.arg, fid), item))
        elif name == "YIELD_VALUE":
            if ins.THROW_READS_ARG_BEFORE_YIELD and prev_instr is not None \
                    and prev_instr.name == "SEND":
                probe = ins.call_with_top_before_send_yield(YIELD, prev_instr.arg, fid)
            else:
                probe = ins.call_with_top(YIELD, fid)
            out.extend(_located(probe, item))
        out.append(item)

        resumes = (name == "YIELD_VALUE" and not ins.HAS_RESUME) or (
            name == "RESUME" and prev_instr is not None and prev_instr.name == "YIELD_VALUE")
        if resumes:
            line_after = -1 if ins.RESUME_RESETS_LINE or prev_line is None else prev_line
            out.extend(_located(ins.call_with_top(RESUME, fid, line_after, last_site), item))
        prev_instr = item

    if our_try is not None:
        out.append(TryEnd(our_try))
    last = prev_instr or first
    out.append(handler)
    out.extend(_located(ins.unwind_handler(UNWIND, fid), last))

    bc[:] = out
    return bc
