"""``python -m ctinstrument --include PKG -m pytest`` records PKG, and with the test modules
included records them too, while pytest's assertion rewriting keeps working: the output of
the inner pytest run equals the plain run's, failing asserts keep pytest's explanation, the
recorded steps equal the sys.settrace line events, and pytest's pyc cache never holds probes.

The inner pytest runs in a subprocess with ``-p no:cacheprovider`` on a project in tmp_path
that has its own pytest.ini, so the outer pytest running this file is not involved.
"""

import json
import marshal
import re
import subprocess
import sys
import types

import pytest

from ctinstrument import pytest_support
from ctinstrument.rewriter import PROBE_NAMES
from tracetools import (assert_conformant, child_env, load_events, record, settrace_lines,
                        steps_by_thread)

FILES = {
    "pytest.ini": "[pytest]\n",
    "mypkg/__init__.py": """\
def f():
    total = 0
    for i in range(3):
        total += i
    return total


class Counter:
    def __init__(self):
        self.n = 0

    def bump(self, by=1):
        self.n += by
        return self.n
""",
    "tests/__init__.py": "",
    "tests/conftest.py": """\
import pytest

pytest.register_assert_rewrite("tests.helper")


@pytest.fixture
def counter():
    from mypkg import Counter
    made = Counter()
    return made
""",
    "tests/helper.py": """\
def check(value):
    expected = 5
    assert value == expected
""",
    "tests/test_calc.py": """\
import builtins

from mypkg import f
from tests.helper import check


def test_passes():
    value = f()
    assert value == 3


def test_fails():
    assert f() == 4


def test_helper_fails():
    check(f())


def test_fixture_from_conftest(counter):
    for step in (1, 2):
        counter.bump(step)
    assert counter.n == 3


def test_module_sees_the_real_builtins():
    assert __builtins__ is builtins.__dict__
""",
}
TIMING = re.compile(r" in \d+(\.\d+)?s")
INNER_ARGS = ["-p", "no:cacheprovider", "tests"]


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "project"
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def plain_pytest(root, extra=()):
    return subprocess.run([sys.executable, "-m", "pytest", *extra, *INNER_ARGS], cwd=root,
                          capture_output=True, text=True, env=child_env(), timeout=300)


def recorded_pytest(root, trace, include, extra=()):
    return record("pytest", trace, args=[*extra, *INNER_ARGS], options=["--include", include],
                  cwd=root, module=True)


def normalized(output):
    return TIMING.sub(" in <time>", output)


def function_names(events):
    return [event["Function"]["name"] for event in events
            if isinstance(event, dict) and "Function" in event]


def lines_in(steps, path):
    return [line for thread in steps.values() for where, line in thread if where == str(path)]


def assert_same_run_as_plain(recorded, plain):
    assert recorded.returncode == plain.returncode == 1, recorded.stderr
    assert normalized(recorded.stdout) == normalized(plain.stdout)
    assert "2 failed, 3 passed" in recorded.stdout
    # pytest's assertion rewriting still explains the failures, in the test module and in
    # the helper registered with pytest.register_assert_rewrite.
    assert "E       assert 3 == 4\nE        +  where 3 = f()" in recorded.stdout
    assert ">       assert value == expected\nE       assert 3 == 5" in recorded.stdout


def test_package_is_recorded_and_assertion_rewriting_still_explains(project, tmp_path):
    plain = plain_pytest(project)
    trace = tmp_path / "trace"
    recorded = recorded_pytest(project, trace, "mypkg")
    assert_same_run_as_plain(recorded, plain)

    events = load_events(trace)
    names = function_names(events)
    # The -m target is the program's main module: recorded like a script.
    assert {"<pytest.__main__>", "<mypkg>", "f", "Counter.__init__", "Counter.bump"} <= set(names)
    assert not [n for n in names if n.startswith(("test_", "<tests")) or n in ("check", "counter")]
    steps = steps_by_thread(events, root=project)
    package = project / "mypkg" / "__init__.py"
    # f() runs three times (test_passes, test_fails, test_helper_fails), its loop 3 rounds.
    assert lines_in(steps, package).count(4) == 9
    assert not lines_in(steps, project / "tests" / "test_calc.py")
    assert_conformant(trace)


@pytest.mark.parametrize("import_mode", ["prepend", "importlib"])
def test_test_modules_conftest_and_registered_helpers_are_recorded_too(project, tmp_path,
                                                                       import_mode):
    extra = ["--import-mode=%s" % import_mode]
    plain = plain_pytest(project, extra)
    trace = tmp_path / "trace"
    recorded = recorded_pytest(project, trace, "mypkg,tests", extra)
    assert_same_run_as_plain(recorded, plain)

    events = load_events(trace)
    names = set(function_names(events))
    assert {"<tests.test_calc>", "test_passes", "test_fails", "test_helper_fails",
            "test_fixture_from_conftest", "<tests.conftest>", "counter", "<tests.helper>",
            "check", "<mypkg>", "f"} <= names
    steps = steps_by_thread(events, root=project)
    test_lines = lines_in(steps, project / "tests" / "test_calc.py")
    assert {8, 9, 13, 17, 21, 22, 23} <= set(test_lines)
    assert test_lines.count(21) == 3  # the loop header of test_fixture_from_conftest
    assert {8, 9} <= set(lines_in(steps, project / "tests" / "conftest.py"))
    assert {2, 3} <= set(lines_in(steps, project / "tests" / "helper.py"))
    assert_conformant(trace)


def test_recorded_steps_equal_settrace_line_events(project, tmp_path):
    trace = tmp_path / "trace"
    recorded = recorded_pytest(project, trace, "mypkg,tests")
    assert recorded.returncode == 1, recorded.stderr
    # The oracle runs the same pytest session plainly under sys.settrace; its launcher
    # script lives outside the project, so only the project's line events are compared.
    launcher = tmp_path / "launcher" / "run_pytest.py"
    launcher.parent.mkdir()
    launcher.write_text("import os, sys\nimport pytest\nsys.path.insert(0, os.getcwd())\n"
                        "sys.exit(pytest.main(%r))\n" % INNER_ARGS)
    oracle = settrace_lines(launcher, project, cwd=project)
    steps = steps_by_thread(load_events(trace), root=project)
    assert sorted(steps.values()) == sorted(oracle.values())
    assert sum(len(thread) for thread in steps.values()) > 50
    assert_conformant(trace)


def _code_objects(code):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def test_pytest_pyc_cache_never_holds_probes(project, tmp_path):
    first = tmp_path / "first"
    recorded = recorded_pytest(project, first, "mypkg,tests")
    assert recorded.returncode == 1, recorded.stderr
    pycs = sorted(project.glob("tests/__pycache__/*-pytest-*.pyc"))
    assert {p.name.split(".")[0] for p in pycs} == {"conftest", "helper", "test_calc"}
    for pyc in pycs:
        code = marshal.loads(pyc.read_bytes()[16:])
        names = {name for c in _code_objects(code) for name in c.co_names}
        assert "@pytest_ar" in names  # pytest's rewritten code...
        assert not names & set(PROBE_NAMES), pyc  # ...without our probes
    # Nothing instrumented in the interpreter's own cache either (only in our private
    # cache files, which no plain loader looks for).
    for pyc in project.rglob("*.pyc"):
        if ".ctinstrument-" not in pyc.name:
            assert b"__ctinstrument_" not in pyc.read_bytes(), pyc

    # A plain run loads pytest's cached code and behaves as without any recording.
    plain = plain_pytest(project)
    assert_same_run_as_plain(recorded, plain)

    # A recorded run that finds pytest's cached pyc still records the test modules.
    second = tmp_path / "second"
    again = recorded_pytest(project, second, "mypkg,tests")
    assert_same_run_as_plain(again, plain)
    assert steps_by_thread(load_events(second), root=project) \
        == steps_by_thread(load_events(first), root=project)
    assert_conformant(first)
    assert_conformant(second)


def test_test_modules_outside_a_package_are_selected_by_module_name(tmp_path):
    root = tmp_path / "flat"
    root.mkdir()
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "test_flat.py").write_text("def test_sum():\n    total = sum([1, 2])\n"
                                       "    assert total == 4\n")
    trace = tmp_path / "trace"
    recorded = record("pytest", trace, args=["-p", "no:cacheprovider", "test_flat.py"],
                      options=["--include", "test_flat"], cwd=root, module=True)
    assert recorded.returncode == 1, recorded.stderr
    assert "E       assert 3 == 4" in recorded.stdout
    steps = steps_by_thread(load_events(trace), root=root)
    assert lines_in(steps, root / "test_flat.py") == [1, 2, 3]
    assert_conformant(trace)


# In-process checks of the adapter against stand-ins for pytest's module (the real one in
# this process belongs to the outer pytest and is never touched).

class _Hook:
    """Stands in for ImportHook: selects everything, records warnings."""

    def __init__(self, instrument=None):
        self.selection = types.SimpleNamespace(accepts=lambda name, origin: (True, "test"))
        self.decisions = {}
        self.warnings = []
        self.instrumented = []
        self._instrument = instrument

    def instrument(self, code, name, path):
        if self._instrument is not None:
            return self._instrument(code, name, path)
        self.instrumented.append(name)
        return code

    def warn_once(self, key, message):
        if key not in [k for k, _ in self.warnings]:
            self.warnings.append((key, message))


def _fake_rewrite_module(exec_module_source):
    module = types.ModuleType("fake_rewrite")
    exec("class AssertionRewritingHook:\n" + exec_module_source, module.__dict__)
    return module


KNOWN = ("    def exec_module(self, module):\n"
         "        exec(compile('ran = __name__', module.__spec__.origin, 'exec'),"
         " module.__dict__)\n")


def _load(rewrite, name="pkg.mod"):
    loader = rewrite.AssertionRewritingHook()
    module = types.ModuleType(name)
    module.__spec__ = types.SimpleNamespace(name=name, origin="/nowhere/mod.py", loader=loader)
    loader.exec_module(module)
    return module


def test_adapter_instruments_the_module_body_pytest_executes():
    rewrite = _fake_rewrite_module(KNOWN)
    hook = _Hook()
    assert pytest_support.attach(rewrite, hook)
    assert pytest_support.attach(rewrite, hook)  # idempotent
    module = _load(rewrite)
    assert module.ran == "pkg.mod"
    assert hook.instrumented == ["pkg.mod"]
    assert hook.decisions == {"pkg.mod": (True, "test")}
    pytest_support.detach(rewrite, hook)
    assert "exec" not in rewrite.__dict__
    _load(rewrite)
    assert hook.instrumented == ["pkg.mod"]


def test_adapter_chains_to_an_exec_another_tool_bound_first():
    rewrite = _fake_rewrite_module(KNOWN)
    seen = []

    def other_tools_exec(code, namespace):
        seen.append(namespace["__name__"])
        exec(code, namespace)

    rewrite.exec = other_tools_exec
    hook = _Hook()
    assert pytest_support.attach(rewrite, hook)
    assert _load(rewrite).ran == "pkg.mod"
    assert seen == ["pkg.mod"] and hook.instrumented == ["pkg.mod"]
    pytest_support.detach(rewrite, hook)
    assert rewrite.exec is other_tools_exec


def test_adapter_warns_once_and_stays_out_when_pytest_changed():
    changed = _fake_rewrite_module("    def exec_module(self, module):\n"
                                   "        module.ran = True\n")
    hook = _Hook()
    assert not pytest_support.attach(changed, hook)
    assert not pytest_support.attach(changed, hook)
    assert "exec" not in changed.__dict__
    assert len(hook.warnings) == 1
    assert "run unrecorded" in hook.warnings[0][1]
    assert _load(changed).ran is True


def test_a_failure_while_instrumenting_leaves_the_module_running_unrecorded():
    def broken(code, name, path):
        raise RuntimeError("boom")

    rewrite = _fake_rewrite_module(KNOWN)
    hook = _Hook(instrument=broken)
    assert pytest_support.attach(rewrite, hook)
    assert _load(rewrite).ran == "pkg.mod"
    assert _load(rewrite, "pkg.other").ran == "pkg.other"
    assert len(hook.warnings) == 2 and "RuntimeError: boom" in hook.warnings[0][1]


# -- the pytest plugin: pytest --ctinstrument=PATTERN --------------------------------------

PLUGIN = ["-p", "ctinstrument.pytest_plugin"]


def plugin_pytest(root, options, extra=()):
    return subprocess.run([sys.executable, "-m", "pytest", *PLUGIN, *options, *extra,
                           *INNER_ARGS], cwd=root, capture_output=True, text=True,
                          env=child_env(), timeout=300)


def test_plugin_records_the_selection_with_assertion_rewriting_intact(project, tmp_path):
    plain = plain_pytest(project)
    trace = tmp_path / "trace"
    recorded = plugin_pytest(project, ["--ctinstrument=mypkg", "--ctinstrument=tests",
                                       "--ctinstrument-out", str(trace)])
    assert_same_run_as_plain(recorded, plain)
    events = load_events(trace)
    names = set(function_names(events))
    assert {"<tests.test_calc>", "test_fails", "<tests.conftest>", "check", "<mypkg>",
            "f"} <= names
    assert not [n for n in names if n.startswith("<pytest") or n.startswith("<_pytest")]
    # Same line events as the oracle of the -m pytest run (the pytest session is the same).
    launcher = tmp_path / "launcher" / "run_pytest.py"
    launcher.parent.mkdir()
    launcher.write_text("import os, sys\nimport pytest\nsys.path.insert(0, os.getcwd())\n"
                        "sys.exit(pytest.main(%r))\n" % INNER_ARGS)
    oracle = settrace_lines(launcher, project, cwd=project)
    assert sorted(steps_by_thread(events, root=project).values()) == sorted(oracle.values())
    metadata = json.loads((trace / "trace_metadata.json").read_text())
    assert metadata["exit_code"] == 1  # pytest's exit status: tests failed
    assert events[-1]["Return"]["return_value"]["i"] == 1
    assert_conformant(trace)


def test_plugin_without_its_option_records_nothing(project, tmp_path):
    plain = plain_pytest(project)
    run = plugin_pytest(project, [])
    assert normalized(run.stdout) == normalized(plain.stdout)
    assert not (project / "trace-out").exists()


def test_plugin_usage_errors_are_pytest_usage_errors(project, tmp_path):
    bad = plugin_pytest(project, ["--ctinstrument=mypkg:", "--ctinstrument-out",
                                  str(tmp_path / "t")])
    assert bad.returncode == 4  # pytest's "usage error" status
    assert "ctinstrument: invalid function pattern 'mypkg:'" in bad.stderr
    assert "Traceback" not in bad.stderr
    # Inside a run already recorded by python -m ctinstrument: refused, clearly.
    nested = record("pytest", tmp_path / "outer", args=[*PLUGIN, "--ctinstrument=mypkg",
                                                        *INNER_ARGS],
                    options=["--include", "mypkg"], cwd=project, module=True)
    assert nested.returncode == 4
    assert "ctinstrument: ctinstrument is already recording this process" in nested.stderr
