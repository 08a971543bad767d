"""Selected modules imported before the program started are recorded through a second copy
(reimport.py), and the ones that cannot be copied say why.

The modules are preloaded by a ``sitecustomize.py`` on ``PYTHONPATH`` (the interpreter's
start-up imports it), so the tests do not depend on what ctinstrument itself happens to
import; ``test_sitecustomize_preloads`` checks that the preloading really happens.
"""

import json
import os
import sys

import pytest

from tracetools import (assert_conformant, child_env, load_events, record, run_plain,
                        settrace_lines, steps_by_thread, write_program)

PRELOADS = ("textwrap", "difflib", "startpkg", "startpkg.sub", "startbase", "startchild")

SITECUSTOMIZE = "import textwrap, difflib, startpkg.sub, startchild\n"

STARTPKG_INIT = "from .sub import Thing, make\nLABEL = 'startpkg'\n"
STARTPKG_SUB = '''\
class Thing:
    def __init__(self, n):
        self.n = n


def make(n):
    return Thing(n * 2)
'''
STARTBASE = '''\
class Base:
    def name(self):
        return type(self).__name__
'''
STARTCHILD = "import startbase\n\n\nclass Child(startbase.Base):\n    pass\n"

TEXTWRAP_PROGRAM = '''\
import textwrap


class Narrow(textwrap.TextWrapper):
    pass


wrapper = textwrap.TextWrapper(width=12)
print(isinstance(wrapper, textwrap.TextWrapper), isinstance(Narrow(), textwrap.TextWrapper))
print(type(wrapper) is textwrap.TextWrapper, textwrap.TextWrapper.__module__)
print(textwrap.wrap("the quick brown fox jumps over the lazy dog", 10))
print(wrapper.fill("one two three four five six"))
print(textwrap.dedent("    a\\n    b"))
'''

DIFFLIB_PROGRAM = '''\
import difflib

matcher = difflib.SequenceMatcher(None, "abcdxyz", "abcxyzq")
print(isinstance(matcher, difflib.SequenceMatcher), matcher.ratio())
print(matcher.get_matching_blocks())
print("".join(difflib.unified_diff(["a\\n", "b\\n"], ["a\\n", "c\\n"], "x", "y")))
'''

STARTPKG_PROGRAM = '''\
import startpkg
import startpkg.sub

thing = startpkg.sub.make(21)
print(startpkg.LABEL, thing.n, startpkg.Thing is startpkg.sub.Thing)
print(isinstance(thing, startpkg.Thing), startpkg.make is startpkg.sub.make)
'''

STARTBASE_PROGRAM = '''\
import startbase
import startchild

print(startchild.Child().name(), issubclass(startchild.Child, startbase.Base))
'''


@pytest.fixture
def preloaded(tmp_path):
    """(program directory, environment whose start-up imports PRELOADS, the directory of
    the start* modules)."""
    boot, site = tmp_path / "boot", tmp_path / "site"
    boot.mkdir()
    site.mkdir()
    (boot / "sitecustomize.py").write_text(SITECUSTOMIZE)
    (site / "startpkg").mkdir()
    (site / "startpkg" / "__init__.py").write_text(STARTPKG_INIT)
    (site / "startpkg" / "sub.py").write_text(STARTPKG_SUB)
    (site / "startbase.py").write_text(STARTBASE)
    (site / "startchild.py").write_text(STARTCHILD)
    env = child_env()
    env["PYTHONPATH"] += os.pathsep + str(boot) + os.pathsep + str(site)
    program_dir = tmp_path / "app"
    program_dir.mkdir()
    return program_dir, env, site


def _plain(script, env):
    import subprocess
    return subprocess.run([sys.executable, str(script)], cwd=script.parent, capture_output=True,
                          text=True, env=env, timeout=300)


def _metadata(trace_dir):
    with open(trace_dir / "trace_metadata.json") as handle:
        return json.load(handle)


def _called(events):
    """{(file name, function name)} of the calls in the trace."""
    paths = [event["Path"] for event in events if "Path" in event]
    functions = [event["Function"] for event in events if "Function" in event]
    return {(os.path.basename(paths[functions[event["Call"]["function_id"]]["path_id"]]),
             functions[event["Call"]["function_id"]]["name"])
            for event in events if "Call" in event}


def test_sitecustomize_preloads(preloaded):
    program_dir, env, _ = preloaded
    script = write_program(program_dir, "import sys\nprint(sorted(n for n in %r if n in "
                                        "sys.modules))\n" % (PRELOADS,))
    result = _plain(script, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "%s\n" % sorted(PRELOADS)


@pytest.mark.parametrize("module, program, functions", [
    ("textwrap", TEXTWRAP_PROGRAM, {"wrap", "TextWrapper.fill", "dedent", "TextWrapper._wrap_chunks"}),
    ("difflib", DIFFLIB_PROGRAM, {"SequenceMatcher.ratio", "SequenceMatcher.get_matching_blocks", "unified_diff"}),
])
def test_preloaded_stdlib_module_is_recorded(preloaded, module, program, functions):
    program_dir, env, _ = preloaded
    script = write_program(program_dir, program)
    trace = program_dir.parent / "trace"

    result = record(script, trace, options=["--include", module], cwd=program_dir, env=env)

    plain = _plain(script, env)
    assert plain.returncode == 0, plain.stderr
    assert result.returncode == 0, result.stderr
    assert result.stdout == plain.stdout
    assert result.stderr == ""
    assert module in _metadata(trace)["selection"]["second_copies"]
    events = load_events(trace)
    called = _called(events)
    assert {name for path, name in called if path == module + ".py"} >= functions
    # The second copy's lines are those the plain interpreter runs when the program
    # imports the module itself (the oracle runs without the preloading sitecustomize).
    source = __import__(module).__file__
    real = os.path.realpath(source)
    oracle = settrace_lines(script, os.path.dirname(source), cwd=program_dir)
    expected = [step for steps in oracle.values() for step in steps if step[0] == real]
    recorded = [step for steps in steps_by_thread(events).values() for step in steps
                if step[0] == real]
    assert len(expected) > 20
    assert recorded == expected
    assert_conformant(trace)


def test_package_and_its_submodule_are_recorded_together(preloaded):
    program_dir, env, site = preloaded
    script = write_program(program_dir, STARTPKG_PROGRAM)
    trace = program_dir.parent / "trace"

    result = record(script, trace, options=["--include", "startpkg"], cwd=program_dir, env=env)

    assert result.returncode == 0, result.stderr
    assert result.stdout == _plain(script, env).stdout == "startpkg 42 True\nTrue True\n"
    assert result.stderr == ""
    assert _metadata(trace)["selection"]["second_copies"] == ["startpkg", "startpkg.sub"]
    steps = steps_by_thread(load_events(trace), root=site)
    # The plain interpreter's lines when the program imports the package itself.
    oracle = settrace_lines(script, site, cwd=program_dir,
                            PYTHONPATH=child_env()["PYTHONPATH"] + os.pathsep + str(site))
    assert list(steps.values()) == list(oracle.values())
    assert {os.path.basename(path) for path, _ in steps[1]} == {"__init__.py", "sub.py"}
    assert_conformant(trace)


def test_submodule_without_its_package_keeps_its_first_copy(preloaded):
    program_dir, env, site = preloaded
    script = write_program(program_dir, STARTPKG_PROGRAM)
    trace = program_dir.parent / "trace"

    result = record(script, trace, options=["--include", "startpkg.sub"], cwd=program_dir,
                    env=env)

    assert result.returncode == 0, result.stderr
    assert result.stdout == "startpkg 42 True\nTrue True\n"
    assert result.stderr == (
        "ctinstrument: warning: startpkg.sub was imported before the program started and is "
        "not recorded: its package startpkg keeps its first copy\n")
    assert _metadata(trace)["selection"]["second_copies"] == []
    assert steps_by_thread(load_events(trace), root=site) == {}


def test_module_whose_class_is_subclassed_elsewhere_keeps_its_first_copy(preloaded):
    program_dir, env, site = preloaded
    script = write_program(program_dir, STARTBASE_PROGRAM)
    trace = program_dir.parent / "trace"

    result = record(script, trace, options=["--include", "startbase"], cwd=program_dir,
                    env=env)

    assert result.returncode == 0, result.stderr
    # A second startbase.Base would not be the base of startchild.Child.
    assert result.stdout == _plain(script, env).stdout == "Child True\n"
    assert result.stderr == (
        "ctinstrument: warning: startbase was imported before the program started and is not "
        "recorded: its classes are bases or metaclasses of classes of already-imported "
        "modules (startchild.Child)\n")
    steps = steps_by_thread(load_events(trace))[1]
    assert {os.path.basename(path) for path, _ in steps} == {script.name}
    assert_conformant(trace)


def test_module_with_process_wide_state_keeps_its_first_copy(tmp_path):
    # ctinstrument imports threading itself; a second copy would not know the threads.
    script = write_program(tmp_path, "import threading\nprint(threading.current_thread() is "
                                     "threading.main_thread())\n")
    trace = tmp_path / "trace"

    result = record(script, trace, options=["--include", "threading"], cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout == run_plain(script, cwd=tmp_path).stdout == "True\n"
    assert result.stderr.splitlines()[0] == (
        "ctinstrument: warning: threading was imported before the program started and is "
        "not recorded: the interpreter calls the first copy's _shutdown at exit and its "
        "thread registry knows the running threads")


def test_frozen_or_shared_stdlib_module_is_refused_with_a_reason(tmp_path):
    script = write_program(tmp_path, "import os, enum\nprint(os.sep, enum.Enum.__name__)\n")
    trace = tmp_path / "trace"

    result = record(script, trace, options=["--include", "os,enum"], cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout == run_plain(script, cwd=tmp_path).stdout
    reasons = {}
    for line in result.stderr.splitlines():
        head, _, why = line.partition(" was imported before the program started and is not "
                                      "recorded: ")
        if why:
            reasons[head.rpartition(" ")[2]] = why
    assert set(reasons) == {"os", "os.path", "enum"}
    frozen = "it has no Python source to instrument (FrozenImporter)"
    assert reasons["os"] == (frozen if sys.version_info >= (3, 11)
                             else "os.environ and the os.path module are the first copy's")
    assert reasons["enum"].startswith("its classes are bases or metaclasses of classes of "
                                      "already-imported modules (")
