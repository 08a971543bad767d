"""The verifier (ctinstrument/verifier.py) accepts what CPython's compiler produces and what
the rewriter produces from it, rejects deliberately broken code objects with the rule they
break, and a rejected code object runs uninstrumented with one warning (the program is not
changed)."""

import dis
import json
import opcode
import subprocess
import sys
import types

import pytest
from bytecode import Bytecode, Instr, Label

from ctinstrument.binding import instrument_portable, rejections
from ctinstrument.verifier import VerificationError, _decode, verify
from tracetools import assert_conformant, child_env, load_events, run_plain, steps_by_thread

VERSION = sys.version_info[:2]
# Modules with every construct the compiler emits (and stacks deep enough to matter).
SAMPLE_MODULES = ("typing", "argparse", "asyncio.tasks", "dataclasses", "contextlib",
                  "functools", "json.decoder", "inspect", "tarfile", "email._header_value_parser")


def _code_objects(code):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _compiled(name):
    module = __import__(name, fromlist=["_"])
    with open(module.__file__, "rb") as handle:
        return compile(handle.read(), module.__file__, "exec")


@pytest.mark.parametrize("name", SAMPLE_MODULES)
def test_accepts_compiler_output_and_its_instrumented_version(name):
    code = _compiled(name)
    for each in _code_objects(code):
        verify(each)
    portable = instrument_portable(code, name, code.co_filename)
    assert rejections(portable) == []
    for each in _code_objects(portable.code):
        verify(each)


@pytest.mark.parametrize("name", SAMPLE_MODULES[:4])
def test_decoder_agrees_with_dis(name):
    """Jump targets and exception table entries, decoded independently, are those of dis."""
    for code in _code_objects(_compiled(name)):
        instructions, _ = _decode(code)
        expected = {i.offset: i.argval for i in dis.get_instructions(code)
                    if i.opcode in dis.hasjrel or i.opcode in dis.hasjabs}
        for offset, target in expected.items():
            group = max(o for o in instructions if o <= offset)  # EXTENDED_ARG prefix
            assert instructions[group].target == target
        if VERSION >= (3, 11):
            from ctinstrument.verifier import _exception_table
            assert [(e[0], e[1], e[2], e[3], bool(e[4])) for e in _exception_table(code)] == [
                (e.start, e.end, e.target, e.depth, e.lasti)
                for e in dis.Bytecode(code).exception_entries]


def _patched(code, offset, op=None, arg=None):
    raw = bytearray(code.co_code)
    if op is not None:
        raw[offset] = op
    if arg is not None:
        raw[offset + 1] = arg
    return code.replace(co_code=bytes(raw))


def _rejects(code, fragment):
    with pytest.raises(VerificationError) as info:
        verify(code)
    assert fragment in str(info.value)
    return str(info.value)


def _loop(values):
    total = 0
    for value in values:
        total += value * 2
    return total


def _instructions(function):
    return list(dis.get_instructions(function))


def test_rejects_a_stack_deeper_than_co_stacksize():
    message = _rejects(_loop.__code__.replace(co_stacksize=1), "exceeds co_stacksize 1")
    assert message.startswith(_loop.__code__.co_qualname if VERSION >= (3, 11) else "_loop")


def test_rejects_a_jump_outside_the_code():
    jump = next(i for i in _instructions(_loop) if i.opcode in dis.hasjrel + dis.hasjabs)
    _rejects(_patched(_loop.__code__, jump.offset, arg=250), "not the start of an instruction")


def test_rejects_an_opcode_this_interpreter_does_not_have():
    # 3.11+ code objects hand back co_code with unknown opcodes mapped to known ones, so the
    # bytes are given through a stand-in with the code object's attributes.
    unused = next(op for op in range(1, 256) if opcode.opname[op].startswith("<"))
    load = next(i for i in _instructions(_loop) if i.opname == "LOAD_CONST")
    code = _loop.__code__
    raw = bytearray(code.co_code)
    raw[load.offset] = unused
    stand_in = types.SimpleNamespace(**{name: getattr(code, name) for name in dir(code)
                                        if name.startswith("co_") and name != "co_lnotab"})
    stand_in.co_code = bytes(raw)
    _rejects(stand_in, "is not executable here")


def _assembled(*items, argnames=()):
    bc = Bytecode(list(items))
    bc.argnames = list(argnames)
    return bc.to_code()


def test_rejects_paths_that_join_with_different_depths():
    join = Label()
    code = _assembled(Instr("LOAD_FAST", "flag"), Instr("POP_JUMP_FORWARD_IF_FALSE"
                      if VERSION == (3, 11) else "POP_JUMP_IF_FALSE", join),
                      Instr("LOAD_CONST", 1), join, Instr("LOAD_CONST", None),
                      Instr("RETURN_VALUE"), argnames=("flag",))
    _rejects(code, "with stack depth")


def test_rejects_a_never_taken_jump_to_another_depth():
    # The f_lineno setter models the stack along this jump too and would pop by it (the
    # 3.11 send-loop crash); its condition being a constant does not make it safe.
    join = Label()
    code = _assembled(Instr("LOAD_CONST", 1), Instr("LOAD_CONST", None),
                      Instr("POP_JUMP_FORWARD_IF_TRUE" if VERSION == (3, 11)
                            else "POP_JUMP_IF_TRUE", join),
                      Instr("POP_TOP"), join, Instr("LOAD_CONST", None),
                      Instr("RETURN_VALUE"))
    _rejects(code, "with stack depth")


def test_rejects_a_null_consumed_by_an_instruction_that_dereferences_it():
    if VERSION >= (3, 11):
        items = [Instr("PUSH_NULL"), Instr("POP_TOP")]
        fragment = "POP_TOP consumes a NULL"
    else:
        items = [Instr("LOAD_CONST", 1), Instr("LOAD_METHOD", "real"), Instr("POP_TOP"),
                 Instr("POP_TOP")]
        fragment = "POP_TOP consumes a maybe-NULL"
    _rejects(_assembled(*items, Instr("LOAD_CONST", None), Instr("RETURN_VALUE")), fragment)


@pytest.mark.skipif(VERSION < (3, 12), reason="LOAD_FAST_AND_CLEAR is 3.12+ (PEP 709)")
def test_rejects_a_probe_copying_an_unbound_comprehension_local():
    """The shape of issue 11: the value saved by LOAD_FAST_AND_CLEAR may be NULL."""
    code = _assembled(Instr("LOAD_FAST_AND_CLEAR", "x"), Instr("COPY", 1), Instr("POP_TOP"),
                      Instr("STORE_FAST", "x"), Instr("LOAD_CONST", None),
                      Instr("RETURN_VALUE"))
    _rejects(code, "COPY copies a NULL")


@pytest.mark.skipif(VERSION < (3, 11), reason="exception tables are 3.11+")
def test_rejects_an_exception_table_deeper_than_the_stack():
    def guarded():
        try:
            return len("x")
        except ValueError:
            return 0
    code = guarded.__code__
    table = bytearray(code.co_exceptiontable)
    # The first entry's fourth varint is (depth << 1) | lasti, one byte for small depths.
    index, fields = 0, 0
    while fields < 3:
        while table[index] & 64:
            index += 1
        index += 1
        fields += 1
    assert not table[index] & 64
    table[index] = (table[index] & 0xC0) | ((20 << 1) | (table[index] & 1))
    _rejects(code.replace(co_exceptiontable=bytes(table)), "exception table depth 20 exceeds")


@pytest.mark.skipif(VERSION < (3, 12), reason="FOR_ITER/END_FOR is a fused pair on 3.12+")
def test_rejects_a_for_iter_that_does_not_target_end_for():
    listing = _instructions(_loop)
    for_iter = next(i for i in listing if i.opname == "FOR_ITER")
    end_for = next(i for i in listing if i.opname == "END_FOR")
    before = max(i.offset for i in listing if i.offset < end_for.offset)
    after_caches = for_iter.offset + 4  # FOR_ITER has one cache entry
    code = _patched(_loop.__code__, for_iter.offset, arg=(before - after_caches) // 2)
    _rejects(code, "FOR_ITER does not target END_FOR")


def _generator():
    yield 1


def test_rejects_a_generator_prologue_or_yield_pair_taken_apart():
    listing = _instructions(_generator)
    if VERSION == (3, 10):
        _rejects(_patched(_generator.__code__, 0, op=dis.opmap["NOP"], arg=0),
                 "does not start with GEN_START")
    else:
        resume = next(i for i in listing if i.opname == "RESUME" and i.arg)
        _rejects(_patched(_generator.__code__, resume.offset, op=dis.opmap["NOP"]),
                 "YIELD_VALUE is not followed by RESUME")


# A program whose function ``broken`` gets a deliberately broken code object from the
# assembler (co_stacksize 1): the verifier must leave it uninstrumented.
BROKEN_LAUNCHER = """\
import runpy, sys
from ctinstrument import layout

assemble = layout.assemble

def broken_assemble(bc, code, children):
    new = assemble(bc, code, children)
    return new.replace(co_stacksize=1) if new.co_name == "broken" else new

layout.assemble = broken_assemble
sys.argv = sys.argv[1:]
runpy.run_module("ctinstrument", run_name="__main__", alter_sys=True)
"""

PROGRAM = """\
def broken(values):
    total = 0
    for value in values:
        total += value * 3
    return total

def fine(values):
    return [broken(values), sum(values)]

print(fine([1, 2, 3]))
print(broken([4]))
"""


def test_rejected_code_object_runs_uninstrumented_with_one_warning(tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    script = app / "prog.py"
    script.write_text(PROGRAM)
    launcher = tmp_path / "launcher.py"
    launcher.write_text(BROKEN_LAUNCHER)
    trace = tmp_path / "trace"
    recorded = subprocess.run([sys.executable, str(launcher), "ctinstrument", "-o", str(trace),
                               str(script)], cwd=app, capture_output=True, text=True,
                              env=child_env(), timeout=300)
    plain = run_plain(script, cwd=app)
    assert (recorded.returncode, recorded.stdout) == (plain.returncode, plain.stdout)
    warnings = recorded.stderr.splitlines()
    assert len(warnings) == 1, recorded.stderr
    assert warnings[0].startswith("ctinstrument: warning: __main__.broken would not run "
                                  "safely instrumented on CPython %d.%d (" % VERSION)
    assert "exceeds co_stacksize 1" in warnings[0]
    with open(trace / "trace_metadata.json") as handle:
        verifier = json.load(handle)["verifier"]
    assert verifier["rejected"] == 1
    assert [(f["module"], f["function"]) for f in verifier["functions"]] == [
        ("__main__", "broken")]
    lines = {line for steps in steps_by_thread(load_events(trace), root=app).values()
             for _, line in steps}
    assert lines == {1, 7, 8, 10, 11}  # module body and fine(), nothing of broken()
    assert_conformant(trace)
