"""Portable ids in instrumented code, and binding them to the recorder of this process.

The rewriter embeds function, line-site and store-site ids in the code it generates, as
constants.  Code that may be cached and loaded by another process cannot carry this
process's ids, so modules are always rewritten against a ``PortableRegistry``: it hands out
ids local to the module, in ranges no real id reaches (``FUNCTION_BASE``, ``LINE_BASE``,
``STORE_BASE``, each ``SPAN`` wide), and records every registry call in order.  A rewrite
gives a ``Portable``: the code tree plus that registration list (tuples of str, int, bool
and None), both marshal-able.

``bind`` replays the registrations on the real registry (the recorder, which interns paths,
functions and variable names and emits their definitions exactly as if the rewriter had
asked it directly) and rebuilds the code tree with every portable id replaced by the real
one.  Replaying in order keeps line-site ids increasing in code order.  A module whose own
code holds an int constant in the portable ranges cannot be told apart from its probes:
``has_portable_constants`` detects it and the caller rewrites it against the real registry.

This module never touches files (code_cache.py does).
"""

import collections
import types

from .errors import InstrumentationError
from .protocol import MODULE_FRAME, ProbeRegistry, module_label

SHIFT = 40
SPAN = 1 << SHIFT
FUNCTION_KIND, LINE_KIND, STORE_KIND = 1, 2, 3
FUNCTION_BASE = FUNCTION_KIND << SHIFT
LINE_BASE = LINE_KIND << SHIFT
STORE_BASE = STORE_KIND << SHIFT
PORTABLE_END = (STORE_KIND + 1) << SHIFT

# One rewritten module: the code tree with portable ids and the registry calls to replay.
Portable = collections.namedtuple("Portable", "code registrations")


class PortableRegistry(ProbeRegistry):
    """Hands out portable ids and records each call (see the module docstring).

    Registrations, in call order:
    ``("function", line, name, argnames, cellnames, kind, module_id)``,
    ``("line", function_id, line, forced)``, ``("store", function_id, name, in_module)``,
    with portable function ids; after them ``("rejected", qualname, reason)`` for each code
    object the verifier rejected (it runs uninstrumented; see ``rejections``).  The path is not recorded: it is the module's own, given to
    ``bind``.  The module body's name is replaced by ``bind`` too (a file can be imported
    under two names).
    """

    def __init__(self):
        self.registrations = []
        self._counts = [0, 0, 0, 0]

    def _new_id(self, kind):
        index = self._counts[kind]
        if index >= SPAN:
            raise InstrumentationError("too many probe sites in one module")
        self._counts[kind] = index + 1
        return (kind << SHIFT) + index

    def function_id(self, path, line, name, argnames, cellnames, kind, module_id):
        self.registrations.append(("function", line, name, tuple(argnames), tuple(cellnames),
                                   kind, module_id))
        return self._new_id(FUNCTION_KIND)

    def line_site(self, function_id, line, flags):
        self.registrations.append(("line", function_id, line, flags))
        return self._new_id(LINE_KIND)

    def store_site(self, function_id, name, in_module_namespace):
        self.registrations.append(("store", function_id, name, bool(in_module_namespace)))
        return self._new_id(STORE_KIND)


def instrument_portable(code, module_name, path, rewrite=None):
    """``rewriter.instrument_module_code`` (or ``rewrite``, the same function imported by
    the caller, see import_hook.py) against a fresh ``PortableRegistry``; returns a
    Portable.

    Raises InstrumentationError like the rewriter.
    """
    if rewrite is None:
        from .rewriter import instrument_module_code as rewrite
    registry = PortableRegistry()
    rejected = []
    new = rewrite(code, registry, module_name, path, rejected)
    rejections = tuple(("rejected", qualname, reason) for qualname, reason in rejected)
    return Portable(new, tuple(registry.registrations) + rejections)


def rejections(portable):
    """``[(qualname, reason)]`` of the code objects of ``portable`` left uninstrumented."""
    return [entry[1:] for entry in portable.registrations if entry[0] == "rejected"]


def has_portable_constants(code):
    """Whether ``code`` or a nested code object has an int constant in the portable ranges."""
    for const in code.co_consts:
        kind = type(const)
        if kind is int:
            if FUNCTION_BASE <= const < PORTABLE_END:
                return True
        elif kind is types.CodeType and has_portable_constants(const):
            return True
    return False


def bind(portable, registry, module_name, path):
    """Replay ``portable.registrations`` on ``registry`` and return the code tree with real
    ids (and ``co_filename`` set to ``path``, as a loaded ``.pyc`` gets its source's path)."""
    functions = []
    lines = []
    stores = []
    label = module_label(module_name)
    for entry in portable.registrations:
        what = entry[0]
        if what == "line":
            _, fid, line, flags = entry
            lines.append(registry.line_site(functions[fid - FUNCTION_BASE], line, flags))
        elif what == "store":
            _, fid, name, in_module = entry
            stores.append(registry.store_site(functions[fid - FUNCTION_BASE], name, in_module))
        elif what == "function":
            _, line, name, argnames, cellnames, kind, module_id = entry
            if kind == MODULE_FRAME:
                name = label
            if module_id is not None:
                module_id = functions[module_id - FUNCTION_BASE]
            functions.append(registry.function_id(path, line, name, argnames, cellnames, kind,
                                                  module_id))
        elif what != "rejected":
            raise InstrumentationError("unknown registration %r" % (what,))
    return _replace_ids(portable.code, (None, functions, lines, stores), path, registry)


def _replace_ids(code, real, path, registry):
    consts = []
    function_id = None
    for const in code.co_consts:
        kind = type(const)
        if kind is int:
            if FUNCTION_BASE <= const < PORTABLE_END:
                if const < LINE_BASE:
                    function_id = const  # a code object's probes name only its own function
                const = real[const >> SHIFT][const & (SPAN - 1)]
        elif kind is types.CodeType:
            const = _replace_ids(const, real, path, registry)
        consts.append(const)
    new = code.replace(co_consts=tuple(consts), co_filename=path)
    if function_id is not None:
        registry.code_bound(new, real[1][function_id - FUNCTION_BASE])
    return new
