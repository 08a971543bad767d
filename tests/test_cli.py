"""Command-line behaviour: argument handling like ``python``, and one-line errors with exit
status 2 (never a traceback) for user mistakes."""

import os
import subprocess
import sys

import pytest

from tracetools import assert_conformant, child_env, load_events, record, run_plain


def _ctinstrument(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "ctinstrument", *args], cwd=cwd,
                          capture_output=True, text=True, env=env or child_env(), timeout=120)


def _assert_usage_error(result, fragment):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ctinstrument: error: ")
    assert fragment in lines[0]
    assert "Traceback" not in result.stderr


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "show_args.py"
    path.write_text("import sys\nprint(sys.argv)\nprint(sys.path[0])\nprint(__name__)\n")
    return path


def test_missing_script_is_a_usage_error(tmp_path):
    _assert_usage_error(_ctinstrument("-o", str(tmp_path / "t"), "no_such_script.py"),
                        "no_such_script.py")


def test_directory_instead_of_script_is_a_usage_error(tmp_path):
    _assert_usage_error(_ctinstrument("-o", str(tmp_path / "t"), str(tmp_path)),
                        "is a directory")


def test_unknown_option_is_a_usage_error(script, tmp_path):
    _assert_usage_error(_ctinstrument("--no-such-option", str(script)), "--no-such-option")


def test_out_dir_that_is_a_file_is_a_usage_error(script, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    _assert_usage_error(_ctinstrument("-o", str(blocker), str(script)), "not a directory")


def test_out_dir_that_cannot_be_created_is_a_usage_error(script):
    _assert_usage_error(_ctinstrument("-o", "/proc/ctinstrument-cannot-write", str(script)),
                        "cannot write the trace")


def test_invalid_pattern_is_a_usage_error(script, tmp_path):
    _assert_usage_error(_ctinstrument("-o", str(tmp_path / "t"), "--include", "a..b",
                                      str(script)), "a..b")


def test_no_program_is_a_usage_error():
    _assert_usage_error(_ctinstrument(), "no program")


def test_syntax_error_is_reported_like_python(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("x = 1\ny = (\n")
    plain = run_plain(bad, cwd=tmp_path)
    result = record(bad, tmp_path / "t", cwd=tmp_path)
    assert plain.returncode == 1
    assert result.returncode == 1
    assert result.stderr == plain.stderr
    assert "SyntaxError" in result.stderr


def test_version_and_help():
    from ctinstrument import __version__
    version = _ctinstrument("--version")
    assert version.returncode == 0
    assert __version__ in version.stdout
    helptext = _ctinstrument("--help")
    assert helptext.returncode == 0
    assert "--include" in helptext.stdout and "-m MODULE" in helptext.stdout


def test_short_flags_parse_as_their_long_forms():
    from ctinstrument.cli import parse
    short = parse(["-i", "a", "-o", "-i", "-m", "pkg.tool", "-v"])
    long = parse(["--include", "a", "--out-dir", "-i", "-mpkg.tool", "-v"])
    assert short == long
    parsed, program_args = short
    assert parsed["module"] == "pkg.tool" and parsed["script"] is None
    assert parsed["given"] == {"include": ("a",), "out_dir": "-i"}  # a value, not a flag
    assert program_args == ["-v"]
    parsed, program_args = parse(["-i", "a", "prog.py", "-o", "x"])
    assert (parsed["script"], parsed["module"], program_args) == ("prog.py", None, ["-o", "x"])


def test_arguments_after_the_script_belong_to_the_script(script, tmp_path):
    args = ["--include", "x", "-o", "y", "-m", "z", "--", "plain"]
    plain = run_plain(script, args, cwd=tmp_path)
    result = record(script, tmp_path / "t", args=args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == plain.stdout
    assert "['%s', '--include', 'x'" % script in result.stdout
    assert_conformant(tmp_path / "t")


def test_dash_m_runs_a_module_like_python(tmp_path):
    package = tmp_path / "tool"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(
        "import sys\nfrom . import work\nprint(__name__, sys.argv[1:], work.double(21))\n")
    (package / "work.py").write_text("def double(x):\n    return 2 * x\n")
    plain = subprocess.run([sys.executable, "-m", "tool", "-v", "arg"], cwd=tmp_path,
                           capture_output=True, text=True, env=child_env())
    result = record("tool", tmp_path / "t", args=["-v", "arg"], module=True,
                    options=["--include", "tool"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == plain.stdout == "__main__ ['-v', 'arg'] 42\n"
    events = load_events(tmp_path / "t")
    names = [e["Function"]["name"] for e in events if "Function" in e]
    assert "<tool.__main__>" in names and "double" in names
    assert_conformant(tmp_path / "t")


def test_out_dir_defaults_to_codetracer_env_then_trace_out(script, tmp_path):
    env = child_env(CODETRACER_DB_TRACE_PATH=str(tmp_path / "from-env"))
    result = _ctinstrument(str(script), cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "from-env" / "trace.json").is_file()
    result = _ctinstrument(str(script), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "trace-out" / "trace.json").is_file()
    assert_conformant(tmp_path / "trace-out")


def test_main_module_attributes_match_a_plain_run(tmp_path):
    probe = tmp_path / "attrs.py"
    probe.write_text(
        "import sys\n"
        "print(sorted(globals()))\n"
        "print(__file__, __spec__, __package__, __cached__, type(__loader__).__name__)\n"
        "print(sys.modules['__main__'] is sys.modules[__name__], sys.path[0])\n")
    plain = run_plain(probe, cwd=tmp_path)
    result = record(probe, tmp_path / "t", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == plain.stdout


def test_instrumented_bytecode_is_only_in_private_cache_files(tmp_path):
    (tmp_path / "helper.py").write_text("def f():\n    return 1\n")
    main = tmp_path / "main.py"
    main.write_text("import helper\nprint(helper.f())\n")
    result = record(main, tmp_path / "t", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    private = []
    for root, _dirs, files in os.walk(tmp_path):
        for name in files:
            if name.endswith(".pyc"):
                with open(os.path.join(root, name), "rb") as handle:
                    data = handle.read()
                if b"__ctinstrument_" in data:
                    # Only under a name no interpreter looks for, with a magic none accepts.
                    assert ".ctinstrument-" in name and data.startswith(b"CTINSTR"), name
                    private.append(name)
    assert sorted(name.split(".")[0] for name in private) == ["helper", "main"]
