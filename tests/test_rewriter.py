"""Transform-level checks: instrumented code objects keep everything a program can see of
its code, and tracebacks point at the same lines and columns."""

import builtins
import contextlib
import dis
import sys
import traceback
import types

import pytest

from ctinstrument.protocol import SITE_CALLS_SHIFT, SITE_FORCED, SITE_RUNS_CODE
from ctinstrument.rewriter import PROBE_NAMES, ProbeRegistry, instrument_module_code

SOURCE = '''\
import functools

def plain(a, b=2, *args, c, d=4, **kw):
    return a + b

def no_doc():
    pass

def with_doc():
    "A docstring."
    return 1

def cells(x):
    def inner():
        return x
    return inner

class Klass:
    "Class doc."
    attr = [i for i in range(3)]

    def method(self):
        return super().__repr__

    @functools.lru_cache
    def cached(self, n):
        return n

def gen():
    try:
        yield 1
    finally:
        pass

async def coro():
    return 1

def fails(values):
    total = 0
    for v in values:
        total += 10 / v
    return total
'''


class CountingRegistry(ProbeRegistry):
    def __init__(self):
        self.functions = []
        self.sites = 0

    def function_id(self, path, line, name, argnames, cellnames, kind, module_id):
        self.functions.append((name, line, tuple(argnames)))
        return len(self.functions) - 1

    def line_site(self, function_id, line, forced):
        self.sites += 1
        return self.sites - 1

    def store_site(self, function_id, name, in_module_namespace):
        self.sites += 1
        return self.sites - 1


def _code_objects(code):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


VISIBLE = ("co_name", "co_qualname", "co_firstlineno", "co_varnames", "co_cellvars",
           "co_freevars", "co_argcount", "co_posonlyargcount", "co_kwonlyargcount",
           "co_flags", "co_filename", "co_nlocals")


@pytest.fixture(scope="module")
def compiled():
    original = compile(SOURCE, "/virtual/sample.py", "exec")
    registry = CountingRegistry()
    instrumented = instrument_module_code(original, registry, "sample", "/virtual/sample.py")
    return original, instrumented, registry


def test_visible_attributes_are_unchanged(compiled):
    original, instrumented, _ = compiled
    pairs = list(zip(_code_objects(original), _code_objects(instrumented)))
    assert len(pairs) == len(list(_code_objects(original))) > 10
    for before, after in pairs:
        for attr in VISIBLE:
            if hasattr(before, attr):
                assert getattr(after, attr) == getattr(before, attr), (before.co_name, attr)
        _assert_original_tables_first(before, after)


def _assert_original_tables_first(before, after):
    # The compiler's names and constants keep their indexes; the probes' come after them.
    assert after.co_names[:len(before.co_names)] == before.co_names, before.co_name
    assert set(after.co_names[len(before.co_names):]) <= set(PROBE_NAMES), before.co_name
    kept = after.co_consts[:len(before.co_consts)]
    for index, (old, new) in enumerate(zip(before.co_consts, kept)):
        assert type(new) is type(old), (before.co_name, index)
        if isinstance(old, types.CodeType):
            assert (new.co_name, new.co_firstlineno) == (old.co_name, old.co_firstlineno)
        else:
            assert repr(new) == repr(old), (before.co_name, index)  # -0.0 is not 0.0


@contextlib.contextmanager
def _null_probes():
    """Probe names bound to no-ops while instrumented code runs outside a recording."""
    saved = {name: builtins.__dict__.get(name) for name in PROBE_NAMES}
    builtins.__dict__.update({name: (lambda *args: None) for name in PROBE_NAMES})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                del builtins.__dict__[name]
            else:
                builtins.__dict__[name] = value


def test_constants_beyond_index_255_keep_their_indexes():
    # 300 lines, each with constants of its own: the original constants go past index 255
    # and every line site adds one more, so EXTENDED_ARG prefixes differ from first use.
    body = "".join("    total += %d.5 if flag else %d\n" % (i, i) for i in range(300))
    source = "def big(flag):\n    total = 0\n%s    return total\n" % body
    original = compile(source, "/virtual/big.py", "exec")
    instrumented = instrument_module_code(original, CountingRegistry(), "big",
                                          "/virtual/big.py")
    for before, after in zip(_code_objects(original), _code_objects(instrumented)):
        _assert_original_tables_first(before, after)
    big = next(c for c in _code_objects(original) if c.co_name == "big")
    assert len(big.co_consts) > 300
    namespace = {}
    with _null_probes():
        exec(instrumented, namespace)
        assert namespace["big"](True) == sum(i + 0.5 for i in range(300))
        assert namespace["big"](False) == sum(range(300))


def test_docstrings_survive(compiled):
    _, instrumented, _ = compiled
    namespace = {}
    with _null_probes():
        exec(instrumented, namespace)
    assert namespace["no_doc"].__doc__ is None
    assert namespace["with_doc"].__doc__ == "A docstring."
    assert namespace["Klass"].__doc__ == "Class doc."


def test_every_function_gets_an_id_with_its_arguments(compiled):
    _, _, registry = compiled
    by_name = {name: (line, args) for name, line, args in registry.functions}
    assert by_name["<sample>"] == (1, ())
    assert by_name["plain"] == (3, ("a", "b", "c", "d", "args", "kw"))
    assert by_name["cells.<locals>.inner"][0] == 14
    assert by_name["Klass.method"] == (22, ("self",))
    assert "Klass" in by_name and "gen" in by_name and "coro" in by_name
    assert registry.sites > 20


def test_disassembly_still_works(compiled):
    _, instrumented, _ = compiled
    for code in _code_objects(instrumented):
        assert list(dis.get_instructions(code))


def _traceback_of(code):
    namespace = {}
    with _null_probes():
        exec(code, namespace)
        try:
            namespace["fails"]([1, 2, 0])
        except ZeroDivisionError as exc:
            return traceback.extract_tb(exc.__traceback__)[-1]


def test_traceback_lines_and_columns_are_unchanged(compiled):
    original, instrumented, _ = compiled
    before = _traceback_of(original)
    after = _traceback_of(instrumented)
    assert after.lineno == before.lineno == 41
    if sys.version_info >= (3, 11):
        assert (after.colno, after.end_colno) == (before.colno, before.end_colno)


class FlagRegistry(CountingRegistry):
    """Keeps the flags of each line site by line."""

    def __init__(self):
        super().__init__()
        self.flags = {}

    def line_site(self, function_id, line, flags):
        self.flags.setdefault(line, set()).add(flags)
        return super().line_site(function_id, line, flags)


FLAGGED = '''\
def main(c, f, g, d, m):
    if f():
        pass
    while f() and c:
        pass
    y = f() if c else g()
    if c and f():
        pass
    d.update(m)
    return y
'''


PURE_CALLS = '''\
def main(xs, f, c, n):
    n = len(xs) + isinstance(xs, (list, tuple)) + id(type(xs))
    n = len(f(xs))
    n = len(xs, key=f)
    n = len(xs if c else f)
    n = [type("X", (), {}), isinstance(n, int)]
    n = sorted(xs)
    return n
'''


def test_calls_of_builtins_that_change_nothing_are_not_counted():
    """len(), isinstance(), id(), type() ... of positional arguments loaded in straight-line
    code make a line that calls nothing else run no code to check; beside another call
    they count as calls, as anything else does (a keyword argument, a branch between the
    callee and its call, type() of three arguments).  Lines as in PURE_CALLS."""
    registry = FlagRegistry()
    instrument_module_code(compile(PURE_CALLS, "/virtual/pure.py", "exec"), registry,
                           "pure", "/virtual/pure.py")
    flags = {line: {flags & ~SITE_FORCED for flags in registry.flags[line]}
             for line in range(2, 8)}
    one_call = SITE_RUNS_CODE | 1 << SITE_CALLS_SHIFT
    assert flags[2] == {0}
    assert flags[3] == flags[6] == {SITE_RUNS_CODE | 2 << SITE_CALLS_SHIFT}
    assert flags[4] == flags[7] == {one_call}  # with a keyword argument: counted
    assert SITE_RUNS_CODE in flags[5] <= {SITE_RUNS_CODE, one_call}  # a branch in between


def test_a_line_counts_the_calls_every_path_of_it_makes():
    """A branch after all of a line's calls (an ``if`` or ``while`` condition) leaves them
    counted; a branch before a call (a conditional expression, ``and``) makes the line
    checked in full.  Lines as in FLAGGED."""
    registry = FlagRegistry()
    instrument_module_code(compile(FLAGGED, "/virtual/flagged.py", "exec"), registry,
                           "flagged", "/virtual/flagged.py")
    one_call = SITE_RUNS_CODE | 1 << SITE_CALLS_SHIFT
    flags = {line: {flags & ~SITE_FORCED for flags in registry.flags[line]}
             for line in (2, 4, 6, 7, 9)}
    assert flags[2] == flags[9] == {one_call}
    for line in (4, 6, 7):  # a site after the branch's join may run nothing
        assert SITE_RUNS_CODE in flags[line] <= {SITE_RUNS_CODE, 0}, (line, flags[line])
