"""The program cannot tell it is recorded: recursion depth, module lookup, paths, broken
builtins, fork, interpreter limits.  Each case compares a recorded run with a plain one."""

import os
import textwrap

import pytest

from tracetools import assert_conformant, record, run_plain


def _same_as_plain(tmp_path, source, name="prog.py", files=None, args=(), cwd=None,
                   script_arg=None):
    for file_name, text in (files or {}).items():
        (tmp_path / file_name).write_text(textwrap.dedent(text))
    script = tmp_path / name
    script.write_text(textwrap.dedent(source))
    where = cwd or tmp_path
    target = script_arg or script
    plain = run_plain(target, args, cwd=where)
    recorded = record(target, tmp_path / "trace", args=args, cwd=where)
    assert (recorded.returncode, recorded.stdout, recorded.stderr) == (
        plain.returncode, plain.stdout, plain.stderr)
    assert_conformant(tmp_path / "trace")
    return plain


def test_recursion_fails_at_the_same_depth(tmp_path):
    plain = _same_as_plain(tmp_path, """\
        import sys
        sys.setrecursionlimit(200)
        def depth(n):
            try:
                return depth(n + 1)
            except RecursionError:
                return n
        print(depth(0), sys.getrecursionlimit())
        sys.setrecursionlimit(60)
        def count(n):
            return 0 if n == 0 else 1 + count(n - 1)
        try:
            print(count(40))
        except RecursionError:
            print("RecursionError")
        """)
    assert plain.stdout.split()[1] == "200"


def test_a_local_module_shadowing_one_ctinstrument_imports(tmp_path):
    _same_as_plain(tmp_path, "import uuid, base64\nprint(uuid.WHO, base64.WHO)\n",
                   files={"uuid.py": "WHO = 'local uuid'\n",
                          "base64.py": "WHO = 'local base64'\n"})


def test_relative_script_path_keeps_python_paths(tmp_path):
    (tmp_path / "sub").mkdir()
    _same_as_plain(tmp_path, """\
        import sys
        print(__file__, sys.argv[0], sys.path[0])
        def f():
            return 1 / 0
        print(f.__code__.co_filename)
        f()
        """, script_arg=os.path.join("sub", "..", "prog.py"), cwd=tmp_path)


def test_deleted_builtins_do_not_break_the_recorder(tmp_path):
    _same_as_plain(tmp_path, """\
        import builtins
        del builtins.len
        def f(x):
            return [x, x]
        print(f(2))
        """)


def test_uncaught_exception_sets_sys_last_value(tmp_path):
    _same_as_plain(tmp_path, """\
        import atexit, sys
        atexit.register(lambda: print("last", sys.last_value, sys.last_type))
        raise ValueError("boom")
        """)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_child_does_not_write_into_the_parents_trace(tmp_path):
    _same_as_plain(tmp_path, """\
        import os, sys
        def work(n):
            return sum(range(n))
        pid = os.fork()
        if pid == 0:
            print("child", work(5), flush=True)
            os._exit(3)
        _, status = os.waitpid(pid, 0)
        print("parent", work(4), os.waitstatus_to_exitcode(status))
        """)


def test_twenty_nested_with_blocks(tmp_path):
    body = "def f():\n"
    for level in range(20):
        body += "    " * (level + 1) + "with contextlib.nullcontext():\n"
    body += "    " * 21 + "return 'in'\n"
    _same_as_plain(tmp_path, "import contextlib\n" + body + "print(f())\n")
