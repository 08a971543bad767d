"""A private copy of the builtins for the code that records: ctinstrument's modules and the
``bytecode`` library.

Programs delete, replace or wrap builtins (``del builtins.len``, a counting ``isinstance``,
a patched ``print``, sandboxes).  ctinstrument's submodules and ``bytecode`` run while the
program runs (the import hook rewrites modules when the program imports them, lazily
imported modules load then), so they must neither break nor be seen by such wrappers.
``install()`` puts a finder first in ``sys.meta_path`` that loads them with
``__builtins__`` set to this copy, taken when ctinstrument is imported, *before* their
module bodies run: a function takes its builtins from its module's ``__builtins__`` when it
is created, a module body when it starts.

Standard-library functions the recorder calls while recording have the program's builtins;
for the modules that use builtins there, private copies (``private_module``) are executed
with the private builtins: the path functions (``PATH``, ctinstrument's ``os.path``) and
``enum`` (``bytecode``'s compiler flags are ``IntFlag``s; its ``import enum`` gets the copy).
Module attributes the recorder uses while recording (``sys._getframe``, ``os.getcwd``, ...)
are bound by the modules that use them, when they are imported.

Not covered: imports of ctinstrument's or ``bytecode``'s modules after the program started
go through the import system's own Python code (``importlib._bootstrap``), which looks up
the program's builtins as every import does; ``PATH`` still calls the ``os`` functions
(``os.fspath``, ``os.stat``) the program may replace.
"""

import builtins
import os
import sys
import types
from importlib.machinery import PathFinder

PRIVATE_BUILTINS = dict(builtins.__dict__)
__builtins__ = PRIVATE_BUILTINS  # this module's own functions run during imports too
_import = builtins.__import__
_copies = {}


def private_module(name):
    """A copy of the (pure Python) module ``name`` executed with the private builtins, not
    in ``sys.modules``; the same copy on every call.  Raises ImportError if ``name`` cannot
    be imported or has no code object."""
    module = _copies.get(name)
    if module is None:
        _import(name)
        spec = sys.modules[name].__spec__
        code = spec.loader.get_code(name) if spec is not None else None
        if code is None:
            raise ImportError("no code object for module %r" % name, name=name)
        module = types.ModuleType(name)
        module.__dict__.update(__builtins__=PRIVATE_BUILTINS, __spec__=spec,
                               __file__=spec.origin)
        exec(code, module.__dict__)
        _copies[name] = module
    return module


def _private_import(name, globals=None, locals=None, fromlist=(), level=0):
    if name == "enum" and level == 0:
        return private_module(name)
    return _import(name, globals, locals, fromlist, level)


PATH = private_module(os.path.__name__)


def make_directories(path):
    """``os.makedirs(path, exist_ok=True)`` through ``PATH`` (``os.makedirs`` calls the
    shared ``os.path``, whose functions run with the program's builtins).  Raises OSError."""
    parent = PATH.dirname(path)
    if parent != path and not PATH.isdir(parent):
        make_directories(parent)
    try:
        os.mkdir(path)
    except FileExistsError:
        pass

PRIVATE_BUILTINS["__import__"] = _private_import

# Packages loaded with the private builtins (ctinstrument itself is loaded by the program's
# import system before install() runs; it only defines the lazy API).
PRIVATE_PACKAGES = ("ctinstrument", "bytecode")


class _PrivateLoader:
    """Wraps the loader a path finder chose: same module, private ``__builtins__``."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        module.__dict__["__builtins__"] = PRIVATE_BUILTINS
        self._loader.exec_module(module)

    def __getattr__(self, name):  # get_source, get_code, get_resource_reader, ...
        return getattr(self._loader, name)


class _PrivateFinder:
    """The ``sys.meta_path`` entry: finds ``PRIVATE_PACKAGES`` modules as ``PathFinder``
    would, and wraps their loader."""

    @staticmethod
    def find_spec(fullname, path=None, target=None):
        if fullname.partition(".")[0] not in PRIVATE_PACKAGES or fullname == "ctinstrument":
            return None
        spec = PathFinder.find_spec(fullname, path, target)
        if spec is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _PrivateLoader(spec.loader)
        return spec

    @staticmethod
    def invalidate_caches():
        pass


def install():
    """Put the finder first in ``sys.meta_path`` (once)."""
    if _PrivateFinder not in sys.meta_path:
        sys.meta_path.insert(0, _PrivateFinder)

