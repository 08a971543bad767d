"""Meta-path finder that lets the normal finders find and wraps the loader of selected modules.

Only plain source modules (``SourceFileLoader`` specs with a file origin) are instrumented;
namespace packages, extension modules, zip and frozen modules pass through untouched.
Modules that pytest's assertion rewriting loads itself are instrumented through
pytest_support.py instead.

Every module is rewritten with portable ids and then bound to the registry (binding.py), so
the rewritten code can be kept in the private cache (code_cache.py): an import whose source
is unchanged since it was cached skips compiling and rewriting.  The ordinary ``.pyc`` files
are never read or written here, so a plain interpreter never loads instrumented code.

The rewriter (and the ``bytecode`` library) is imported on the first rewrite, so a run whose
modules are all cached never imports it.  That import may happen while the program runs; it
is made to see what an import at start-up would have seen (``ImportHook.import_own``).
"""

import importlib
import importlib.machinery
import sys
import threading

from . import pytest_support, reimport
from .binding import bind, has_portable_constants, instrument_portable, rejections
from .code_cache import CodeCache
from .errors import InstrumentationError
from .isolation import PATH
from .tracing_shield import passes_through


MAX_LISTED_REJECTIONS = 100  # in trace_metadata.json; the count covers all


class InstrumentingLoader(importlib.machinery.SourceFileLoader):
    """A ``SourceFileLoader`` whose ``get_code`` returns instrumented code, from the private
    cache when it holds an entry for the current source."""

    def __init__(self, fullname, path, hook):
        super().__init__(fullname, path)
        self._hook = hook

    def get_code(self, fullname):
        source = self.get_data(self.path)
        hook = self._hook
        if hook.cache is not None:
            portable = hook.cache.load(self.path, source)
            if portable is not None:
                return hook.bind(portable, fullname, self.path)
        code = self.source_to_code(source, self.path)
        return hook.instrument(code, fullname, self.path, source=source)


class ImportHook:
    """Instruments the modules ``selection`` accepts, with ids from ``registry``.

    ``install()`` puts the finder first in ``sys.meta_path``; ``uninstall()`` removes it.
    ``decisions`` maps every module name the finder was asked about to (bool, reason);
    a name rejected before any finder looked for it may name no module at all.
    ``cache``: keep rewritten modules in the private code cache (False: rewrite on every
    import; a ``CodeCache``: that one).  ``stats`` counts modules ``rewritten`` (the main
    script included), ``loaded`` from and ``written`` to the cache; the session puts it in
    ``trace_metadata.json``.
    ``verifier`` counts the code objects the verifier ``rejected`` (they run uninstrumented)
    and lists the first ones (module, function, reason); also in ``trace_metadata.json``.
    """

    def __init__(self, selection, registry, cache=True):
        self.selection = selection
        self.registry = registry
        self.decisions = {}
        self.instrumented = []
        if cache is True:
            cache = CodeCache()
        self.cache = cache or None
        self.stats = self.cache.stats if self.cache is not None else {}
        self.stats.update(cache=self.cache is not None, rewritten=0)
        self.verifier = {"rejected": 0, "functions": []}
        self._finder = _Finder(self)
        self._warned = set()
        self._rewrite = None
        self._own_lock = threading.Lock()
        # What ctinstrument's own imports resolve against (the program's directory is not
        # on it yet; see runner.py).
        self._launch_path = list(sys.path)
        # Taken now, like the recorder's: the program's replacement of sys.stderr (or the
        # output capture's proxy) must not see ctinstrument's warnings.
        self._stderr = sys.__stderr__

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
            self._stderr.write("ctinstrument: warning: %s\n" % message)
        except Exception:
            pass

    def instrument(self, code, module_name, path, source=None):
        """Return the instrumented ``code`` of ``module_name``, or ``code`` itself on failure.

        With ``source`` (the bytes ``code`` was compiled from), the rewritten module is also
        written to the cache.
        """
        try:
            rewrite = self._rewriter()
        except Exception as exc:  # a broken installation: the program still runs
            self.warn_once("rewriter", "cannot import the rewriter (%s: %s); running "
                           "modules unrecorded" % (type(exc).__name__, exc))
            self.decisions[module_name] = (False, "the rewriter cannot be imported")
            return code
        try:
            if has_portable_constants(code):
                # Its own constants would be taken for probe ids: rewrite with real ids,
                # uncached (never seen in real code; see binding.py).
                rejected = []
                new = rewrite(code, self.registry, module_name, path, rejected)
                self.report_rejected(module_name, rejected)
                portable = None
            else:
                portable = instrument_portable(code, module_name, path, rewrite)
        except InstrumentationError as exc:
            self.warn_once(module_name, "%s; running it unrecorded" % exc)
            self.decisions[module_name] = (False, str(exc))
            return code
        self.stats["rewritten"] += 1
        if portable is None:
            self.instrumented.append(module_name)
            return new
        if source is not None and self.cache is not None:
            self.cache.store(path, source, portable)
        return self.bind(portable, module_name, path)

    def main_code(self, path, source, code, portable):
        """The instrumented code of the main script ``path`` (``source``: its bytes): bound
        from ``portable`` (its cache entry) if not None, else rewritten from ``code`` and
        cached like a module."""
        if portable is not None:
            return self.bind(portable, "__main__", path)
        return self.instrument(code, "__main__", path, source=source)

    def _rewriter(self):
        """``rewriter.instrument_module_code``, imported on first use (see the module
        docstring)."""
        if self._rewrite is None:
            self._rewrite = self.import_own(__package__ + ".rewriter").instrument_module_code
        return self._rewrite

    def import_own(self, name):
        """Import ctinstrument's module ``name`` as start-up would have: whatever the program
        has imported or put on ``sys.path`` meanwhile, ``name`` and what it imports get the
        libraries, not the program's modules or instrumented copies.

        While it imports, ``sys.path`` is the one of start-up, this thread's imports pass
        the finder by, and the modules of the program's directory and the instrumented ones
        are out of ``sys.modules``; then they are put back, what the program's directory
        shadows is dropped (as ``runner.forget_shadowed_modules`` does at start-up) and the
        selected modules it imported are evicted (reimport.py), so the program still gets
        its own modules and recorded copies.  Returns the module; raises what the import
        raised.
        """
        with self._own_lock:
            module = sys.modules.get(name)
            return module if module is not None else self._import_own(name)

    def _import_own(self, name):
        directory = self.selection.project_dir
        instrumented = set(self.instrumented) - {"__main__"}
        hidden = {entry: sys.modules[entry] for entry in list(sys.modules)
                  if entry in instrumented or directory and _shadowed(entry, directory)}
        for entry in hidden:
            del sys.modules[entry]
        before = set(sys.modules)
        program_path = list(sys.path)
        self._finder.bypass(True)
        try:
            sys.path[:] = self._launch_path
            module = importlib.import_module(name)
        finally:
            sys.path[:] = program_path
            self._finder.bypass(False)
            added = [entry for entry in list(sys.modules) if entry not in before]
            for entry in added:
                if entry in hidden or directory and _shadowed(entry, directory):
                    del sys.modules[entry]
            sys.modules.update(hidden)
            refused = reimport.evict(reimport.candidates(self.selection, added))[1]
            for entry, why in sorted(refused.items()):
                self.decisions[entry] = (False, "imported by ctinstrument: " + why)
                self.warn_once(entry, "%s was imported by ctinstrument and is not recorded: %s"
                               % (entry, why))
        return module

    def bind(self, portable, module_name, path):
        """The code of a rewritten module (``binding.Portable``) with this process's ids."""
        self.instrumented.append(module_name)
        self.report_rejected(module_name, rejections(portable))
        return bind(portable, self.registry, module_name, path)

    def report_rejected(self, module_name, rejected):
        """Warn once per function of ``module_name`` the verifier rejected, and count it."""
        for qualname, reason in rejected:
            self.verifier["rejected"] += 1
            if len(self.verifier["functions"]) < MAX_LISTED_REJECTIONS:
                self.verifier["functions"].append(
                    {"module": module_name, "function": qualname, "reason": reason})
            self.warn_once((module_name, qualname),
                           "%s.%s would not run safely instrumented on CPython %d.%d (%s); "
                           "running it unrecorded" % ((module_name, qualname)
                                                      + sys.version_info[:2] + (reason,)))


def _shadowed(name, directory):
    """Whether module ``name`` (or its top-level package) has a file in ``directory``."""
    top = name.partition(".")[0]
    return PATH.isfile(PATH.join(directory, top + ".py")) or PATH.isfile(
        PATH.join(directory, top, "__init__.py"))


class _Finder:
    """The ``sys.meta_path`` entry (see ``ImportHook``)."""

    def __init__(self, hook):
        self._hook = hook
        self._local = threading.local()

    def bypass(self, on):
        """Let this thread's imports pass untouched (``on``) or be looked at again."""
        self._local.bypass = on

    def find_spec(self, fullname, path=None, target=None):
        if getattr(self._local, "bypass", False):
            return None
        hook = self._hook
        if fullname == pytest_support.REWRITE_MODULE:
            return self._adapt_pytest(fullname, path, target)
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

    def _adapt_pytest(self, fullname, path, target):
        """The spec of pytest's assertion rewriting module, loaded so that it gets adapted."""
        spec = self._find_elsewhere(fullname, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = pytest_support.AttachAfterLoad(spec.loader, self._hook)
        return spec

    @passes_through  # the finders it asks are the ones importlib would ask
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
