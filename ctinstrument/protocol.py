"""What rewritten code and the recorder agree on, without the ``bytecode`` library.

The probe names rewritten code loads from ``builtins``, the flags of a line site, the frame
kinds, the ``ProbeRegistry`` interface through which the rewriter asks for ids, and the facts
about this interpreter that the probes and the launcher need while the program runs.  It is
all that start-up needs: rewriter.py and instructions.py (which import ``bytecode``) are
imported only when a module has to be rewritten, i.e. on a code-cache miss.
"""

import opcode
import sys

from .errors import UnsupportedPython

VERSION = sys.version_info[:2]
SUPPORTED = ((3, 10), (3, 11), (3, 12), (3, 13))


# 3.11/3.12: a frame resumed without a resume probe was resumed by throw()/close() and stands
# at its last yield's line, which is not reported again; 3.13 reports it again, and on 3.10
# an unseen resume may also be a ``yield from`` resume, which starts afresh.
UNSEEN_RESUME_KEEPS_LINE = (3, 11) <= VERSION < (3, 13)
# 3.10: YIELD_FROM (also ``await``) suspends and resumes its frame without any probe, so a
# shadow frame may stand for a frame that is suspended (probes check the real stack).
UNPROBED_DELEGATION = VERSION < (3, 11)
# The call instructions (a line's calls, see SITE_CALLS_SHIFT).
CALLS = frozenset({"CALL", "CALL_FUNCTION", "CALL_FUNCTION_KW", "CALL_FUNCTION_EX",
                   "CALL_METHOD", "CALL_KW"})
# Their opcodes: what ``co_code[f_lasti]`` of a frame is while it makes one of them, once
# ``f_lasti`` is moved back over CACHE_OPCODE units (3.11 and 3.12 point at the call's last
# inline cache while the callee is a Python function).
CALL_OPCODES = frozenset(opcode.opmap[name] for name in CALLS if name in opcode.opmap)
CACHE_OPCODE = opcode.opmap.get("CACHE", -1)
# Recursion depth a probe call takes from its caller (3.10/3.11 also count the C levels of
# the call); measured so that a recursing program fails at the same depth as a plain run
# (tests/test_semantics.py).
PROBE_CALL_DEPTH = 1 if VERSION >= (3, 12) else 3

STEP = "__ctinstrument_step__"
CALL = "__ctinstrument_call__"
RETURN = "__ctinstrument_return__"
UNWIND = "__ctinstrument_unwind__"
YIELD = "__ctinstrument_yield__"
RESUME = "__ctinstrument_resume__"
STORE = "__ctinstrument_store__"
DELETE = "__ctinstrument_delete__"
SAVE = "__ctinstrument_save__"
RESTORE = "__ctinstrument_restore__"
CATCH = "__ctinstrument_catch__"
MUTATE = "__ctinstrument_mutate__"
PROBE_NAMES = (STEP, CALL, RETURN, UNWIND, YIELD, RESUME, STORE, DELETE, MUTATE, SAVE, RESTORE,
               CATCH)

# Flags of a line site (``ProbeRegistry.line_site``).
SITE_FORCED = 1  # reaching the site is a line event even if the line did not change
SITE_RUNS_CODE = 2  # the site's line may run other code (see ``instructions.runs_code``)
# Bits from SITE_CALLS_SHIFT on: how many calls the line makes each time it runs, when that
# is known (see _line_effects); 0 if unknown.
SITE_CALLS_SHIFT = 2

# Frame kinds, for the registry.
FUNCTION_FRAME = "function"
MODULE_FRAME = "module"
CLASS_FRAME = "class"


class ProbeRegistry:
    """What the rewriter needs from the recorder: ids for functions, line and store sites."""

    def function_id(self, path, line, name, argnames, cellnames, kind, module_id):
        """Return the function id for a code object about to be instrumented.

        ``argnames`` are the parameters in signature order, ``cellnames`` the cell and free
        variables whose cell objects the entry probe passes, ``kind`` one of FUNCTION_FRAME,
        MODULE_FRAME, CLASS_FRAME, ``module_id`` the function id of the enclosing module body
        (None for the module body itself).
        """
        raise NotImplementedError

    def line_site(self, function_id, line, flags):
        """Return a new site id (ints increase in code order within one code object).

        ``flags``: SITE_FORCED and SITE_RUNS_CODE or'ed together.
        """
        raise NotImplementedError

    def store_site(self, function_id, name, in_module_namespace):
        """Return the site id of stores to variable ``name`` in this code object."""
        raise NotImplementedError

    def code_bound(self, code, function_id):
        """``code`` is the final (bound) code object of function ``function_id``."""


def module_label(module_name):
    """The function name of a module body: ``<pkg.mod>``."""
    return "<%s>" % module_name


def check_supported():
    """Raise UnsupportedPython unless this interpreter's bytecode is one we generate for."""
    if sys.implementation.name != "cpython" or VERSION not in SUPPORTED:
        raise UnsupportedPython(
            "ctinstrument rewrites bytecode for CPython 3.10-3.13 only; this is %s %d.%d"
            % (sys.implementation.name, VERSION[0], VERSION[1]))
