"""Meta-path finder that lets the normal finders find and wraps the loader of selected modules.

Only plain source modules (``SourceFileLoader`` specs with a file origin) are instrumented;
namespace packages, extension modules, zip and frozen modules pass through untouched.  The
instrumented code is compiled from source on every import and never written to any
``__pycache__``, so a plain interpreter can never load it.
"""

import importlib.machinery
import sys
import threading

from .errors import InstrumentationError
from .rewriter import instrument_module_code
from .isolation import PRIVATE_BUILTINS as __builtins__  # noqa: F401 (see isolation.py)


class InstrumentingLoader(importlib.machinery.SourceFileLoader):
    """A ``SourceFileLoader`` whose ``get_code`` returns instrumented code (no bytecode cache)."""

    def __init__(self, fullname, path, hook):
        super().__init__(fullname, path)
        self._hook = hook

    def get_code(self, fullname):
        source = self.get_data(self.path)
        code = self.source_to_code(source, self.path)
        return self._hook.instrument(code, fullname, self.path)


class ImportHook:
    """Instruments the modules ``selection`` accepts, with ids from ``registry``.

    ``install()`` puts the finder first in ``sys.meta_path``; ``uninstall()`` removes it.
    ``decisions`` maps every module name the finder was asked about to (bool, reason);
    a name rejected before any finder looked for it may name no module at all.
    """

    def __init__(self, selection, registry):
        self.selection = selection
        self.registry = registry
        self.decisions = {}
        self.instrumented = []
        self._finder = _Finder(self)
        self._warned = set()

    def install(self):
        if self._finder not in sys.meta_path:
            sys.meta_path.insert(0, self._finder)

    def uninstall(self):
        while self._finder in sys.meta_path:
            sys.meta_path.remove(self._finder)

    def instrument(self, code, module_name, path):
        """Return the instrumented ``code`` of ``module_name``, or ``code`` itself on failure."""
        try:
            new = instrument_module_code(code, self.registry, module_name, path)
        except InstrumentationError as exc:
            if module_name not in self._warned:
                # Written directly: the program's warning filters must not turn it into an error.
                self._warned.add(module_name)
                sys.stderr.write("ctinstrument: warning: %s; running it unrecorded\n" % exc)
            self.decisions[module_name] = (False, str(exc))
            return code
        self.instrumented.append(module_name)
        return new


class _Finder:
    """The ``sys.meta_path`` entry (see ``ImportHook``)."""

    def __init__(self, hook):
        self._hook = hook
        self._local = threading.local()

    def find_spec(self, fullname, path=None, target=None):
        hook = self._hook
        verdict, reason = hook.selection.by_name(fullname)
        if verdict is False:
            # Recorded for --explain even if no finder knows the name (see explain.py).
            hook.decisions[fullname] = (False, reason)
            return None
        busy = getattr(self._local, "busy", None)
        if busy is None:
            busy = self._local.busy = set()
        if fullname in busy:
            return None
        busy.add(fullname)
        try:
            spec = self._find_elsewhere(fullname, path, target)
        finally:
            busy.discard(fullname)
        if spec is None:
            return None
        loader = spec.loader
        if type(loader) is not importlib.machinery.SourceFileLoader or not spec.has_location:
            kind = loader if isinstance(loader, type) else type(loader)
            hook.decisions[fullname] = (False, "not a plain source module (%s)"
                                        % kind.__name__)
            return spec
        accepted, reason = hook.selection.accepts(fullname, spec.origin)
        hook.decisions[fullname] = (accepted, reason)
        if accepted:
            spec.loader = InstrumentingLoader(fullname, spec.origin, hook)
        return spec

    def _find_elsewhere(self, fullname, path, target):
        finders = sys.meta_path
        try:
            start = finders.index(self) + 1
        except ValueError:
            start = 0
        for finder in finders[start:]:
            find_spec = getattr(finder, "find_spec", None)
            if find_spec is None:
                continue
            spec = find_spec(fullname, path, target)
            if spec is not None:
                return spec
        return None

    def invalidate_caches(self):
        pass
