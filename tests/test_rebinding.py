"""Issue 10.4: what the program rebinds after ctinstrument started (builtins, ``sys._getframe``,
``sys.stdout``, ``os.getcwd``, ``os.path.*``, ``time.*``, ``threading.get_ident``) changes
neither what the recorder does nor what the program observes.

The program wraps them with counters, then imports a module (which the import hook rewrites
with ``bytecode`` while the wrappers are in place) and runs it; the counts and the output
must be the same plain and recorded.
"""

import subprocess
import sys

from tracetools import assert_conformant, child_env, load_events, record, write_program

PROGRAM = '''
import builtins
import collections
import os
import sys
import threading
import time

counts = collections.Counter()
real_print = builtins.print
real_type = type
real_getframe = sys._getframe
real_stdout = sys.stdout


def from_import_system():
    # The import system's own Python code (importlib._bootstrap) uses the builtins too, and
    # the import hook's loader reads a module's files in another order than the plain
    # SourceFileLoader (it never looks for the plain .pyc): those calls are not counted.
    return real_getframe(2).f_code.co_filename.startswith("<frozen importlib")


def counting(owner, name):
    real = getattr(owner, name)

    def wrapper(*args, **kwargs):
        if not from_import_system():
            counts[name] += 1
        return real(*args, **kwargs)
    setattr(owner, name, wrapper)


class CountingType(type):
    def __new__(mcs, *args):
        counts["type"] += 1
        return real_type(*args)


class CountingStream:
    def __init__(self, stream):
        self.stream = stream

    def write(self, text):
        counts["stdout.write"] += 1
        return self.stream.write(text)

    def flush(self):
        counts["stdout.flush"] += 1
        return self.stream.flush()


builtins.type = CountingType
for name in ("isinstance", "len", "repr", "id", "getattr", "hasattr", "open", "print",
             "__import__", "__build_class__", "iter", "next", "hash", "sorted", "min", "max",
             "setattr", "callable", "issubclass", "vars", "compile", "exec", "any", "all"):
    counting(builtins, name)
for owner, name in ((sys, "_getframe"), (sys, "exc_info"), (os, "getcwd"),
                    (os.path, "join"), (os.path, "realpath"), (os.path, "abspath"),
                    (os.path, "isabs"), (os.path, "isfile"), (os.path, "dirname"),
                    (time, "time"), (time, "perf_counter"), (time, "monotonic"),
                    (threading, "get_ident")):
    counting(owner, name)
sys.stdout = CountingStream(sys.stdout)

import helper  # noqa: E402 (rewritten while the wrappers are in place)

print("result", helper.work(5))
sys.stdout = real_stdout
builtins.type = real_type
real_print(sorted(counts.items()))
'''

HELPER = '''
import sys


class Box:
    def __init__(self, value):
        self.value = value

    def __repr__(self):
        return "Box(%r)" % (self.value,)


def squares(n):
    for i in range(n):
        yield i * i


def work(n):
    boxes = [Box(v) for v in squares(n)]
    try:
        boxes[n]
    except IndexError as exc:
        caught = type(exc).__name__
    print(len(boxes), isinstance(boxes[0], Box), caught, repr(boxes[-1]), id(boxes) > 0)
    with open(__file__) as handle:
        first = handle.readline()
    thrown_into = squares(3)
    next(thrown_into)
    try:
        thrown_into.throw(KeyError)  # resumed without a resume probe: the frame is re-synced
    except KeyError:
        pass
    return sum(b.value for b in boxes) + len(first) + (sys._getframe() is not None)
'''


def test_rebound_builtins_and_module_functions_are_not_seen(tmp_path):
    script = write_program(tmp_path, PROGRAM)
    write_program(tmp_path, HELPER, "helper.py")
    # No .pyc for helper in either run (a plain run would write one the next run loads).
    flags = ("-B",)
    plain = subprocess.run([sys.executable, *flags, str(script)], cwd=tmp_path,
                           capture_output=True, text=True, env=child_env(), timeout=300)
    assert plain.returncode == 0, plain.stderr
    counts = plain.stdout.splitlines()[-1]
    # The wrappers are in place: the program's own calls are counted.
    for name in ("'isinstance'", "'print'", "'stdout.write'", "'type'", "'_getframe'",
                 "'open'", "'__build_class__'"):
        assert name in counts
    recorded = record(script, tmp_path / "t", cwd=tmp_path, flags=flags)
    assert recorded.returncode == 0, recorded.stderr
    assert recorded.stdout == plain.stdout
    assert recorded.stderr == plain.stderr
    events = load_events(tmp_path / "t")
    names = {e["Function"]["name"] for e in events if "Function" in e}
    assert {"work", "squares", "Box.__repr__"} <= names
    assert_conformant(tmp_path / "t")


def test_recording_modules_have_the_private_builtins(tmp_path):
    check = (
        "import sys, builtins, ctinstrument\n"
        "real = builtins.isinstance\n"
        "builtins.isinstance = lambda *args: real(*args)\n"  # before the other modules load
        "import ctinstrument.rewriter, ctinstrument.recorder\n"
        "from ctinstrument.isolation import PRIVATE_BUILTINS, PATH, private_module\n"
        "ours = [m for n, m in sorted(sys.modules.items())\n"
        "        if n.partition('.')[0] in ('ctinstrument', 'bytecode')]\n"
        "assert len(ours) > 10, ours\n"
        "assert [m for m in ours if m.__builtins__ is not PRIVATE_BUILTINS] == []\n"
        "assert PRIVATE_BUILTINS['isinstance'] is real\n"
        "assert sys.modules['bytecode.flags'].IntFlag is private_module('enum').IntFlag\n"
        "assert private_module('enum') is not sys.modules['enum']\n"
        "assert PATH.__builtins__ is PRIVATE_BUILTINS\n"
        "print('ok')\n")
    result = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, capture_output=True,
                            text=True, env=child_env(), timeout=300)
    assert result.stdout == "ok\n", result.stderr

