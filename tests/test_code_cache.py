"""The private code cache: a second run loads rewritten modules instead of rewriting them,
records the same trace, and the cache never changes what a plain interpreter runs.

Every run is a subprocess in a fresh project under tmp_path; ``trace_metadata.json``'s
``code_cache`` section (modules rewritten, loaded from and written to the cache) is the
observation of what the recorder did.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tracetools import assert_conformant, child_env, load_events, record, run_plain

HELPER = '''\
def f(x):
    y = x * 2
    return y + 1
'''
PKG_INIT = '''\
from . import inner
VALUE = inner.g(3)
'''
PKG_INNER = '''\
def g(n):
    total = 0
    for i in range(n):
        total += i
    return total
'''
MAIN = '''\
import helper
import pkg
print(helper.f(20), pkg.VALUE)
'''
CACHED_MODULES = ["main", "helper", "inner", "__init__"]


def _project(root):
    root.mkdir(parents=True, exist_ok=True)
    (root / "helper.py").write_text(HELPER)
    (root / "pkg").mkdir()
    (root / "pkg" / "__init__.py").write_text(PKG_INIT)
    (root / "pkg" / "inner.py").write_text(PKG_INNER)
    main = root / "main.py"
    main.write_text(MAIN)
    return main


def _run(script, out_dir, flags=(), **env):
    result = record(script, out_dir, cwd=script.parent, flags=flags, env=child_env(**env))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    with open(os.path.join(out_dir, "trace_metadata.json"), encoding="utf-8") as handle:
        metadata = json.load(handle)
    assert_conformant(out_dir)
    return result, metadata


def _counts(metadata):
    stats = metadata["code_cache"]
    return stats["rewritten"], stats["loaded"], stats["written"]


def _cache_files(root):
    """{module stem: path} of the private cache entries under ``root``."""
    found = {}
    for directory, _dirs, files in os.walk(root):
        for name in files:
            if ".ctinstrument-" in name and name.endswith(".pyc"):
                found.setdefault(name.split(".")[0], []).append(os.path.join(directory, name))
    return found


def _only_entry(root, stem):
    entries = _cache_files(root)[stem]
    assert len(entries) == 1, entries
    return entries[0]


def _same_trace(first, second):
    """The two trace directories hold the same recording (ids and counters aside)."""
    assert load_events(first) == load_events(second)
    for name in ("trace_paths.json",):
        assert (first / name).read_bytes() == (second / name).read_bytes()
    metas = []
    for directory in (first, second):
        meta = json.loads((directory / "trace_metadata.json").read_text())
        del meta["recording_id"], meta["code_cache"], meta["settings"]  # options differ
        metas.append(meta)
    assert metas[0] == metas[1]


def test_second_run_loads_every_module_from_the_cache(tmp_path):
    main = _project(tmp_path / "src")
    plain = run_plain(main, cwd=main.parent)
    first, meta1 = _run(main, tmp_path / "t1")
    assert first.stdout == plain.stdout == "41 3\n"
    # The main script and the three modules were rewritten and written.
    assert _counts(meta1) == (4, 0, 4)
    entries = _cache_files(tmp_path / "src")
    assert sorted(entries) == sorted(CACHED_MODULES)
    name = os.path.basename(entries["helper"][0])
    assert name.startswith("helper.%s.ctinstrument-" % sys.implementation.cache_tag)

    second, meta2 = _run(main, tmp_path / "t2")
    assert second.stdout == plain.stdout
    assert _counts(meta2) == (0, 4, 0)  # nothing rewritten, the main script included
    _same_trace(tmp_path / "t1", tmp_path / "t2")


def test_cached_and_uncached_runs_record_the_same_trace(tmp_path):
    main = _project(tmp_path / "src")
    _run(main, tmp_path / "t1")
    _, cached = _run(main, tmp_path / "t2")
    assert _counts(cached) == (0, 4, 0)
    _, uncached = _run(main, tmp_path / "t3", CTINSTRUMENT_CACHE="0")
    assert uncached["code_cache"] == {"cache": False, "rewritten": 4}
    _same_trace(tmp_path / "t2", tmp_path / "t3")


def test_cache_off_writes_nothing(tmp_path):
    main = _project(tmp_path / "src")
    _, metadata = _run(main, tmp_path / "t", CTINSTRUMENT_CACHE="off")
    assert metadata["code_cache"]["cache"] is False
    assert _cache_files(tmp_path) == {}


def test_a_changed_source_of_same_size_and_mtime_is_rewritten(tmp_path):
    main = _project(tmp_path / "src")
    helper = tmp_path / "src" / "helper.py"
    _run(main, tmp_path / "t1")
    entry = _only_entry(tmp_path / "src", "helper")
    before = open(entry, "rb").read()
    stat = helper.stat()
    helper.write_text(HELPER.replace("y + 1", "y + 7"))
    os.utime(helper, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert helper.stat().st_size == stat.st_size
    assert helper.stat().st_mtime_ns == stat.st_mtime_ns

    result, metadata = _run(main, tmp_path / "t2")
    assert result.stdout == "47 3\n"
    assert _counts(metadata) == (1, 3, 1)  # helper rewritten and written again
    assert open(entry, "rb").read() != before
    _, metadata = _run(main, tmp_path / "t3")
    assert _counts(metadata) == (0, 4, 0)


PROBED = '''\
import helper
print(helper.__cached__)
print("__ctinstrument_step__" in helper.f.__code__.co_names, helper.f(1))
'''


def test_plain_python_never_loads_instrumented_code(tmp_path):
    main = _project(tmp_path / "src")
    _run(main, tmp_path / "t")
    entry = _only_entry(tmp_path / "src", "helper")
    probe = tmp_path / "src" / "probe.py"
    probe.write_text(PROBED)
    plain = run_plain(probe, cwd=probe.parent)
    assert plain.returncode == 0, plain.stderr
    cached_path, probed = plain.stdout.splitlines()
    assert cached_path.endswith("helper.%s.pyc" % sys.implementation.cache_tag)
    assert probed == "False 3"

    # Even under the name a plain interpreter reads, our magic makes it ignore the entry.
    shutil.copyfile(entry, cached_path)
    plain = run_plain(probe, cwd=probe.parent)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.splitlines()[1] == "False 3"
    with open(cached_path, "rb") as handle:
        assert b"__ctinstrument_" not in handle.read()  # replaced by a plain .pyc


def test_dont_write_bytecode_writes_nothing_but_still_reads(tmp_path):
    main = _project(tmp_path / "src")
    _, metadata = _run(main, tmp_path / "t1", PYTHONDONTWRITEBYTECODE="1")
    assert _counts(metadata) == (4, 0, 0)
    assert not (tmp_path / "src" / "__pycache__").exists()
    assert not (tmp_path / "src" / "pkg" / "__pycache__").exists()

    _run(main, tmp_path / "t2")
    _, metadata = _run(main, tmp_path / "t3", PYTHONDONTWRITEBYTECODE="1")
    assert _counts(metadata) == (0, 4, 0)  # like CPython: read, just not written


def test_sys_dont_write_bytecode_set_by_the_program(tmp_path):
    main = _project(tmp_path / "src")
    main.write_text("import sys\nsys.dont_write_bytecode = True\n" + MAIN)
    result, metadata = _run(main, tmp_path / "t")
    assert result.stdout == "41 3\n"
    # The main script was rewritten before the program ran; nothing was written after.
    assert _counts(metadata) == (4, 0, 1)
    assert sorted(_cache_files(tmp_path)) == ["main"]


def test_pycache_prefix_holds_the_entries(tmp_path):
    main = _project(tmp_path / "src")
    prefix = tmp_path / "prefix"
    _, metadata = _run(main, tmp_path / "t1", PYTHONPYCACHEPREFIX=str(prefix))
    assert _counts(metadata) == (4, 0, 4)
    assert _cache_files(tmp_path / "src") == {}
    entry = _only_entry(prefix, "helper")
    # CPython's layout: the source directory's absolute path mirrored under the prefix.
    src = os.path.realpath(tmp_path / "src")
    assert os.path.dirname(entry) == os.path.join(str(prefix), src.lstrip(os.sep))
    _, metadata = _run(main, tmp_path / "t2", PYTHONPYCACHEPREFIX=str(prefix))
    assert _counts(metadata) == (0, 4, 0)


def test_pycache_that_is_a_file_turns_the_cache_off(tmp_path):
    main = _project(tmp_path / "src")
    (tmp_path / "src" / "__pycache__").write_text("not a directory")
    plain = run_plain(main, cwd=main.parent)
    result, metadata = _run(main, tmp_path / "t")
    assert result.stdout == plain.stdout
    # main and helper could not be cached; the package's own __pycache__ works.
    assert _counts(metadata) == (4, 0, 2)
    assert sorted(_cache_files(tmp_path)) == ["__init__", "inner"]
    assert (tmp_path / "src" / "__pycache__").read_text() == "not a directory"


def test_cache_directory_that_cannot_be_created_turns_the_cache_off(tmp_path):
    main = _project(tmp_path / "src")
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    result, metadata = _run(main, tmp_path / "t", PYTHONPYCACHEPREFIX=str(blocker / "sub"))
    assert result.stdout == "41 3\n"
    assert _counts(metadata) == (4, 0, 0)


def test_entry_path_that_is_a_directory_is_a_miss(tmp_path):
    main = _project(tmp_path / "src")
    _run(main, tmp_path / "t1")
    entry = _only_entry(tmp_path / "src", "helper")
    os.unlink(entry)
    os.mkdir(entry)
    result, metadata = _run(main, tmp_path / "t2")
    assert result.stdout == "41 3\n"
    assert _counts(metadata) == (1, 3, 0)
    assert os.listdir(entry) == []  # and no temporary file left beside it
    assert [n for n in os.listdir(os.path.dirname(entry)) if n.endswith(".tmp")] == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root writes into read-only directories")
def test_read_only_tree_turns_the_cache_off(tmp_path):
    main = _project(tmp_path / "src")
    directories = [tmp_path / "src", tmp_path / "src" / "pkg"]
    for directory in directories:
        directory.chmod(0o555)
    try:
        result, metadata = _run(main, tmp_path / "t")
    finally:
        for directory in directories:
            directory.chmod(0o755)
    assert result.stdout == "41 3\n"
    assert _counts(metadata) == (4, 0, 0)


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_a_corrupt_entry_is_a_miss_and_is_replaced(tmp_path, damage):
    main = _project(tmp_path / "src")
    _run(main, tmp_path / "t1")
    entry = _only_entry(tmp_path / "src", "inner")
    data = open(entry, "rb").read()
    if damage == "truncate":
        data = data[:len(data) // 2]
    elif damage == "flip":
        data = data[:-10] + bytes([data[-10] ^ 0xFF]) + data[-9:]
    else:
        data = b"\0" * len(data)
    with open(entry, "wb") as handle:
        handle.write(data)

    result, metadata = _run(main, tmp_path / "t2")
    assert result.stdout == "41 3\n"
    assert _counts(metadata) == (1, 3, 1)
    _same_trace(tmp_path / "t1", tmp_path / "t2")
    _, metadata = _run(main, tmp_path / "t3")
    assert _counts(metadata) == (0, 4, 0)


ASSERTING = '''\
def check():
    try:
        assert False
    except AssertionError:
        return "asserts on"
    return "asserts off"
'''


def test_optimization_levels_get_their_own_entries(tmp_path):
    main = _project(tmp_path / "src")
    (tmp_path / "src" / "helper.py").write_text(HELPER + ASSERTING)
    main.write_text("import helper\nprint(helper.check())\n")
    outputs = {}
    for flags in ((), ("-O",), ("-OO",)):
        result, metadata = _run(main, tmp_path / ("t%d" % len(flags)), flags=flags)
        outputs[flags] = result.stdout
        assert _counts(metadata) == (2, 0, 2), flags  # never another level's entry
    assert outputs == {(): "asserts on\n", ("-O",): "asserts off\n", ("-OO",): "asserts off\n"}
    names = sorted(os.path.basename(p) for p in _cache_files(tmp_path / "src")["helper"])
    assert len(names) == 3
    assert [n for n in names if ".opt-1." in n] and [n for n in names if ".opt-2." in n]
    result, metadata = _run(main, tmp_path / "t4", flags=("-O",))
    assert result.stdout == "asserts off\n"
    assert _counts(metadata) == (0, 2, 0)


COLLIDING = '''\
BIG = 1 << 40
SITE = (2 << 40) + 5

def f():
    local = (3 << 40) + 7
    return local - SITE
'''


def test_module_with_constants_in_the_portable_range(tmp_path):
    main = _project(tmp_path / "src")
    (tmp_path / "src" / "helper.py").write_text(COLLIDING)
    main.write_text("import helper\nprint(helper.BIG, helper.SITE, helper.f())\n")
    plain = run_plain(main, cwd=main.parent)
    # helper is rewritten with real ids every time and never cached; main is cached.
    for run, counts in (("t1", (2, 0, 1)), ("t2", (1, 1, 0))):
        result, metadata = _run(main, tmp_path / run)
        assert result.stdout == plain.stdout
        assert _counts(metadata) == counts
    events = load_events(tmp_path / "t2")
    values = [e["AssignCell"]["new_value"] for e in events if "AssignCell" in e]
    assert any(v.get("i") == (3 << 40) + 7 for v in values if isinstance(v, dict)), values[:5]


def test_one_file_imported_under_two_names(tmp_path):
    main = _project(tmp_path / "src")
    main.write_text("import sys, os\nimport pkg.inner\n"
                    "sys.path.insert(0, os.path.join(os.path.dirname(__file__), 'pkg'))\n"
                    "import inner\nprint(inner is pkg.inner, inner.g(4))\n")
    for run in ("t1", "t2"):
        result, metadata = _run(main, tmp_path / run)
        assert result.stdout == "False 6\n"
    assert _counts(metadata) == (0, 4, 0)  # pkg/inner.py: one entry, loaded twice
    names = {e["Function"]["name"] for e in load_events(tmp_path / "t2") if "Function" in e}
    assert {"<pkg.inner>", "<inner>"} <= names
    _same_trace(tmp_path / "t1", tmp_path / "t2")


TRACEBACK = '''\
import traceback
import helper
try:
    helper.f(None)
except TypeError as exc:
    print(traceback.extract_tb(exc.__traceback__)[-1].filename)
'''


def test_a_moved_tree_uses_its_entries_with_the_new_paths(tmp_path):
    main = _project(tmp_path / "old")
    main.write_text(TRACEBACK)
    _run(main, tmp_path / "t1")
    shutil.copytree(tmp_path / "old", tmp_path / "new")
    shutil.rmtree(tmp_path / "old")
    moved = tmp_path / "new" / "main.py"
    result, metadata = _run(moved, tmp_path / "t2")
    assert _counts(metadata) == (0, 2, 0)
    assert result.stdout == "%s\n" % (tmp_path / "new" / "helper.py")
    paths = json.loads((tmp_path / "t2" / "trace_paths.json").read_text())
    assert str(tmp_path / "new" / "helper.py") in paths
    assert not [p for p in paths if "old" in p]


def test_the_cache_can_be_turned_off_in_the_api(tmp_path):
    main = _project(tmp_path / "src")
    script = tmp_path / "api.py"
    script.write_text(
        "import sys\n"
        "import ctinstrument\n"
        "handle = ctinstrument.install_hook('helper', out_dir=sys.argv[1], cache=False)\n"
        "sys.path.insert(0, sys.argv[2])\n"
        "import helper\n"
        "print(helper.f(1), handle.decisions['helper'][0])\n"
        "handle.uninstall()\n")
    out = tmp_path / "t"
    result = subprocess.run([sys.executable, str(script), str(out), str(main.parent)],
                            capture_output=True, text=True, env=child_env(), cwd=tmp_path,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "3 True\n"
    metadata = json.loads((out / "trace_metadata.json").read_text())
    assert metadata["code_cache"] == {"cache": False, "rewritten": 1}
    assert _cache_files(tmp_path) == {}
    assert_conformant(out)


# Modules a start-up does not need: the rewriter on a cache hit, and the heavy standard
# modules ctinstrument used to import (hashlib loads OpenSSL, shutil loads bz2 and lzma).
LOADED = ('import sys\n'
          'print(sorted(m for m in ("bytecode", "ctinstrument.rewriter", "hashlib", "shutil", '
          '"traceback") if m in sys.modules))\n')


def test_a_run_with_everything_cached_never_imports_the_rewriter(tmp_path):
    script = tmp_path / "one.py"
    script.write_text(LOADED)
    result, metadata = _run(script, tmp_path / "t1")
    assert result.stdout == "['bytecode', 'ctinstrument.rewriter']\n"
    assert _counts(metadata) == (1, 0, 1)
    result, metadata = _run(script, tmp_path / "t2")
    assert result.stdout == "[]\n"
    assert _counts(metadata) == (0, 1, 0)


OWN_BYTECODE = '''\
import sys
import bytecode
print(bytecode.MINE)
import helper
print(helper.f(20), bytecode.MINE, bytecode is sys.modules["bytecode"])
print(sorted(name for name in sys.modules if name.startswith("bytecode.")))
'''


def test_the_rewriter_imported_while_the_program_runs_gets_the_library(tmp_path):
    # The program's own bytecode.py is imported first; helper then misses the cache, so
    # the rewriter (and the bytecode library) is imported while the program runs.
    main = _project(tmp_path / "src")
    main.write_text(OWN_BYTECODE)
    (tmp_path / "src" / "bytecode.py").write_text("MINE = 'mine'\n")
    plain = run_plain(main, cwd=main.parent)
    assert plain.stdout == "mine\n41 mine True\n[]\n"
    _run(main, tmp_path / "t1")
    os.unlink(_only_entry(tmp_path / "src", "helper"))

    result, metadata = _run(main, tmp_path / "t2")
    assert result.stdout == plain.stdout
    assert _counts(metadata) == (1, 1, 1)  # helper rewritten and written, main loaded
    calls = {e["Function"]["name"] for e in load_events(tmp_path / "t2") if "Function" in e}
    assert {"<helper>", "f"} <= calls
