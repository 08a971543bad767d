"""Code object -> code object with probe calls (the only module that edits bytecode).

What gets inserted, per code object (recursively over nested code objects):

* an entry probe after the prologue, passing the function id and the parameters;
* a step probe at every *line site*: the first instruction of a line in code order, and every
  jump or handler target; the probe decides at run time whether the site is a line event
  (same rules as ``sys.settrace``: the line changed, or a backward jump);
* a return probe before each return, a yield probe before each yield, a resume probe after it;
* a catch-all handler around the body that reports an exception exit and re-raises unchanged;
* a catch probe at the entry of every ``except``/``finally``/``with`` handler, passing the
  exception that was raised in (or propagated into) the frame;
* a store probe before every name store and delete (the value is copied from the stack, the
  target is never read back), a mutation probe before attribute, item and slice stores, and
  save/restore probes around the locals that 3.12+ inlined comprehensions borrow; a line
  site says whether its line may run other code.

Inserted instructions take the source location of the instruction they precede, so
tracebacks, ``f_lineno``, warnings and logging see the original positions; the original
constants and names keep their indexes (layout.py).  The per-version
instruction sequences come from ``instructions``; this module never names an opcode's calling
convention itself.  It knows nothing about the recorder: ids come from a ``ProbeRegistry``.
"""

import types

from bytecode import Bytecode, Instr, Label, TryBegin, TryEnd

from . import instructions as ins
from . import layout, verifier
from .errors import InstrumentationError
from .protocol import (  # noqa: F401 (the probe protocol, named here too)
    CALL, CATCH, CLASS_FRAME, DELETE, FUNCTION_FRAME, MODULE_FRAME, MUTATE, PROBE_NAMES,
    RESTORE, RESUME, RETURN, SAVE, SITE_CALLS_SHIFT, SITE_FORCED, SITE_RUNS_CODE, STEP, STORE,
    UNWIND, YIELD, ProbeRegistry, module_label)

CO_NEWLOCALS = 0x02
CO_VARARGS = 0x04
CO_VARKEYWORDS = 0x08

# Name stores and deletes: opcode -> where the name lives ("frame" or "global").
NAME_STORES = {"STORE_FAST": "frame", "STORE_DEREF": "frame", "STORE_NAME": "name",
               "STORE_GLOBAL": "global"}
NAME_DELETES = {"DELETE_FAST": "frame", "DELETE_DEREF": "frame", "DELETE_NAME": "name",
                "DELETE_GLOBAL": "global"}
# Stores into an object: opcode -> stack depth of the object being changed.
OBJECT_STORES = {"STORE_ATTR": 1, "DELETE_ATTR": 1, "STORE_SUBSCR": 2, "DELETE_SUBSCR": 2,
                 "STORE_SLICE": 3}

def argument_names(code):
    """Names of the parameters of ``code`` in signature order (positional, *args, kw-only,
    **kw)."""
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


def instrument_module_code(code, registry, module_name, path, rejected=None):
    """Return ``code`` (a module's code object) with probes in it and every nested code object.

    ``module_name`` names the module body's function record (``<module_name>``); ``path`` is
    the absolute source path used for every function record.  Raises InstrumentationError if
    the bytecode library cannot rebuild a code object; the caller then runs the original.
    Each instrumented code object must pass ``verifier.verify``; one that fails keeps its
    original bytecode (its nested code objects are still instrumented) and ``(qualname,
    reason)`` is appended to the list ``rejected`` when given.
    """
    ins.check_supported()
    try:
        return _instrument(code, registry, path, module_label(module_name), None, False,
                           rejected=[] if rejected is None else rejected)
    except InstrumentationError:
        raise
    except Exception as exc:  # bytecode raises plain ValueError/RuntimeError on bad input
        raise InstrumentationError("cannot instrument %s (%s): %s: %s"
                                   % (module_name, path, type(exc).__name__, exc)) from exc


def _instrument(code, registry, path, module_label, parent_qualname, parent_is_function,
                module_id=None, rejected=None):
    """``module_label`` is set for a module body only; nested code objects pass None."""
    is_module = module_label is not None
    qualname = module_label if is_module else qualified_name(code, parent_qualname,
                                                             parent_is_function)
    is_function = bool(code.co_flags & CO_NEWLOCALS)  # functions, lambdas, comprehensions
    kind = MODULE_FRAME if is_module else FUNCTION_FRAME if is_function else CLASS_FRAME
    child_parent = None if is_module else qualname
    argnames = argument_names(code) if is_function else ()
    cells = set(code.co_cellvars)
    cellnames = tuple(code.co_cellvars) + tuple(code.co_freevars)
    fid = registry.function_id(path, code.co_firstlineno, qualname, argnames, cellnames, kind,
                               module_id)
    if is_module:
        module_id = fid

    bc = Bytecode.from_code(code)
    children = {}  # id of a nested code object -> its instrumented version
    for item in bc:
        if isinstance(item, Instr) and isinstance(item.arg, types.CodeType):
            original = item.arg
            item.arg = children[id(original)] = _instrument(
                original, registry, path, None, child_parent, is_function, module_id, rejected)
    arg_loads = [ins.load_variable(arg, arg in cells) for arg in argnames]
    cell_loads = [ins.load_cell(name, name not in cells) for name in cellnames]
    stores = _StoreSites(registry, fid, kind)
    new, prologue = _insert_probes(bc, registry, fid, arg_loads, cell_loads, stores)
    # bytecode numbers locals by first appearance after the arguments; listing every original
    # local as "argnames" keeps co_varnames (and so locals() order) exactly as compiled.
    new.argnames = list(code.co_varnames)
    new_code = layout.assemble(new, code, children)
    if ins.PROLOGUE_WITHOUT_LINE:
        new_code = ins.unlined_prologue(new_code, prologue)
    if ins.THROW_READS_ARG_BEFORE_YIELD:
        new_code = ins.with_throw_distances(new_code)
    try:
        verifier.verify(new_code)
    except verifier.VerificationError as exc:
        rejected.append((qualname, str(exc)))
        return code.replace(co_consts=tuple(children.get(id(const), const)
                                            for const in code.co_consts))
    return new_code


class _StoreSites:
    """Store site ids of one code object, by variable name and scope."""

    def __init__(self, registry, fid, kind):
        self.registry = registry
        self.fid = fid
        self.kind = kind
        self._sites = {}

    def site(self, name, scope):
        """Site id for a store to ``name`` (scope as in NAME_STORES), or None to skip it."""
        in_module = scope == "global" or (scope == "name" and self.kind == MODULE_FRAME)
        if (in_module or self.kind == CLASS_FRAME) and name[:2] == "__" and name[-2:] == "__":
            return None  # dunders of module and class namespaces are not shown
        key = (name, in_module)
        site = self._sites.get(key)
        if site is None:
            site = self._sites[key] = self.registry.store_site(self.fid, name, in_module)
        return site


def _variable_name(instr):
    arg = instr.arg
    return arg if isinstance(arg, str) else arg.name


def _comprehension_restores(items):
    """Indices of the STORE_FASTs that put back locals saved by LOAD_FAST_AND_CLEAR (3.12+).

    They follow the end of an inlined comprehension's loop (END_FOR, or END_ASYNC_FOR for an
    async comprehension) or start its cleanup handler, in a run of POP_TOP/SWAP/STORE_FAST; the first store of each saved name in that run is
    the restore.  Its value may be "unbound", so it must never be copied to a probe.
    """
    saved = {_variable_name(i) for i in items
             if isinstance(i, Instr) and i.name == "LOAD_FAST_AND_CLEAR"}
    if not saved:
        return set()
    restores = set()
    in_run = False
    seen = set()
    for index, item in enumerate(items):
        if isinstance(item, Label):
            in_run, seen = True, set()
            continue
        if not isinstance(item, Instr):
            continue
        if item.name in ("END_FOR", "END_ASYNC_FOR"):
            in_run, seen = True, set()
        elif item.name in ("POP_TOP", "SWAP"):
            pass
        elif item.name == "STORE_FAST" and in_run:
            name = _variable_name(item)
            if name in saved and name not in seen:
                restores.add(index)
            seen.add(name)
        else:
            in_run = False
    return restores


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


def _block_depth(items):
    """Deepest block nesting of 3.10 code, in code order (enough to stay below the limit)."""
    depth = deepest = 0
    for item in items:
        if isinstance(item, Instr):
            if item.name in ins.BLOCK_SETUPS:
                depth += 1
                deepest = max(deepest, depth)
            elif item.name == "POP_BLOCK":
                depth -= 1
    return deepest


def _split_superinstructions(items):
    out = []
    for item in items:
        split = ins.split_superinstruction(item) if isinstance(item, Instr) else None
        out.extend(split or (item,))
    return out


def _inplace_object_stores(items):
    """Indices of the attribute and item stores of an augmented assignment (``c.items +=
    [1]``): the value stored may be the old one changed in place, which other variables
    may show too."""
    found = set()
    for index, item in enumerate(items):
        if not (isinstance(item, Instr) and item.name in ("STORE_ATTR", "STORE_SUBSCR")):
            continue
        before = index - 1
        while before >= 0 and isinstance(items[before], Instr) \
                and items[before].name in ins.STACK_SHUFFLES:
            before -= 1
        if before >= 0 and isinstance(items[before], Instr) \
                and ins.is_inplace_operator(items[before]):
            found.add(index)
    return found


# Depth of the value an attribute or item store stores (see OBJECT_STORES).
STORED_VALUE = {"STORE_ATTR": 2, "STORE_SUBSCR": 3}


def _store_probe(item, stores, restores, index, inplace):
    """Probe instructions to put before store/delete instruction ``item`` (or [])."""
    name = item.name
    if name in NAME_STORES:
        site = stores.site(_variable_name(item), NAME_STORES[name])
        if site is None:
            return []
        if index in restores:
            return ins.call_with_consts(RESTORE, site)
        return ins.call_with_top(STORE, site)
    if name in NAME_DELETES:
        site = stores.site(_variable_name(item), NAME_DELETES[name])
        return [] if site is None else ins.call_with_consts(DELETE, site)
    if name == "LOAD_FAST_AND_CLEAR":
        return ins.call_with_consts(SAVE, stores.site(_variable_name(item), "frame"))
    if name in OBJECT_STORES:
        try:
            probes = ins.call_with_stack_item(MUTATE, OBJECT_STORES[name], stores.fid)
            if index in inplace:
                probes += ins.call_with_stack_item(MUTATE, STORED_VALUE[name], stores.fid)
            return probes
        except InstrumentationError:
            return []
    return []


def _takes_no_probe(item, previous):
    """Whether no probe can go before ``item`` (after ``previous``, or None): a line site
    there is carried to a later instruction."""
    return item.name in ins.NO_PROBE_BEFORE \
        or (previous is not None and previous.name in ins.NO_PROBE_AFTER)


class _SiteEffects:
    """What may run between a line site and the next line event, for SITE_RUNS_CODE and the
    calls a site expects (SITE_CALLS_SHIFT): the instructions reachable from the site, in
    the original code, without passing a line event (an instruction of another line that
    can take a site, or a jump back to a site of the same line: its site id is not larger).

    The calls are counted only where every path runs all of them once: none after a
    branch (an ``if`` expression, ``and``/``or``, a loop's exit, a handler's setup; the
    branch of an ``if`` or ``while`` condition that ends its line is after its calls), no
    loop without a line event, and all of its line's calls or none of them (a ``finally``
    body compiled twice, or nested calls over several lines, are checked in full as
    before), so that each counted call runs exactly once unless the region is left early
    (then the count does not match, which is the safe side).  A branch before calls is what
    hides best the calls the count cannot see: a C function that changes an object and
    calls back recorded code once counts as the one call it is (ShadowFrame's docstring);
    across branches such a call could stand in for the other path's.  So a multi-line
    call makes its calls on the last visit of its first line, and a ``for`` loop's head,
    which calls nothing, expects nothing; its line's first visit (the iterator's call, then
    the branch of FOR_ITER) is checked in full, as a line with an ``if`` expression and a
    call is.  Calls of builtins that change nothing (instructions.calls_pure_builtin:
    ``len``, ``isinstance``, ...) make a region that calls nothing else run no code to
    check; beside other calls they count as calls (a recorded function they call back,
    ``__len__ = size``, must not stand in for another call's)."""

    def __init__(self, items, targets):
        self.items = items
        self.index_of = {}  # label -> index of the first instruction after it
        self.sited = set()  # indexes of instructions that a jump reaches at a site
        # A dict, not a collections.Counter: that module runs with the program's builtins
        # (isolation.py), which a program may have wrapped.
        self.line_calls = {}
        self.pure_calls = set()  # indexes of calls of builtins that change nothing
        for index, item in enumerate(items):
            if isinstance(item, Instr) and item.name in ins.CALLS:
                self.line_calls[item.lineno] = self.line_calls.get(item.lineno, 0) + 1
                if ins.calls_pure_builtin(items, index):
                    self.pure_calls.add(index)
        pending = []
        for index, item in enumerate(items):
            if isinstance(item, Label):
                pending.append(item)
            elif isinstance(item, Instr):
                for label in pending:
                    self.index_of[label] = index
                    if label in targets and item.lineno is not None:
                        self.sited.add(index)
                pending.clear()

    def flags(self, start, line):
        """SITE_RUNS_CODE and calls of a site of ``line`` placed before ``items[start]``."""
        items = self.items
        calls = own = late = pure = 0  # late: calls after a branch
        runs = False
        seen = set()
        # (index, previous instruction, index jumped from, whether a branch came before)
        todo = [(start, None, None, False)]
        while todo:
            index, previous, source, branched = todo.pop()
            while index < len(items) and not isinstance(items[index], Instr):
                index += 1  # labels, try blocks, line markers
            if index >= len(items) or index == start and seen:
                continue  # the end, or back at the site: a line event
            item = items[index]
            if item.lineno is not None and item.lineno != line \
                    and not _takes_no_probe(item, previous):
                continue  # another line's event
            backward = source is not None and index <= source
            if backward and index in self.sited:
                continue  # back to a site of this line: a line event
            if backward:  # a loop with no line event: its calls may run many times
                return SITE_RUNS_CODE
            if index in seen:
                continue
            seen.add(index)
            if item.name in ins.CALLS:
                calls += 1
                own += item.lineno == line
                late += branched
                pure += index in self.pure_calls
            elif ins.runs_code(item):
                runs = True
            if isinstance(item.arg, Label):
                target = self.index_of.get(item.arg)
                branched = branched or not item.is_uncond_jump()
                if target is not None:
                    todo.append((target, item, index, branched))
            if not (item.is_uncond_jump() or item.is_final()):
                todo.append((index + 1, item, None, branched))
        if calls == pure:  # none, or only builtins that change nothing
            return SITE_RUNS_CODE if runs else 0
        if runs or late or 0 < own < self.line_calls.get(line, 0):
            return SITE_RUNS_CODE
        return (SITE_RUNS_CODE if calls else 0) | (calls << SITE_CALLS_SHIFT)


def _insert_probes(bc, registry, fid, arg_loads, cell_loads, stores):
    items = _split_superinstructions(list(bc))
    restores = _comprehension_restores(items) if ins.HAS_INLINED_COMPREHENSIONS else set()
    inplace = _inplace_object_stores(items)
    start = _prologue_length(items)
    handler = Label()
    out = items[:start]
    first = next((i for i in items[start:] if isinstance(i, Instr)), None)
    if first is None:
        raise InstrumentationError("code object without a body")
    if ins.PROLOGUE_TAKES_BODY_LINE:
        for item in out:
            if isinstance(item, Instr) and item.lineno is None:
                item.location = first.location
    out.extend(_located(ins.call_with_tuples(CALL, fid, arg_loads, cell_loads), first))

    wrap = ins.HAS_EXCEPTION_TABLE or _block_depth(items) + 2 < ins.MAX_BLOCKS
    if not ins.HAS_EXCEPTION_TABLE and wrap:
        out.append(Instr("SETUP_FINALLY", handler, location=first.location))
    prologue = sum(1 for item in out if isinstance(item, Instr))

    # Labels that start a line event when reached: jump and handler targets, except the
    # 3.11+ send loop's JUMP_BACKWARD_NO_INTERRUPT, which sys.settrace does not report.
    targets = set()
    for item in items:
        if isinstance(item, TryBegin):
            targets.add(item.target)
        elif isinstance(item, Instr) and isinstance(item.arg, Label) \
                and item.name != "JUMP_BACKWARD_NO_INTERRUPT":
            targets.add(item.arg)
    effects = _SiteEffects(items, targets)

    # Handlers of the program's own try/with statements (not our catch-all).
    user_handlers = {item.target for item in items if isinstance(item, TryBegin)} | {
        item.arg for item in items if isinstance(item, Instr) and item.name in ins.BLOCK_SETUPS}
    catch_pending = False

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
    forced = False  # the next line site is a line event even on the same line
    after_no_line = False  # falling through from an instruction without a line
    carried = None  # a line site that could not be placed before a fused instruction
    prev_instr = None
    for index in range(start, len(items)):
        item = items[index]
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
            if item in user_handlers:
                catch_pending = True
            after_label = after_label or item in targets
            if item in targets:
                after_no_line = False  # the previous instruction may be a jump's source
            out.append(item)
            continue
        if not isinstance(item, Instr):
            out.append(item)
            continue

        if ins.HAS_EXCEPTION_TABLE and not in_user_try and our_try is None:
            our_try = TryBegin(handler, push_lasti=True, stack_depth=0)
            out.append(our_try)

        if catch_pending:
            # Before the handler's own line step: the event belongs to the raising line.
            catch_pending = False
            upcoming = [i.name for i in items[index:index + 4] if isinstance(i, Instr)]
            if ins.is_handler_entry(upcoming):
                out.extend(_located(ins.call_with_stack_item(
                    CATCH, ins.HANDLER_EXCEPTION_DEPTH, fid), item))

        line = item.lineno
        site_line = None
        if line is not None and (line != prev_line or after_label):
            site_line = line
        elif carried is not None and (line is None or line == carried):
            site_line = carried
        carried = None
        if line is not None:
            if after_no_line:
                forced = True
                after_no_line = False
            prev_line = line
            after_label = False
        elif ins.NO_LINE_RESETS_LINE:
            prev_line = None
            after_no_line = prev_instr is not None

        blocked = _takes_no_probe(item, prev_instr)
        if site_line is not None:
            if blocked:
                carried = site_line
            else:
                flags = (SITE_FORCED if forced else 0) | effects.flags(index, site_line)
                last_site = registry.line_site(fid, site_line, flags)
                forced = False
                out.extend(_located(ins.call_with_consts(STEP, last_site), item))

        name = item.name
        out.extend(_located(_store_probe(item, stores, restores, index, inplace), item))
        if name == "RETURN_VALUE":
            out.extend(_located(ins.call_with_top(RETURN, fid), item))
        elif name == "RETURN_CONST":
            out.extend(_located(ins.call_with_consts(RETURN, item.arg, fid), item))
        elif ins.is_async_generator_wrap(item) or (
                name == "YIELD_VALUE" and not ins.is_async_generator_wrap(prev_instr)):
            # An async generator's value is wrapped just before YIELD_VALUE: report the
            # program's value, before the wrap.
            yield_line = -1 if prev_line is None else prev_line
            if ins.THROW_READS_ARG_BEFORE_YIELD and prev_instr is not None \
                    and prev_instr.name == "SEND":
                probe = ins.call_with_top_before_send_yield(YIELD, fid, yield_line)
            else:
                probe = ins.call_with_top(YIELD, fid, yield_line)
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
    if wrap:
        out.append(handler)
        # No line: an interpreter reports a line event when an exception jumps to a handler
        # on another line than the raising one (3.10) or to a handler's first instruction
        # (3.11+), and an exception leaving the frame must be reported as without this one.
        unwind = ins.unwind_handler(UNWIND, fid)
        for instr in unwind:
            instr.lineno = None
        out.extend(unwind)

    bc[:] = out
    return bc, prologue
