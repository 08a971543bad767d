"""Compile-level fuzzing with pysource-codegen: random programs in this interpreter's own
grammar (never run: their names are random and undefined) are compiled; the verifier accepts
every code object the compiler produced (no false alarm on CPython's own output) and the
rewriter's version of each (nothing left uninstrumented).

The long run: ``python tools/fuzz.py --compile --start 1000 --seconds 1800``.
"""

import types
import warnings

import pytest
from pysource_codegen import generate

from ctinstrument.binding import instrument_portable, rejections
from ctinstrument.verifier import verify

SEEDS = list(range(8))
NODE_LIMIT, DEPTH_LIMIT = 600, 6


def compiled(seed):
    """The code of generated program ``seed``, or None if the compiler refuses it (the
    generator may produce what only the compiler's later checks reject)."""
    source = generate(seed, node_limit=NODE_LIMIT, depth_limit=DEPTH_LIMIT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return compile(source, "generated.py", "exec", dont_inherit=True)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return None


def _code_objects(code):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def problems(seed):
    """[] if program ``seed`` compiles to code the verifier accepts, plain and instrumented
    (or does not compile), else what went wrong."""
    code = compiled(seed)
    if code is None:
        return []
    found = []
    for each in _code_objects(code):
        try:
            verify(each)
        except Exception as exc:
            found.append("compiler output rejected: %s" % exc)
    portable = instrument_portable(code, "generated", "/generated.py")
    found.extend("instrumented %s rejected: %s" % entry for entry in rejections(portable))
    return found


@pytest.mark.parametrize("seed", SEEDS)
def test_generated_source_compiles_to_verified_code(seed):
    assert problems(seed) == []


def test_some_generated_sources_compile():
    assert sum(compiled(seed) is not None for seed in SEEDS) >= len(SEEDS) // 2
