"""Meta-path finder that lets the normal finders find and wraps the loader of selected modules.

Only plain source modules (``SourceFileLoader`` specs with a file origin) are instrumented;
namespace packages, extension modules, zip and frozen modules pass through untouched.  The
instrumented code is compiled from source on every import and never written to any
``__pycache__``, so a plain interpreter can never load it.  Modules that pytest's assertion
rewriting loads itself are instrumented through pytest_support.py instead.
"""

import importlib.machinery
import sys
import threading

from . import pytest_support
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
    ``decisions`` maps every module name the finder was asked about to (bool, reason).
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
        pytest_support.attach_if_loaded(self)

    def uninstall(self):
        while self._finder in sys.meta_path:
            sys.meta_path.remove(self._finder)
        pytest_support.detach_if_loaded(self)

    def warn_once(self, key, message):
        """Print ``ctinstrument: warning: message`` the first time ``key`` comes up."""
        if key in self._warned:
            return
        self._warned.add(key)
        # Written directly: the program's warning filters must not turn it into an error.
        try:
            sys.stderr.write("ctinstrument: warning: %s\n" % message)
        except Exception:
            pass

    def instrument(self, code, module_name, path):
        """Return the instrumented ``code`` of ``module_name``, or ``code`` itself on failure."""
        try:
            new = instrument_module_code(code, self.registry, module_name, path)
        except InstrumentationError as exc:
            self.warn_once(module_name, "%s; running it unrecorded" % exc)
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
        if fullname == pytest_support.REWRITE_MODULE:
            return self._adapt_pytest(fullname, path, target)
        verdict, reason = hook.selection.by_name(fullname)
        if verdict is False:
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
            hook.decisions[fullname] = (False, "not a plain source module (%s)"
                                        % type(loader).__name__)
            return spec
        accepted, reason = hook.selection.accepts(fullname, spec.origin)
        hook.decisions[fullname] = (accepted, reason)
        if accepted:
            spec.loader = InstrumentingLoader(fullname, spec.origin, hook)
        return spec

    def _adapt_pytest(self, fullname, path, target):
        """The spec of pytest's assertion rewriting module, loaded so that it gets adapted."""
        spec = self._find_elsewhere(fullname, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = pytest_support.AttachAfterLoad(spec.loader, self._hook)
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
