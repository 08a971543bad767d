"""Why each module was or was not recorded: the counts for ``trace_metadata.json`` and the
report ``--explain`` / ``--debug`` print at the end of a run.

Input is ``ImportHook.decisions`` ({module name: (instrumented?, reason)}).  A name the
selection rejected before any finder looked for it is kept only if it was imported (it is
in ``sys.modules``): ``import optional_dep`` in a ``try`` must not show up as a module.

The ``--explain`` report stays readable with thousands of modules: every instrumented
module and every module imported before ctinstrument started has its own line; the other
"no" lines are grouped, the standard library into one count per reason and other packages
into one line per (top-level package, reason) when that covers more than ``GROUP_AT``
modules.  ``--debug`` gives every module its own line.  Lines are sorted by module name.
"""

import os
import sys


GROUP_AT = 3
TOO_EARLY = "imported before ctinstrument was installed"
_STDLIB = frozenset(getattr(sys, "stdlib_module_names", ())) | frozenset(
    sys.builtin_module_names)


def imported_decisions(decisions, modules=None):
    """``decisions`` without the rejected names that were never imported."""
    modules = sys.modules if modules is None else modules
    return {name: decision for name, decision in decisions.items()
            if decision[0] or name in modules or decision[1].startswith(TOO_EARLY)
            or not _rejected_by_name(decision[1])}


def _rejected_by_name(reason):
    # Reasons Selection.by_name gives before any finder ran (see import_hook._Finder).
    return reason.startswith(("excluded by", "matches no", "part of ctinstrument"))


def counts(decisions):
    """{"instrumented": N, "not instrumented": M, "reasons": {reason: count}}."""
    reasons = {}
    for _, reason in decisions.values():
        reasons[reason] = reasons.get(reason, 0) + 1
    instrumented = sum(1 for verdict, _ in decisions.values() if verdict)
    return {"instrumented": instrumented, "not instrumented": len(decisions) - instrumented,
            "reasons": dict(sorted(reasons.items()))}


def _common_prefix(names):
    parts = [name.split(".") for name in names]
    return ".".join(os.path.commonprefix(parts))


def _modules(count):
    return "%d module%s" % (count, "" if count == 1 else "s")


def report(decisions, every_module=False):
    """The lines of the ``--explain`` report (``every_module``: the ``--debug`` form)."""
    total = len(decisions)
    instrumented = sum(1 for verdict, _ in decisions.values() if verdict)
    lines = ["explain: %d of %d imported modules instrumented%s" % (
        instrumented, total, "" if every_module else " (--debug lists every module)")]
    rows = []  # (sort key, verdict, name, reason)
    groups = {}  # (label, reason) -> names
    for name, (verdict, reason) in decisions.items():
        top = name.partition(".")[0]
        if every_module or verdict or reason.startswith(TOO_EARLY):
            rows.append((name, verdict, name, reason))
        elif top in _STDLIB:
            groups.setdefault(("", reason), []).append(name)
        else:
            groups.setdefault((top, reason), []).append(name)
    for (top, reason), names in groups.items():
        if not top:
            rows.append(("~", False, "standard library (%s)" % _modules(len(names)), reason))
        elif len(names) > GROUP_AT:
            prefix = _common_prefix(names)
            rows.append((prefix, False, "%s (%s)" % (prefix, _modules(len(names))), reason))
        else:
            rows.extend((name, False, name, reason) for name in names)
    rows.sort(key=lambda row: (row[0], row[2]))
    for _, verdict, label, reason in rows:
        lines.append("%s %s: %s" % ("yes" if verdict else "no ", label, reason))
    return lines
