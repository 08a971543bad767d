"""Selected modules that were imported before the program started get a second, recorded copy.

ctinstrument, its dependencies (click, orjson, bytecode) and the interpreter's start-up
import standard modules (textwrap, difflib, json, re, ...) before the import hook can see
them.  ``evict`` removes each such module that the selection accepts from ``sys.modules``,
so the program's own ``import textwrap`` executes the module again, through the hook, at
the moment a plain run would have executed it: the program gets an instrumented copy.
Modules that imported the first copy (ctinstrument, click, ...) keep their reference to it,
so the recorder never runs instrumented code for itself.

A module keeps its first copy, unrecorded, when a second copy would behave differently from
the one the program would have had (``refusal`` gives the reason):

* it has no Python source the hook can instrument (builtin, frozen, extension module);
* a class it created is the base or the metaclass of a class of another module already
  imported (``enum.Enum`` of ``re.RegexFlag``, ``abc.ABCMeta`` of ``collections.abc``):
  those objects would fail ``isinstance`` against the second copy's classes;
* an object it created is installed in the interpreter (``sys.meta_path``,
  ``sys.path_hooks``, ``sys.excepthook``, ...): the interpreter keeps calling the first copy;
* it holds state the interpreter or other modules reach through the first copy
  (``SHARED``: the codec registry, pickle's dispatch table, the warning filters, threading's
  shutdown, the root logger, ...) or its import reconfigured the interpreter (``site``);
* it is part of a package that is not copied whole: a package already bound its
  submodules' objects (``json`` holds ``json.decoder.JSONDecodeError``), so a package and
  its imported submodules are copied together or not at all.
"""

import importlib.machinery
import sys


# Module name (or package, with its submodules) -> why a second copy would not be the
# same module to the program.
SHARED = {
    "codecs": "the codec registry and its search functions are process-wide",
    "encodings": "the codec search function registered at start-up is the first copy's",
    "copyreg": "pickle and copy use the first copy's dispatch table",
    "warnings": "the warning filters and showwarning are shared with the interpreter",
    "threading": "the interpreter calls the first copy's _shutdown at exit and its thread "
                 "registry knows the running threads",
    "site": "it ran at start-up and configured sys.path and builtins",
    "_sitebuiltins": "builtins.help, exit and quit are the first copy's objects",
    "os": "os.environ and the os.path module are the first copy's",
    "posixpath": "it is os.path, bound by the first copy of os",
    "ntpath": "it is os.path, bound by the first copy of os",
    "importlib": "it is part of the import system this process runs on",
    "zipimport": "it is part of the import system this process runs on",
    "linecache": "tracebacks read the first copy's source cache",
    "logging": "the root logger, its handlers and the logger registry are process-wide",
    "dataclasses": "dataclasses made by already-imported modules carry the first copy's "
                   "field markers (fields() and asdict() of a second copy ignore them)",
}

# Interpreter hooks whose objects tie their module to its first copy.
_HOOK_LISTS = ("meta_path", "path_hooks")
_HOOKS = ("excepthook", "displayhook", "breakpointhook", "unraisablehook")


def candidates(selection, names=None, modules=None):
    """Names of the modules in ``modules`` (default ``sys.modules``; only those in ``names``
    if given) that ``selection`` accepts, ``__main__`` aside, sorted (a package before its
    submodules)."""
    modules = sys.modules if modules is None else modules
    if names is None:
        names = list(modules)
    found = []
    for name in names:
        module = modules.get(name)
        if name == "__main__" or module is None:
            continue
        origin = getattr(module, "__file__", None)
        if isinstance(origin, str) and selection.accepts(name, origin)[0]:
            found.append(name)
    return sorted(found)


def _shared_reason(name):
    for prefix, reason in SHARED.items():
        if name == prefix or name.startswith(prefix + "."):
            return reason
    return None


def _source_reason(module):
    spec = getattr(module, "__spec__", None)
    loader = getattr(spec, "loader", None)
    if type(loader) is importlib.machinery.SourceFileLoader and spec.has_location:
        return None
    kind = loader if isinstance(loader, type) else type(loader)
    return "it has no Python source to instrument (%s)" % kind.__name__


def _created_classes(module):
    """The classes executing ``module`` created (re-exported classes excluded)."""
    name = module.__name__
    path = getattr(module, "__file__", None)
    created = []
    for value in list(vars(module).values()):
        if not isinstance(value, type):
            continue
        if value.__module__ == name or any(
                getattr(getattr(member, "__code__", None), "co_filename", None) == path
                for member in list(vars(value).values())):
            created.append(value)
    return created


def _dependent_class(module, modules):
    """``module.qualname`` of a class of another module whose base or metaclass
    ``module`` created, or None."""
    created = _created_classes(module)
    if not created:
        return None
    own = module.__name__
    for cls in created:
        for sub in type.__subclasses__(cls):
            if sub.__module__ != own:
                return "%s.%s" % (sub.__module__, sub.__qualname__)
    metaclasses = {id(cls) for cls in created if issubclass(cls, type)}
    if not metaclasses:
        return None
    for other_name, other in list(modules.items()):
        if other_name == own or other is None:
            continue
        try:
            values = list(vars(other).values())
        except TypeError:  # not a module: some libraries put other objects there
            continue
        for value in values:
            if isinstance(value, type) and id(type(value)) in metaclasses and (
                    value.__module__ != own):
                return "%s.%s" % (value.__module__, value.__qualname__)
    return None


def _installed_reason(module):
    name = module.__name__
    installed = [(attr, entry) for attr in _HOOK_LISTS
                 for entry in getattr(sys, attr, ())]
    installed += [(attr, getattr(sys, attr, None)) for attr in _HOOKS]
    for attr, entry in installed:
        owner = getattr(entry, "__module__", None) or getattr(type(entry), "__module__", None)
        if owner == name:
            return "its %r is installed in sys.%s" % (entry, attr)
    return None


def refusal(name, modules=None):
    """Why module ``name`` of ``modules`` (default ``sys.modules``) cannot get a second
    copy, ignoring its package (see ``evict``); None if it can."""
    modules = sys.modules if modules is None else modules
    module = modules[name]
    reason = _source_reason(module) or _shared_reason(name) or _installed_reason(module)
    if reason:
        return reason
    dependent = _dependent_class(module, modules)
    if dependent:
        return "its classes are bases or metaclasses of classes of already-imported " \
               "modules (%s)" % dependent
    return None


def evict(names, modules=None):
    """Remove from ``modules`` (default ``sys.modules``) the modules of ``names`` that can
    get a second copy; returns (evicted names, {name: reason} for the others)."""
    modules = sys.modules if modules is None else modules
    chosen = set(names)
    refused = {}
    for name in names:
        try:
            reason = refusal(name, modules)
        except Exception as exc:  # an odd object in sys.modules: keep it as it is
            reason = "it cannot be inspected (%s: %s)" % (type(exc).__name__, exc)
        if reason:
            refused[name] = reason
    changed = True
    while changed:  # a package and its imported submodules go together or stay
        changed = False
        for name in sorted(chosen - set(refused)):
            parent = name.rpartition(".")[0]
            if parent and parent in modules and (parent not in chosen or parent in refused):
                refused[name] = "its package %s keeps its first copy" % parent
                changed = True
                continue
            kept = [child for child in modules if child.startswith(name + ".")
                    and (child not in chosen or child in refused)]
            if kept:
                refused[name] = "its submodule %s keeps its first copy" % min(kept)
                changed = True
    evicted = sorted(chosen - set(refused))
    for name in evicted:
        del modules[name]
    return evicted, refused
