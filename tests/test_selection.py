"""Pattern kinds (module, glob, file, directory, function) and activation roots.

Which modules were instrumented is read from the trace (a module is instrumented iff its
body has a ``Function`` record); what a root records is compared with the interpreter's own
``sys.settrace`` line events counted only while a root frame is on the thread's stack
(settrace_driver.py, ORACLE_ROOTS)."""

import os

import pytest

from tracetools import (assert_conformant, kind, load_events, record, run_plain,
                        settrace_lines, steps_by_thread, write_program)

ROOTS = ("jobs:root_task,jobs:recursive_root,jobs:gen_root,jobs:failing_root,"
         "jobs:delegating_root")

JOBS = '''\
def helper(x):
    y = x * 2
    return y


def root_task(n):
    total = 0
    for i in range(n):
        total += helper(i)
    return total


def recursive_root(n):
    if n == 0:
        return 0
    return n + recursive_root(n - 1)


def outside(n):
    acc = 0
    for i in range(n):
        acc += helper(i)
    return acc


def gen_root(n):
    for i in range(n):
        yield helper(i)


def failing_root():
    value = helper(1)
    raise ValueError(value)


def inner_gen(n):
    for i in range(n):
        yield helper(i)


def delegating_root(n):
    yield from inner_gen(n)
'''

LIB = '''\
def call_back(function, argument):
    result = function(argument)
    return result
'''

MAIN = '''\
import threading

import jobs
import lib

print(jobs.outside(3))
print(jobs.root_task(2))
print(lib.call_back(jobs.root_task, 3))
print(sorted([3, 1, 2], key=jobs.root_task))
print(jobs.recursive_root(3))
worker = threading.Thread(target=jobs.root_task, args=(3,))
worker.start()
worker.join()
gen = jobs.gen_root(3)
print(next(gen))
print(jobs.outside(1))
print(list(gen))
try:
    jobs.failing_root()
except ValueError as exc:
    print("caught", exc)
print(jobs.outside(2))
delegating = jobs.delegating_root(3)
print(next(delegating))
print(jobs.outside(1))
print(list(delegating))
'''


def functions_and_calls(events):
    """({function name: path}, [called function names in order])."""
    paths, functions, calls = [], [], []
    for event in events:
        name = kind(event)
        if name == "Path":
            paths.append(os.path.realpath(event["Path"]))
        elif name == "Function":
            functions.append((event["Function"]["name"], paths[event["Function"]["path_id"]]))
        elif name == "Call":
            calls.append(functions[event["Call"]["function_id"]][0])
    return dict(functions), calls


@pytest.fixture
def roots_app(tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    write_program(app, JOBS, "jobs.py")
    write_program(app, LIB, "lib.py")
    return write_program(app, MAIN, "main.py")


def test_activation_roots_record_only_inside_roots(roots_app, tmp_path):
    app = roots_app.parent
    plain = run_plain(roots_app, cwd=app)
    trace = tmp_path / "trace"
    recorded = record(roots_app, trace, options=["-i", "jobs", "-i", ROOTS], cwd=app)
    assert recorded.returncode == plain.returncode == 0, recorded.stderr
    assert recorded.stdout == plain.stdout
    assert_conformant(trace)
    events = load_events(trace)

    oracle = settrace_lines(roots_app, app, cwd=app, ORACLE_ROOTS=ROOTS)
    steps = steps_by_thread(events)
    assert sorted(steps.values()) == sorted(oracle.values())
    assert len(steps) == 2  # the main thread and the worker running a root

    functions, calls = functions_and_calls(events)
    # jobs and the main script are instrumented; lib (not included) is not.
    assert "outside" in functions and "<__main__>" in functions
    assert not any(path.endswith("lib.py") for path in functions.values())
    # outside() runs three times, never under a root: never a call of the trace.
    assert "outside" not in calls and "<__main__>" not in calls
    # root_task: direct, through lib (unrecorded code), from sorted() three times, thread.
    assert calls.count("root_task") == 1 + 1 + 3 + 1
    assert calls.count("recursive_root") == 4  # recursion into a root
    # The generator root: first next(), then list() resumes it three more times.
    assert calls.count("gen_root") == 4
    assert calls.count("failing_root") == 1
    # helper() is recorded only when called inside a root: 2+3+(3+1+2)+3+3, 1, and 3 through
    # the delegating root (on 3.10 a root suspended in yield from resumes unseen: the
    # recorder finds it on the real stack when the generator it delegates to resumes).
    assert calls.count("helper") == 2 + 3 + 6 + 3 + 3 + 1 + 3


def test_root_in_the_main_script_by_path(tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    script = write_program(app, "def inner(v):\n    return v + 1\n\n\n"
                                "def main():\n    a = inner(1)\n    return a\n\n\n"
                                "print(inner(5))\nprint(main())\n")
    trace = tmp_path / "trace"
    recorded = record(script, trace, options=["-i", "%s:main" % script], cwd=app)
    assert recorded.returncode == 0, recorded.stderr
    assert recorded.stdout == "6\n2\n"
    assert_conformant(trace)
    _functions, calls = functions_and_calls(load_events(trace))
    assert calls == ["<toplevel>", "main", "inner"]


def _make_packages(root):
    for name in ("shop/__init__.py", "shop/cart/__init__.py", "shop/cart/views.py",
                 "shop/cart/models.py", "shop/users/__init__.py", "shop/users/views.py",
                 "tools/__init__.py", "tools/fmt.py"):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("VALUE = %r\n" % name)
    return write_program(root, "import shop.cart.views, shop.cart.models, shop.users.views\n"
                               "import tools.fmt\nprint('ok')\n", "main.py")


INSTRUMENTED_MODULES = [
    (["-i", "shop"], {"shop", "shop.cart", "shop.cart.views", "shop.cart.models", "shop.users",
                      "shop.users.views"}),
    (["-i", "shop.*.views"], {"shop.cart.views", "shop.users.views"}),
    (["-i", "shop", "--exclude", "shop.cart"], {"shop", "shop.users", "shop.users.views"}),
    (["-i", "shop/cart"], {"shop.cart", "shop.cart.views", "shop.cart.models"}),
    (["-i", "./tools/fmt.py"], {"tools.fmt"}),
    (["-i", "shop,tools", "--exclude", "./shop/users"],
     {"shop", "shop.cart", "shop.cart.views", "shop.cart.models", "tools", "tools.fmt"}),
]


@pytest.mark.parametrize("options,expected", INSTRUMENTED_MODULES,
                         ids=[" ".join(o) for o, _e in INSTRUMENTED_MODULES])
def test_pattern_kinds_select_modules(options, expected, tmp_path):
    script = _make_packages(tmp_path)
    trace = tmp_path / "trace"
    recorded = record(script, trace, options=options, cwd=tmp_path)
    assert recorded.returncode == 0, recorded.stderr
    assert recorded.stdout == "ok\n"
    assert_conformant(trace)
    functions, _calls = functions_and_calls(load_events(trace))
    modules = {name[1:-1] for name in functions if name.startswith("<")} - {
        "toplevel", "__main__"}
    assert modules == expected


@pytest.mark.parametrize("option,pattern,message", [
    ("-i", "shop:", "invalid function pattern 'shop:'"),
    ("-i", ":main", "invalid function pattern ':main'"),
    ("-i", "sh op", "invalid pattern 'sh op'"),
    ("-i", "./no/such/dir", "invalid pattern './no/such/dir': no such file or directory"),
    ("--exclude", "shop:main", "function patterns can only be included"),
    ("-i", "shop:f[", "invalid pattern 'shop:f[': unbalanced [ ] in a glob"),
])
def test_invalid_pattern_is_a_clear_error(option, pattern, message, tmp_path):
    script = _make_packages(tmp_path)
    result = record(script, tmp_path / "trace", options=[option, pattern], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("ctinstrument: error: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_function_globs_match_functions_only_and_main_can_be_excluded(tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    write_program(app, "def helper(x):\n    y = x * 2\n    return y\n", "helper.py")
    script = write_program(app, "import helper\n\n\nclass K:\n    z = helper.helper(10)\n\n"
                                "    def meth(self):\n        return helper.helper(2)\n\n\n"
                                "def a():\n    return helper.helper(1)\n\n\n"
                                "print(helper.helper(5), a(), K().meth())\n")
    trace = tmp_path / "trace"
    recorded = record(script, trace, options=["-i", "helper,__main__:*"], cwd=app)
    assert recorded.returncode == 0, recorded.stderr
    assert recorded.stdout == "10 2 4\n"
    assert_conformant(trace)
    _functions, calls = functions_and_calls(load_events(trace))
    # Module and class bodies are not roots: only a(), K.meth() and what they call.
    assert calls == ["<toplevel>", "a", "helper", "K.meth", "helper"]

    excluded = tmp_path / "excluded"
    recorded = record(script, excluded, options=["-i", "helper", "--exclude", "__main__"],
                      cwd=app)
    assert recorded.returncode == 0, recorded.stderr
    functions, calls = functions_and_calls(load_events(excluded))
    assert "<__main__>" not in functions and calls.count("helper") == 4


def test_roots_that_cannot_fire_are_reported(tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    write_program(app, "def helper(x):\n    return x\n", "helper.py")
    script = write_program(app, "import helper\nprint(helper.helper(3))\n")
    excluded = record(script, tmp_path / "t1", options=["-i", "helper:helper", "--exclude",
                                                        "helper"], cwd=app)
    assert excluded.returncode == 2
    assert excluded.stderr == ("ctinstrument: error: activation root 'helper:helper' is in "
                               "a module excluded by 'helper'\n")
    unmatched = record(script, tmp_path / "t2", options=["-i", "helper:nosuch"], cwd=app)
    assert unmatched.returncode == 0 and unmatched.stdout == "3\n"
    assert unmatched.stderr == (
        "ctinstrument: warning: activation root helper:nosuch matched no function of an "
        "instrumented module\nctinstrument: warning: nothing was recorded (no instrumented "
        "line ran while recording was on); --explain shows what was instrumented\n")


def test_including_a_module_ctinstrument_runs_on_is_warned_about(tmp_path):
    from ctinstrument.selection import Selection, split_patterns
    selection = Selection(split_patterns(["click", "click.core", "orj*", "*", "app.*",
                                          "pkg:run"]))
    assert selection.own_includes() == ["click", "click.core", "orj*"]
    script = tmp_path / "prog.py"
    script.write_text("import click\nprint(click.style('x'))\n")
    result = record(script, tmp_path / "t", options=["--include", "click"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == run_plain(script, cwd=tmp_path).stdout
    assert "include pattern click is not recorded: ctinstrument never records itself" \
        in result.stderr
    assert_conformant(tmp_path / "t")
