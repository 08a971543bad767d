"""SIGTERM: the trace is finalised and the process still dies of SIGTERM like the plain
program; a handler the program installs wins; the program cannot tell that the recorder
holds SIGTERM."""

import json
import signal
import subprocess
import sys

from tracetools import (assert_conformant, child_env, kind, load_events, record, run_plain,
                        write_program)

SPIN = (
    "import signal, threading\n"
    "def step(n):\n"
    "    return n + 1\n"
    "def spin():\n"
    "    n = 0\n"
    "    while True:\n"
    "        n = step(n)\n"
    "        if n == 3000:\n"
    "            print('ready', flush=True)\n"
    "def idle():\n"
    "    threading.Event().wait()\n"
    "threading.Thread(target=idle, daemon=True).start()\n"
    "spin()\n")


def _terminate_when_ready(cmd, cwd, **popen):
    """Start ``cmd``, send SIGTERM once it printed ``ready``; returns (status, out, err)."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=child_env(), **popen)
    before = ""
    while not before.endswith("ready\n"):
        line = proc.stdout.readline()
        if not line:  # ended without getting ready
            out, err = proc.communicate()
            raise AssertionError("status %s\n%s\n%s" % (proc.returncode, before + out, err))
        before += line
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate()
    return proc.returncode, before + out, err


def _record_cmd(script, trace_dir):
    return [sys.executable, "-m", "ctinstrument", "-o", str(trace_dir), str(script)]


def test_sigterm_finalises_the_trace_and_dies_of_sigterm(tmp_path):
    script = write_program(tmp_path, SPIN)
    plain = _terminate_when_ready([sys.executable, str(script)], tmp_path)
    recorded = _terminate_when_ready(_record_cmd(script, tmp_path / "t"), tmp_path)
    assert recorded == plain == (-signal.SIGTERM, "ready\n", "")
    events = load_events(tmp_path / "t")
    errors = [e["Event"]["content"] for e in events
              if kind(e) == "Event" and e["Event"]["kind"] == 11]
    assert errors == ["terminated by SIGTERM"]
    assert events[-1] == {"Return": {"return_value": {"kind": "Int", "i": 143, "type_id": 1}}}
    with open(tmp_path / "t" / "trace_metadata.json") as handle:
        metadata = json.load(handle)
    assert metadata["exit_code"] == 143 and "incomplete" not in metadata
    assert_conformant(tmp_path / "t")  # balanced: the interrupted frames were closed


def test_a_handler_the_program_installs_wins(tmp_path):
    script = write_program(tmp_path, (
        "import signal, sys\n"
        "def stop(signum, frame):\n"
        "    print('stopping on', signal.Signals(signum).name)\n"
        "    sys.exit(0)\n"
        "previous = signal.signal(signal.SIGTERM, stop)\n"
        "print('previous handler:', previous)\n" + SPIN))
    plain = _terminate_when_ready([sys.executable, str(script)], tmp_path)
    recorded = _terminate_when_ready(_record_cmd(script, tmp_path / "t"), tmp_path)
    assert recorded == plain
    assert plain[0] == 0 and "stopping on SIGTERM" in plain[1]
    events = load_events(tmp_path / "t")
    assert not [e for e in events if kind(e) == "Event" and e["Event"]["kind"] == 11]
    assert events[-1] == {"Return": {"return_value": {"kind": "Int", "i": 0, "type_id": 1}}}
    assert_conformant(tmp_path / "t")


def test_the_program_sees_the_default_disposition(tmp_path):
    script = write_program(tmp_path, (
        "import signal\n"
        "def mine(signum, frame):\n"
        "    pass\n"
        "print(signal.getsignal(signal.SIGTERM))\n"
        "print(signal.signal(signal.SIGTERM, mine) is signal.SIG_DFL)\n"
        "print(signal.getsignal(signal.SIGTERM) is mine)\n"
        "print(signal.signal(signal.SIGTERM, signal.SIG_DFL) is mine)\n"
        "print(signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT))\n"))
    plain = run_plain(script, cwd=tmp_path)
    result = record(script, tmp_path / "t", cwd=tmp_path)
    assert result.returncode == plain.returncode == 0, result.stderr
    assert result.stdout == plain.stdout
    assert "False" not in plain.stdout


def test_sigterm_after_the_program_restored_the_default_still_finalises(tmp_path):
    script = write_program(tmp_path, (
        "import signal\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "signal.signal(signal.SIGTERM, signal.SIG_DFL)\n" + SPIN))
    plain = _terminate_when_ready([sys.executable, str(script)], tmp_path)
    recorded = _terminate_when_ready(_record_cmd(script, tmp_path / "t"), tmp_path)
    assert recorded == plain == (-signal.SIGTERM, "ready\n", "")
    events = load_events(tmp_path / "t")
    assert [e["Event"]["content"] for e in events if kind(e) == "Event"
            and e["Event"]["kind"] == 11] == ["terminated by SIGTERM"]
    assert_conformant(tmp_path / "t")


def test_an_ignored_sigterm_stays_ignored(tmp_path):
    script = write_program(tmp_path, "import signal\nprint(signal.getsignal(signal.SIGTERM))\n")
    ignore = {"preexec_fn": lambda: signal.signal(signal.SIGTERM, signal.SIG_IGN)}
    plain = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                           text=True, env=child_env(), **ignore)
    result = subprocess.run(_record_cmd(script, tmp_path / "t"), cwd=tmp_path,
                            capture_output=True, text=True, env=child_env(), **ignore)
    assert result.returncode == plain.returncode == 0, result.stderr
    assert result.stdout == plain.stdout
    assert "IGN" in plain.stdout or plain.stdout == "1\n"


def test_sigterm_inside_the_recorder_waits_for_it_to_return(tmp_path):
    # Deterministic stand-in for a signal landing in a probe: the handler is called with a
    # frame of code that counts as the recorder's (its module is ctinstrument.recorder).
    script = write_program(tmp_path, (
        "import signal, sys\n"
        "from ctinstrument.termination import SigtermFinaliser\n"
        "class Recorder:\n"
        "    finished = False\n"
        "    def record_error(self, text):\n"
        "        print('error event:', text, flush=True)\n"
        "    def finish(self, code):\n"
        "        print('finish', code, flush=True)\n"
        "        self.finished = True\n"
        "finaliser = SigtermFinaliser(Recorder()).install()\n"
        "recorder_module = {'__name__': 'ctinstrument.recorder', 'sys': sys}\n"
        "exec('def busy(handler):\\n'\n"
        "     '    handler(15, sys._getframe())\\n'\n"
        "     '    print(\"recorder code returns\", flush=True)\\n', recorder_module)\n"
        "recorder_module['busy'](finaliser.handler)\n"
        "print('never reached', flush=True)\n"))
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                            text=True, env=child_env())
    assert result.returncode == -signal.SIGTERM, result.stderr
    assert result.stdout == ("recorder code returns\nerror event: terminated by SIGTERM\n"
                             "finish 143\n")


def test_sigterm_does_not_wait_for_a_recorder_that_never_returns(tmp_path):
    # A stuck recorder must not make the process immune to SIGTERM: after a bounded number
    # of profile events it dies unfinalised (the trace is then one for ``repair``).
    script = write_program(tmp_path, (
        "import sys\n"
        "from ctinstrument.termination import SigtermFinaliser\n"
        "class Recorder:\n"
        "    finished = False\n"
        "    def finish(self, code):\n"
        "        print('finish', code, flush=True)\n"
        "finaliser = SigtermFinaliser(Recorder(), wait_events=1000).install()\n"
        "recorder_module = {'__name__': 'ctinstrument.recorder', 'sys': sys}\n"
        "exec('def stuck(handler):\\n'\n"
        "     '    handler(15, sys._getframe())\\n'\n"
        "     '    while True:\\n'\n"
        "     '        len(\"loop\")\\n', recorder_module)\n"
        "recorder_module['stuck'](finaliser.handler)\n"))
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                            text=True, env=child_env())
    assert (result.returncode, result.stdout) == (-signal.SIGTERM, ""), result.stderr


def test_a_forked_child_dies_of_sigterm_and_leaves_the_trace_alone(tmp_path):
    script = write_program(tmp_path, (
        "import os, signal\n"
        "def child(ready):\n"
        "    os.write(ready, b'x')\n"
        "    while True:\n"
        "        signal.pause()\n"
        "r, w = os.pipe()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    child(w)\n"
        "os.read(r, 1)\n"
        "os.kill(pid, signal.SIGTERM)\n"
        "print('child status', os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\n"))
    plain = run_plain(script, cwd=tmp_path)
    result = record(script, tmp_path / "t", cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == \
        (plain.returncode, plain.stdout, plain.stderr) == (0, "child status -15\n", "")
    events = load_events(tmp_path / "t")
    assert not [e for e in events if kind(e) == "Event" and e["Event"]["kind"] == 11]
    assert_conformant(tmp_path / "t")
