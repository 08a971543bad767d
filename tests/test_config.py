"""Configuration: one options table read from ``[tool.ctinstrument]`` in the nearest
pyproject.toml, then ``CTINSTRUMENT_*`` variables, then the command line or ``install_hook``
arguments (later wins); bad configuration is a one-line error; ``--explain``/``--debug`` say
why each module was or was not recorded.

Precedence is proven by the trace itself: which modules' functions were called in it.
"""

import json
import os
import subprocess
import sys

import pytest

from tracetools import assert_conformant, child_env, load_events, record

from ctinstrument.config import OPTIONS, resolve
from ctinstrument.errors import UsageError

MAIN = "import alpha, beta, gamma\nprint(alpha.a() + beta.b() + gamma.c())\n"


def _project(directory, main=MAIN):
    """alpha.py, beta.py, gamma.py (each defines one function) and main.py in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, function, value in (("alpha", "a", 1), ("beta", "b", 2), ("gamma", "c", 3)):
        (directory / (name + ".py")).write_text("def %s():\n    return %d\n" % (function, value))
    script = directory / "main.py"
    script.write_text(main)
    return script


def _pyproject(directory, text):
    (directory / "pyproject.toml").write_text(text)


def _called_modules(trace_dir):
    """Stems of the files whose functions were called in the trace (not module bodies)."""
    events = load_events(trace_dir)
    paths = [event["Path"] for event in events if "Path" in event]
    functions = [event["Function"] for event in events if "Function" in event]
    called = set()
    for event in events:
        if "Call" in event:
            function = functions[event["Call"]["function_id"]]
            if not function["name"].startswith("<"):
                called.add(os.path.splitext(os.path.basename(paths[function["path_id"]]))[0])
    return called


def _metadata(trace_dir):
    with open(os.path.join(trace_dir, "trace_metadata.json")) as handle:
        return json.load(handle)


def _ctinstrument(*args, cwd, env=None):
    return subprocess.run([sys.executable, "-m", "ctinstrument", *args], cwd=cwd,
                          capture_output=True, text=True, env=env or child_env(), timeout=300)


def _assert_usage_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ctinstrument: error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.stderr


# -- precedence ------------------------------------------------------------------------------

def test_pyproject_then_environment_then_command_line(tmp_path):
    project = tmp_path / "proj"
    script = _project(project)
    _pyproject(project, '[tool.ctinstrument]\ninclude = ["alpha"]\nredact_names = ["x"]\n')
    pyproject = str(project / "pyproject.toml")

    from_file = record(script, tmp_path / "t1", cwd=tmp_path)
    from_env = record(script, tmp_path / "t2", cwd=tmp_path,
                      env=child_env(CTINSTRUMENT_INCLUDE="beta"))
    from_cli = record(script, tmp_path / "t3", cwd=tmp_path, options=["--include", "gamma"],
                      env=child_env(CTINSTRUMENT_INCLUDE="beta"))
    for result in (from_file, from_env, from_cli):
        assert result.returncode == 0, result.stderr
        assert result.stdout == "6\n"

    assert _called_modules(tmp_path / "t1") == {"alpha"}
    assert _called_modules(tmp_path / "t2") == {"beta"}
    assert _called_modules(tmp_path / "t3") == {"gamma"}

    settings = [_metadata(tmp_path / name)["settings"] for name in ("t1", "t2", "t3")]
    assert [s["include"] for s in settings] == [["alpha"], ["beta"], ["gamma"]]
    assert [s["redact_names"] for s in settings] == [["x"], ["x"], ["x"]]
    # -o is given on every command line (by tracetools.record).
    assert settings[0]["sources"] == [pyproject, "cli"]
    assert settings[1]["sources"] == [pyproject, "env:CTINSTRUMENT_INCLUDE", "cli"]
    assert settings[2]["sources"] == [pyproject, "env:CTINSTRUMENT_INCLUDE", "cli"]
    assert _metadata(tmp_path / "t3")["selection"]["include"] == ["gamma"]
    for name in ("t1", "t2", "t3"):
        assert_conformant(tmp_path / name)


def test_nearest_pyproject_is_found_from_a_subdirectory(tmp_path):
    # The outer file would select gamma; the nearest one (above the script's directory)
    # selects alpha, and its out_dir is relative to its own directory.
    _pyproject(tmp_path, '[tool.ctinstrument]\ninclude = ["gamma"]\n')
    project = tmp_path / "proj"
    script = _project(project / "src" / "app")
    _pyproject(project, '[tool.ctinstrument]\ninclude = ["alpha"]\nout_dir = "traces"\n')
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()

    result = _ctinstrument(str(script), cwd=elsewhere)

    assert result.returncode == 0, result.stderr
    trace = project / "traces"
    assert _called_modules(trace) == {"alpha"}
    assert _metadata(trace)["settings"]["out_dir"] == str(trace)
    assert _metadata(trace)["settings"]["sources"] == [str(project / "pyproject.toml")]
    assert not (elsewhere / "trace-out").exists()
    assert_conformant(trace)


def test_pyproject_without_our_table_is_fine_and_ends_the_search(tmp_path):
    _pyproject(tmp_path, '[tool.ctinstrument]\ninclude = ["gamma"]\n')
    project = tmp_path / "proj"
    script = _project(project)
    _pyproject(project, '[project]\nname = "proj"\n\n[tool.black]\nline-length = 99\n')

    result = record(script, tmp_path / "t", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    # Project mode: the script and every module beside it.
    assert _called_modules(tmp_path / "t") == {"alpha", "beta", "gamma"}
    settings = _metadata(tmp_path / "t")["settings"]
    assert settings["include"] == [] and settings["sources"] == ["cli"]
    assert_conformant(tmp_path / "t")


def test_module_mode_reads_the_pyproject_of_the_working_directory(tmp_path):
    _project(tmp_path)
    _pyproject(tmp_path, '[tool.ctinstrument]\ninclude = ["beta"]\n')

    result = record("main", tmp_path / "t", cwd=tmp_path, module=True)

    assert result.returncode == 0, result.stderr
    assert _called_modules(tmp_path / "t") == {"beta"}
    assert_conformant(tmp_path / "t")


# -- errors ----------------------------------------------------------------------------------

def test_broken_pyproject_is_a_one_line_error_naming_file_and_line(tmp_path):
    script = _project(tmp_path)
    _pyproject(tmp_path, '[tool.ctinstrument]\ninclude = ["alpha"]\nexclude = = "beta"\n')

    result = record(script, tmp_path / "t", cwd=tmp_path)

    _assert_usage_error(result, str(tmp_path / "pyproject.toml"), "line 3")
    assert result.stdout == ""  # the program did not run
    assert not (tmp_path / "t" / "trace.json").exists()


def test_unknown_key_is_an_error_suggesting_the_close_match(tmp_path):
    script = _project(tmp_path)
    _pyproject(tmp_path, '[tool.ctinstrument]\ninclud = ["alpha"]\n')

    result = record(script, tmp_path / "t", cwd=tmp_path)

    _assert_usage_error(result, "'includ'", str(tmp_path / "pyproject.toml"),
                        "did you mean include?")


def test_value_of_the_wrong_type_is_an_error(tmp_path):
    script = _project(tmp_path)
    _pyproject(tmp_path, '[tool.ctinstrument]\nredact = "no"\n')

    result = record(script, tmp_path / "t", cwd=tmp_path)

    _assert_usage_error(result, "redact", str(tmp_path / "pyproject.toml"),
                        "must be true or false")


def test_bad_pattern_in_pyproject_names_the_file(tmp_path):
    script = _project(tmp_path)
    _pyproject(tmp_path, '[tool.ctinstrument]\nexclude = ["a..b"]\n')

    result = record(script, tmp_path / "t", cwd=tmp_path)

    _assert_usage_error(result, "'a..b'", str(tmp_path / "pyproject.toml"))


def test_bad_boolean_in_environment_is_an_error_naming_the_variable(tmp_path):
    script = _project(tmp_path)

    result = record(script, tmp_path / "t", cwd=tmp_path,
                    env=child_env(CTINSTRUMENT_REDACT="maybe"))

    _assert_usage_error(result, "$CTINSTRUMENT_REDACT", "'maybe'")


def test_unknown_environment_variable_is_a_warning(tmp_path):
    script = _project(tmp_path)

    result = record(script, tmp_path / "t", cwd=tmp_path,
                    env=child_env(CTINSTRUMENT_INCLUD="alpha"))

    assert result.returncode == 0
    assert result.stderr == ("ctinstrument: warning: unknown environment variable "
                             "CTINSTRUMENT_INCLUD ignored (did you mean CTINSTRUMENT_INCLUDE?)\n")
    assert_conformant(tmp_path / "t")


# -- resolution rules (no process needed) ----------------------------------------------------

def test_environment_booleans_and_lists(tmp_path):
    words = {"1": True, "TRUE": True, "yes": True, "On": True,
             "0": False, "false": False, "NO": False, "off": False}
    for word, expected in words.items():
        settings = resolve({}, str(tmp_path), environ={"CTINSTRUMENT_CAPTURE_OUTPUT": word})
        assert settings["capture_output"] is expected
        assert settings.origin["capture_output"] == "env:CTINSTRUMENT_CAPTURE_OUTPUT"
    settings = resolve({}, str(tmp_path), environ={"CTINSTRUMENT_EXCLUDE": "a, b.c,,",
                                                   "CTINSTRUMENT_REDACT": ""})
    assert settings["exclude"] == ["a", "b.c"]
    assert settings.origin["redact"] == "default"  # an empty variable counts as unset


def test_out_dir_precedence(tmp_path):
    _pyproject(tmp_path, '[tool.ctinstrument]\nout-dir = "from-file"\n')
    environ = {"CTINSTRUMENT_OUT_DIR": "from-env"}
    assert resolve({}, str(tmp_path), environ={})["out_dir"] == str(tmp_path / "from-file")
    assert resolve({}, str(tmp_path), environ=environ)["out_dir"] == "from-env"
    environ["CODETRACER_DB_TRACE_PATH"] = "from-codetracer"
    assert resolve({}, str(tmp_path), environ=environ)["out_dir"] == "from-codetracer"
    settings = resolve({"out_dir": "given"}, str(tmp_path), environ=environ)
    assert settings["out_dir"] == "given"
    assert settings.sources == [str(tmp_path / "pyproject.toml"), "env:CTINSTRUMENT_OUT_DIR",
                                "env:CODETRACER_DB_TRACE_PATH", "cli"]


def test_path_patterns_in_pyproject_are_relative_to_its_directory(tmp_path):
    (tmp_path / "src").mkdir()
    _pyproject(tmp_path, '[tool.ctinstrument]\ninclude = ["./src", "pkg.mod"]\n')
    settings = resolve({}, str(tmp_path / "src"), environ={})
    assert settings["include"] == [os.path.join(str(tmp_path), "./src"), "pkg.mod"]


def test_the_same_key_twice_is_an_error(tmp_path):
    _pyproject(tmp_path, '[tool.ctinstrument]\nout_dir = "a"\nout-dir = "b"\n')
    with pytest.raises(UsageError, match="given twice"):
        resolve({}, str(tmp_path), environ={})


def test_every_option_has_one_environment_variable_of_its_own():
    names = [env for option in OPTIONS for env in option.env]
    assert len(names) == len(set(names))
    assert all(env.startswith("CTINSTRUMENT_") or env == "CODETRACER_DB_TRACE_PATH"
               for env in names)


# -- --explain / --debug ---------------------------------------------------------------------

EXPLAINED = "import csv, fractions\n" + MAIN


def test_explain_lists_each_module_with_its_reason(tmp_path):
    script = _project(tmp_path, main=EXPLAINED)

    result = record(script, tmp_path / "t", cwd=tmp_path,
                    options=["--explain", "--include", "alpha,beta,threading",
                             "--exclude", "beta"])

    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    # ctinstrument imported threading before the program, and a second copy would not
    # be the threading module of the process (reimport.py).
    why = ("the interpreter calls the first copy's _shutdown at exit and its thread "
           "registry knows the running threads")
    refused = "imported before ctinstrument was installed: " + why
    assert lines[0] == ("ctinstrument: warning: threading was imported before the program "
                        "started and is not recorded: " + why)
    decisions = _metadata(tmp_path / "t")["selection"]["decisions"]
    assert lines[1] == ("ctinstrument: explain: 2 of %d imported modules instrumented "
                        "(--debug lists every module)"
                        % (decisions["instrumented"] + decisions["not instrumented"]))
    report = lines[2:]
    assert "ctinstrument: yes __main__: the program's main script" in report
    assert "ctinstrument: yes alpha: included by alpha" in report
    assert "ctinstrument: no  beta: excluded by beta" in report
    assert "ctinstrument: no  gamma: matches no include pattern" in report
    assert "ctinstrument: no  threading: " + refused in report
    # The standard library is one line per reason, after the named modules.
    (stdlib,) = [line for line in report if "standard library" in line]
    assert stdlib.startswith("ctinstrument: no  standard library (")
    assert stdlib.endswith("): matches no include pattern")
    assert not any(" csv:" in line for line in report)
    assert report[-1] == stdlib
    names = [line.split()[2].rstrip(":") for line in report[:-1]]
    assert names == sorted(names)

    assert decisions["instrumented"] == 2
    assert decisions["reasons"]["included by alpha"] == 1
    assert decisions["reasons"]["excluded by beta"] == 1
    assert decisions["reasons"][refused] == 1
    assert decisions["reasons"]["matches no include pattern"] >= 3  # gamma, csv, fractions
    assert _called_modules(tmp_path / "t") == {"alpha"}
    assert_conformant(tmp_path / "t")


def test_debug_lists_every_module_and_where_each_option_came_from(tmp_path):
    script = _project(tmp_path, main=EXPLAINED)
    _pyproject(tmp_path, '[tool.ctinstrument]\ninclude = ["alpha"]\n')

    result = record(script, tmp_path / "t", cwd=tmp_path, options=["--debug"])

    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert ("ctinstrument: debug: option include = ['alpha'] (%s)"
            % (tmp_path / "pyproject.toml")) in lines
    assert "ctinstrument: debug: option debug = True (cli)" in lines
    assert "ctinstrument: debug: option paused = False (default)" in lines
    assert "ctinstrument: no  csv: matches no include pattern" in lines
    assert "ctinstrument: no  fractions: matches no include pattern" in lines
    assert "ctinstrument: yes alpha: included by alpha" in lines
    assert not any("standard library (" in line for line in lines)
    assert_conformant(tmp_path / "t")


# -- --paused --------------------------------------------------------------------------------

PAUSED = """\
import ctinstrument
import alpha, beta
alpha.a()
ctinstrument.start()
beta.b()
"""


def test_paused_records_only_after_start(tmp_path):
    script = _project(tmp_path, main=PAUSED)

    result = record(script, tmp_path / "t", cwd=tmp_path, options=["--paused"])

    assert result.returncode == 0, result.stderr
    assert _called_modules(tmp_path / "t") == {"beta"}
    metadata = _metadata(tmp_path / "t")
    assert metadata["settings"]["paused"] is True
    assert metadata["windows"] == 1
    assert_conformant(tmp_path / "t")


def test_paused_from_the_environment(tmp_path):
    script = _project(tmp_path, main=PAUSED)

    result = record(script, tmp_path / "t", cwd=tmp_path,
                    env=child_env(CTINSTRUMENT_PAUSED="yes"))

    assert result.returncode == 0, result.stderr
    assert _called_modules(tmp_path / "t") == {"beta"}
    assert_conformant(tmp_path / "t")


# -- the Python API reads the same table -----------------------------------------------------

API_PROGRAM = """\
import sys
import ctinstrument
handle = ctinstrument.install_hook(%s)
import alpha, beta, gamma
print(alpha.a() + beta.b() + gamma.c())
handle.uninstall()
print(sorted(name for name, (yes, _) in handle.decisions.items() if yes))
"""


def _run_api(directory, arguments="", env=None):
    _project(directory, main=API_PROGRAM % arguments)
    return subprocess.run([sys.executable, "main.py"], cwd=directory, capture_output=True,
                          text=True, env=env or child_env(), timeout=300)


def test_install_hook_reads_pyproject_and_environment(tmp_path):
    first = tmp_path / "first"
    first.mkdir()
    _pyproject(first, '[tool.ctinstrument]\ninclude = ["alpha"]\nout_dir = "api-trace"\n'
                      'paused = false\n')
    result = _run_api(first)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "6\n['alpha']\n"
    trace = first / "api-trace"
    assert _called_modules(trace) == {"alpha"}
    assert _metadata(trace)["settings"]["sources"] == [str(first / "pyproject.toml")]
    assert_conformant(trace)

    second = tmp_path / "second"
    second.mkdir()
    _pyproject(second, '[tool.ctinstrument]\ninclude = ["alpha"]\nout_dir = "api-trace"\n')
    result = _run_api(second, arguments='"gamma", capture_output=True',
                      env=child_env(CTINSTRUMENT_INCLUDE="beta"))
    assert result.returncode == 0, result.stderr
    trace = second / "api-trace"
    assert _called_modules(trace) == {"gamma"}
    settings = _metadata(trace)["settings"]
    assert settings["include"] == ["gamma"] and settings["capture_output"] is True
    assert settings["sources"] == [str(second / "pyproject.toml"), "env:CTINSTRUMENT_INCLUDE",
                                   "api"]
    assert_conformant(trace)


def test_install_hook_reports_bad_configuration_as_usage_error(tmp_path):
    _pyproject(tmp_path, '[tool.ctinstrument]\nexplain = 1\n')
    result = _run_api(tmp_path)
    assert result.returncode == 1
    assert "ctinstrument.errors.UsageError: [tool.ctinstrument] explain in %s must be true " \
           "or false, not 1" % (tmp_path / "pyproject.toml") in result.stderr


def test_explain_report_groups_big_packages_and_drops_names_never_imported():
    from ctinstrument import explain
    decisions = {"app": (True, "included by app"), "app.secret": (False, "excluded by app.secret"),
                 "not_installed": (False, "matches no include pattern"),
                 "json": (False, "matches no include pattern")}
    decisions.update(("big.sub.m%d" % i, (False, "matches no include pattern"))
                     for i in range(5))
    imported = explain.imported_decisions(decisions, modules=set(decisions) - {"not_installed"})
    assert "not_installed" not in imported
    assert explain.report(imported) == [
        "explain: 1 of 8 imported modules instrumented (--debug lists every module)",
        "yes app: included by app",
        "no  app.secret: excluded by app.secret",
        "no  big.sub (5 modules): matches no include pattern",
        "no  standard library (1 module): matches no include pattern",
    ]
    assert len(explain.report(imported, every_module=True)) == 9
    assert explain.counts(imported) == {
        "instrumented": 1, "not instrumented": 7,
        "reasons": {"excluded by app.secret": 1, "included by app": 1,
                    "matches no include pattern": 6}}
