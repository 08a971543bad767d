"""Include/exclude patterns -> "instrument this module?" and "is this function an activation
root?", with a reason for every answer.

Pattern kinds (several may be given comma-separated):

* a dotted module name: ``pkg`` selects ``pkg`` and every ``pkg.*`` submodule;
* a glob over dotted names: ``pkg.*.views``;
* a file or directory path (it contains a path separator or ends in ``.py``, e.g. ``./tests``
  or ``src/app``): the modules whose source file is that file or lies under that directory;
* a function, ``MODULE:QUALNAME`` or ``PATH:QUALNAME`` where QUALNAME is a glob over
  ``co_qualname`` (``app.billing:Invoice.total``, ``app.jobs:*``): an *activation root*.  Its
  module is included; once any root is given, lines and calls of instrumented code are
  recorded only while a root is on the current thread's stack.

Exclude wins over include (function patterns are include-only).  With no include pattern
the selection is the *project*: modules whose source file lies under the project directory
(the main script's), outside the standard library and site-packages.  ctinstrument and its
dependencies are never selected.
"""

import fnmatch
import os
import re
import sys

from .errors import UsageError
from .isolation import PATH

# Compiled on first use (re caches them): most runs parse no pattern, and compiling \w
# costs start-up time.
_MODULE_PATTERN = r"^[A-Za-z_*?\[][\w*?\[\]!.-]*$"
_QUALNAME_PATTERN = r"^[\w*?\[\]!.<>-]+$"
NEVER_RECORDED = ("ctinstrument", "bytecode", "orjson", "click", "_pytest", "pytest", "pluggy",
          "tomli")
_EXPECTED = ("expected a module name, a glob such as pkg.*.views, a file or directory path, "
             "or a function such as pkg.mod:Class.method")


def is_path_pattern(text):
    """Whether pattern text (without a ``:QUALNAME``) names a file or directory."""
    return os.sep in text or "/" in text or text.endswith(".py") or text in (".", "..")


class Pattern:
    """One parsed pattern: ``module`` (dotted name or glob) or ``path`` (absolute, real),
    and for a function pattern ``qualname`` (a glob).  ``text`` is what the user wrote."""

    __slots__ = ("text", "module", "path", "qualname")

    def __init__(self, text, module=None, path=None, qualname=None):
        self.text = text
        self.module = module
        self.path = path
        self.qualname = qualname

    def __repr__(self):
        return "Pattern(%r)" % self.text

    def matches_module(self, name, origin):
        """Whether module ``name`` with source file ``origin`` (real path or None) is covered."""
        if self.module is not None:
            if any(ch in self.module for ch in "*?["):
                return fnmatch.fnmatchcase(name, self.module)
            return name == self.module or name.startswith(self.module + ".")
        if origin is None:
            return False
        return origin == self.path or origin.startswith(self.path + os.sep)

    def matches_function(self, module_name, origin, qualname):
        """Whether function ``qualname`` of module ``module_name`` is this root."""
        return (self.qualname is not None and self.matches_module(module_name, origin)
                and fnmatch.fnmatchcase(qualname, self.qualname))


def parse_pattern(text, allow_function=True):
    """A ``Pattern`` from ``text``; raises UsageError naming ``text`` if it is not one."""
    if text.count("[") != text.count("]"):
        raise UsageError("invalid pattern %r: unbalanced [ ] in a glob" % text)
    where, colon, qualname = text.rpartition(":") if ":" in text else (text, "", None)
    if colon:
        if not allow_function:
            raise UsageError("invalid pattern %r: function patterns can only be included"
                             % text)
        if not qualname or not re.match(_QUALNAME_PATTERN, qualname) or not where:
            raise UsageError("invalid function pattern %r (expected MODULE:QUALNAME such as "
                             "app.billing:Invoice.total or app.jobs:*)" % text)
    if is_path_pattern(where):
        path = PATH.realpath(where)
        if not PATH.exists(path):
            raise UsageError("invalid pattern %r: no such file or directory" % text)
        return Pattern(text, path=path, qualname=qualname)
    if not re.match(_MODULE_PATTERN, where) or ".." in where or where.endswith("."):
        raise UsageError("invalid pattern %r (%s)" % (text, _EXPECTED))
    return Pattern(text, module=where, qualname=qualname)


def split_patterns(values, allow_function=True):
    """Flatten repeated and comma-separated pattern options into ``Pattern`` objects;
    raises UsageError naming the first bad one."""
    patterns = []
    for value in values:
        if not value.strip():
            raise UsageError("empty pattern (%s)" % _EXPECTED)
        for part in value.split(","):
            part = part.strip()
            if part:
                patterns.append(parse_pattern(part, allow_function))
    return patterns


def library_dirs():
    """Directories of installed code, as found (not resolved): the standard library's
    (``platstdlib`` is the same directory wherever CPython ships) and every site-packages
    directory.  Found from ``os`` and ``site``, not ``sysconfig``, whose import and path
    expansion cost a tenth of a plain start-up."""
    import site  # already imported unless python -S; importing it then runs nothing
    dirs = [PATH.dirname(PATH.abspath(os.__file__))]
    if hasattr(site, "getsitepackages"):
        dirs.extend(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    return dirs


def _library_dirs():
    dirs = {PATH.realpath(path) for path in library_dirs()}
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
        dirs.add(PATH.realpath(PATH.join(prefix, "lib")))
    return tuple(sorted(dirs))


class Selection:
    """Decides which modules get instrumented and which functions are activation roots.

    ``include``/``exclude`` are lists of ``Pattern`` (see ``split_patterns``);
    ``project_dir`` is the directory of the main script, used when ``include`` is empty;
    ``main_module`` is the ``-m`` target, always selected.  ``roots`` lists the function
    patterns; when it is not empty recording is gated by them (see probes).
    """

    def __init__(self, include=(), exclude=(), project_dir=None, main_module=None):
        self.include = list(include)
        self.exclude = list(exclude)
        self.roots = [p for p in self.include if p.qualname is not None]
        self.matched_roots = set()  # texts of the root patterns that matched a function
        for root in self.roots:
            for pattern in self.exclude:
                if root.path is None and pattern.matches_module(root.module, None) or (
                        root.path is not None and pattern.matches_module("", root.path)):
                    raise UsageError("activation root %r is in a module excluded by %r"
                                     % (root.text, pattern.text))
        # The module run as __main__ (-m) is recorded whatever the patterns say.
        self.main_module = main_module
        self.project_dir = PATH.realpath(project_dir) if project_dir else None
        # Now, not at the first decision: site's functions would run with the
        # builtins of the program by then.
        self._library = _library_dirs() if self.project_dir else ()
        self._by_path = any(p.path is not None for p in self.include + self.exclude)
        self._real_dirs = {}

    def own_includes(self):
        """Texts of the include patterns that name ctinstrument or a module it runs on
        (``NEVER_RECORDED``: its dependencies, pytest), which are never recorded."""
        found = []
        for pattern in self.include:
            if pattern.module is None:  # a path pattern
                continue
            top = pattern.module.partition(".")[0]
            if top != "*" and fnmatch.filter(NEVER_RECORDED, top):  # "*" means the program
                found.append(pattern.text)
        return found

    def describe(self):
        """The effective selection as a JSON-ready dict (for ``trace_metadata.json``)."""
        return {
            "include": [p.text for p in self.include],
            "exclude": [p.text for p in self.exclude],
            "activation_roots": [p.text for p in self.roots],
            "project_dir": None if self.include else self.project_dir,
        }

    def by_name(self, name):
        """Early decision from the module name alone: (True|False|None, reason).

        None means "depends on where the file is" (path patterns, project mode).
        """
        for pattern in self.exclude:
            if pattern.module is not None and pattern.matches_module(name, None):
                return False, "excluded by %s" % pattern.text
        if name == self.main_module:
            return True, "the program's main module"
        if name.partition(".")[0] in NEVER_RECORDED:
            return False, "part of ctinstrument or its dependencies"
        if self._by_path:
            return None, "depends on the file"
        if self.include:
            for pattern in self.include:
                if pattern.matches_module(name, None):
                    return True, "included by %s" % pattern.text
            return False, "matches no include pattern"
        return None, "project mode"

    def accepts(self, name, origin):
        """Final decision for module ``name`` whose source file is ``origin``: (bool, reason)."""
        verdict, reason = self.by_name(name)
        if verdict is not None:
            return verdict, reason
        real = self._real_path(origin) if origin else None
        for pattern in self.exclude:
            if pattern.matches_module(name, real):
                return False, "excluded by %s" % pattern.text
        if name == self.main_module:
            return True, "the program's main module"
        if self.include:
            for pattern in self.include:
                if pattern.matches_module(name, real):
                    return True, "included by %s" % pattern.text
            return False, "matches no include pattern"
        if real is None or self.project_dir is None:
            return False, "no project directory"
        if not real.startswith(self.project_dir + os.sep):
            return False, "outside the project directory %s" % self.project_dir
        if any(real.startswith(lib + os.sep) for lib in self._library):
            return False, "in the standard library or site-packages"
        return True, "in the project directory %s" % self.project_dir

    def _real_path(self, path):
        # Modules come from few directories: resolve each directory once (a file that is
        # itself a link is resolved on its own).
        directory, base = PATH.split(path)
        if (not PATH.isabs(path) or not base or base in (".", "..")
                or PATH.islink(path)):
            return PATH.realpath(path)
        real = self._real_dirs.get(directory)
        if real is None:
            real = self._real_dirs[directory] = PATH.realpath(directory)
        return PATH.join(real, base)

    def accepts_main_script(self, path):
        """Decision for the main script (module ``__main__``, file ``path``): recorded
        unless an exclude pattern names it; (bool, reason)."""
        real = PATH.realpath(path)
        for pattern in self.exclude:
            if pattern.matches_module("__main__", real):
                return False, "excluded by %s" % pattern.text
        return True, "the program's main script"

    def is_root(self, module_name, origin, qualname):
        """Whether function ``qualname`` of module ``module_name`` (source file ``origin``)
        is an activation root."""
        if not self.roots or module_name is None:
            return False
        real = PATH.realpath(origin) if origin else None
        matched = False
        for pattern in self.roots:
            if pattern.matches_function(module_name, real, qualname):
                self.matched_roots.add(pattern.text)
                matched = True
        return matched

    def unmatched_roots(self):
        """Texts of the root patterns that matched no function instrumented so far."""
        return [p.text for p in self.roots if p.text not in self.matched_roots]
