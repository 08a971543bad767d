"""Include/exclude patterns -> "instrument this module?" with a reason for every answer.

A pattern is a dotted module name (``pkg`` selects ``pkg`` and every ``pkg.*`` submodule) or
a glob over dotted names (``pkg.*.views``); several may be given comma-separated.  Exclude
wins over include.  With no include pattern the selection is the *project*: modules whose
source file lies under the project directory (the main script's), outside the standard
library and site-packages.  ctinstrument and its dependencies are never selected.
"""

import fnmatch
import os
import re
import sys
import sysconfig

from .errors import UsageError
from .isolation import PRIVATE_BUILTINS as __builtins__  # noqa: F401 (see isolation.py)

_PATTERN = re.compile(r"^[A-Za-z_*?\[][\w*?\[\]!.-]*$")
_NEVER = ("ctinstrument", "bytecode", "orjson", "click", "_pytest", "pytest", "pluggy")


def split_patterns(values):
    """Flatten repeated and comma-separated pattern options; raises UsageError on a bad one."""
    patterns = []
    for value in values:
        if not value.strip():
            raise UsageError("empty module pattern (expected a dotted module name or a glob)")
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            if not _PATTERN.match(part) or ".." in part or part.endswith("."):
                raise UsageError("invalid module pattern %r (expected a dotted module name "
                                 "or a glob such as pkg.*.views)" % part)
            patterns.append(part)
    return patterns


def _matches(name, pattern):
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(name, pattern)
    return name == pattern or name.startswith(pattern + ".")


def _library_dirs():
    dirs = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            dirs.add(os.path.realpath(path))
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
        dirs.add(os.path.realpath(os.path.join(prefix, "lib")))
    return tuple(sorted(dirs))


class Selection:
    """Decides which modules get instrumented.

    ``include``/``exclude`` are lists of patterns (see ``split_patterns``); ``project_dir``
    is the directory of the main script, used when ``include`` is empty; ``main_module`` is
    the ``-m`` target, always selected.
    """

    def __init__(self, include=(), exclude=(), project_dir=None, main_module=None):
        self.include = list(include)
        # The module run as __main__ (-m) is recorded whatever the patterns say.
        self.main_module = main_module
        self.exclude = list(exclude)
        self.project_dir = os.path.realpath(project_dir) if project_dir else None
        self._library = _library_dirs()
        self._verdicts = {}

    def by_name(self, name):
        """Early decision from the module name alone: (True|False|None, reason).

        None means "depends on where the file is" (project mode).
        """
        if name == self.main_module:
            return True, "the program's main module"
        root = name.partition(".")[0]
        if root in _NEVER:
            return False, "part of ctinstrument or its dependencies"
        for pattern in self.exclude:
            if _matches(name, pattern):
                return False, "excluded by %s" % pattern
        if self.include:
            for pattern in self.include:
                if _matches(name, pattern):
                    return True, "included by %s" % pattern
            return False, "matches no --include pattern"
        return None, "project mode"

    def accepts(self, name, origin):
        """Final decision for module ``name`` whose source file is ``origin``: (bool, reason)."""
        verdict, reason = self.by_name(name)
        if verdict is not None:
            return verdict, reason
        if not origin or self.project_dir is None:
            return False, "no project directory"
        real = os.path.realpath(origin)
        if any(real.startswith(lib + os.sep) for lib in self._library):
            return False, "in the standard library or site-packages"
        if real.startswith(self.project_dir + os.sep):
            return True, "in the project directory %s" % self.project_dir
        return False, "outside the project directory %s" % self.project_dir
