"""``python -m ctinstrument repair DIR`` turns the directory of a killed recording (SIGKILL,
``os._exit``, a torn last line) into a trace that passes the conformance checker, keeping
every event that was flushed; mistakes are one-line errors with status 2."""

import json
import signal
import subprocess
import sys

import pytest

from tracetools import assert_conformant, child_env, kind, load_events, record, write_program

THREADED = (
    "import threading\n"
    "def leaf(x):\n"
    "    return x * 2\n"
    "def work(k):\n"
    "    total = 0\n"
    "    for i in range(60):\n"
    "        total += leaf(i + k)\n"
    "    return total\n"
    "threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]\n"
    "for t in threads:\n"
    "    t.start()\n"
    "for t in threads:\n"
    "    t.join()\n"
    "print(work(7))\n")


def _ctinstrument(*args, cwd=None, module="ctinstrument"):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd,
                          capture_output=True, text=True, env=child_env())


def _complete_lines(trace_json):
    """The events of the complete lines of an unfinished ``trace.json``."""
    events = []
    for line in trace_json.read_bytes().split(b"\n")[1:]:
        try:
            events.append(json.loads(line.rstrip(b",")))
        except ValueError:
            break
    return events


def _metadata(trace_dir):
    with open(trace_dir / "trace_metadata.json") as handle:
        return json.load(handle)


def _assert_repaired(trace_dir, kept):
    """``trace_dir`` was repaired: conformant, starts with ``kept``, closes with cut-offs."""
    assert_conformant(trace_dir)
    events = load_events(trace_dir)
    assert events[:len(kept)] == kept
    for event in events[len(kept):]:
        assert kind(event) in ("Return", "ThreadSwitch", "ThreadStart", "ThreadExit", "Type")
        if kind(event) == "Return":
            assert "cut off" in event["Return"]["return_value"]["r"]
    paths = [e["Path"] for e in events if kind(e) == "Path"]
    with open(trace_dir / "trace_paths.json") as handle:
        assert json.load(handle) == paths
    assert _metadata(trace_dir)["repaired"] is True
    return events[len(kept):]


def test_a_recording_killed_by_sigkill_is_repaired(tmp_path):
    script = write_program(tmp_path, (
        "import threading\n"
        "def step(n):\n"
        "    return n + 1\n"
        "def idle(started):\n"
        "    started.set()\n"
        "    threading.Event().wait()\n"
        "def spin():\n"
        "    n = 0\n"
        "    while True:\n"
        "        n = step(n)\n"
        "        if n == 40000:\n"
        "            print('ready', flush=True)\n"
        "started = threading.Event()\n"
        "threading.Thread(target=idle, args=(started,), daemon=True).start()\n"
        "started.wait()\n"
        "spin()\n"))
    trace_dir = tmp_path / "t"
    proc = subprocess.Popen([sys.executable, "-m", "ctinstrument", "-o", str(trace_dir),
                             str(script), "--flag", "value"], cwd=tmp_path,
                            stdout=subprocess.PIPE, text=True, env=child_env())
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert not (trace_dir / "trace_paths.json").exists()
    assert not trace_dir.joinpath("trace.json").read_bytes().rstrip().endswith(b"]")
    assert _metadata(trace_dir)["incomplete"] is True
    flushed = _complete_lines(trace_dir / "trace.json")
    assert len(flushed) > 40000  # the loop ran under the recorder and was flushed

    result = _ctinstrument("repair", str(trace_dir))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ctinstrument: repaired %s: kept %d events"
                                    % (trace_dir, len(flushed)))
    closing = _assert_repaired(trace_dir, flushed)
    # The idle thread's call is closed on its own stack, then the main thread's.
    assert [kind(e) for e in closing[:2]] == ["ThreadSwitch", "Return"]
    assert closing[0]["ThreadSwitch"] != 1
    assert closing[-1] == closing[-2] and kind(closing[-1]) == "Return"
    metadata = _metadata(trace_dir)
    assert metadata["program"] == str(script)
    assert metadata["args"] == ["--flag", "value"]
    assert metadata["workdir"] == str(tmp_path)
    assert "incomplete" not in metadata


def test_a_recording_ended_by_os_exit_is_repaired(tmp_path):
    script = write_program(tmp_path, (
        "import os\n"
        "def step(n):\n"
        "    return n + 1\n"
        "def run():\n"
        "    n = 0\n"
        "    while n < 20000:\n"
        "        n = step(n)\n"
        "    os._exit(3)\n"
        "run()\n"))
    result = record(script, tmp_path / "t", cwd=tmp_path)
    assert result.returncode == 3
    flushed = _complete_lines(tmp_path / "t" / "trace.json")
    repaired = _ctinstrument("repair", str(tmp_path / "t"))
    assert repaired.returncode == 0, repaired.stderr
    _assert_repaired(tmp_path / "t", flushed)


@pytest.fixture(scope="module")
def complete_trace(tmp_path_factory):
    """A finished trace of a threaded program: (script dir, trace.json bytes, events)."""
    root = tmp_path_factory.mktemp("threaded")
    script = write_program(root, THREADED)
    result = record(script, root / "t", cwd=root)
    assert result.returncode == 0, result.stderr
    return root, (root / "t" / "trace.json").read_bytes(), load_events(root / "t")


@pytest.mark.parametrize("fraction", [0.02, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9, 0.99])
@pytest.mark.parametrize("torn", [True, False])
def test_a_trace_cut_anywhere_is_repaired(complete_trace, tmp_path, fraction, torn):
    root, data, events = complete_trace
    lines = data.split(b"\n")
    keep = max(1, int(len(events) * fraction))
    cut = len(b"\n".join(lines[:keep + 1])) + 1  # "[" and `keep` event lines, each ",\n"
    if torn:
        cut += len(lines[keep + 1]) // 2
    trace_dir = tmp_path / "t"
    trace_dir.mkdir()
    (trace_dir / "trace.json").write_bytes(data[:cut])
    result = _ctinstrument("repair", str(trace_dir))
    assert result.returncode == 0, result.stderr
    assert "dropped %d unreadable line" % (1 if torn else 0) in result.stdout
    _assert_repaired(trace_dir, events[:keep])
    # Without the provisional metadata, the program is the trace's first path.
    assert _metadata(trace_dir)["program"] == events[0]["Path"]


def test_repairing_a_complete_trace_changes_nothing(complete_trace):
    root, _data, _events = complete_trace
    before = {name: (root / "t" / name).read_bytes()
              for name in ("trace.json", "trace_metadata.json", "trace_paths.json")}
    result = _ctinstrument("repair", str(root / "t"))
    assert result.returncode == 0, result.stderr
    assert "already a complete trace" in result.stdout
    assert before == {name: (root / "t" / name).read_bytes() for name in before}


def test_a_repaired_trace_is_complete(complete_trace, tmp_path):
    _root, data, _events = complete_trace
    trace_dir = tmp_path / "t"
    trace_dir.mkdir()
    (trace_dir / "trace.json").write_bytes(data[:len(data) // 2])
    assert _ctinstrument("repair", str(trace_dir)).returncode == 0
    again = _ctinstrument("repair", str(trace_dir))
    assert again.returncode == 0 and "already a complete trace" in again.stdout


def _assert_usage_error(result, fragment):
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ctinstrument: error: "), result.stderr
    assert fragment in lines[0]


@pytest.mark.parametrize("content, fragment", [
    (None, "not a trace directory: it has no trace.json"),
    (b"hello\n", "is not a trace"),
    (b"[\n", "holds no complete event"),
    (b"[\n{\"Path\": \"/a.py\"", "holds no complete event"),
])
def test_a_directory_that_is_not_a_trace_is_a_usage_error(tmp_path, content, fragment):
    if content is not None:
        (tmp_path / "trace.json").write_bytes(content)
    _assert_usage_error(_ctinstrument("repair", str(tmp_path)), fragment)


def test_repair_usage_errors(tmp_path):
    _assert_usage_error(_ctinstrument("repair", str(tmp_path / "missing")),
                        "is not a directory")
    _assert_usage_error(_ctinstrument("repair"), "DIR")
    _assert_usage_error(_ctinstrument("repair", "a", "b"), "b")


def test_repair_is_the_command_only_first_and_without_a_file_of_that_name(tmp_path):
    _assert_usage_error(_ctinstrument("repair", "missing", cwd=tmp_path), "is not a directory")
    _assert_usage_error(_ctinstrument("-o", "t", "repair", cwd=tmp_path),
                        "cannot open script repair")
    _assert_usage_error(_ctinstrument("--", "repair", cwd=tmp_path),
                        "cannot open script repair")


def test_a_script_named_repair_is_recorded_when_it_exists(tmp_path):
    (tmp_path / "repair").write_text("import sys\nprint('repair script', sys.argv[1:])\n")
    result = _ctinstrument("repair", "DIR", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "repair script ['DIR']\n"
    assert_conformant(tmp_path / "trace-out")
    # The module form always repairs.
    result = _ctinstrument(str(tmp_path / "trace-out"), cwd=tmp_path,
                           module="ctinstrument.repair")
    assert result.returncode == 0 and "already a complete trace" in result.stdout
