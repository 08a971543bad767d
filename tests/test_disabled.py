"""CodeTracer's recorder conventions: ``--version`` prints ``ctinstrument <version>``, and
``CTINSTRUMENT_DISABLED=1`` runs the program exactly as ``python`` would, unrecorded (the
oracle: the plain run of the same command)."""

import subprocess
import sys

from tracetools import child_env, write_program

import ctinstrument

PROGRAM = '''
import os, sys
print(sys.argv, __name__, sys.path[0] == os.path.dirname(os.path.abspath(__file__)),
      sorted(m for m in sys.modules if m.startswith(("ctinstrument", "click"))),
      sys.flags.dev_mode, os.environ.get("CTINSTRUMENT_DISABLED"))
sys.exit(int(sys.argv[1]))
'''


def _run(args, cwd, disabled="1"):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd,
                          env=child_env(CTINSTRUMENT_DISABLED=disabled), timeout=300)


def test_version_is_name_space_version(tmp_path):
    result = _run(["-m", "ctinstrument", "--version"], tmp_path, disabled="")
    assert (result.returncode, result.stdout, result.stderr) == (
        0, "ctinstrument %s\n" % ctinstrument.__version__, "")


def test_disabled_script_runs_as_with_python(tmp_path):
    script = write_program(tmp_path, PROGRAM)
    plain = _run(["-X", "dev", str(script), "3", "--flag", "-m"], tmp_path)
    recorded = _run(["-X", "dev", "-m", "ctinstrument", "-o", str(tmp_path / "trace"),
                     "--include", "prog", str(script), "3", "--flag", "-m"], tmp_path)
    assert plain.returncode == 3
    assert (recorded.returncode, recorded.stdout, recorded.stderr) == (
        plain.returncode, plain.stdout, plain.stderr)
    assert not (tmp_path / "trace").exists()


def test_disabled_module_runs_as_with_python_m(tmp_path):
    write_program(tmp_path, PROGRAM, "mod.py")
    plain = _run(["-m", "mod", "0"], tmp_path)
    recorded = _run(["-m", "ctinstrument", "-m", "mod", "0"], tmp_path)
    assert "mod.py" in plain.stdout
    assert (recorded.returncode, recorded.stdout, recorded.stderr) == (
        plain.returncode, plain.stdout, plain.stderr)
    assert not (tmp_path / "trace-out").exists()


def test_disabled_false_records(tmp_path):
    script = write_program(tmp_path, PROGRAM)
    result = _run(["-m", "ctinstrument", "-o", str(tmp_path / "trace"), str(script), "0"],
                  tmp_path, disabled="0")
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr  # a known variable, not an unknown one
    assert (tmp_path / "trace" / "trace.json").is_file()


def test_disabled_bad_value_is_a_usage_error(tmp_path):
    script = write_program(tmp_path, PROGRAM)
    result = _run(["-m", "ctinstrument", str(script), "0"], tmp_path, disabled="maybe")
    assert result.returncode == 2
    assert result.stderr.startswith("ctinstrument: error: $CTINSTRUMENT_DISABLED must be")


def test_disabled_api_records_nothing_and_raises_nothing(tmp_path):
    script = write_program(tmp_path, '''
import ctinstrument
handle = ctinstrument.install_hook(["prog"], out_dir="trace")
with ctinstrument.record():
    ctinstrument.start()
    ctinstrument.stop()
@ctinstrument.record()
def f():
    return 5
print(f(), handle.recording, ctinstrument.is_recording(), handle.decisions)
handle.uninstall()
''')
    result = _run([str(script)], tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "5 False False {}\n", "")
    assert not (tmp_path / "trace").exists()


def test_disabled_pytest_plugin_records_nothing(tmp_path):
    write_program(tmp_path, "def test_one():\n    assert 1 + 1 == 2\n", "test_it.py")
    result = _run(["-m", "pytest", "-q", "-p", "ctinstrument.pytest_plugin",
                   "--ctinstrument=test_it", "--ctinstrument-out", str(tmp_path / "trace"),
                   "-p", "no:cacheprovider", "test_it.py"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert not (tmp_path / "trace").exists()
