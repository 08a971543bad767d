"""Program input and output in the trace: writes to stdout/stderr are Write events (kind 0)
and reads from stdin Read events (kind 3) at the step that did them, while the program sees
the same streams, attributes, output and tracebacks as without the recorder."""

import os
import subprocess
import sys

import pytest

from tracetools import (assert_conformant, child_env, kind, load_events, record, run_plain,
                        write_program)

WRITE, READ = 0, 3


def _io_events(events):
    """(kind, stream, content, thread, line of that thread's latest Step) per Write/Read."""
    found = []
    thread = None
    last_line = {}
    for event in events:
        name = kind(event)
        if name in ("ThreadStart", "ThreadSwitch"):
            thread = event[name]
        elif name == "Step":
            last_line[thread] = event["Step"]["line"]
        elif name == "Event" and event["Event"]["kind"] in (WRITE, READ):
            payload = event["Event"]
            found.append((payload["kind"], payload["metadata"], payload["content"], thread,
                          last_line.get(thread)))
    return found


def _run(cmd, cwd, stdin_text=None):
    return subprocess.run(cmd, cwd=cwd, input=stdin_text, capture_output=True, text=True,
                          env=child_env())


def _record_cmd(script, trace_dir, *options):
    return [sys.executable, "-m", "ctinstrument", "-o", str(trace_dir), *options, str(script)]


def test_writes_are_events_at_the_step_that_wrote_them(tmp_path):
    script = write_program(tmp_path, (
        "import sys\n"
        "def shout(word):\n"
        "    print(word.upper(), '!')\n"
        "    return word\n"
        "print('start')\n"
        "shout('hi')\n"
        "sys.stderr.write('warning\\n')\n"
        "sys.stdout.writelines(['a\\n', 'b\\n'])\n"
        "print('a', 'b', sep='-', end='')\n"
        "print(file=sys.stderr)\n"))
    plain = run_plain(script, cwd=tmp_path)
    result = record(script, tmp_path / "t", cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == \
        (plain.returncode, plain.stdout, plain.stderr) == \
        (0, "start\nHI !\na\nb\na-b", "warning\n\n")
    # print() writes its pieces separately; one event per print, in program order.
    assert [(k, stream, text, line) for k, stream, text, _thread, line
            in _io_events(load_events(tmp_path / "t"))] == [
        (WRITE, "stdout", "start\n", 5),
        (WRITE, "stdout", "HI !\n", 3),
        (WRITE, "stderr", "warning\n", 7),
        (WRITE, "stdout", "a\nb\n", 8),
        (WRITE, "stdout", "a-b", 9),
        (WRITE, "stderr", "\n", 10),
    ]
    assert_conformant(tmp_path / "t")


ATTRIBUTES = (
    "import io, os, sys\n"
    "for name in ('stdin', 'stdout', 'stderr'):\n"
    "    s = getattr(sys, name)\n"
    "    print(name, s.isatty(), s.fileno(), s.encoding, s.errors, s.line_buffering,\n"
    "          s.write_through, s.mode, s.name, s.closed, s.readable(), s.writable(),\n"
    "          repr(s), isinstance(s, io.TextIOWrapper), isinstance(s, io.TextIOBase),\n"
    "          s is getattr(sys, '__%s__' % name), type(s.buffer).__name__,\n"
    "          s.buffer is getattr(sys, '__%s__' % name).buffer, 'write' in dir(s))\n"
    "print(sys.stdout.write('count\\n'))\n"
    "sys.stdout.reconfigure(line_buffering=True)\n"
    "print(sys.stdout.line_buffering)\n"
    "sys.stdout.buffer.write(b'raw bytes\\n')\n"
    "sys.stdout.flush()\n"
    "saved = sys.stdout\n"
    "sys.stdout = io.StringIO()\n"
    "print('hidden')\n"
    "hidden, sys.stdout = sys.stdout.getvalue(), saved\n"
    "print(repr(hidden), iter(sys.stdin) is sys.stdin)\n")


def test_stream_attributes_and_behaviour_are_those_of_a_plain_run(tmp_path):
    script = write_program(tmp_path, ATTRIBUTES)
    plain = run_plain(script, cwd=tmp_path)
    result = record(script, tmp_path / "t", cwd=tmp_path)
    assert result.returncode == plain.returncode == 0, result.stderr
    assert result.stdout == plain.stdout
    assert result.stderr == plain.stderr == ""
    writes = "".join(text for k, stream, text, _t, _l in _io_events(load_events(tmp_path / "t"))
                     if k == WRITE and stream == "stdout")
    # What went through the text layer is recorded; bytes written to .buffer and what the
    # program wrote to its own StringIO are not.
    assert "count\n" in writes and "raw bytes" not in writes and "hidden\n" not in writes
    assert_conformant(tmp_path / "t")


def _run_on_a_terminal(cmd, cwd, typed=b""):
    """Run ``cmd`` with a pseudo-terminal as stdin/stdout/stderr; returns (status, output)."""
    pty = pytest.importorskip("pty")
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, cwd=cwd, stdin=slave, stdout=slave, stderr=slave,
                            env=child_env(), close_fds=True)
    os.close(slave)
    os.write(master, typed)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the terminal's last user has gone
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return proc.wait(), b"".join(chunks).decode()


def test_stream_attributes_on_a_terminal_are_those_of_a_plain_run(tmp_path):
    script = write_program(tmp_path, ATTRIBUTES)
    plain = _run_on_a_terminal([sys.executable, str(script)], tmp_path)
    recorded = _run_on_a_terminal(_record_cmd(script, tmp_path / "t"), tmp_path)
    assert recorded == plain
    assert "stdout True 1" in plain[1]
    assert_conformant(tmp_path / "t")


def test_input_on_a_terminal_is_recorded(tmp_path):
    # On a terminal input() prompts and reads through C stdio, past sys.stdin/sys.stdout.
    script = write_program(tmp_path, "name = input('name? ')\nprint('hello', name)\n")
    status, output = _run_on_a_terminal(_record_cmd(script, tmp_path / "t"), tmp_path,
                                        typed=b"Ada\n")
    assert status == 0 and "hello Ada" in output
    assert [(k, stream, text, line) for k, stream, text, _t, line
            in _io_events(load_events(tmp_path / "t"))] == [
        (WRITE, "stdout", "name? ", 1), (READ, "stdin", "Ada\n", 1),
        (WRITE, "stdout", "hello Ada\n", 2)]
    assert_conformant(tmp_path / "t")


def test_reads_from_stdin_are_read_events(tmp_path):
    script = write_program(tmp_path, (
        "import sys\n"
        "first = sys.stdin.readline()\n"
        "name = input('name? ')\n"
        "chunk = sys.stdin.read(3)\n"
        "pair = sys.stdin.readlines(1)\n"
        "rest = [line for line in sys.stdin]\n"
        "print(repr(first), repr(name), repr(chunk), pair, rest)\n"))
    typed = "one\nAda\nxyz\nl1\nl2\nl3\n"
    plain = _run([sys.executable, str(script)], tmp_path, typed)
    result = _run(_record_cmd(script, tmp_path / "t"), tmp_path, typed)
    assert result.returncode == plain.returncode == 0, result.stderr
    assert result.stdout == plain.stdout
    found = _io_events(load_events(tmp_path / "t"))
    reads = [(text, line) for k, _stream, text, _t, line in found if k == READ]
    assert "".join(text for text, _line in reads) == typed
    assert reads[:4] == [("one\n", 2), ("Ada\n", 3), ("xyz", 4), ("\nl1\n", 5)]
    assert {line for _text, line in reads[4:]} == {6}
    # The prompt input() writes comes before the line it reads.
    assert found[1:3] == [(WRITE, "stdout", "name? ", 1, 3), (READ, "stdin", "Ada\n", 1, 3)]
    assert_conformant(tmp_path / "t")


def test_no_capture_output_records_no_io_and_leaves_the_streams_alone(tmp_path):
    script = write_program(tmp_path, (
        "import builtins, sys\n"
        "print(type(sys.stdout).__name__, type(sys.stdin).__name__, type(input).__name__)\n"
        "print(sys.stdin.readline().strip())\n"))
    plain = _run([sys.executable, str(script)], tmp_path, "typed\n")
    result = _run(_record_cmd(script, tmp_path / "t", "--no-capture-output"), tmp_path,
                  "typed\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == plain.stdout == \
        "TextIOWrapper TextIOWrapper builtin_function_or_method\ntyped\n"
    assert _io_events(load_events(tmp_path / "t")) == []
    assert_conformant(tmp_path / "t")


def test_output_of_other_threads_is_tagged_with_their_thread(tmp_path):
    script = write_program(tmp_path, (
        "import threading\n"
        "def work():\n"
        "    print('from worker')\n"
        "print('main first')\n"
        "worker = threading.Thread(target=work)\n"
        "worker.start(); worker.join()\n"
        "quiet = threading.Thread(target=print, args=('from unrecorded code',))\n"
        "quiet.start(); quiet.join()\n"
        "print('main last')\n"))
    result = record(script, tmp_path / "t", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    found = [(text, thread)
             for _k, _s, text, thread, _l in _io_events(load_events(tmp_path / "t"))]
    assert [text for text, _thread in found] == [
        "main first\n", "from worker\n", "from unrecorded code\n", "main last\n"]
    threads = [thread for _text, thread in found]
    assert threads[0] == threads[3] == 1
    assert len({threads[0], threads[1], threads[2]}) == 3
    assert_conformant(tmp_path / "t")


def test_failing_writes_raise_as_without_the_recorder(tmp_path):
    script = write_program(tmp_path, (
        "import sys, traceback\n"
        "def emit(value):\n"
        "    sys.stdout.write(value)\n"
        "try:\n"
        "    emit(b'bytes')\n"
        "except TypeError:\n"
        "    traceback.print_exc(file=sys.stdout)\n"
        "emit(42)\n"))
    plain = run_plain(script, cwd=tmp_path)
    result = record(script, tmp_path / "t", cwd=tmp_path)
    assert result.returncode == plain.returncode == 1
    # The uncaught traceback never shows the recorder's frames.
    assert result.stderr == plain.stderr
    if sys.version_info >= (3, 11):
        # A traceback the program prints itself does not either (3.10: see capture.py).
        assert result.stdout == plain.stdout
    assert_conformant(tmp_path / "t")


def test_output_of_an_uncaught_exception_is_recorded_too(tmp_path):
    script = write_program(tmp_path, "print('before')\nraise ValueError('boom')\n")
    result = record(script, tmp_path / "t", cwd=tmp_path)
    assert result.returncode == 1
    events = load_events(tmp_path / "t")
    stderr_writes = "".join(text for k, stream, text, _t, _l in _io_events(events)
                            if stream == "stderr")
    assert stderr_writes == result.stderr
    assert any(kind(e) == "Event" and e["Event"]["kind"] == 11 for e in events)
    assert_conformant(tmp_path / "t")


def test_capture_survives_a_program_that_breaks_builtins(tmp_path):
    script = write_program(tmp_path, (
        "import builtins, sys\n"
        "for name in ('getattr', 'setattr', 'issubclass', 'type', 'len', 'repr', 'dir',\n"
        "             'object', 'super'):\n"
        "    delattr(builtins, name)\n"
        "print('encoding', sys.stdout.encoding, sys.stdout.isatty())\n"
        "sys.stdout.write('written\\n')\n"
        "print(input('prompt '), sys.stdin.readline())\n"))
    plain = _run([sys.executable, str(script)], tmp_path, "typed\nmore\n")
    result = _run(_record_cmd(script, tmp_path / "t"), tmp_path, "typed\nmore\n")
    assert result.returncode == plain.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == (plain.stdout, plain.stderr)
    texts = [text for _k, _s, text, _t, _l in _io_events(load_events(tmp_path / "t"))]
    assert texts == ["encoding utf-8 False\n", "written\n", "prompt ", "typed\nmore\n",
                     "typed more\n\n"]
    assert_conformant(tmp_path / "t")
