"""Transform-level checks: instrumented code objects keep everything a program can see of
its code, and tracebacks point at the same lines and columns."""

import builtins
import contextlib
import dis
import sys
import traceback
import types

import pytest

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
        added = set(after.co_names) - set(before.co_names)
        assert added <= set(PROBE_NAMES), added


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
