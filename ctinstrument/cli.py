"""Command line: ``python -m ctinstrument [OPTIONS] (SCRIPT | -m MODULE) [ARGS]...``.

Everything after the script (or after ``-m MODULE``) belongs to the program, flags included,
exactly as with ``python``.  User mistakes print one line ``ctinstrument: error: ...`` and
exit with status 2; the program's own exit status is passed through unchanged.

``python -m ctinstrument repair DIR`` completes the trace directory of a run that was killed
(see repair.py).  ``repair`` is that command only as the very first argument and only when
no file named ``repair`` exists in the current directory: then it is the script to record,
as ``python repair`` would run it (``python -m ctinstrument -- repair`` always records the
script, ``python -m ctinstrument.repair DIR`` always repairs).
"""

import atexit
import os
import signal
import sys

import click

from . import __version__
from .errors import UnsupportedPython, UsageError

# Options read from the environment; a configuration system will take them over.
CACHE_ENV = "CTINSTRUMENT_CACHE"  # "0" (or false/no/off): no private code cache
VALUE_OPTIONS = {"-i", "--include", "--exclude", "-o", "--out-dir", "--redact"}
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
            if index + 1 == len(argv):
                return argv, [], []  # click reports the missing value
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
                    "  python -m ctinstrument [OPTIONS] -m MODULE [ARGS]...\n\n"
                    "Complete the trace directory of a killed run:\n\n"
                    "  python -m ctinstrument repair DIR")
@click.option("-i", "--include", multiple=True, metavar="PATTERN",
              help="Module or glob to record (repeatable or comma-separated); a package "
                   "covers its submodules. Default: the script and the modules beside it.")
@click.option("--exclude", multiple=True, metavar="PATTERN",
              help="Module or glob never to record (wins over --include).")
@click.option("-o", "--out-dir", metavar="DIR",
              help="Trace directory (default: $CODETRACER_DB_TRACE_PATH, else ./trace-out).")
@click.option("--no-redact", is_flag=True,
              help="Record the values of variables whose names look like secrets.")
@click.option("--redact", multiple=True, metavar="NAME",
              help="Also redact variables with this name (repeatable or comma-separated).")
@click.option("--capture-output/--no-capture-output", default=True,
              help="Record what the program writes to stdout/stderr and reads from stdin "
                   "(default: on).")
@click.option("-m", "module", metavar="MODULE", help="Run a library module as a script.")
@click.version_option(__version__, prog_name="ctinstrument")
@click.argument("script", required=False)
def command(include, exclude, out_dir, no_redact, redact, capture_output, module, script):
    return {"include": include, "exclude": exclude, "out_dir": out_dir, "module": module,
            "script": script, "no_redact": no_redact, "capture_output": capture_output,
            "redact": [n.strip() for value in redact for n in value.split(",") if n.strip()]}


def cache_enabled(environ=os.environ):
    """Whether the private code cache is on (``CTINSTRUMENT_CACHE``, default on)."""
    return environ.get(CACHE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


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


def main(argv=None, preloaded=frozenset(), launcher_path_removed=False):
    """Entry point of ``python -m ctinstrument``; never returns normally (exits with status).

    ``preloaded``: names in ``sys.modules`` before ctinstrument was imported (the program
    gets its own module wherever its directory shadows one ctinstrument imported);
    ``launcher_path_removed``: whether ``sys.path[0]`` of the launcher (the working
    directory, or the console script's directory) is already gone.
    """
    if not launcher_path_removed:
        del sys.path[0]
    from . import instructions
    from .capture import StreamCapture
    from .import_hook import ImportHook
    from .recorder import Recorder
    from .redaction import Redaction
    from .runner import (ExitState, compile_script, forget_shadowed_modules, run_module,
                         run_script, script_path)
    from .selection import Selection, split_patterns
    from .termination import SigtermFinaliser
    from .writer import prepare_out_dir

    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments[:1] == ["repair"] and not os.path.isfile("repair"):
        repair_main(arguments[1:])
    parsed, program_args = parse(arguments)
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
            code = compile_script(script_path(script))
        except SyntaxError as exc:
            # Reported exactly as Python reports it; nothing was recorded.
            sys.excepthook(type(exc), exc.with_traceback(None), None)
            sys.exit(1)
        except OSError as exc:
            _fail("cannot read script %s: %s" % (script, exc.strerror or exc))

    project_dir = os.path.dirname(os.path.realpath(script)) if script else os.getcwd()
    program = script_path(script) if script else _module_origin(parsed["module"])
    main_module = parsed["module"]
    if main_module and os.path.basename(program) == "__main__.py":
        main_module += ".__main__"  # a package runs its __main__ submodule
    selection = Selection(include, exclude, project_dir, main_module=main_module)
    redaction = None if parsed["no_redact"] else Redaction(parsed["redact"])
    recorder = Recorder(out_dir, program, program_args, redaction=redaction)
    hook = ImportHook(selection, recorder, cache=cache_enabled())
    recorder.extra_metadata["code_cache"] = hook.stats
    state = ExitState()
    installed = []  # what _finish uninstalls
    atexit.register(_finish, recorder, state, installed)
    hook.install()
    recorder.start()
    recorder.write_start_metadata()
    if parsed["capture_output"]:
        installed.append(StreamCapture(recorder).install())
    installed.append(SigtermFinaliser(recorder).install())
    if script is not None:
        code = hook.instrument(code, "__main__", program)
        forget_shadowed_modules(preloaded, project_dir)
        run_script(code, script, program_args, state, recorder)
    else:
        forget_shadowed_modules(preloaded, project_dir)
        run_module(parsed["module"], program_args, state, recorder)
    sys.exit(state.exit_code)


def _module_origin(name):
    """The source path of module ``name`` found without importing anything, else ``name``."""
    import importlib.machinery
    parts = name.split(".")
    search = [os.getcwd()] + sys.path  # python -m looks in the working directory first
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


def _finish(recorder, state, installed):
    recorder.finish(state.exit_code)
    for hook in installed:
        hook.uninstall()
    if state.interrupted:
        # Die of SIGINT as Python does after an uncaught KeyboardInterrupt.
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)


@click.command(context_settings={"help_option_names": ["-h", "--help"]},
               help="Complete the trace directory DIR of a recording that was killed "
                    "(SIGKILL, os._exit, a crash): keep every complete event, close the "
                    "calls left open, write trace_paths.json and trace_metadata.json.\n\n"
                    "'repair' is this command only as the first argument and when no file "
                    "named 'repair' is in the current directory (else that script is "
                    "recorded); 'python -m ctinstrument.repair DIR' always repairs.")
@click.argument("trace_dir", metavar="DIR")
def repair_command(trace_dir):
    return trace_dir


def repair_main(argv):
    """``python -m ctinstrument repair DIR``; exits 0 once DIR is a complete trace, else 2
    with a one-line error."""
    from .repair import repair
    try:
        trace_dir = repair_command.main(args=list(argv), prog_name="python -m ctinstrument repair",
                                        standalone_mode=False)
    except click.exceptions.ClickException as exc:
        _fail(exc.format_message())
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    if not isinstance(trace_dir, str):  # --help already printed
        sys.exit(0)
    try:
        summary = repair(trace_dir)
    except UsageError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail("cannot repair %s: %s" % (trace_dir, exc.strerror or exc))
    print("ctinstrument: %s" % summary)
    sys.exit(0)
