"""Command line: ``python -m ctinstrument [OPTIONS] (SCRIPT | -m MODULE) [ARGS]...``.

Everything after the script (or after ``-m MODULE``) belongs to the program, flags included,
exactly as with ``python``.  User mistakes print one line ``ctinstrument: error: ...`` and
exit with status 2; the program's own exit status is passed through unchanged.
"""

import atexit
import os
import signal
import sys

import click

from . import __version__
from .errors import UnsupportedPython, UsageError

VALUE_OPTIONS = {"-i", "--include", "--exclude", "-o", "--out-dir"}
DEFAULT_OUT_DIR = "trace-out"


def split_argv(argv):
    """Split ``argv`` into (ctinstrument options, [script] or [-m, module], program args)."""
    index = 0
    while index < len(argv):
        word = argv[index]
        if word == "--":
            return argv[:index], argv[index + 1:index + 2], argv[index + 2:]
        if word == "-m":
            return argv[:index], ["-m"] + argv[index + 1:index + 2], argv[index + 2:]
        if word.startswith("-m") and not word.startswith("--"):
            return argv[:index], ["-m", word[2:]], argv[index + 1:]
        if word in VALUE_OPTIONS:
            index += 2
            continue
        if word.startswith("-") and word != "-":
            index += 1
            continue
        return argv[:index], [word], argv[index + 1:]
    return argv, [], []


@click.command(context_settings={"help_option_names": ["-h", "--help"]},
               help="Record a Python program into a CodeTracer trace directory.\n\n"
                    "  python -m ctinstrument [OPTIONS] SCRIPT [ARGS]...\n\n"
                    "  python -m ctinstrument [OPTIONS] -m MODULE [ARGS]...")
@click.option("-i", "--include", multiple=True, metavar="PATTERN",
              help="Module or glob to record (repeatable or comma-separated); a package "
                   "covers its submodules. Default: the script and the modules beside it.")
@click.option("--exclude", multiple=True, metavar="PATTERN",
              help="Module or glob never to record (wins over --include).")
@click.option("-o", "--out-dir", metavar="DIR",
              help="Trace directory (default: $CODETRACER_DB_TRACE_PATH, else ./trace-out).")
@click.option("-m", "module", metavar="MODULE", help="Run a library module as a script.")
@click.version_option(__version__, prog_name="ctinstrument")
@click.argument("script", required=False)
def command(include, exclude, out_dir, module, script):
    return {"include": include, "exclude": exclude, "out_dir": out_dir,
            "module": module, "script": script}


def _fail(message, status=2):
    sys.stderr.write("ctinstrument: error: %s\n" % message)
    sys.exit(status)


def parse(argv):
    """Parse ``argv``; returns the options dict and the program's args, or exits (status 2)."""
    options, target, program_args = split_argv(list(argv))
    try:
        parsed = command.main(args=options + ["--"] + target if target[:1] != ["-m"]
                              else options + target, prog_name="python -m ctinstrument",
                              standalone_mode=False)
    except click.exceptions.ClickException as exc:
        _fail(exc.format_message())
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _fail("aborted")
    if not isinstance(parsed, dict):  # --help / --version already printed
        sys.exit(0)
    if parsed["module"] and parsed["script"]:
        _fail("give either a script or -m MODULE, not both")
    if not parsed["module"] and not parsed["script"]:
        _fail("no program to record: give a script or -m MODULE (see --help)")
    return parsed, program_args


def main(argv=None):
    """Entry point of ``python -m ctinstrument``; never returns normally (exits with status)."""
    from . import instructions
    from .import_hook import ImportHook
    from .recorder import Recorder
    from .runner import ExitState, compile_script, run_module, run_script
    from .selection import Selection, split_patterns
    from .writer import prepare_out_dir

    parsed, program_args = parse(sys.argv[1:] if argv is None else argv)
    try:
        instructions.check_supported()
        include = split_patterns(parsed["include"])
        exclude = split_patterns(parsed["exclude"])
        script = parsed["script"]
        if script is not None:
            if os.path.isdir(script):
                raise UsageError("%s is a directory, not a Python script" % script)
            if not os.path.isfile(script):
                raise UsageError("cannot open script %s: no such file" % script)
        out_dir = parsed["out_dir"] or os.environ.get("CODETRACER_DB_TRACE_PATH") \
            or DEFAULT_OUT_DIR
        out_dir = prepare_out_dir(out_dir)
    except (UsageError, UnsupportedPython) as exc:
        _fail(str(exc))

    code = None
    if script is not None:
        try:
            code = compile_script(script)
        except SyntaxError as exc:
            # Reported exactly as Python reports it; nothing was recorded.
            sys.excepthook(type(exc), exc.with_traceback(None), None)
            sys.exit(1)
        except OSError as exc:
            _fail("cannot read script %s: %s" % (script, exc.strerror or exc))

    project_dir = os.path.dirname(os.path.abspath(script)) if script else os.getcwd()
    program = os.path.abspath(script) if script else _module_origin(parsed["module"])
    main_module = parsed["module"]
    if main_module and os.path.basename(program) == "__main__.py":
        main_module += ".__main__"  # a package runs its __main__ submodule
    selection = Selection(include, exclude, project_dir, main_module=main_module)
    recorder = Recorder(out_dir, program, program_args)
    hook = ImportHook(selection, recorder)
    state = ExitState()
    atexit.register(_finish, recorder, state)
    hook.install()
    recorder.start()
    if script is not None:
        code = hook.instrument(code, "__main__", os.path.abspath(script))
        run_script(code, script, program_args, state, recorder)
    else:
        run_module(parsed["module"], program_args, state, recorder)
    sys.exit(state.exit_code)


def _module_origin(name):
    """The source path of module ``name`` found without importing anything, else ``name``."""
    import importlib.machinery
    parts = name.split(".")
    search = None
    spec = None
    for index in range(len(parts)):
        spec = importlib.machinery.PathFinder.find_spec(".".join(parts[:index + 1]), search)
        if spec is None:
            return name
        search = spec.submodule_search_locations
    if spec.submodule_search_locations:
        spec = importlib.machinery.PathFinder.find_spec(name + ".__main__",
                                                        spec.submodule_search_locations)
    return spec.origin if spec is not None and spec.origin else name


def _finish(recorder, state):
    recorder.finish(state.exit_code)
    if state.interrupted:
        # Die of SIGINT as Python does after an uncaught KeyboardInterrupt.
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
